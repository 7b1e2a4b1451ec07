"""Fit the live-preview projection of the built-in autoencoder: latent -> RGB, one linear map + bias.

    python -m camgrid.train.fit_preview            # prints the constants for nodes/preview.py
    python -m camgrid.train.fit_preview --write    # and writes them into nodes/preview.py

ComfyUI draws a live preview of a sampler's current x0 estimate by projecting each latent pixel to
RGB with a per-format matrix (`comfy.latent_formats.*.latent_rgb_factors`); it has none for the
built-in model's 8-channel latent. This renders synthetic scenes, encodes them with the shipped
autoencoder, decodes them again and solves least squares from each latent pixel (8 values + 1) to
the mean colour of the decoded pixels it stands for (a 4x4 patch, averaged over the latent frame's
group of frames), with colours in -1..1 as ComfyUI's `Latent2RGBPreviewer` expects. Run it again
whenever the autoencoder is retrained, and paste the printed constants into nodes/preview.py;
tests/test_preview.py checks the constants still fit the shipped autoencoder.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from ..model.files import atomic_write
from ..synth.dataset import SyntheticMultiViewDataset
from .autoencoder import SPATIAL_STRIDE, TEMPORAL_STRIDE
from .builtin import load_builtin


def latent_frame_colours(frames: torch.Tensor) -> torch.Tensor:
    """frames [N, F, H, W, 3] in 0..1 -> [N, T, H/4, W/4, 3]: what each latent pixel stands for (the
    first frame alone, then groups of 4 frames, each averaged over its 4x4 pixel patch)."""
    n, f, h, w, _ = frames.shape
    groups = frames[:, 1:].reshape(n, (f - 1) // TEMPORAL_STRIDE, TEMPORAL_STRIDE, h, w, 3).mean(2)
    per_latent_frame = torch.cat([frames[:, :1], groups], 1)                      # [N, T, H, W, 3]
    pooled = F.avg_pool2d(per_latent_frame.permute(0, 1, 4, 2, 3).flatten(0, 1), SPATIAL_STRIDE)
    return pooled.reshape(n, -1, 3, h // SPATIAL_STRIDE, w // SPATIAL_STRIDE).permute(0, 1, 3, 4, 2)


@torch.no_grad()
def latent_and_target_pixels(ae, dataset, indices):
    """(latent pixels [P, C], decoded colours [P, 3], rendered colours [P, 3]) of the given scenes."""
    latents, decoded, rendered = [], [], []
    for i in indices:
        videos = dataset[i]["videos"]                                                # [V, F, H, W, 3]
        z = ae.encode(videos)                                                        # [V, C, T, h, w]
        latents.append(z.permute(0, 2, 3, 4, 1).reshape(-1, z.shape[1]))
        decoded.append(latent_frame_colours(ae.decode(z)).reshape(-1, 3))
        rendered.append(latent_frame_colours(videos).reshape(-1, 3))
    return torch.cat(latents).double(), torch.cat(decoded).double(), torch.cat(rendered).double()


def fit(latents: torch.Tensor, colours: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Least squares: colours (0..1) ~ ((latents @ factors + bias) + 1) / 2. Returns factors [C, 3], bias [3]."""
    design = torch.cat([latents, torch.ones(len(latents), 1, dtype=latents.dtype)], 1)
    solution = torch.linalg.lstsq(design, colours * 2 - 1).solution
    return solution[:-1], solution[-1]


def psnr(factors, bias, latents, colours) -> float:
    predicted = ((latents @ factors.to(latents) + bias.to(latents)).clamp(-1, 1) + 1) / 2
    return float(10 * torch.log10(1 / ((predicted - colours) ** 2).mean()))


PREVIEW_FILE = Path(__file__).resolve().parent.parent / "nodes" / "preview.py"
_CONSTANTS = re.compile(r"# From `python -m camgrid.train.fit_preview`.*?\nTINY_AE_LATENT_RGB_BIAS = \([^)]*\)\n", re.S)


def constants_block(factors, bias, scenes: int, held_out_psnr: float) -> str:
    """The comment and the two constants of nodes/preview.py, as fitted."""
    rows = "".join("    (" + ", ".join(f"{x:.4f}" for x in row) + "),\n" for row in factors.tolist())
    return (f"# From `python -m camgrid.train.fit_preview` ({scenes} synthetic scenes; held-out PSNR at latent resolution\n"
            f"# {held_out_psnr:.1f} dB vs the decoded frames). Refit when the autoencoder is retrained (tests/test_preview.py checks).\n"
            f"TINY_AE_LATENT_RGB_FACTORS = (\n{rows})\n"
            "TINY_AE_LATENT_RGB_BIAS = (" + ", ".join(f"{x:.4f}" for x in bias.tolist()) + ")\n")


def write_constants(block: str, path: Path = PREVIEW_FILE) -> None:
    text = path.read_text()
    if len(_CONSTANTS.findall(text)) != 1:
        raise RuntimeError(f"{path}: the fitted constants block was not found once; paste the printed constants by hand")
    atomic_write(path, _CONSTANTS.sub(lambda _: block, text))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=96, help="scenes to fit on (another 32 are held out)")
    parser.add_argument("--seed", type=int, default=2024, help="dataset seed (not the training data's)")
    parser.add_argument("--write", action="store_true", help=f"write the constants into {PREVIEW_FILE}")
    args = parser.parse_args(argv)
    ae = load_builtin().ae
    dataset = SyntheticMultiViewDataset(length=args.scenes + 32, seed=args.seed)
    train = latent_and_target_pixels(ae, dataset, range(args.scenes))
    held_out = latent_and_target_pixels(ae, dataset, range(args.scenes, args.scenes + 32))
    factors, bias = fit(train[0], train[1])
    decoded = psnr(factors, bias, held_out[0], held_out[1])
    print(f"# held-out PSNR at latent resolution: {decoded:.2f} dB vs the "
          f"decoded frames, {psnr(factors, bias, held_out[0], held_out[2]):.2f} dB vs the rendered frames")
    block = constants_block(factors, bias, args.scenes, decoded)
    print(block, end="")
    if args.write:
        write_constants(block)
        print(f"# written into {PREVIEW_FILE}")


if __name__ == "__main__":
    main()
