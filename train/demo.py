"""`python -m camgrid demo --out DIR`: the README's main job, on a CPU, with the built-in model.

By default the few-step student runs (train/student.py: the LoRA merged by apply_lora, 4 Euler steps, no
guidance); `--teacher` runs the 20-step teacher with guidance instead, for comparison. For "a red sphere and
a blue box" and a 4-view orbit rig, it generates DEMO_GRIDS grids per grid mode (independent, syncam, hard,
soft; their noise drawn from one seed, the same in every mode) and scores them with the consistency metric.
The comparison it prints follows the pre-registered rule of train/claims.py: a direction and a percentage
only when the paired signed-rank test over the grids decides, "not enough observations" when too few grids are
scorable, and the sample sizes on every line (tests/test_claims.py: the verdicts hold for seeds 0-4). With 6-8
scorable pairs a direction needs nearly every pair to agree, so beside its own claims the demo prints those of
the 96-scene held-out tables recorded for the shipped files (when it runs them, at their settings). The
floor is the renderer's own grids of the DEMO_SCENE_SEEDS scenes (the first seeds whose every object is whole
and apart in every view and frame, `find_demo_scene_seeds`). Writes into DIR:
  rig.png                   the rig preview (top + side view, numbered frusta)
  MODE/view_K.mp4           each view's video of the first grid (GIF when imageio-ffmpeg is missing)
  MODE/side_by_side.mp4     the views tiled side by side
  ground_truth/...          the first demo scene rendered by the synthetic renderer
  comparison.png            the middle frame of every view, one row per mode, ground truth first
  metrics.json              {"model", "sampling", "grids", "modes": {MODE: {"reproj_px", "reproj_px_median",
                            "found", "observations", "scored", "per_scene_errors", ...}}, "claims": {MODE:
                            {"verdict", "line"}}, "ground_truth": {...}}; errors are pooled over every scored
                            observation; a mode nothing could be scored in has reproj_px null; "recorded_claims":
                            the held-out tables' claims for the shipped files (RECORDED_TABLES), also printed
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..model.camera import default_intrinsics, make_preset
from ..model.checks import InputError, output_folder
from ..model.files import atomic_write
from ..model.rig_preview import draw_rig
from ..model.video_io import tile_views, to_uint8
from ..synth.render import render
from ..synth.scenes import sample_scene, scene_style
from .builtin import load_builtin, model_fingerprint, student_available
from .claims import claims
from .evaluate import COMPARED_MODES, safe_metrics, summarise
from .media import save_image, save_video

DEMO_COLOURS, DEMO_SHAPES = ("red", "blue"), ("sphere", "box")
DEMO_CAPTION = "a red sphere and a blue box"
# grids per mode: enough for the paired comparison to decide (train/claims.py needs 6 scorable pairs) while the
# whole quick start stays within ~45 s on 2 CPU cores with the 4-step student (benchmarks/TINY_MODEL.md)
DEMO_GRIDS = 8
# the held-out measurement of the shipped files (`python -m camgrid.train.tables`, with the files' fingerprint;
# copied by benchmarks/tiny_release.py): the demo prints its claims beside its own, which 8 grids rarely decide
RECORDED_TABLES = Path(__file__).resolve().parent.parent / "benchmarks" / "tiny_tables.json"
# find_demo_scene_seeds(built-in model, demo_rig(model)) for 80x48 px, 17 frames, per scene style (the rig's
# distance follows the style; tests/test_train.py checks them)
DEMO_SCENE_SEEDS = {"standard": (11, 25, 48), "close": (11, 88, 112)}


def demo_rig(model, views: int = 4):
    rig = make_preset("orbit_arc", num_views=views, azimuth_span_deg=30.0 * views, elevation_deg=20.0,
                      radius=scene_style(model.scene_style).demo_radius, num_frames=model.frames, hfov_deg=60.0)
    rig.intrinsics = default_intrinsics(views, 60.0, aspect=model.width / model.height)
    return rig.validate()


def _save_clip(path: Path, clip: np.ndarray, fps: float) -> Path:
    """An MP4, or a GIF when imageio-ffmpeg is missing."""
    try:
        return save_video(path, clip, fps)
    except ImportError:
        images = [Image.fromarray(f) for f in clip]
        return save_image(images[0], path.with_suffix(".gif"), save_all=True, append_images=images[1:],
                          duration=int(1000 / fps), loop=0)


def _write_videos(folder: Path, frames: torch.Tensor, fps: float) -> list[Path]:
    """frames [V, F, H, W, 3] -> per-view videos + a side-by-side video (MP4, or GIF without ffmpeg)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = [(f"view_{k}", to_uint8(frames[k])) for k in range(frames.shape[0])]
    clips.append(("side_by_side", tile_views(frames, rows=1, cols=frames.shape[0])))
    written = []
    for name, clip in clips:
        clip = np.repeat(np.repeat(clip, 4, axis=1), 4, axis=2)   # 4x larger pixels: tiny videos stay visible
        written.append(_save_clip(folder / f"{name}.mp4", clip, fps))
    return written


