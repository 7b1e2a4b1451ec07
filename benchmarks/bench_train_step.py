"""One training step of `camgrid train --dit` on Wan2.1 1.3B (random weights): seconds and peak GPU memory.

    python benchmarks/bench_train_step.py --budget 240            # H200: 480x832, 81 frames, 4 views
    python benchmarks/bench_train_step.py --tiny --device cpu       # the same table on a tiny model (checks the script)

What a step is: exactly what train/real/ runs (model_setup.make_trainable + loop's flow-matching step): the
DiT in bf16 with per-step gradient checkpointing, float32 sync layers (hard gates and soft layers) and a
LoRA (rank 32) trainable, AdamW, gradients clipped; latents [1, V, 16, 21, 60, 104], a 512-token context
(the first 40 tokens non-zero), cameras. The variant is SynCamMaster's (camera features enter the view stream).
Rows, in order, each only while the seconds already spent plus the previous row's time fit in --budget:
  forward (no grad)    the baseline, in the same run: one inference forward of the same grid and mode
  train step <mode>    step 1 (includes first-use costs) and step 2 (the number to read), per two-stream mode
Peak memory is torch.cuda.max_memory_allocated over that row (the model's weights included). The target
(issue 16): a step of the 1.3B at 480x832 x 81 frames x 4 views fits on one H200; <= 90 s per step.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model import GridDiT, get_config  # noqa: E402
from camgrid.train.loop import make_optimizer, optimise  # noqa: E402
from camgrid.train.loop import StagePlan  # noqa: E402
from camgrid.train.objective import flow_matching_loss  # noqa: E402
from camgrid.train.real.model_setup import make_trainable  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", type=float, default=240.0, help="seconds for the whole script; rows that would not "
                   "fit are skipped (and said so)")
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny model and grid (CPU smoke test of the script)")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--frames", type=int, default=81)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--width", type=int, default=832)
    p.add_argument("--modes", default="hard,soft")
    p.add_argument("--lora-rank", type=int, default=32)
    p.add_argument("--sync-rank", type=int, default=64)
    p.add_argument("--row-chunks", type=int, default=0)
    p.add_argument("--ffn-chunk", type=int, default=0)
    p.add_argument("--attention", default=None, help="attention backend (default: auto)")
    p.add_argument("--json", default=None, help="also write the rows to this JSON file")
    return p.parse_args(argv)


def build(args, device):
    """The trainable model (random weights) and one batch."""
    if args.tiny:
        config = get_config("tiny", num_heads=2, text_dim=32, variant="syncammaster")
        args.views, args.frames, args.height, args.width = 2, 5, 32, 32
    else:
        config = get_config("wan-1.3b", variant="syncammaster")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.device("meta"):
        model = GridDiT(config).to(dtype)
    model.to_empty(device=device)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.02)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    model.attention_backend = args.attention
    model.set_row_chunks(args.row_chunks or None)
    model.set_ffn_chunk(args.ffn_chunk or None)
    model.set_gradient_checkpointing(True)
    modes = tuple(m for m in args.modes.split(",") if m)
    trainable = make_trainable(model, modes, args.sync_rank, args.lora_rank, seed=0)
    t_lat, h, w = (args.frames - 1) // 4 + 1, args.height // 8, args.width // 8
    g = torch.Generator().manual_seed(0)
    latents = torch.randn(1, args.views, config.in_dim, t_lat, h, w, generator=g).to(device)
    context = torch.zeros(1, 512, config.text_dim)
    context[:, :40] = torch.randn(1, 40, config.text_dim, generator=g)
    cameras = (torch.randn(1, args.views, t_lat, 12, generator=g) * 0.1).to(device)
    return trainable, modes, latents, context.to(device), cameras


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(device, fn) -> tuple[float, float]:
    """(seconds, peak GiB) of fn()."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    sync(device)
    t0 = time.perf_counter()
    fn()
    sync(device)
    seconds = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return seconds, peak


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    trainable, modes, latents, context, cameras = build(args, device)
    sync(device)
    setup = time.perf_counter() - start
    tokens = latents.shape[1] * latents.shape[3] * (latents.shape[4] // 2) * (latents.shape[5] // 2)
    print(f"model {trainable.dit.config.size_name} ({trainable.dit.variant}), {args.views} views x {args.frames} frames "
          f"at {args.width}x{args.height} = {tokens} tokens, dtype {trainable.dit.dtype}, device {device}; "
          f"setup {setup:.1f}s")
    trainable_params = sum(p.numel() for g in trainable.parameter_groups() for p in g["params"])
    print(f"trainable: {trainable_params / 1e6:.1f}M parameters (sync layers + LoRA rank {args.lora_rank})")

    def loss_step(mode):
        return flow_matching_loss(trainable, latents, context, 5.0, mode=mode, camera=cameras)

    plan = StagePlan("bench", lambda i: loss_step(modes[i % len(modes)]), trainable.parameter_groups(), {}, 1e-4,
                     float("inf"))
    optimizer = make_optimizer(plan)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    rows, last = [], 0.0

    def row(name, fn):
        nonlocal last
        spent = time.perf_counter() - start
        if spent + last > args.budget:
            rows.append({"row": name, "seconds": None, "peak_gib": None, "note": f"skipped: {spent:.0f}s spent, "
                         f"the last row took {last:.0f}s, budget {args.budget:.0f}s"})
            return
        try:
            seconds, peak = measure(device, fn)
            rows.append({"row": name, "seconds": round(seconds, 3), "peak_gib": round(peak, 2), "note": ""})
            last = seconds
        except torch.cuda.OutOfMemoryError as exc:
            rows.append({"row": name, "seconds": None, "peak_gib": None, "note": f"out of memory ({str(exc)[:60]})"})
            torch.cuda.empty_cache()

    def forward(mode):
        with torch.no_grad():
            trainable(latents, torch.tensor([500.0], device=device), context, mode=mode, camera=cameras)

    row(f"forward (no grad) {modes[0]}", lambda: forward(modes[0]))
    for i, mode in enumerate(modes):
        for n in (1, 2):
            row(f"train step {mode} #{n}", lambda i=i: optimise(plan, i, optimizer, params, 1e-4))
    print(f"{'row':28s} {'seconds':>9s} {'peak GiB':>9s}  note")
    for r in rows:
        seconds = f"{r['seconds']:9.3f}" if r["seconds"] is not None else f"{'-':>9s}"
        peak = f"{r['peak_gib']:9.2f}" if r["peak_gib"] is not None else f"{'-':>9s}"
        print(f"{r['row']:28s} {seconds} {peak}  {r['note']}")
    print(f"total {time.perf_counter() - start:.1f}s (budget {args.budget:.0f}s)")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
