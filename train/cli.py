"""`python -m camgrid train`: train the built-in model on synthetic multi-camera scenes, or (with --dit) sync
layers and a LoRA on a real Wan2.1-family DiT (train/real/).

The options become one `TrainConfig` (train/config.py); train/trainer.py runs it. With --eval-scenes N the
trained model is then scored on N held-out scenes (train/evaluate.py) into `eval.json`. With --dit the run is
train/real/cli.py's; the options both kinds share default to None here and take each kind's own defaults.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from ..model.checks import InputError
from ..model.files import atomic_write
from ..synth.dataset import VIEW_ORDERS
from ..synth.scenes import SCENE_STYLES
from .config import AMP_CHOICES, IMAGE_SOURCES, STAGES, TrainConfig, parse_budgets, parse_stages
from .evaluate import evaluate, format_table
from .real import cli as real_cli
from .trainer import Trainer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    # shared with --dit runs: None = the kind's own default (resolved in config_from_args / real_cli)
    parser.add_argument("--out", default=None, help=f"folder for model files, loss.csv and checkpoints "
                        f"(default {d.out}; with --dit camgrid-sync-run)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=None, help=f"at most this many steps per stage ({d.steps}; "
                        "with --dit: steps of the run, 2000)")
    parser.add_argument("--time-budget", type=float, default=None, help=f"seconds per stage ({d.time_budget:g}; "
                        "with --dit: of the run, 0 = no limit)")
    parser.add_argument("--stage-budgets", default="", help="per-stage seconds, e.g. ae=40,video=180,syncam=120,hard=60,soft=60")
    parser.add_argument("--stages", default=None, help=f"comma-separated subset of {STAGES} (default: all; with "
                        "--init all but ae)")
    parser.add_argument("--batch", type=int, default=None, help=f"multi-view samples per step ({d.batch}; with --dit: "
                        "per step and GPU, 1)")
    parser.add_argument("--samples", type=int, default=d.samples, help="scenes rendered for training")
    parser.add_argument("--workers", type=int, default=d.workers, help="rendering processes (0: render in-process)")
    parser.add_argument("--height", type=int, default=None, help=f"{d.height} (with --dit: 480)")
    parser.add_argument("--width", type=int, default=None, help=f"{d.width} (with --dit: 832)")
    parser.add_argument("--frames", type=int, default=None, help=f"{d.frames} (with --dit: 81)")
    parser.add_argument("--views", type=int, default=None, help=f"{d.views} (with --dit: 4)")
    parser.add_argument("--lr", type=float, default=None, help=f"{d.lr:g} (with --dit: 1e-4)")
    parser.add_argument("--shift", type=float, default=None, help=f"{d.shift:g} (with --dit: 5)")
    parser.add_argument("--ema", type=float, default=d.ema,
                        help="DiT stages: keep an exponential moving average of the weights with this decay (e.g. "
                             "0.998) and end each stage with it; 0 = off")
    parser.add_argument("--amp", default=d.amp, choices=AMP_CHOICES,
                        help="autocast of the DiT stages: auto = bfloat16 on CUDA, float32 on CPU")
    parser.add_argument("--seed", type=int, default=None, help=f"{d.seed}")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help=f"steps between checkpoints of the stage in progress ({d.checkpoint_every}; with --dit: 200)")
    parser.add_argument("--resume", action="store_true", help="skip finished stages, continue the one in progress")
    parser.add_argument("--restart-stage", action="store_true",
                        help="resume, but start the stage in progress again from the finished stages' model files "
                             "(ignores checkpoint.pt, e.g. a damaged one)")
    parser.add_argument("--init", default="", metavar="DIR",
                        help="continue training the built-in model files in DIR (assets/ or an earlier --out) instead "
                             "of fresh weights: every stage but ae, with a fresh optimiser (the files hold no "
                             "optimiser state; this is how training spans several runs whose checkpoints are too "
                             "large to keep)")
    parser.add_argument("--two-stream-modes", default=",".join(d.two_stream_modes),
                        help="modes the hard stage's whole-DiT fine-tune cycles through: hard, or hard,soft")
    parser.add_argument("--eval-scenes", type=int, default=0, help="after training, evaluate on this many held-out scenes")
    parser.add_argument("--eval-steps", type=int, default=d.eval_steps)
    parser.add_argument("--no-progress", action="store_true")
    add_builtin_model_arguments(parser, d)
    real_cli.add_arguments(parser)


def add_builtin_model_arguments(parser: argparse.ArgumentParser, d: TrainConfig) -> None:
    """The built-in model's data, shape and recipe options (not used with --dit)."""
    parser.add_argument("--scene-style", default=d.scene_style, choices=sorted(SCENE_STYLES),
                        help="the synthetic data's look (synth/scenes.py): standard, or close (1 m checkers, cameras "
                             "at 2.2-3.2 m, larger objects in the frame); recorded in the model files (default: "
                             "standard; with --init the files' style)")
    parser.add_argument("--dim", type=int, default=d.dim)
    parser.add_argument("--layers", type=int, default=d.num_layers)
    parser.add_argument("--heads", type=int, default=d.num_heads)
    parser.add_argument("--ffn-dim", type=int, default=d.ffn_dim)
    parser.add_argument("--patch", type=int, default=d.patch, help=f"the DiT's spatial patch ({d.patch}: a token "
                        f"covers {4 * d.patch}x{4 * d.patch} pixels; 1: 4x4, four times the tokens)")
    parser.add_argument("--text-phrases", action="store_true",
                        help="the text encoder gives every word its object phrase (\"a red sphere\"), so the DiT can "
                             "tell which colour has which shape (train/text.py; recorded in the files)")
    parser.add_argument("--arc-span", default="", metavar="LOW,HIGH",
                        help="degrees an orbit arc of the training rigs spans in all (default: 20 to 30 per view); "
                             "wider arcs make views that merely look alike wrong (benchmarks/TINY_MODEL.md)")
    parser.add_argument("--view-order", default=d.view_order, choices=VIEW_ORDERS,
                        help="the order of the training rigs' views: preset (left to right along an arc, ...), or "
                             "shuffled, so the view index says nothing about where a camera is and the model has to "
                             "read the cameras (benchmarks/TINY_MODEL.md)")
    parser.add_argument("--camera-rays", action="store_true",
                        help="the DiT also reads each token's camera ray (Plücker coordinates from the cameras' "
                             "extrinsics), not only one camera embedding per frame; with --init a model without ray "
                             "encoders gets them, zero-initialised (recorded in the files)")
    parser.add_argument("--relative-cameras", action="store_true",
                        help="the multi-view attention reads each pair of views' relative camera pose where it read "
                             "the view index (model/relative_pose_attention.py); with --init the model is switched "
                             "to it and has to learn it (recorded in the files)")
    parser.add_argument("--ray-lr-scale", type=float, default=d.ray_lr_scale, metavar="X",
                        help="syncam stage: the camera-ray encoders learn at --lr times this (they start at zero)")
    parser.add_argument("--given-view-share", type=float, default=d.given_view_share, metavar="P",
                        help="multi-view stages: in this share of the samples one view is noised less and not "
                             "scored, so the model learns to draw the others from it (novel-view synthesis; "
                             "sample with SourceVideo(noise_scale=...) below 1)")
    parser.add_argument("--empty-scene-share", type=float, default=d.empty_scene_share, metavar="P",
                        help="this share of the training scenes has no objects: the floor alone under the scene's "
                             "cameras, with the empty caption, so the DiT sees floors to learn from "
                             "(benchmarks/TINY_MODEL.md \"The floor alone\"; 0: none)")
    parser.add_argument("--image-weight", type=float, default=d.image_weight, metavar="W",
                        help="video stage: this share of the loss from single frames (other clips' first latent "
                             "frame, as Wan trains on images beside videos; 0: clips only). The floor's lattice "
                             "came from single frames of the floor alone; whole scenes' frames did not keep it in a "
                             "CPU pilot (benchmarks/TINY_MODEL.md)")
    parser.add_argument("--image-source", choices=IMAGE_SOURCES, default=d.image_source,
                        help="with --image-weight: the single frames are the clips' own (clips) or frames of the "
                             "floor alone from the training cameras, captioned \"floor\" so that the empty caption "
                             "keeps its meaning for guidance (floor; train/floor_images.py)")
    parser.add_argument("--ae-scale-reg", type=float, default=d.ae_scale_reg,
                        help="built-in model, stage ae: weight of the loss that the latents pooled 2x decode to the "
                             "frames pooled 2x (smoother latents a DiT models more easily; 0: off)")
    parser.add_argument("--train-shift", type=float, default=d.train_shift,
                        help="built-in model: the shift of the noise levels trained, when it differs from the "
                             "sampler's --shift (e.g. 1: uniform sigma, more low noise levels; 0: --shift)")


