"""Do the built-in model's views follow their cameras? Where novel-view synthesis puts the objects.

    python benchmarks/tiny_follow_cameras.py [DIR ...] [--modes independent,syncam] [--scenes 20] [--steps 20]
                                            [--arc-span 60,160] [--view-order reversed] [--source-noise 1]
                                            [--seed 0] [--student]

For held-out scenes of each model's own data, view 0's true video is given (train/nvs.py: `replace_view`) and the
model generates the other views for the scene's rig and caption, all folders from the same scenes and noise.
Per folder and mode: the median distance of the generated objects from their true places (place px), what
copying view 0's layout into every view scores on the same observations (copy px), their ratio (about 1: view 0
copied; 0: every object where its camera sees it), scene by scene whether place px is below copy px (the share
of scenes and a signed-rank p), the colour-mask IoU and PSNR of views 1..V-1, and the number of observations.
TINY_MODEL.md ships a model only where a mode's place px is below its copy px.

With several folders, each one's per-scene place px is compared with the first folder's (paired over the scenes
where both placed something: the share of scenes where it is closer and a Wilcoxon signed-rank p-value), so two
training runs from the same start can be told apart on one sample.

`--arc-span LOW,HIGH`: held-out rigs whose orbit arcs span these degrees instead of the training default. Most
default rigs are short arcs on which copying is nearly right (copy px about 6 of 80); on wide arcs it is not.
`--view-order reversed`: the same held-out rigs with their views last to first (synth/dataset.py VIEW_ORDERS):
the cameras and scenes are the same, only the view index no longer says which way the next camera moved, so a
model that places objects by the index rather than by the cameras falls back to the copy (v5 does, TINY_MODEL.md).
`--source-noise S`: the given view is held at S times the grid's noise level (SourceVideo.noise_scale; 1 is
SynCamMaster's setting, a model trained with --given-view-share learned lower ones). The 20-step teacher unless
--student (the 4-step LoRA beside each folder). CPU: about 2 min a mode and folder
at 20 scenes and 20 steps.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.checks import SOURCE_NOISE  # noqa: E402
from camgrid.synth.dataset import VIEW_ORDERS, check_arc_span  # noqa: E402
from camgrid.train.builtin import ASSETS_DIR, TEACHER_SAMPLING, load_builtin  # noqa: E402
from camgrid.train.claims import closer_share  # noqa: E402
from camgrid.train.cli import parse_arc_span  # noqa: E402
from camgrid.train.nvs import summarise_scores  # noqa: E402
from camgrid.train.student import STUDENT_FILE, STUDENT_SAMPLING  # noqa: E402
from camgrid.train.tables import HeldOut, generate  # noqa: E402

BATCH = 10


def per_scene_scores(model, held: HeldOut, mode: str, settings: dict, seed: int, source_noise: float = 1.0) -> list:
    """nvs_scores of every held-out scene's grid in `mode`, view 0 given (at source_noise times the noise level)."""
    return held.nvs_scores(generate(model, held, mode, settings, BATCH, seed, source_view=0,
                                    source_noise_scale=source_noise))


def summarise(scores: list) -> dict:
    """train/nvs.py summarise_scores with place / copy (None where either is missing)."""
    row = summarise_scores(scores)
    place, copy = row["place_px"], row["copy_px"]
    return {**row, "ratio": place / copy if place is not None and copy else None}


def paired(scores: list, baseline: list) -> dict:
    """Per-scene place px against the baseline's on the same scenes: share closer and signed-rank p."""
    return closer_share([(s["place_px"], b["place_px"]) for s, b in zip(scores, baseline)])


def against_copy(scores: list) -> dict:
    """Per scene, place px against copy px (both medians over that scene's observations): the share of scenes
    where the generated objects are closer to their places than copying view 0 would put them, and the
    signed-rank p. What shipping asks of a mode, scene by scene instead of only in the pooled medians."""
    return closer_share([(s["place_px"], s["copy_px"]) for s in scores])


