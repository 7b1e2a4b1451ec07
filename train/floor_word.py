"""`python -m camgrid.train.floor_word`: teach a built-in model the word "floor" and compose it into its guidance.

Guidance 3 draws the built-in model's objects about 1.6-1.9 times the truth's share of the frame, and guidance 1,
which draws them at their size, loses their shapes (benchmarks/TINY_MODEL.md, "Guidance in a limited interval").
The remedy here is a second prompt composed into the guidance (model/sampling.py "composed", Liu et al. 2022):
v = v(∅) + cfg·(v(scene) - v(∅)) + w·(v("floor") - v(∅)), where "floor" means the bare floor, so its term pulls
every pixel that is not clearly an object back to the floor.

The word is learned by textual inversion (Gal et al. 2022): only its row of the text encoder's word table trains,
on single frames of the floor alone (train/floor_images.py) under the flow-matching loss; the DiT, its sync
parts, the autoencoder and every other word stay exactly as they were, so every other caption means what it
meant. The files are written with the model's meta naming the composed caption and its weight
(train/builtin.py "compose"): the teacher then samples with it, and a student distilled from that teacher
(`python -m camgrid.train.distill`) bakes it in. The student is not copied: the old one was distilled without it.
With --seconds 0 nothing trains: for a model whose "floor" already means the bare floor (its video stage trained
with floor images captioned "floor"), only the composing is written.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from typing import Optional

import torch

from ..model.checks import InputError, output_folder
from ..model.files import atomic_write
from ..model.sampling import SamplerOptions
from .builtin import COMPOSE_KEYS, TEACHER_SAMPLING, load_builtin, save_builtin
from .floor_images import FloorImages
from .objective import flow_matching_loss
from .text import FLOOR_WORD, WORD_INDEX

REPORT_FILE = "floor_word.json"


def learn_floor_word(model, seconds: float, frames: int = 2048, batch: int = 32, lr: float = 5e-3, seed: int = 0,
                     max_steps: Optional[int] = None, log=print) -> dict:
    """Train `model`'s FLOOR_WORD row (in place) for about `seconds` (or `max_steps`) on `frames` floor-only frames
    of its scene style; everything else stays frozen. Returns the steps and the loss at the start and the end."""
    torch.manual_seed(seed)
    for module in (model.dit, model.text, model.ae):
        module.requires_grad_(False)
    images = FloorImages(model.ae.encode, model.scene_style, model.height, model.width, seed, model.device, frames)
    table = model.text.words.weight
    only_the_word = torch.zeros_like(table)
    only_the_word[WORD_INDEX[FLOOR_WORD]] = 1.0
    table.requires_grad_(True)
    optimiser = torch.optim.Adam([table], lr=lr)
    t0, losses = time.time(), []
    try:
        while time.time() - t0 < seconds and (max_steps is None or len(losses) < max_steps):
            context = model.text.encode([FLOOR_WORD]).expand(batch, -1, -1)
            loss = flow_matching_loss(model.dit, images.batch(batch), context, model.shift, mode="independent")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            table.grad.mul_(only_the_word)   # Adam with zero gradients and zero moments leaves the other rows alone
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):   # stop at once: the files' weights are broken, not the word
                raise InputError(f"the floor word's loss was not finite at step {len(losses)} ({losses[-1]}): the "
                                 "model's files are broken; load them again or retrain")
            optimiser.step()
            if len(losses) % 200 == 0:
                log(f"floor word: step {len(losses)}, loss {sum(losses[-200:]) / 200:.4f}")
    finally:
        table.requires_grad_(False)
    if not losses:
        raise InputError(f"the floor word trained no step in {seconds} s: give it --seconds above 0")
    window = max(1, min(50, len(losses) // 4))
    return {"steps": len(losses), "seconds": time.time() - t0, "loss_first": sum(losses[:window]) / window,
            "loss_last": sum(losses[-window:]) / window}


def floor_word(model_dir, out, seconds: float = 360.0, compose_cfg: float = 0.7, frames: int = 2048,
               batch: int = 32, lr: float = 5e-3, device="cpu", max_steps: Optional[int] = None,
               log=print, **compose) -> dict:
    """The model in `model_dir` with the floor word learned and composed with weight `compose_cfg`, written to
    `out` (its three files and REPORT_FILE). `compose`: the sampler's other compose_* settings (compose_min_sigma,
    compose_max_sigma, compose_background_sigma, compose_background_tau; model/sampling.py "composed")."""
    if any(not name.startswith("compose_") for name in compose):
        raise TypeError(f"floor_word takes the sampler's compose_* settings, not {sorted(compose)}")
    # SamplerOptions checks them the way the teacher will use them (ranges, the lowest noise level below the highest)
    checked = SamplerOptions(cfg=TEACHER_SAMPLING["cfg"], compose_cfg=compose_cfg, **compose,
                             label=lambda name: "--" + name.replace("_", "-"))
    settings = {key: getattr(checked, f"compose_{key}") for key in COMPOSE_KEYS}
    out = output_folder(out)
    if not seconds >= 0:
        raise InputError(f"--seconds is {seconds}: give the training seconds, or 0 to keep the word as the model has it")
    model = load_builtin(model_dir, device=device)
    if seconds == 0:   # a model whose "floor" already means the bare floor (trained with --image-source floor)
        report = {"steps": 0, "seconds": 0.0, "loss_first": None, "loss_last": None}
    else:
        report = learn_floor_word(model, seconds, frames, batch, lr, max_steps=max_steps, log=log)
    model.meta["compose"] = {"caption": FLOOR_WORD, **settings}
    save_builtin(model, out)
    report = {"model": str(model_dir), "compose": model.meta["compose"], "frames": frames, "batch": batch, "lr": lr,
              **report}
    atomic_write(out / REPORT_FILE, json.dumps(report, indent=1))
    trained = f"{report['steps']} steps, loss {report['loss_first']:.4f} -> {report['loss_last']:.4f}" \
        if report["steps"] else "kept as the model has it"
    log(f"floor word: {trained}; the teacher in {out} composes '{FLOOR_WORD}' at {checked.compose_cfg} "
        f"({checked.compose_min_sigma} <= sigma <= {checked.compose_max_sigma}; on the background only below "
        f"{checked.compose_background_sigma}). "
        f"Distil its student next: "
        f"python -m camgrid.train.distill --model {out} --out {out}")
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camgrid.train.floor_word", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="the built-in model's folder (default: assets/)")
    parser.add_argument("--out", required=True, help="folder for the model's files with the word")
    parser.add_argument("--seconds", type=float, default=360.0,
                        help="training seconds; 0: the word is kept as it is (a model trained with floor images "
                             "captioned 'floor', `camgrid train --image-source floor`), only the composing is written")
    parser.add_argument("--compose-cfg", type=float, default=0.7, help="the word's weight in the teacher's guidance")
    parser.add_argument("--compose-min-sigma", type=float, default=0.0,
                        help="compose only on the guided steps whose noise level is at least this (0: all)")
    parser.add_argument("--compose-max-sigma", type=float, default=1.0,
                        help="compose only on the guided steps whose noise level is at most this (1: all)")
    parser.add_argument("--compose-background-sigma", type=float, default=0.0,
                        help="below this noise level compose on the background only, where the word's prediction "
                             "agrees with the caption's (0: everywhere)")
    parser.add_argument("--compose-background-tau", type=float, default=2.0,
                        help="the background: where the two predictions differ by at most this many times the "
                             "frame's median difference")
    parser.add_argument("--frames", type=int, default=2048, help="floor-only frames rendered to train on")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    floor_word(args.model, args.out, args.seconds, args.compose_cfg, args.frames, args.batch, args.lr, args.device,
               compose_min_sigma=args.compose_min_sigma, compose_max_sigma=args.compose_max_sigma,
               compose_background_sigma=args.compose_background_sigma,
               compose_background_tau=args.compose_background_tau)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
