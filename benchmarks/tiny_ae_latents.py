"""How smooth the built-in autoencoder's latents are, and what it costs in reconstruction: the latent space the DiT
has to model (benchmarks/TINY_MODEL.md, "Built-in model v3").

    python benchmarks/tiny_ae_latents.py [DIR ...] [--scenes 12] [--style close]

For each model folder (default: the shipped assets/; any folder with camgrid-tiny-text-ae.safetensors, e.g. a
`camgrid train --stages ae` run), held-out scenes are rendered, encoded and decoded. Columns:
- PSNR: reconstruction, dB (frames in 0..1);
- PSNR, latent noise 0.1: decoding latents with white noise of 0.1 latent std added (a generator's small errors);
- neighbour corr: correlation of horizontally adjacent latent pixels (1: smooth, 0: white noise);
- high-freq share: share of the latents' spatial energy above half the latent grid's Nyquist frequency in either
  axis (white noise: the share of such frequencies, 0.68 on the 12x20 latent grid);
- flat-region std: the latents' spatial std in the top two latent rows (sky in every rig of the data: pixels
  nearly flat there), averaged over channels, frames and views.
Deterministic (fixed scenes and noise), CPU, a few seconds a folder.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.synth.dataset import SyntheticMultiViewDataset  # noqa: E402
from camgrid.synth.render import render  # noqa: E402
from camgrid.train.builtin import ASSETS_DIR, load_text_and_autoencoder  # noqa: E402

SCENE_SEED = 321      # tiny_noise_left's held-out scenes
NOISE_SEED = 5
HEIGHT, WIDTH, FRAMES = 48, 80, 17


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(-10 * torch.log10((a - b).pow(2).mean()))


def neighbour_corr(z: torch.Tensor) -> float:
    """Correlation of horizontally adjacent values of z [..., h, w]."""
    return float(torch.corrcoef(torch.stack([z[..., 1:].flatten(), z[..., :-1].flatten()]))[0, 1])


def high_freq_share(z: torch.Tensor) -> float:
    """Share of the spatial energy of z [..., h, w] (each map's mean removed) above half the Nyquist frequency in
    either axis."""
    power = torch.fft.fft2(z - z.mean(dim=(-2, -1), keepdim=True)).abs().pow(2)
    fy = torch.fft.fftfreq(z.shape[-2]).abs().view(-1, 1)
    fx = torch.fft.fftfreq(z.shape[-1]).abs().view(1, -1)
    high = ((fy > 0.25) | (fx > 0.25)).to(power.dtype)
    return float((power * high).sum() / power.sum())


@torch.no_grad()
def measure(ae, scenes: int, style: str = "standard") -> dict:
    data = SyntheticMultiViewDataset(length=scenes, height=HEIGHT, width=WIDTH, num_frames=FRAMES, min_views=4,
                                     max_views=4, seed=SCENE_SEED, style=style)
    frames = torch.cat([render(*data.scene_and_rig(i), HEIGHT, WIDTH).clamp(0, 1) for i in range(scenes)])
    z = ae.encode(frames)                                     # [N, C, T, h, w], normalised
    noise = torch.randn(z.shape, generator=torch.Generator().manual_seed(NOISE_SEED))
    return {"psnr": psnr(ae.decode(z), frames), "psnr_noisy": psnr(ae.decode(z + 0.1 * noise), frames),
            "neighbour_corr": neighbour_corr(z), "high_freq_share": high_freq_share(z),
            "flat_std": float(z[..., :2, :].std(dim=(-2, -1)).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="*", default=[str(ASSETS_DIR)])
    p.add_argument("--scenes", type=int, default=12)
    p.add_argument("--style", default=None, help="scene style of the held-out scenes (default: the one each "
                   "folder's files record; synth/scenes.py SCENE_STYLES)")
    args = p.parse_args()
    print(f"autoencoder latents on {args.scenes} held-out scenes x 4 views ({HEIGHT}x{WIDTH}, {FRAMES} frames)\n")
    print("| folder | PSNR dB | PSNR, latent noise 0.1 | neighbour corr | high-freq share | flat-region std |")
    print("|---|---:|---:|---:|---:|---:|")
    for folder in args.folders:
        _, ae, info = load_text_and_autoencoder(folder)
        style = args.style or info.get("scene_style", "standard")
        r = measure(ae.eval(), args.scenes, style)
        print(f"| {folder} | {r['psnr']:.2f} | {r['psnr_noisy']:.2f} | {r['neighbour_corr']:.3f} "
              f"| {r['high_freq_share']:.3f} | {r['flat_std']:.3f} |")


if __name__ == "__main__":
    main()
