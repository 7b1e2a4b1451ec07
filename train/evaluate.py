"""`python -m camgrid eval`: multi-view consistency of generated grids, per grid mode.

For held-out synthetic scenes (a dataset seed the trainer never uses), the model generates a grid for
the scene's caption and rig in every mode; `synth.metric.consistency_metrics` segments the objects by
colour, triangulates them with the known rig and reports the reprojection error in pixels and the
fraction of objects found. Two floors: the ground-truth renders, and the same renders passed through
the autoencoder (the best a generated grid can do after decoding). Our small-scale version of
4Real-Video's ablation (independent vs. SynCamMaster vs. hard vs. soft sync).

A mode's numbers pool every scored observation of every scene (an object usable, i.e. whole and
apart from the others, in at least two views of a frame); a mode with none is reported as not
scorable (None / "n/a"), never as a number.
"""
from __future__ import annotations

import argparse
import json
import math
from typing import Optional, Sequence

import torch

from ..model.checks import InputError
from ..model.files import atomic_write
from ..synth.metric import reprojection_errors
from .builtin import load_builtin
from .claims import claims
from .same_views import grid_detections

EVAL_SEED = 9001          # training banks use seeds 0..; held-out scenes come from this one
# the text-to-grid modes compared (recam needs a source video, which this comparison has not)
COMPARED_MODES = ("independent", "syncam", "hard", "soft")
KEYS = ("reproj_px", "reproj_px_median", "found", "usable", "triangulated", "observations")


def _finite(values) -> list:
    return [v for v in values if v is not None and not math.isnan(v)]


def _mean(values):
    vals = _finite(values)
    return float(sum(vals) / len(vals)) if vals else None


def observation_errors(frames, rig, colours, keep_detections: bool = False) -> tuple[torch.Tensor, dict]:
    """The metric's per-observation reprojection errors (pixels, float64 [n]) and its fractions, so several
    grids pool into one mean and median (synth.metric.consistency_metrics reports one grid's). Raises
    torch.linalg.LinAlgError if a linear solve fails (safe_metrics catches it). keep_detections: the fractions
    also hold "detections" (train/same_views.py grid_detections: centroids, usable and the rig's cameras)."""
    err, used, det, valid = reprojection_errors(frames, rig, colours)
    fractions = dict(found=float(det.found.double().mean()), usable=float(det.usable.double().mean()),
                     triangulated=float(valid.double().mean()))
    if keep_detections:
        fractions["detections"] = grid_detections(det, rig, frames)
    return err[used], fractions


def safe_metrics(frames, rig, colours, keep_detections: bool = False) -> dict:
    """One grid: {"reproj_px", "reproj_px_median" (None when nothing was scorable), "found", "usable",
    "triangulated", "observations", "errors" (the per-observation list), "failed" (1 = the metric broke)},
    and with keep_detections its "detections" (observation_errors)."""
    try:
        errors, fractions = observation_errors(frames, rig, colours, keep_detections)
    except torch.linalg.LinAlgError:
        return {**{k: None for k in KEYS}, "observations": 0, "errors": [], "failed": 1}
    scored = errors.numel() > 0
    return {"reproj_px": float(errors.mean()) if scored else None,
            "reproj_px_median": float(errors.median()) if scored else None,
            **fractions, "observations": int(errors.numel()), "errors": errors.tolist(), "failed": 0}


def summarise(per_scene: list[dict]) -> dict:
    """Pool grids: reproj_px is the mean over ALL scored observations of all grids (not a mean of
    per-grid means), reproj_px_median their median; None (and "scored": false) when no grid had an
    object usable in two views, which says the mode could not be measured, not that it scored 0."""
    errors = torch.tensor([e for m in per_scene for e in m.get("errors", [])], dtype=torch.float64)
    scored = errors.numel() > 0
    return {"reproj_px": float(errors.mean()) if scored else None,
            "reproj_px_median": float(errors.median()) if scored else None,
            "found": _mean([m["found"] for m in per_scene]),
            "usable": _mean([m["usable"] for m in per_scene]),
            "triangulated": _mean([m["triangulated"] for m in per_scene]),
            "observations": int(errors.numel()),
            "scored": bool(scored),
            "scenes": len(per_scene),
            "scenes_scored": sum(m.get("observations", 0) > 0 for m in per_scene),
            "metric_failures": sum(m.get("failed", 0) for m in per_scene),
            "per_scene_px": [m["reproj_px"] for m in per_scene],
            "per_scene_errors": [[round(e, 4) for e in m.get("errors", [])] for m in per_scene]}


def eval_scenes(model, num_scenes: int, views: int = 4, seed: int = EVAL_SEED) -> list[dict]:
    ds = model.scenes(num_scenes, seed, views)
    return [ds[i] for i in range(num_scenes)]


