"""Fit the live-preview projection of the built-in autoencoder: latent -> RGB, one linear map + bias.

    python -m camgrid.train.fit_preview            # prints the constants for nodes/preview.py

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

import torch
import torch.nn.functional as F

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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenes", type=int, default=96, help="scenes to fit on (another 32 are held out)")
    parser.add_argument("--seed", type=int, default=2024, help="dataset seed (not the training data's)")
    args = parser.parse_args(argv)
    ae = load_builtin().ae
    dataset = SyntheticMultiViewDataset(length=args.scenes + 32, seed=args.seed)
    train = latent_and_target_pixels(ae, dataset, range(args.scenes))
    held_out = latent_and_target_pixels(ae, dataset, range(args.scenes, args.scenes + 32))
    factors, bias = fit(train[0], train[1])
    print(f"# held-out PSNR at latent resolution: {psnr(factors, bias, held_out[0], held_out[1]):.2f} dB vs the "
          f"decoded frames, {psnr(factors, bias, held_out[0], held_out[2]):.2f} dB vs the rendered frames")
    print("TINY_AE_LATENT_RGB_FACTORS = (")
    for row in factors.tolist():
        print("    (" + ", ".join(f"{x:.4f}" for x in row) + "),")
    print(")")
    print("TINY_AE_LATENT_RGB_BIAS = (" + ", ".join(f"{x:.4f}" for x in bias.tolist()) + ")")


if __name__ == "__main__":
    main()
