"""What a token per 4x4 pixels (`camgrid train --patch 1`) would cost the quick start: the built-in DiT's forward
at its own patch 2 against a DiT of the same width and depth at patch 1, on the demo's batch, per grid mode.

    python benchmarks/tiny_patch_cost.py [--repeats 3]

The patch-1 DiT has random weights (the cost of a forward does not depend on them): it is the shipped model's
config with `patch_size=(1, 1, 1)`, SynCamMaster modules, camera rays and sync layers of the shipped rank. The batch
is the demo's (train/demo.py: DEMO_GRIDS grids of 4 views, the demo caption and rig). The last row estimates the
demo's DiT seconds: each compared mode's DEMO_GRIDS grids plus the novel-view check's (mode syncam, as many grids),
times the student's steps, one forward a step (the student has guidance baked in). Each time is the fastest of
`--repeats` forwards after a warm-up one, on whatever threads torch uses here (the quick start's setting).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.dit import GridDiT  # noqa: E402
from camgrid.model.sync import attach_sync_layers  # noqa: E402
from camgrid.train.demo import DEMO_CAPTION, DEMO_GRIDS, demo_rig, load_demo_model  # noqa: E402
from camgrid.train.demo_novel_views import NOVEL_VIEW_MODE  # noqa: E402
from camgrid.train.evaluate import COMPARED_MODES  # noqa: E402


@torch.no_grad()
def forward_seconds(dit, x, context, cameras, mode: str, repeats: int) -> float:
    t = torch.full((x.shape[0],), 500.0)
    dit(x, t, context, mode=mode, camera=cameras)          # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        dit(x, t, context, mode=mode, camera=cameras)
        times.append(time.perf_counter() - t0)
    return min(times)


def patch1_twin(dit: GridDiT) -> GridDiT:
    """A DiT of `dit`'s config at patch 1, with the same kinds of modules (random weights)."""
    twin = GridDiT(dit.config.replace(patch_size=(1, 1, 1)))
    rank = next(b.sync.soft.rank for b in dit.blocks if b.sync is not None and b.sync.soft is not None)
    attach_sync_layers(twin, rank=rank, hard=True, soft=True)
    return twin.eval()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.manual_seed(0)
    model = load_demo_model(None, log=lambda *a: None)
    steps = model.sampling["steps"]
    cameras = model.camera_embedding(demo_rig(model))[None].expand(DEMO_GRIDS, -1, -1, -1)
    x = torch.randn(model.latent_shape(4, DEMO_GRIDS))
    context = model.encode_prompt([DEMO_CAPTION] * DEMO_GRIDS)
    models = {"patch 2 (shipped)": model.dit, "patch 1": patch1_twin(model.dit)}
    modes = list(dict.fromkeys(COMPARED_MODES + (NOVEL_VIEW_MODE,)))
    seconds = {name: {m: forward_seconds(d, x, context, cameras, m, args.repeats) for m in modes}
               for name, d in models.items()}
    a, b = seconds.values()
    print(f"one forward of {DEMO_GRIDS} grids x 4 views, {x.shape[3]} latent frames of {x.shape[4]}x{x.shape[5]}; "
          f"{torch.get_num_threads()} threads\n")
    print("| mode | patch 2 s | patch 1 s | patch 1 / patch 2 |\n|---|---:|---:|---:|")
    for m in modes:
        print(f"| {m} | {a[m]:.2f} | {b[m]:.2f} | {b[m] / a[m]:.1f}x |")
    demo = {name: steps * (sum(s[m] for m in COMPARED_MODES) + s[NOVEL_VIEW_MODE]) for name, s in seconds.items()}
    da, db = demo.values()
    print(f"| the demo's DiT ({steps} steps: {', '.join(COMPARED_MODES)} + {NOVEL_VIEW_MODE} view 0 given) | "
          f"{da:.1f} | {db:.1f} | {db / da:.1f}x |")


if __name__ == "__main__":
    main()
