"""Text to grid on wide rigs: are the built-in model's views more consistent than copies of one view?

    python benchmarks/tiny_wide_rig_consistency.py [DIR] [--scenes 48] [--arc-span 60,160] [--teacher]

On the training rigs (short arcs) four copies of view 0 score a lower reprojection error than any generated
mode (the tables' copy control), so a low error there cannot tell views that follow their cameras from views
that look alike. On held-out scenes drawn on wide orbit arcs, copying is wrong by more, so the control means
something. Rows, all on the same held-out scenes (train/tables.py HeldOut with --arc-span): the true views; the
true view 0 copied into every view; syncam from text; an independent grid and its view 0 copied; and a
two-pass pilot, syncam with that independent grid's view 0 given at half the noise level (SourceVideo
noise_scale 0.5), which brings novel-view synthesis to text to grid. Median and mean reprojection error
(train/evaluate.py summarise) with the observation counts; the rows score different observations (each
its own detections), so they are not paired. The student (4 steps) unless --teacher. CPU: about 2 min at
48 scenes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.synth.dataset import check_arc_span  # noqa: E402
from camgrid.train.builtin import load_builtin  # noqa: E402
from camgrid.train.cli import parse_arc_span  # noqa: E402
from camgrid.train.evaluate import summarise  # noqa: E402
from camgrid.train.tables import HeldOut, generate, view0_copied  # noqa: E402

BATCH = 8
GIVEN_NOISE = 0.5          # the two-pass source's share of the grid's noise level
FIRST_PASS_SEED = 1000     # the independent grid's noise, apart from the direct syncam grids'


def consistency(model, scenes: int = 48, arc_span=(60.0, 160.0)) -> dict:
    """{row name: train/evaluate summarise of its grids} on `scenes` held-out scenes drawn on `arc_span` arcs."""
    held = HeldOut(model, scenes, 4, 0, arc_span)
    settings = dict(model.sampling)
    first = generate(model, held, "independent", settings, BATCH, FIRST_PASS_SEED)
    grids = {"true views": held.videos, "true view 0 copied": view0_copied(held.videos),
             "syncam": generate(model, held, "syncam", settings, BATCH, 0), "independent": first,
             "independent's view 0 copied": view0_copied(first),
             "two-pass: syncam, independent's view 0 given": generate(
                 model, held, "syncam", settings, BATCH, 0, source_view=0, source_noise_scale=GIVEN_NOISE,
                 source_videos=first)}
    rows = {name: summarise(held.metrics(frames)) for name, frames in grids.items()}
    held.close()
    return rows


def format_table(rows: dict) -> str:
    lines = ["| grids | reproj px (median) | reproj px (mean) | observations |", "|---|---:|---:|---:|"]
    for name, m in rows.items():
        med, mean = m["reproj_px_median"], m["reproj_px"]
        lines.append(f"| {name} | {'n/a' if med is None else f'{med:.2f}'} | "
                     f"{'n/a' if mean is None else f'{mean:.2f}'} | {m['observations']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", nargs="?", default=None, help="model folder (default: the shipped assets/)")
    p.add_argument("--scenes", type=int, default=48)
    p.add_argument("--arc-span", default="60,160", help="LOW,HIGH degrees of the held-out orbit arcs")
    p.add_argument("--teacher", action="store_true", help="the 20-step teacher instead of the 4-step student")
    args = p.parse_args()
    arc_span = check_arc_span(parse_arc_span(args.arc_span))
    model = load_builtin(args.model, student=not args.teacher)
    rows = consistency(model, args.scenes, arc_span)
    print(f"\n{args.scenes} held-out scenes on orbit arcs of {arc_span[0]:g}-{arc_span[1]:g} degrees, "
          f"{'teacher' if args.teacher else 'student'}, {args.model or 'assets'}\n")
    print(format_table(rows))


if __name__ == "__main__":
    main()