def comparison_image(rows: list[tuple[str, torch.Tensor]]) -> Image.Image:
    """One row per (label, frames [V, F, H, W, 3]): the middle frame of every view, scaled 3x for reading."""
    label_w, pad = 110, 2
    v, f, h, w, _ = rows[0][1].shape
    img = Image.new("RGB", (label_w + v * (w + pad), len(rows) * (h + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for r, (name, frames) in enumerate(rows):
        mid = to_uint8(frames[:, f // 2])
        for k in range(v):
            img.paste(Image.fromarray(mid[k]), (label_w + k * (w + pad), r * (h + pad)))
        draw.text((4, r * (h + pad) + h // 2 - 6), name, fill=(0, 0, 0))
    return img.resize((img.width * 3, img.height * 3), Image.NEAREST)


def find_demo_scene_seeds(model, rig, count: int = 3, first_seed: int = 0, max_tries: int = 200) -> list:
    """The first `count` scene seeds (from `first_seed` up) whose ground-truth renders the metric can use
    completely: both objects whole and apart in every view and frame. Slow (a render per candidate);
    DEMO_SCENE_SEEDS holds its answer for the built-in model's resolution and rig."""
    picked = []
    for seed in range(first_seed, first_seed + max_tries):
        m = safe_metrics(_truth(model, rig, seed), rig, list(DEMO_COLOURS))
        if m["failed"] == 0 and m["usable"] == 1.0:
            picked.append(seed)
            if len(picked) == count:
                return picked
    raise RuntimeError(f"only {len(picked)} of {count} demo scenes in seeds {first_seed}..{first_seed + max_tries - 1} "
                       "have every object usable in every view; lower the count or change the rig")


def _truth(model, rig, scene_seed: int) -> torch.Tensor:
    scene = sample_scene(scene_seed, colours=DEMO_COLOURS, shapes=DEMO_SHAPES, num_frames=model.frames,
                         checker_size=scene_style(model.scene_style).checker_size)
    return render(scene, rig, model.height, model.width)


def _describe(m: dict) -> str:
    if m["reproj_px"] is None:
        return f"reprojection not scorable (no object usable in two views) in {m['scenes']} grids, found {m['found']:.2f}"
    return (f"reprojection {m['reproj_px_median']:.2f} px median, {m['reproj_px']:.2f} px mean over "
            f"{m['observations']} observations in {m['scenes_scored']}/{m['scenes']} grids, found {m['found']:.2f}")


def load_demo_model(model_dir=None, device="cpu", teacher: bool = False, log=print):
    """The few-step student when its LoRA is there (unless `teacher`), else the teacher."""
    if not teacher and student_available(model_dir):
        return load_builtin(model_dir, device=device, student=True)
    if not teacher:
        log("demo: no few-step student beside the model: running the 20-step teacher")
    return load_builtin(model_dir, device=device)


def recorded_claims(model, tables: Path = RECORDED_TABLES) -> list[str]:
    """The claims of the held-out tables for the shipped files, when `model` is them at its default sampling:
    ["on 96 held-out scenes ...: <claim line>", ...]; [] when the record is missing or belongs to other files."""
    try:
        record = json.loads(Path(tables).read_text())
    except (OSError, ValueError):
        return []
    row = record.get("rows", {}).get("student 4 steps" if model.is_student else "teacher 20 steps")
    if not row or record.get("files") != model_fingerprint() or row.get("settings") != model.sampling:
        return []
    scenes = record.get("settings", {}).get("scenes")
    where = f"on {scenes} held-out scenes (recorded for these files, benchmarks/tiny_tables.md)"
    lines = [f"{where}: {c['line']}" for c in row.get("claims", {}).values()]
    copied = record.get("controls", {}).get("view 0 copied", {}).get("reproj_px_median")
    if copied is not None:   # what the numbers above mean: agreement, which four copies of one view also have
        lines.append(f"{where}: control: the true view 0 copied into every view scores {copied:.2f} px, so a low "
                     "error says the views agree, not that each follows its camera (benchmarks/TINY_MODEL.md)")
    return lines


def describe_sampling(model) -> str:
    s = model.sampling
    who = "few-step student" if model.is_student else "teacher"
    return f"{who}: {s['steps']} {s['scheduler']} steps, guidance {s['cfg']:g}"


@torch.no_grad()
def score_modes(model, rig, caption: str = DEMO_CAPTION, grids: int = DEMO_GRIDS, seed: int = 0,
                modes=COMPARED_MODES, steps=None, cfg=None, log=None) -> tuple[dict, dict]:
    """Every mode's `grids` grids for the caption and rig (one batch, noise from `seed`), scored:
    ({mode: summary (train/evaluate.summarise), or {"available": False}}, {mode: frames of the first grid})."""
    cams = model.camera_embedding(rig)[None].expand(grids, -1, -1, -1)
    summaries, first = {}, {}
    t0 = time.time()
    for mode in modes:
        if mode not in model.modes():
            summaries[mode] = {"available": False, "reproj_px": None, "reproj_px_median": None, "scored": False}
            continue
        lat = model.generate_latents([caption] * grids, cams, mode=mode, steps=steps, cfg=cfg, seed=seed)
        frames = model.decode(lat)
        summaries[mode] = summarise([safe_metrics(g, rig, list(DEMO_COLOURS)) for g in frames])
        first[mode] = frames[0]
        if log is not None:
            log(f"demo: {mode:<12} {_describe(summaries[mode])}  ({time.time() - t0:.0f}s)")
    return summaries, first


def run_demo(out, model=None, caption: str = DEMO_CAPTION, views: int = 4, steps=None, cfg=None, seed: int = 0,
             grids: int = DEMO_GRIDS, modes=COMPARED_MODES, fps: float = 8.0, log=print, shipped: bool = None) -> dict:
    """`shipped`: the model is the built-in files of assets/ (default: when `model` is None), so the recorded
    held-out claims may be printed beside the demo's own (only at the model's own settings and caption)."""
    if not 1 <= grids <= 64:
        raise InputError(f"grids (--grids) must be 1..64, got {grids}")
    out = output_folder(out)
    t0 = time.time()
    shipped = model is None if shipped is None else shipped
    model = load_demo_model() if model is None else model
    log(f"demo: {describe_sampling(model)}; {grids} grids per mode from seed {seed}")
    rig = demo_rig(model, views)
    save_image(draw_rig(rig), out / "rig.png")
    scene_seeds = DEMO_SCENE_SEEDS[model.scene_style]
    truth = [_truth(model, rig, s) for s in scene_seeds]
    summaries, first = score_modes(model, rig, caption, grids, seed, modes, steps, cfg, log)
    metrics = {"caption": caption, "model": "student" if model.is_student else "teacher",
               "sampling": {**model.sampling, **{k: v for k, v in (("steps", steps), ("cfg", cfg)) if v is not None}},
               "seed": seed, "grids": grids, "scene_seeds": list(scene_seeds),
               "note": ("each mode generates `grids` grids for the caption and the rig, grid k from the same noise in "
                        "every mode; the ground truth is the renderer's own grid of each demo scene (the floor). "
                        "reproj_px / reproj_px_median pool every scored observation; null means not scorable. "
                        "claims: train/claims.py"),
               "modes": summaries,
               "ground_truth": summarise([safe_metrics(f, rig, list(DEMO_COLOURS)) for f in truth])}
    found = claims({k: v for k, v in summaries.items() if v.get("scored") is not None})
    metrics["claims"] = {c.mode: {"verdict": c.verdict, "line": c.line()} for c in found}
    log(f"demo: {'ground truth':<12} {_describe(metrics['ground_truth'])}")
    for c in found:
        log(f"demo: {c.line()}")
    own_settings = steps in (None, model.sampling["steps"]) and cfg in (None, model.sampling["cfg"])
    recorded = recorded_claims(model) if shipped and own_settings and caption == DEMO_CAPTION else []
    metrics["recorded_claims"] = recorded
    for line in recorded:
        log(f"demo: {line}")
    _write_videos(out / "ground_truth", truth[0], fps)
    rows = [("ground truth", truth[0])]
    for mode, frames in first.items():
        _write_videos(out / mode, frames, fps)
        rows.append((mode, frames))
    save_image(comparison_image(rows), out / "comparison.png")
    metrics["seconds"] = time.time() - t0
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=1))
    log(f"demo: wrote {out}/rig.png, {out}/comparison.png, {out}/metrics.json and per-mode videos in "
        f"{', '.join(str(out / name) for name, _ in rows)}  ({time.time() - t0:.0f}s)".replace("ground truth", "ground_truth"))
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default=None, help="a `camgrid train --out` folder (default: the built-in model)")
    parser.add_argument("--teacher", action="store_true",
                        help="run the 20-step teacher with guidance instead of the few-step student")
    parser.add_argument("--caption", default=DEMO_CAPTION, help="what to generate; the metric looks for red and blue objects")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's: student 4, teacher 20)")
    parser.add_argument("--cfg", type=float, default=None, help="guidance scale (default: the model's: student 1, teacher 3)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed of the batch of grids")
    parser.add_argument("--grids", type=int, default=DEMO_GRIDS, help="grids per mode")
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    model = load_demo_model(args.model, args.device, args.teacher)
    run_demo(args.out, model, caption=args.caption, steps=args.steps, cfg=args.cfg, seed=args.seed, grids=args.grids,
             shipped=args.model is None)
    return 0
