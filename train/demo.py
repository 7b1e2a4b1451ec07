"""`python -m camgrid demo --out DIR`: the README's main job, on a CPU, with the built-in model.

Generates one 4-view grid of "a red sphere and a blue box" for an orbit rig in every grid mode
(independent, syncam, hard, soft), and writes into DIR:
  rig.png                   the rig preview (top + side view, numbered frusta)
  MODE/view_K.mp4           each view's video (GIF when imageio-ffmpeg is missing)
  MODE/side_by_side.mp4     the views tiled side by side
  ground_truth/...          the same scene rendered by the synthetic renderer
  comparison.png            the middle frame of every view, one row per mode, ground truth first
  metrics.json              {"modes": {MODE: {"reproj_px", "found", ...}}, "ground_truth": {...}}
The metric is `synth.metric.consistency_metrics` with the known rig (`camgrid eval` averages it
over many scenes; one scene, as here, is a noisy sample of it).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from ..model.camera import default_intrinsics, make_preset
from ..synth.render import render
from ..synth.scenes import sample_scene
from .evaluate import MODES, safe_metrics

DEMO_COLOURS, DEMO_SHAPES = ("red", "blue"), ("sphere", "box")


def demo_rig(model, views: int = 4):
    rig = make_preset("orbit_arc", num_views=views, azimuth_span_deg=30.0 * views, elevation_deg=20.0, radius=3.5,
                      num_frames=model.frames, hfov_deg=60.0)
    rig.intrinsics = default_intrinsics(views, 60.0, aspect=model.width / model.height)
    return rig.validate()


def _write_videos(folder: Path, frames: torch.Tensor, fps: float) -> list[Path]:
    """frames [V, F, H, W, 3] -> per-view videos + a side-by-side video (MP4, or GIF without ffmpeg)."""
    from ..model.video_io import tile_views, to_uint8

    folder.mkdir(parents=True, exist_ok=True)
    clips = [(f"view_{k}", to_uint8(frames[k])) for k in range(frames.shape[0])]
    clips.append(("side_by_side", tile_views(frames, rows=1, cols=frames.shape[0])))
    written = []
    for name, clip in clips:
        clip = np.repeat(np.repeat(clip, 4, axis=1), 4, axis=2)   # 4x larger pixels: tiny videos stay visible
        try:
            from ..model.video_io import write_video

            written.append(write_video(folder / f"{name}.mp4", clip, fps=fps))
        except ImportError:
            from PIL import Image

            images = [Image.fromarray(f) for f in clip]
            path = folder / f"{name}.gif"
            images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)
            written.append(path)
    return written


def _comparison(rows: list[tuple[str, torch.Tensor]]):
    from PIL import Image, ImageDraw

    from ..model.video_io import to_uint8

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


def run_demo(out, model=None, caption: str = "a red sphere and a blue box", views: int = 4, steps: int = 20,
             cfg: float = 4.0, seed: int = 0, scene_seed: int = 3, modes=MODES, fps: float = 8.0, log=print) -> dict:
    from .builtin import load_builtin

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    model = load_builtin() if model is None else model
    rig = demo_rig(model, views)
    from ..model.rig_preview import draw_rig

    draw_rig(rig).save(out / "rig.png")
    scene = sample_scene(scene_seed, colours=DEMO_COLOURS, shapes=DEMO_SHAPES, num_frames=model.frames)
    truth = render(scene, rig, model.height, model.width)
    metrics = {"caption": caption, "steps": steps, "cfg": cfg, "seed": seed, "modes": {},
               "ground_truth": safe_metrics(truth, rig, scene.colours)}
    _write_videos(out / "ground_truth", truth, fps)
    rows = [("ground truth", truth)]
    for mode in modes:
        if mode not in model.modes():
            log(f"demo: mode {mode} is not available for this model, skipped")
            continue
        frames = model.generate(caption, rig, mode=mode, steps=steps, cfg=cfg, seed=seed)
        metrics["modes"][mode] = safe_metrics(frames, rig, list(DEMO_COLOURS))
        _write_videos(out / mode, frames, fps)
        rows.append((mode, frames))
        m = metrics["modes"][mode]
        log(f"demo: {mode:<12} reprojection {m['reproj_px']:.2f} px, found {m['found']:.2f}  ({time.time() - t0:.0f}s)")
    _comparison(rows).save(out / "comparison.png")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=1))
    log(f"demo: wrote {out}/rig.png, {out}/comparison.png, {out}/metrics.json and per-mode videos in "
        f"{', '.join(str(out / name) for name, _ in rows)}  ({time.time() - t0:.0f}s)".replace("ground truth", "ground_truth"))
    return metrics


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--model", default=None, help="a `camgrid train --out` folder (default: the built-in model)")
    parser.add_argument("--caption", default="a red sphere and a blue box",
                        help="what to generate; the metric looks for red and blue objects")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--cfg", type=float, default=4.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")


def run(args: argparse.Namespace) -> int:
    from .builtin import load_builtin

    model = load_builtin(args.model, device=args.device)
    run_demo(args.out, model, caption=args.caption, steps=args.steps, cfg=args.cfg, seed=args.seed)
    return 0
