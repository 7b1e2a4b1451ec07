"""`python -m camgrid.train.tables`: the built-in model's tables on held-out scenes (benchmarks/TINY_MODEL.md).

1. Steps x mode (the step cache column stays "off": model/step_cache.py is measured by its own benchmark):
   for every row of ROWS (the 20-step teacher, the teacher at the student's 4 Euler steps, the student at 2,
   4 and 8 steps) and every grid mode, one grid per held-out scene, all rows from the same noise: the
   reprojection error (train/evaluate.py, pooled over observations), found-rate and usable share, the pixel
   PSNR against the 20-step teacher's grid of the same scene and mode, the paired claim against
   independent (train/claims.py), and the seconds the generation took on the device.
   Two controls made of the ground truth, not generated, scored the same way: the autoencoder round trip of
   the true views (what exact geometry scores) and a grid whose every view is view 0's round trip (views that
   agree without following their cameras: a mode must score below it to show it draws each camera's view).
2. Novel-view synthesis (train/nvs.py) with view 0 given, for the teacher and the student: PSNR, colour
   mask IoU and object placement of the other views against their renders, per mode, with the ordering's
   bootstrap stability.
Writes tables.json and tables.md into --out, and detections.pt: every grid's objects, for comparing two models
on the same views (`python -m camgrid.train.same_views`). `--budget` seconds: rows still waiting when it is spent are
skipped (and listed), the most important first (teacher 20, student 4, NVS, then the others).
"""
from __future__ import annotations

import argparse
import copy
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..model.checks import SOURCE_NOISE, output_folder
from ..model.files import atomic_save, atomic_write
from ..synth.dataset import SyntheticMultiViewDataset
from ..synth.render import render
from ..synth.scenes import SCENE_STYLES
from .builtin import ASSETS_DIR, TEACHER_SAMPLING, load_builtin, model_fingerprint
from .claims import claims
from .evaluate import COMPARED_MODES, EVAL_SEED, safe_metrics, summarise
from .nvs import nvs_scores, ordering_stability, source_of, summarise_scores
from .same_views import DETECTIONS_FILE
from .student import STUDENT_FILE, STUDENT_SAMPLING

# (row name, model, settings); generated in this order, the reference first
ROWS = (
    ("teacher 20 steps", "teacher", dict(TEACHER_SAMPLING)),
    ("student 4 steps", "student", dict(STUDENT_SAMPLING)),
    ("teacher 4 steps", "teacher", {**TEACHER_SAMPLING, "steps": 4, "scheduler": "euler"}),
    ("student 2 steps", "student", {**STUDENT_SAMPLING, "steps": 2}),
    ("student 8 steps", "student", {**STUDENT_SAMPLING, "steps": 8}),
)
NVS_ROWS = ("teacher 20 steps", "student 4 steps")
REFERENCE = ROWS[0][0]

_DATASET: Optional[SyntheticMultiViewDataset] = None   # the held-out scenes, inherited by forked workers