def _given(value, default):
    return default if value is None else value


def parse_arc_span(text: str) -> tuple:
    """'60,160' -> (60.0, 160.0); '' -> () (the default spans); TrainConfig checks the values."""
    try:
        return tuple(float(v) for v in text.split(",")) if text.strip() else ()
    except ValueError:
        raise InputError(f"--arc-span: expected LOW,HIGH in degrees (e.g. 60,160), got {text!r}") from None


def default_stages(args) -> tuple:
    if args.stages is not None:
        return parse_stages(args.stages)
    return tuple(s for s in STAGES if not (args.init and s == "ae"))


def config_from_args(args) -> TrainConfig:
    d = TrainConfig()
    return TrainConfig(out=_given(args.out, d.out), device=args.device, steps=_given(args.steps, d.steps),
                       time_budget=_given(args.time_budget, d.time_budget),
                       stage_budgets=parse_budgets(args.stage_budgets), stages=default_stages(args),
                       batch=_given(args.batch, d.batch), samples=args.samples, workers=args.workers,
                       height=_given(args.height, d.height), width=_given(args.width, d.width),
                       frames=_given(args.frames, d.frames), views=_given(args.views, d.views), dim=args.dim,
                       num_layers=args.layers, num_heads=args.heads, ffn_dim=args.ffn_dim, patch=args.patch,
                       lr=_given(args.lr, d.lr),
                       shift=_given(args.shift, d.shift), train_shift=args.train_shift,
                       ae_scale_reg=args.ae_scale_reg, text_phrases=args.text_phrases, scene_style=args.scene_style,
                       arc_span=parse_arc_span(args.arc_span), given_view_share=args.given_view_share,
                       empty_scene_share=args.empty_scene_share, image_weight=args.image_weight,
                       image_source=args.image_source,
                       view_order=args.view_order, camera_rays=args.camera_rays, ray_lr_scale=args.ray_lr_scale,
                       relative_cameras=args.relative_cameras,
                       seed=_given(args.seed, d.seed),
                       amp=args.amp, ema=args.ema,
                       checkpoint_every=_given(args.checkpoint_every, d.checkpoint_every),
                       two_stream_modes=tuple(m for m in args.two_stream_modes.split(",") if m),
                       resume=args.resume, init=args.init, restart_stage=args.restart_stage,
                       eval_scenes=args.eval_scenes, eval_steps=args.eval_steps, progress_bar=not args.no_progress)


