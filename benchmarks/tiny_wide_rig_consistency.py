"""Text to grid on wide rigs: are the built-in model's views more consistent than copies of one view?

    python benchmarks/tiny_wide_rig_consistency.py [DIR [OTHER ...]] [--scenes 48] [--arc-span 60,160] [--teacher]

On the training rigs (short arcs) four copies of view 0 score a lower reprojection error than any generated
mode (the tables' copy control), so a low error there cannot tell views that follow their cameras from views
that look alike. On held-out scenes drawn on wide orbit arcs, copying is wrong by more, so the control means
something. Rows, all on the same held-out scenes (train/tables.py HeldOut with --arc-span): the true views; the
true view 0 copied into every view; syncam from text; an independent grid and its view 0 copied; and a
two-pass pilot, syncam with that independent grid's view 0 given at half the noise level (SourceVideo
noise_scale 0.5), which brings novel-view synthesis to text to grid. Median and mean reprojection error
(train/evaluate.py summarise) with the observation counts; the rows score different observations (each
its own detections), so beside them the paired comparisons score each scene by its median error (train/claims.py
grid_median) and report, over the scenes both grids score, the share where the first is lower and the
signed-rank p: syncam against the true view 0 copied, the two-pass grids against copies of their own view 0 (the
independent grid's), and two-pass against syncam; with OTHER folders, their syncam grids (the same scenes and
noise) against DIR's and against the copy. The student (4 steps) unless --teacher. CPU: about 2 min at
48 scenes; --device cuda where there is one.
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
from camgrid.train.claims import closer_share, grid_median  # noqa: E402
from camgrid.train.cli import parse_arc_span  # noqa: E402
from camgrid.train.evaluate import summarise  # noqa: E402
from camgrid.train.tables import HeldOut, generate, view0_copied  # noqa: E402

BATCH = 8
GIVEN_NOISE = 0.5          # the two-pass source's share of the grid's noise level
FIRST_PASS_SEED = 1000     # the independent grid's noise, apart from the direct syncam grids'
TWO_PASS = "two-pass: syncam, independent's view 0 given"
# (row, row it is compared with, scene by scene)
PAIRS = (("syncam", "true view 0 copied"), (TWO_PASS, "independent's view 0 copied"), (TWO_PASS, "syncam"))


def consistency(model, scenes: int = 48, arc_span=(60.0, 160.0), seed: int = 0, others=(),
                workers: int = 0) -> tuple[dict, dict]:
    """({row name: train/evaluate summarise of its grids}, {(row, other): paired}) on `scenes` held-out scenes
    drawn on `arc_span` arcs; `seed` offsets every generated grid's noise. `others`: (name, model) pairs whose
    syncam grids, from the same noise on the same scenes, become rows "syncam, NAME", each paired with the first
    model's syncam."""
    held = HeldOut(model, scenes, 4, workers, arc_span)
    settings = dict(model.sampling)
    first = generate(model, held, "independent", settings, BATCH, FIRST_PASS_SEED + seed)
    grids = {"true views": held.videos, "true view 0 copied": view0_copied(held.videos),
             "syncam": generate(model, held, "syncam", settings, BATCH, seed), "independent": first,
             "independent's view 0 copied": view0_copied(first),
             TWO_PASS: generate(model, held, "syncam", settings, BATCH, seed, source_view=0,
                                source_noise_scale=GIVEN_NOISE, source_videos=first)}
    pairs = list(PAIRS)
    for name, other in others:
        grids[f"syncam, {name}"] = generate(other, held, "syncam", dict(other.sampling), BATCH, seed)
        pairs += [("syncam", f"syncam, {name}"), (f"syncam, {name}", "true view 0 copied")]
    rows = {name: summarise(held.metrics(frames)) for name, frames in grids.items()}
    held.close()
    return rows, {(a, b): paired(rows[a], rows[b]) for a, b in pairs}


def paired(row: dict, other: dict) -> dict:
    """Scene by scene, the median error of `row`'s grid against `other`'s (scenes both score): train/claims.py
    closer_share (the share where `row` is lower, the signed-rank p, the number of scenes)."""
    return closer_share([(grid_median(a), grid_median(b))
                         for a, b in zip(row["per_scene_errors"], other["per_scene_errors"])])


def format_table(rows: dict) -> str:
    lines = ["| grids | reproj px (median) | reproj px (mean) | observations |", "|---|---:|---:|---:|"]
    for name, m in rows.items():
        med, mean = m["reproj_px_median"], m["reproj_px"]
        lines.append(f"| {name} | {'n/a' if med is None else f'{med:.2f}'} | "
                     f"{'n/a' if mean is None else f'{mean:.2f}'} | {m['observations']} |")
    return "\n".join(lines)


def format_pairs(pairs: dict) -> str:
    lines = ["| grids | against | lower on (scenes) | signed-rank p |", "|---|---|---:|---:|"]
    for (a, b), r in pairs.items():
        lower = "n/a" if r["closer"] is None else f"{r['closer']:.0%} of {r['n']}"
        p = "n/a" if r["p"] is None else f"{r['p']:.3f}"
        lines.append(f"| {a} | {b} | {lower} | {p} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", default=[None],
                   help="model folders (default: the shipped assets/); the syncam grids of the second and later "
                        "ones are compared with the first's, scene by scene")
    p.add_argument("--scenes", type=int, default=48)
    p.add_argument("--arc-span", default="60,160", help="LOW,HIGH degrees of the held-out orbit arcs")
    p.add_argument("--teacher", action="store_true", help="the 20-step teacher instead of the 4-step student")
    p.add_argument("--seed", type=int, default=0, help="offset of every generated grid's noise seed")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--workers", type=int, default=0, help="processes scoring the grids")
    args = p.parse_args()
    arc_span = check_arc_span(parse_arc_span(args.arc_span))
    model, *others = (load_builtin(m, device=args.device, student=not args.teacher) for m in args.models)
    names = [str(m or "assets") for m in args.models]
    rows, pairs = consistency(model, args.scenes, arc_span, args.seed, list(zip(names[1:], others)), args.workers)
    print(f"\n{args.scenes} held-out scenes on orbit arcs of {arc_span[0]:g}-{arc_span[1]:g} degrees, "
          f"{'teacher' if args.teacher else 'student'}, noise seed {args.seed}, {names[0]}\n")
    print(format_table(rows))
    print("\nScene by scene (each scene's median error):\n")
    print(format_pairs(pairs))


if __name__ == "__main__":
    main()
