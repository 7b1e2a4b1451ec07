"""Pictures of the built-in model's novel-view synthesis: view 0's true video given, the other views generated.

    python benchmarks/tiny_novel_views.py [--model DIR] [--scenes 3] [--pool 12] [--mode syncam]
                                         [--source-noise 0.5] [--student] [--seed 0] [--out FILE.png]

Text to grid cannot show whether the views follow their cameras (views that merely look alike also agree);
novel-view synthesis can, because each view has a true render to be compared with. Of the first --pool
held-out scenes (train/tables.py HeldOut, the tables' scenes), the --scenes whose true objects move farthest
between view 0 and the other views are drawn (copying view 0 would be most wrong there). They are chosen from
the ground truth alone, before anything is generated. Per scene, two rows: the true views, then the grid
generated with view 0 given (its view 0 is the model's redrawing of the given view), middle frame. It prints
each drawn scene's place px (median distance of the generated objects from their true places) against copy
px (where copying view 0 would put them) (train/nvs.py). README.md shows the picture written for the
shipped model (docs/tiny_model_novel_views.png); CPU: about a minute.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.checks import SOURCE_NOISE  # noqa: E402
from camgrid.train.builtin import load_builtin  # noqa: E402
from camgrid.train.demo import comparison_image  # noqa: E402
from camgrid.train.media import save_image  # noqa: E402
from camgrid.train.nvs import placement  # noqa: E402
from camgrid.train.tables import HeldOut, generate  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "docs" / "tiny_model_novel_views.png"


def widest_scenes(held: HeldOut, count: int) -> list:
    """The `count` scenes whose true objects move farthest from view 0 to the other views (their copy px),
    from the ground truth alone; scenes with nothing to place come last."""
    copy = [placement(video, ids, colours)["copy_px"] for video, ids, colours in
            zip(held.videos, held.ids, held.colours)]
    order = sorted(range(len(copy)), key=lambda i: -1.0 if copy[i] is None else copy[i], reverse=True)
    return order[:count]


def novel_views(model, scenes: int = 3, pool: int = 12, mode: str = "syncam", source_noise: float = 0.5,
                seed: int = 0) -> tuple:
    """(picture rows [(label, frames [V, F, H, W, 3])], per drawn scene {"scene", "caption", "place_px",
    "copy_px"})."""
    everything = HeldOut(model, pool, 4, 0)
    picked = widest_scenes(everything, scenes)
    held = everything.subset(picked)
    frames = generate(model, held, mode, dict(model.sampling), len(picked), seed, source_view=0,
                      source_noise_scale=source_noise)
    rows, report = [], []
    for k, (scene, truth, grid, score) in enumerate(zip(picked, held.videos, frames, held.nvs_scores(frames))):
        rows += [(f"truth {k + 1}", truth), (f"view 0 given {k + 1}", grid)]
        report.append({"scene": scene, "caption": held.captions[k], "place_px": score["place_px"],
                       "copy_px": score["copy_px"]})
    held.close()
    return rows, report


def _px(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="model folder (default: the shipped assets/)")
    p.add_argument("--scenes", type=int, default=3)
    p.add_argument("--pool", type=int, default=12, help="held-out scenes to choose them from")
    p.add_argument("--mode", default="syncam")
    p.add_argument("--source-noise", type=float, default=0.5)
    p.add_argument("--student", action="store_true", help="the 4-step student instead of the 20-step teacher")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args()
    problem = SOURCE_NOISE.problem("--source-noise", args.source_noise)
    if problem:
        p.error(problem)
    if not 1 <= args.scenes <= args.pool:
        p.error(f"--scenes must be 1..--pool ({args.pool}), got {args.scenes}")
    model = load_builtin(args.model, student=args.student)
    rows, report = novel_views(model, args.scenes, args.pool, args.mode, args.source_noise, args.seed)
    save_image(comparison_image(rows), args.out)
    print(f"{args.mode}, view 0 given at {args.source_noise:g} of the noise level, {model.sampling['steps']} steps, "
          f"noise seed {args.seed}; the {args.scenes} of the first {args.pool} held-out scenes whose objects move "
          "farthest between the views")
    for r in report:
        print(f"- held-out scene {r['scene']} ({r['caption']}): objects {_px(r['place_px'])} px from their true "
              f"places; copying view 0: {_px(r['copy_px'])} px")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