# options of the built-in model's training that a real DiT's (--dit) does not have: refused there, not ignored
BUILTIN_ONLY = {"arc_span": "", "given_view_share": 0.0, "empty_scene_share": 0.0, "image_weight": 0.0,
                "image_source": "clips", "text_phrases": False, "view_order": "preset", "camera_rays": False,
                "ray_lr_scale": 1.0, "relative_cameras": False}


def run(args: argparse.Namespace) -> int:
    if args.dit is not None:
        given = [name for name, default in BUILTIN_ONLY.items() if getattr(args, name) != default]
        if given:
            flags = ", ".join(f"--{n.replace('_', '-')}" for n in given)
            raise InputError(f"{flags}: the built-in model's training only; training a real DiT (--dit) reads its "
                             "own --data, so leave them out")
        return real_cli.run(args)
    cfg = config_from_args(args)
    trainer = Trainer(cfg)
    trainer.run()
    if cfg.eval_scenes > 0:
        torch.set_num_threads(os.cpu_count() or 1)   # the rendering workers are gone: the metric gets every core
        results = evaluate(trainer.models, num_scenes=cfg.eval_scenes, steps=cfg.eval_steps, device=trainer.device)
        atomic_write(Path(cfg.out) / "eval.json", json.dumps(results, indent=1))
        print(format_table(results))
    return 0