def _render_job(index: int):
    scene, rig = _DATASET.scene_and_rig(index)
    videos, ids = render(scene, rig, _DATASET.height, _DATASET.width, return_ids=True)
    return (videos.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy(), ids.to(torch.int8).numpy()


def _metric_job(args):
    index, frames = args
    scene, rig = _DATASET.scene_and_rig(index)
    return safe_metrics(torch.from_numpy(frames), rig, scene.colours, keep_detections=True)


def _uint8(frames: torch.Tensor) -> np.ndarray:
    return (frames.clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy()


class HeldOut:
    """The held-out scenes: captions, cameras, true videos and object ids, and a pool for the metric."""

    def __init__(self, model, count: int, views: int, workers: int, arc_span=None, view_order: str = "preset",
                 style: Optional[str] = None):
        global _DATASET
        _DATASET = model.scenes(count, EVAL_SEED, views, arc_span, view_order, style=style)
        self.pool = mp.get_context("fork").Pool(workers, initializer=torch.set_num_threads, initargs=(1,)) \
            if workers > 0 else None
        pairs = [_DATASET.scene_and_rig(i) for i in range(count)]
        self.captions = [scene.caption for scene, _ in pairs]
        self.colours = [scene.colours for scene, _ in pairs]
        self.cameras = torch.stack([model.camera_embedding(rig) for _, rig in pairs])
        rendered = self.map(_render_job, range(count))
        self.videos = torch.stack([torch.from_numpy(v) for v, _ in rendered]).float() / 255.0
        self.ids = torch.stack([torch.from_numpy(i).long() for _, i in rendered])

    def subset(self, picked) -> "HeldOut":
        """The scenes `picked` (indices) only, in that order; the pool is shared."""
        part = copy.copy(self)
        part.captions, part.colours = [self.captions[i] for i in picked], [self.colours[i] for i in picked]
        part.cameras, part.videos, part.ids = self.cameras[picked], self.videos[picked], self.ids[picked]
        return part

    def map(self, fn, jobs):
        return self.pool.map(fn, list(jobs), chunksize=1) if self.pool is not None else [fn(j) for j in jobs]

    def metrics(self, frames: torch.Tensor, detections: Optional[list] = None) -> list:
        """Every scene's safe_metrics; each grid's detections (train/same_views.py) go into `detections`
        (None where the metric failed)."""
        scored = self.map(_metric_job, [(i, _uint8(f)) for i, f in enumerate(frames)])
        found = [m.pop("detections", None) for m in scored]
        if detections is not None:
            detections += found
        return scored

    def nvs_scores(self, frames: torch.Tensor) -> list:
        """train/nvs.py nvs_scores of every scene's grid frames [N, V, F, H, W, 3] against its true views."""
        return [nvs_scores(f, t, i, c) for f, t, i, c in zip(frames, self.videos, self.ids, self.colours)]

    def close(self):
        if self.pool is not None:
            self.pool.terminate()


def generate(model, held: HeldOut, mode: str, settings: dict, batch: int, seed: int, source_view=None,
             source_noise_scale: float = 1.0, source_videos: Optional[torch.Tensor] = None):
    """Frames [N, V, F, H, W, 3] (CPU) of every held-out scene in `mode`; batch b's noise from seed + start.
    source_view: that view's true video is given (train/nvs.py source_of, at source_noise_scale), or that view
    of `source_videos` [N, V, F, H, W, 3] instead of the truth (e.g. a generated grid's)."""
    videos = held.videos if source_videos is None else source_videos
    out = []
    for start in range(0, len(held.captions), batch):
        rows = slice(start, start + batch)
        source = source_of(model, videos[rows], source_view, source_noise_scale) \
            if source_view is not None else None
        lat = model.generate_latents(held.captions[rows], held.cameras[rows], mode=mode, seed=seed + start,
                                     source=source, **settings)
        out.append(model.decode(lat))
    return torch.cat(out)


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def psnr(frames: torch.Tensor, reference: torch.Tensor) -> float:
    mse = float((frames.float() - reference.float()).pow(2).mean())
    return -10.0 * float(np.log10(max(mse, 1e-10)))


def run_tables(model_dir, out, student_file=None, scenes: int = 96, views: int = 4, batch: int = 48, seed: int = 0,
               budget: float = 120.0, device="cpu", workers: int = 0, rows=ROWS, log=print,
               source_noise: float = 1.0, scene_style: Optional[str] = None) -> dict:
    """`scene_style`: the held-out scenes of that style (synth/scenes.py SCENE_STYLES) instead of the model's own,
    to measure two models of different styles on the same scenes (train/same_views.py pairs only those)."""
    t0 = time.time()
    out = output_folder(out)
    # the worker pool is forked before anything touches the GPU (the workers only render and score on CPU)
    cpu_model = load_builtin(model_dir, device="cpu")
    scene_style = scene_style or cpu_model.scene_style
    held = HeldOut(cpu_model, scenes, views, workers, style=scene_style)
    models = {"teacher": load_builtin(model_dir, device=device)}
    lora = Path(student_file) if student_file else Path(model_dir or ASSETS_DIR) / STUDENT_FILE
    if lora.is_file():
        models["student"] = load_builtin(model_dir, device=device, student=lora)
    else:
        log(f"tables: no student ({lora} is missing): its rows are skipped")
    log(f"tables: {scenes} held-out scenes rendered ({time.time() - t0:.0f}s)")
    modes = [m for m in COMPARED_MODES if m in models["teacher"].modes()]
    # which files were measured: the demo prints these claims only for the same files (train/demo.py)
    results = {"settings": {"scenes": scenes, "views": views, "seed": seed, "eval_seed": EVAL_SEED,
                            "device": str(device), "source_noise": source_noise, "scene_style": scene_style},
               "rows": {}, "nvs": {}, "skipped": [],
               "files": model_fingerprint(model_dir, lora if lora.is_file() else None)}
    reference, detections = {}, {"settings": results["settings"], "rows": {}}
    round_trips = _round_trips(models["teacher"], held)
    results["controls"] = _controls(held, round_trips)
    results["nvs_ceiling"] = _ae_ceiling(held, round_trips)
    jobs = [("rows", name, kind, settings) for name, kind, settings in rows]
    jobs[2:2] = [("nvs", name, kind, settings) for name, kind, settings in rows if name in NVS_ROWS]
    try:
        for what, name, kind, settings in jobs:
            if kind not in models or time.time() - t0 > budget:
                results["skipped"].append(f"{what}: {name}")
                continue
            if what == "rows":
                detections["rows"][name] = {}
                results["rows"][name] = _row(models[kind], held, modes, settings, batch, seed, reference, device,
                                             detections["rows"][name])
                atomic_save(out / DETECTIONS_FILE, lambda tmp: torch.save(detections, tmp))
            else:
                results["nvs"][name] = _nvs(models[kind], held, modes, settings, batch, seed, source_noise)
            results["seconds"] = time.time() - t0
            _write(out, results)   # after every job: a run stopped from outside keeps what it measured
            log(f"tables: {what} {name} done ({time.time() - t0:.0f}s)")
    finally:
        held.close()
    results["seconds"] = time.time() - t0
    _write(out, results)
    log(format_tables(results))
    return results


def _write(out: Path, results: dict) -> None:
    atomic_write(out / "tables.json", json.dumps(results, indent=1))
    atomic_write(out / "tables.md", format_tables(results))


def _row(model, held, modes, settings, batch, seed, reference, device, detections: dict) -> dict:
    """One row of the steps x mode table; every mode's per-scene detections go into `detections`."""
    row = {"settings": settings}
    for mode in modes:
        _sync(device)
        t = time.time()
        frames = generate(model, held, mode, settings, batch, seed)
        _sync(device)
        seconds = time.time() - t
        summary = summarise(held.metrics(frames, detections.setdefault(mode, [])))
        reference.setdefault(mode, frames)
        summary.update(psnr_vs_reference=psnr(frames, reference[mode]), seconds=seconds)
        row[mode] = summary
    row["claims"] = {c.mode: {"verdict": c.verdict, "line": c.line()} for c in claims({m: row[m] for m in modes})}
    return row


def _nvs(model, held, modes, settings, batch, seed, source_noise: float = 1.0) -> dict:
    table = {"settings": settings}
    per_scene_psnr, per_scene_iou = {}, {}
    for mode in modes:
        frames = generate(model, held, mode, settings, batch, seed, source_view=0, source_noise_scale=source_noise)
        scores = held.nvs_scores(frames)
        per_scene_psnr[mode] = [s["psnr"] for s in scores]
        per_scene_iou[mode] = [s["iou"] for s in scores]
        # the scenes' own scores, so that two runs can be paired scene by scene (train/same_views.py)
        table[mode] = {**summarise_scores(scores),
                       "per_scene": {"psnr": per_scene_psnr[mode], "iou": per_scene_iou[mode]}}
    table["stability"] = {"psnr": ordering_stability(per_scene_psnr), "iou": ordering_stability(per_scene_iou)}
    return table


def _round_trips(model, held) -> torch.Tensor:
    """The autoencoder round trip of every held-out grid's true views [N, V, F, H, W, 3] (CPU)."""
    out = []
    with torch.no_grad():
        for videos in held.videos.split(16):
            out += [model.ae.decode(model.ae.encode(v.to(model.device))).cpu() for v in videos]
    return torch.stack(out)


def view0_copied(frames: torch.Tensor) -> torch.Tensor:
    """Grids [N, V, ...] whose every view is view 0: views that agree without following their cameras."""
    return frames[:, :1].expand_as(frames).contiguous()


def _controls(held, round_trips: torch.Tensor) -> dict:
    """The reprojection table's two controls (module docstring): exact geometry, and view 0 in every view."""
    return {name: summarise(held.metrics(frames))
            for name, frames in (("truth round trip", round_trips), ("view 0 copied", view0_copied(round_trips)))}


def _ae_ceiling(held, round_trips: torch.Tensor) -> dict:
    """The NVS scores of the autoencoder round trip of the true views: what a perfect generator could reach."""
    summary = summarise_scores(held.nvs_scores(round_trips))
    return {key: summary[key] for key in ("psnr", "iou", "place_px", "copy_px")}


def _f(value, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_tables(results: dict) -> str:
    s = results["settings"]
    lines = [f"### Steps x mode ({s['scenes']} held-out scenes x {s['views']} views, one grid per scene and row, "
             f"the same noise in every row; cache: off)", "",
             "| row | mode | reproj px (mean) | reproj px (median) | observations | found | usable | "
             f"PSNR vs {REFERENCE} (dB) | device s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, row in results["rows"].items():
        for mode, r in row.items():
            if mode in ("settings", "claims"):
                continue
            ref = "ref." if name == REFERENCE else _f(r["psnr_vs_reference"], 1)
            lines.append(f"| {name} | {mode} | {_f(r['reproj_px'])} | {_f(r['reproj_px_median'])} | "
                         f"{r['observations']} | {_f(r['found'])} | {_f(r['usable'])} | {ref} | {r['seconds']:.1f} |")
    if results.get("controls"):
        lines += ["", "Controls, made of the ground truth and scored the same way (not generated): exact geometry, "
                  "and a grid whose every view is view 0 (views that agree without following their cameras)", "",
                  "| control | reproj px (mean) | reproj px (median) | observations | usable |",
                  "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {_f(r['reproj_px'])} | {_f(r['reproj_px_median'])} | {r['observations']} | "
                  f"{_f(r['usable'])} |" for name, r in results["controls"].items()]
    lines += ["", "Paired claims against independent (train/claims.py):", ""]
    for name, row in results["rows"].items():
        lines += [f"- {name}: {c['line']}" for c in row["claims"].values()]
    if results["nvs"]:
        ceiling = results.get("nvs_ceiling", {})
        noise = s.get("source_noise", 1.0)
        given = "view 0 given" if noise == 1.0 else f"view 0 given at {noise:g} of the noise level"
        lines += ["", f"### Novel-view synthesis ({given}; views 1..{s['views'] - 1} against their renders)", "",
                  "| row | mode | PSNR (dB) | colour-mask IoU | object place error px | copying view 0 px |",
                  "|---|---|---:|---:|---:|---:|"]
        for name, table in results["nvs"].items():
            for mode, r in table.items():
                if mode not in ("settings", "stability"):
                    lines.append(f"| {name} | {mode} | {_f(r['psnr'])} | {_f(r['iou'], 3)} | "
                                 f"{_f(r.get('place_px'), 1)} | {_f(r.get('copy_px'), 1)} |")
        if ceiling:
            lines.append(f"| autoencoder round trip (ceiling) | - | {_f(ceiling['psnr'])} | {_f(ceiling['iou'], 3)} | "
                         f"{_f(ceiling.get('place_px'), 1)} | {_f(ceiling.get('copy_px'), 1)} |")
        lines += [""]
        for name, table in results["nvs"].items():
            for metric, st in table["stability"].items():
                lines.append(f"- {name}, {metric}: order {' > '.join(st['order'])}; the same in "
                             f"{100 * (st['bootstrap'] or 0):.0f}% of 1000 bootstrap resamples of the {st['scenes']} "
                             f"scenes; the two halves of the scenes {'agree' if st['halves_agree'] else 'differ'}")
    if results.get("skipped"):
        lines += ["", f"Skipped (time budget or no student): {', '.join(results['skipped'])}"]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camgrid.train.tables", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="the teacher's folder (default: assets/)")
    parser.add_argument("--student", default=None, help=f"the student LoRA (default: {STUDENT_FILE} beside the model)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--scenes", type=int, default=96)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--batch", type=int, default=48, help="grids per generation batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=float, default=120.0, help="seconds; rows not started by then are skipped")
    parser.add_argument("--workers", type=int, default=max(0, min(14, (os.cpu_count() or 1) - 2)),
                        help="processes for rendering and the metric (0: in this process)")
    parser.add_argument("--source-noise", type=float, default=1.0,
                        help="NVS: the given view held at this share of the grid's noise level (SourceVideo.noise_scale)")
    parser.add_argument("--scene-style", default=None, choices=sorted(SCENE_STYLES),
                        help="held-out scenes of this style instead of the model's own (to pair two models' tables)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    noise_problem = SOURCE_NOISE.problem("--source-noise", args.source_noise)
    if noise_problem:
        parser.error(noise_problem)
    run_tables(args.model, args.out, args.student, args.scenes, args.views, args.batch, args.seed, args.budget,
               args.device, args.workers, source_noise=args.source_noise, scene_style=args.scene_style)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
