"""`python -m camgrid eval`: multi-view consistency of generated grids, per grid mode.

For held-out synthetic scenes (a dataset seed the trainer never uses), the model generates a grid for
the scene's caption and rig in every mode; `synth.metric.consistency_metrics` segments the objects by
colour, triangulates them with the known rig and reports the reprojection error in pixels and the
fraction of objects found. Two floors: the ground-truth renders, and the same renders passed through
the autoencoder (the best a generated grid can do after decoding). Our small-scale version of
4Real-Video's ablation (independent vs. SynCamMaster vs. hard vs. soft sync).
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Optional, Sequence

import torch

from ..synth.dataset import SyntheticMultiViewDataset
from ..synth.metric import consistency_metrics

EVAL_SEED = 9001          # training banks use seeds 0..; held-out scenes come from this one
MODES = ("independent", "syncam", "hard", "soft")
KEYS = ("reproj_px", "reproj_px_median", "found", "usable", "triangulated")


def _mean(values) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(sum(vals) / len(vals)) if vals else float("nan")


def safe_metrics(frames, rig, colours) -> dict:
    """consistency_metrics, or NaNs (with failed=1) when its triangulation hits a singular system."""
    try:
        return {**consistency_metrics(frames, rig, colours), "failed": 0}
    except torch.linalg.LinAlgError:
        return {**{k: float("nan") for k in KEYS}, "failed": 1}


def summarise(per_scene: list[dict]) -> dict:
    out = {k: _mean([m[k] for m in per_scene]) for k in KEYS}
    out["scenes"] = len(per_scene)
    out["metric_failures"] = sum(m.get("failed", 0) for m in per_scene)
    out["scenes_scored"] = sum(not math.isnan(m["reproj_px"]) for m in per_scene)
    return out


def eval_scenes(model, num_scenes: int, views: int = 4, seed: int = EVAL_SEED) -> list[dict]:
    ds = SyntheticMultiViewDataset(length=max(1, num_scenes), height=model.height, width=model.width,
                                   num_frames=model.frames, min_views=views, max_views=views, seed=seed)
    return [ds[i] for i in range(num_scenes)]


@torch.no_grad()
def evaluate(model, num_scenes: int = 16, modes: Sequence[str] = MODES, steps: int = 20, cfg: float = 4.0,
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


def format_table(results: dict) -> str:
    rows = [("ground truth (floor)", results["ground_truth"]), ("autoencoder round trip", results["autoencoder"])]
    rows += [(mode, r) for mode, r in results["modes"].items()]
    s = results.get("settings", {})
    lines = [f"multi-view consistency, {s.get('scenes', '?')} held-out scenes x {s.get('views', '?')} views, "
             f"{s.get('width', '?')}x{s.get('height', '?')} px, {s.get('frames', '?')} frames, {s.get('steps', '?')} steps, "
             f"cfg {s.get('cfg', '?')}",
             f"| {'grid':<24} | reproj px (mean) | reproj px (median) | found | usable | triangulated |",
             f"|{'-' * 26}|-----------------:|-------------------:|------:|-------:|-------------:|"]
    for name, r in rows:
        lines.append(f"| {name:<24} | {r['reproj_px']:16.2f} | {r['reproj_px_median']:18.2f} | {r['found']:5.2f} | "
                     f"{r['usable']:6.2f} | {r['triangulated']:12.2f} |")
    ind = results["modes"].get("independent", {}).get("reproj_px")
    if ind and not math.isnan(ind):
        for mode, r in results["modes"].items():
            if mode != "independent" and not math.isnan(r["reproj_px"]):
                lines.append(f"{mode}: {100 * (1 - r['reproj_px'] / ind):+.0f}% reprojection error vs independent"
                             .replace("+-", "-"))
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="a `camgrid train --out` folder (default: the built-in model)")
    parser.add_argument("--scenes", type=int, default=8, help="held-out scenes to generate")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {MODES}")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")


def run(args: argparse.Namespace) -> int:
    from .builtin import load_builtin

    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad:
        raise ValueError(f"--modes: unknown {bad}; choose from {MODES}")
    model = load_builtin(args.model, device=args.device)
    results = evaluate(model, args.scenes, modes, args.steps, args.cfg, args.views, args.seed)
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"wrote {args.json}")
    return 0