def measure(folders, modes, scenes: int, steps: Optional[int] = None, seed: int = 0, arc_span=None,
            student: bool = False, device="cpu", source_noise: float = 1.0, view_order: str = "preset") -> list:
    """[(folder, mode, summary, paired against the first folder or None)] on the same held-out scenes."""
    first = load_builtin(folders[0], device=device)
    held = HeldOut(first, scenes, 4, 0, arc_span, view_order)
    settings = sampling_settings(student, steps)
    rows, baseline = [], {}
    for folder in folders:
        lora = Path(folder or ASSETS_DIR) / STUDENT_FILE if student else False
        model = load_builtin(folder, device=device, student=lora)
        data = (model.height, model.width, model.frames, model.scene_style)
        if data != (first.height, first.width, first.frames, first.scene_style):
            raise ValueError(f"{folder}: its model learned other scenes (height, width, frames, style {data}) than "
                             f"{folders[0] or 'assets'}'s, so the same held-out scenes cannot score both: compare "
                             "folders trained on the same data")
        for mode in modes:
            scores = per_scene_scores(model, held, mode, settings, seed, source_noise)
            versus = paired(scores, baseline[mode]) if mode in baseline else None
            baseline.setdefault(mode, scores)
            rows.append((folder or "assets", mode, {**summarise(scores), "vs_copy": against_copy(scores)}, versus))
    return rows


def sampling_settings(student: bool, steps: Optional[int] = None) -> dict:
    """The student's or the teacher's sampling, with `steps` instead of its own when given (the student's 4 are
    what it was distilled for; the 20-step default of the teacher must not leak into it)."""
    base = STUDENT_SAMPLING if student else TEACHER_SAMPLING
    return {**base, "steps": steps or base["steps"]}


def _share(pair: dict) -> str:
    if pair is None or not pair["n"]:
        return "-"
    return f"{100 * pair['closer']:.0f} % of {pair['n']}, p = {_f(pair['p'], 3)}"


def _f(value, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(rows: list) -> str:
    lines = ["| model | mode | place px | copy px | place / copy | closer than the copy (scenes, p) | IoU | PSNR dB | "
             "observations | closer than the first model (scenes, p) |", "|---|---|---:|---:|---:|---|---:|---:|---:|---|"]
    for folder, mode, s, versus in rows:
        lines.append(f"| {folder} | {mode} | {_f(s['place_px'])} | {_f(s['copy_px'])} | {_f(s['ratio'], 2)} | "
                     f"{_share(s.get('vs_copy'))} | {_f(s['iou'], 3)} | {_f(s['psnr'], 2)} | {s['placed']} | "
                     f"{_share(versus)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", default=[None], help="model folders (default: the shipped assets/)")
    p.add_argument("--modes", default="independent,syncam", help="comma-separated grid modes")
    p.add_argument("--scenes", type=int, default=20)
    p.add_argument("--steps", type=int, default=None,
                   help="sampling steps (default: the teacher's 20, or the student's 4 with --student)")
    p.add_argument("--seed", type=int, default=0, help="noise seed")
    p.add_argument("--arc-span", default=None, help="LOW,HIGH degrees of the held-out orbit arcs")
    p.add_argument("--view-order", default="preset", choices=VIEW_ORDERS,
                   help="the held-out rigs' view order (reversed: the same cameras last to first)")
    p.add_argument("--source-noise", type=float, default=1.0, help="the given view's noise level / the grid's")
    p.add_argument("--student", action="store_true", help="the 4-step student LoRA beside each folder")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    noise_problem = SOURCE_NOISE.problem("--source-noise", args.source_noise)
    if noise_problem:
        p.error(noise_problem)
    arc_span = check_arc_span(parse_arc_span(args.arc_span or ""))
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows = measure(args.models, modes, args.scenes, args.steps, args.seed, arc_span, args.student, args.device,
                   args.source_noise, args.view_order)
    rigs = f"orbit arcs {arc_span[0]:g}-{arc_span[1]:g} degrees" if arc_span else "the training rigs"
    rigs += "" if args.view_order == "preset" else f", views in {args.view_order} order"
    print(f"\n{args.scenes} held-out scenes ({rigs}), view 0 given at {args.source_noise:g} of the noise level, "
          f"{sampling_settings(args.student, args.steps)['steps']} steps"
          f"{' (the student)' if args.student else ''}, noise seed {args.seed}\n")
    print(format_table(rows))


if __name__ == "__main__":
    main()
