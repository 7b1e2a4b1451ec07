"""camgrid's `syncam` / `recam` modes vs the official SynCamMaster / ReCamMaster model code (fp32, CPU).

The official DiTs are read at run time from `.bench_ref/` (prepared as benchmarks/RESULTS.md says;
never committed). Both models get the same tiny random weights; the official code hard-codes 2 views
and a 30x52 token grid, so that is the shape compared. Prints the max abs difference per mode.

    python benchmarks/check_official_numerics.py        # last run: syncam 1.2e-06, recam 1.2e-06 (outputs ~4.3)
"""
import sys
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from bench_dit import load_official  # noqa: E402
from grid_helpers import tiny_model  # noqa: E402

KW = dict(dim=64, in_dim=16, ffn_dim=128, out_dim=16, text_dim=32, freq_dim=32, eps=1e-6, patch_size=(1, 2, 2),
          num_heads=2, num_layers=2, has_image_input=False)
T, H, W = 2, 60, 104  # latent frames; 60x104 latent = the official 30x52 token grid


def add_official_modules(official_module, model, multiview):
    """The modules the official inference scripts attach to each Wan block before loading their checkpoint."""
    for block in model.blocks:
        block.cam_encoder, block.projector = nn.Linear(12, KW["dim"]), nn.Linear(KW["dim"], KW["dim"])
        if multiview:
            block.norm_mvs = nn.LayerNorm(KW["dim"], eps=KW["eps"], elementwise_affine=False)
            block.modulation_mvs = nn.Parameter(torch.zeros(1, 3, KW["dim"]))
            block.mvs_attn = official_module.SelfAttention(KW["dim"], KW["num_heads"], KW["eps"])


def main():
    scm, rcm = load_official("syncammaster"), load_official("recammaster")
    if scm is None or rcm is None:
        print("official model files not available in .bench_ref/ (see benchmarks/RESULTS.md)")
        return 1
    g = torch.Generator().manual_seed(0)
    ctx, ts = torch.randn(1, 6, 32, generator=g), torch.tensor([700.0])

    ours = tiny_model("syncammaster", seed=3)
    official = scm.WanModel(**KW)
    add_official_modules(scm, official, multiview=True)
    official.load_state_dict(ours.state_dict(), strict=True)
    x, cam = torch.randn(1, 2, 16, T, H, W, generator=g), 0.5 * torch.randn(1, 2, T, 12, generator=g)
    with torch.no_grad():
        a = ours(x, ts, ctx, mode="syncam", camera=cam)
        b = official(x[0], ts.expand(2), cam[0], ctx.expand(2, -1, -1))  # official: views in the batch axis
    print(f"syncam vs official SynCamMaster DiT: max |diff| {(a[0] - b).abs().max():.2e} (output scale {b.abs().max():.2f})")

    ours = tiny_model("recammaster", seed=4)
    official = rcm.WanModel(**KW)
    add_official_modules(rcm, official, multiview=False)
    official.load_state_dict(ours.state_dict(), strict=True)
    x, src = torch.randn(1, 1, 16, T, H, W, generator=g), torch.randn(1, 16, T, H, W, generator=g)
    cam = 0.5 * torch.randn(1, 1, T, 12, generator=g)
    with torch.no_grad():
        a = ours(x, ts, ctx, mode="recam", camera=cam, source=src)
        # the official pipeline concatenates target and source latents along frames, keeps the target half
        b = official(torch.cat([x[:, 0], src], dim=2), ts, cam[:, 0], ctx)[:, :, :T]
    print(f"recam  vs official ReCamMaster DiT:  max |diff| {(a[:, 0] - b).abs().max():.2e} (output scale {b.abs().max():.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