@torch.no_grad()
def evaluate(model, num_scenes: int = 16, modes: Sequence[str] = COMPARED_MODES, steps: int = 20, cfg: float = 4.0,
             views: int = 4, seed: int = 0, device=None, batch: int = 16, scenes: Optional[list] = None) -> dict:
    """{"modes": {mode: summary}, "ground_truth": summary, "autoencoder": summary, "settings": {...}}."""
    scenes = eval_scenes(model, num_scenes, views) if scenes is None else scenes
    available = model.modes()
    modes = [m for m in modes if m in available]
    results = {"modes": {}, "settings": dict(scenes=len(scenes), views=views, steps=steps, cfg=cfg, seed=seed,
                                             height=model.height, width=model.width, frames=model.frames)}
    results["ground_truth"] = summarise([safe_metrics(s["videos"], s["rig"], s["colours"]) for s in scenes])
    ae_rt = []
    for s in scenes:
        frames = model.ae.decode(model.ae.encode(s["videos"].to(model.device))).cpu()
        ae_rt.append(safe_metrics(frames, s["rig"], s["colours"]))
    results["autoencoder"] = summarise(ae_rt)
    for mode in modes:
        per_scene = []
        for start in range(0, len(scenes), batch):
            chunk = scenes[start:start + batch]
            cams = torch.stack([model.camera_embedding(s["rig"]) for s in chunk])
            lat = model.generate_latents([s["caption"] for s in chunk], cams, mode=mode, steps=steps, cfg=cfg,
                                         seed=seed + start)
            frames = model.decode(lat)
            per_scene += [safe_metrics(f, s["rig"], s["colours"]) for f, s in zip(frames, chunk)]
        results["modes"][mode] = summarise(per_scene)
    return results


def _fmt(value, width: int, digits: int = 2) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'n/a':>{width}}"


def improvement_lines(modes: dict) -> list[str]:
    """One line per multi-view mode against independent, by the pre-registered rule of train/claims.py
    (a direction and a percentage only when the paired signed-rank test decides; sample sizes always)."""
    if "independent" not in modes:
        return []
    return [c.line() for c in claims(modes)]


def paired_wins(mode_px: list, independent_px: list) -> tuple[int, int]:
    """(grids where the mode's mean error is below independent's, grids scored in both). Every mode
    generates scene k from the same noise, so this per-grid comparison is paired: steadier than the
    pooled numbers, which a few wild triangulations can swing."""
    pairs = [(a, b) for a, b in zip(mode_px, independent_px) if a is not None and b is not None]
    return sum(a < b for a, b in pairs), len(pairs)


def format_table(results: dict) -> str:
    rows = [("ground truth (floor)", results["ground_truth"])]
    if "autoencoder" in results:
        rows.append(("autoencoder round trip", results["autoencoder"]))
    rows += [(mode, r) for mode, r in results["modes"].items()]
    s = results.get("settings", {})
    lines = [f"multi-view consistency, {s.get('scenes', '?')} scenes x {s.get('views', '?')} views, "
             f"{s.get('width', '?')}x{s.get('height', '?')} px, {s.get('frames', '?')} frames, {s.get('steps', '?')} steps, "
             f"cfg {s.get('cfg', '?')}; errors pooled over every scored observation (n/a: nothing scorable)",
             f"| {'grid':<24} | reproj px (mean) | reproj px (median) | observations | scenes scored | found | usable |",
             f"|{'-' * 26}|-----------------:|-------------------:|-------------:|--------------:|------:|-------:|"]
    for name, r in rows:
        lines.append(f"| {name:<24} | {_fmt(r['reproj_px'], 16)} | {_fmt(r['reproj_px_median'], 18)} | "
                     f"{r['observations']:12d} | {r['scenes_scored']:6d} of {r['scenes']:<4d} | {_fmt(r['found'], 5)} | "
                     f"{_fmt(r['usable'], 6)} |")
    return "\n".join(lines + improvement_lines(results["modes"]))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="a `camgrid train --out` folder (default: the built-in model)")
    parser.add_argument("--scenes", type=int, default=8, help="held-out scenes to generate")
    parser.add_argument("--modes", default=",".join(COMPARED_MODES), help=f"comma-separated subset of {COMPARED_MODES}")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in COMPARED_MODES]
    if bad:
        raise InputError(f"--modes: unknown {bad}; choose from {COMPARED_MODES}")
    model = load_builtin(args.model, device=args.device)
    results = evaluate(model, args.scenes, modes, args.steps, args.cfg, args.views, args.seed)
    print(format_table(results))
    if args.json:
        atomic_write(args.json, json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0
