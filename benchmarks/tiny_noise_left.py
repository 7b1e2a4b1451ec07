"""How much of the added noise the built-in model's one-step clean estimate keeps: a diagnosis of the grey,
gravel-textured floor of its grids (benchmarks/TINY_MODEL.md, "Why the floor is gravel").

    python benchmarks/tiny_noise_left.py [--model DIR] [--scenes 8] [--sigmas 0.1,0.25,0.5,0.75] [--mode syncam]

Held-out scenes (the training distribution, a seed of their own) are rendered and encoded; each is noised to
sigma (x = (1 - sigma) x0 + sigma n, the training path) and the DiT's velocity turned into a clean estimate
x0_hat = x - sigma v. The table gives, per sigma, the share of the added noise that x0_hat still holds,
<x0_hat - x0, n> / (sigma <n, n>) (0: all removed; 1: none), over the whole latent, the latent's top rows (sky in
these rigs: flat, so a working denoiser removes nearly all of it there) and per channel, and the rms error of
x0_hat. The same noise for every sigma and model, so two models' tables compare (CPU, about 10 s for 8 scenes).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.sampling import NUM_TRAIN_TIMESTEPS  # noqa: E402
from camgrid.synth.render import render  # noqa: E402
from camgrid.train.builtin import load_builtin  # noqa: E402

SCENE_SEED = 321      # not the training bank's nor the tables' held-out seed
NOISE_SEED = 5
SKY_ROWS = 2          # latent rows 0-1: pixel rows 0-7 of 48, above the horizon in every rig of the data


def noise_left(estimate: torch.Tensor, x0: torch.Tensor, noise: torch.Tensor, sigma: float) -> float:
    r = estimate - x0
    return float((r * noise).sum() / (noise * noise).sum() / sigma)


@torch.no_grad()
def measure(model, scenes: int, sigmas, mode: str) -> list[dict]:
    data = model.scenes(scenes, SCENE_SEED)
    latents, context, cameras = [], [], []
    for i in range(scenes):
        scene, rig = data.scene_and_rig(i)
        latents.append(model.ae.encode(render(scene, rig, model.height, model.width).clamp(0, 1)))
        context.append(model.encode_prompt(scene.caption))
        cameras.append(model.camera_embedding(rig))
    x0, ctx, cam = torch.stack(latents), torch.cat(context), torch.stack(cameras)
    rows = []
    for sigma in sigmas:
        noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(NOISE_SEED))
        x = (1 - sigma) * x0 + sigma * noise
        v = model.dit(x, torch.full((scenes,), NUM_TRAIN_TIMESTEPS * sigma), ctx, mode=mode, camera=cam)
        est = x - sigma * v
        sky = (slice(None),) * 5 + (slice(0, SKY_ROWS),)
        rows.append({"sigma": sigma, "all": noise_left(est, x0, noise, sigma),
                     "sky": noise_left(est[sky], x0[sky], noise[sky], sigma),
                     "channels": [noise_left(est[:, :, k], x0[:, :, k], noise[:, :, k], sigma)
                                  for k in range(x0.shape[2])],
                     "rms": float((est - x0).pow(2).mean().sqrt())})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped assets/)")
    p.add_argument("--scenes", type=int, default=8)
    p.add_argument("--sigmas", default="0.1,0.25,0.5,0.75")
    p.add_argument("--mode", default="syncam")
    args = p.parse_args()
    model = load_builtin(args.model)
    rows = measure(model, args.scenes, [float(s) for s in args.sigmas.split(",")], args.mode)
    print(f"noise left in the one-step clean estimate ({args.scenes} scenes x 4 views, mode {args.mode})\n")
    print("| sigma | all | sky rows | per channel (min-max) | x0 error rms |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['sigma']:.2f} | {r['all']:.3f} | {r['sky']:.3f} | {min(r['channels']):.2f}-{max(r['channels']):.2f} "
              f"| {r['rms']:.3f} |")


if __name__ == "__main__":
    main()
