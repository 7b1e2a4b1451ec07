"""Context windows on the GPU: peak memory and time of one sampling step as the video grows.

    python benchmarks/bench_windows.py --budget 120 [--json windows.json]     # H200: about 90-120 s
    python benchmarks/bench_windows.py --tiny --device cpu                    # smoke test (seconds)

Wan2.1 1.3B with random weights (bf16, built on the GPU), mode hard (4Real-Video two streams), 4 views at
480x832, video lengths 81 / 161 / 321 frames (21 / 41 / 81 latent frames). A step is one guided step of the
sampler (`guided_velocity`, CFG 1 to save time: one branch) wrapped in `windowed_velocity` with windows of 21
latent frames overlapping by 5 (`ContextWindows(21, 5)`): 1 / 3 / 5 model calls. Each row is timed after a
warm-up step at 81 frames (every window has the same shape, so one warm-up serves every length);
peak = `torch.cuda.max_memory_allocated()` over the step, weights and the whole grid's tensors included.

Baseline, measured in the same run: the same step without windows (one pass over the whole grid), the memory
the windows save. Rows run in order and a row whose estimated time (from the rows before it) would pass
`--budget` is printed as "skipped (budget)", never cut halfway; repetitions shrink to 1 when time is short.
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.config import get_config  # noqa: E402
from camgrid.model.context_windows import ContextWindows, spans, windowed_velocity  # noqa: E402
from camgrid.model.dit import GridDiT  # noqa: E402
from camgrid.model.modes import AUTO_MODE  # noqa: E402
from camgrid.model.files import atomic_write  # noqa: E402
from camgrid.model.sampling import SamplerOptions, SamplingPlan, guided_velocity, make_noise  # noqa: E402

GIB = 2 ** 30
SIGMA = 0.9  # the step's noise level (timestep 900); any level costs the same
# share of a 1.3B forward's time in attention at 81 frames (benchmarks/RESULTS.md: 65-71%): a one-pass row's
# estimate grows it with the square of the length, the rest linearly
ATTENTION_SHARE = 0.65


# the variant each mode was trained for (syncam: SynCamMaster, recam: ReCamMaster); other modes run plain Wan
TRAINED_VARIANT = {mode: variant for variant, mode in AUTO_MODE.items()}


def random_model(size: str, device: torch.device, dtype: torch.dtype, mode: str = "hard") -> GridDiT:
    """A GridDiT with random weights, built directly on `device` (no CPU copy of 1.3B parameters)."""
    cfg = get_config(size, variant=TRAINED_VARIANT.get(mode, "wan"))
    with torch.device("meta"):
        model = GridDiT(cfg).to(dtype)
    model = model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            else:
                fan_in = math.prod(p.shape[1:]) if p.ndim >= 2 and "modulation" not in name else cfg.dim
                p.normal_(0.0, fan_in ** -0.5, generator=g)
    return model.eval().requires_grad_(False)


def one_branch_plan(model, shape, mode: str, context: torch.Tensor) -> SamplingPlan:
    """The plan of a cfg-1 run, made without `sampling.prepare` (whose solver needs diffusers, which the GPU
    machine may lack): one guidance branch. A model with a camera encoder (SynCamMaster, ReCamMaster) gets
    random cameras [1, V, T, 12]; recam a random source-video latent as long as the target (windowed in step
    with it). Only velocity calls use it."""
    noise = make_noise(shape, seed=0, device=model.device)
    g = torch.Generator().manual_seed(2)
    camera = torch.randn(*shape[:2], shape[3], 12, generator=g).to(model.device) if model.config.variant != "wan" else None
    source = torch.randn(shape[0], *shape[2:], generator=g).to(model.device) if mode == "recam" else None
    return SamplingPlan(model=model, mode=mode, options=SamplerOptions(cfg=1.0), noise=noise, x_init=noise,
                        scheduler=None, sigmas=torch.tensor([SIGMA, 0.0]), texts=[context], sources=[source],
                        camera=camera, source=None, source_latent=source, interrupt=None)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(model, shape, mode, context, windows, device, reps: int) -> dict:
    """Peak memory and mean seconds of one guided step (reps repetitions) on a fresh plan."""
    plan = one_branch_plan(model, shape, mode, context)
    velocity = guided_velocity if windows is None else windowed_velocity(guided_velocity, windows)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    with torch.inference_mode():
        for _ in range(reps):
            sync(device)
            start = time.perf_counter()
            out = velocity(plan, plan.x_init, SIGMA)
            sync(device)
            times.append(time.perf_counter() - start)
            assert torch.isfinite(out).all(), "non-finite velocity"
            del out
    peak = torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else float("nan")
    return dict(seconds=sum(times) / len(times), reps=reps, peak_gib=peak)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=120.0, help="wall-clock seconds for the whole run (model "
                    "build and warm-up included); rows that would pass it are skipped, not cut")
    ap.add_argument("--frames", default="81,161,321", help="video frames per view, 4k+1")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--mode", default="hard", help="hard, independent, syncam or recam (a re-render: use --views 1; "
                    "its source video is as long as the target); not soft, which needs trained sync weights")
    ap.add_argument("--window", type=int, default=21, help="latent frames per window")
    ap.add_argument("--overlap", type=int, default=5)
    ap.add_argument("--reps", type=int, default=1, help="timed steps per row (fewer when the budget is short)")
    ap.add_argument("--no-plain", dest="plain", action="store_false", help="skip the no-window baseline rows")
    ap.add_argument("--tiny", action="store_true", help="smoke test for the CPU: the tiny config at 32x32, "
                    "9 / 17 / 33 frames, windows of 3 latent frames overlapping by 1")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    if args.tiny:
        args.frames, args.window, args.overlap = "9,17,33", 3, 1
    clock = time.perf_counter()
    device = torch.device(args.device)
    size, height, width = ("tiny", 32, 32) if args.tiny else ("wan-1.3b", 480, 832)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = random_model(size, device, dtype, args.mode)
    cfg = model.config
    context = torch.randn(1, 512, cfg.text_dim, generator=torch.Generator().manual_seed(1)).to(device)
    windows = ContextWindows(args.window, args.overlap)
    lengths = [int(f) for f in args.frames.split(",")]

    def shape(frames):
        return (1, args.views, cfg.in_dim, (frames - 1) // 4 + 1, height // 8, width // 8)

    # warm-up: one window-sized step (kernels, autotuning, RoPE tables); its time sets the per-call estimate
    warm = step(model, shape(4 * (args.window - 1) + 1), args.mode, context, None, device, reps=1)
    per_call = warm["seconds"]
    rows = [(f, windows) for f in lengths] + ([(f, None) for f in lengths if (f - 1) // 4 + 1 > args.window]
                                              if args.plain else [])
    results = []
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{gpu}, torch {torch.__version__}; {size} random weights ({str(dtype).replace('torch.', '')}), mode "
          f"{args.mode}, {args.views} views, {width}x{height}; one guided step, cfg 1; warm-up "
          f"{warm['seconds']:.2f} s\n")
    print("| video frames | latent frames | windows | model calls | peak GiB | s / step | s / call | reps |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for frames, win in rows:
        t = (frames - 1) // 4 + 1
        calls = len(spans(t, win.window_frames, win.window_overlap)) if win is not None else 1
        ratio = t / args.window
        estimate = per_call * (calls if win is not None else ATTENTION_SHARE * ratio ** 2 + (1 - ATTENTION_SHARE) * ratio)
        left = args.budget - (time.perf_counter() - clock)
        label = f"{args.window} / {args.overlap}" if win is not None else "none (one pass)"
        if estimate > left:
            print(f"| {frames} | {t} | {label} | {calls} | skipped (budget: ~{estimate:.0f} s, {left:.0f} s left) "
                  "| | | |", flush=True)
            results.append(dict(frames=frames, latent_frames=t, windows=win is not None, calls=calls,
                                status="skipped (budget)"))
            continue
        reps = max(1, min(args.reps, int(left // max(estimate, 1e-6)) - 1))
        try:
            r = step(model, shape(frames), args.mode, context, win, device, reps)
        except torch.OutOfMemoryError:
            print(f"| {frames} | {t} | {label} | {calls} | out of memory | | | |", flush=True)
            results.append(dict(frames=frames, latent_frames=t, windows=win is not None, calls=calls,
                                status="out of memory"))
            continue
        per_call = r["seconds"] / calls if win is not None else per_call
        results.append(dict(frames=frames, latent_frames=t, windows=win is not None, calls=calls, **r))
        print(f"| {frames} | {t} | {label} | {calls} | {r['peak_gib']:.2f} | {r['seconds']:.2f} | "
              f"{r['seconds'] / calls:.2f} | {r['reps']} |", flush=True)
    print(f"\nwall time {time.perf_counter() - clock:.0f} s (budget {args.budget:g} s)")
    if args.json:
        atomic_write(Path(args.json), json.dumps(dict(device=gpu, torch=torch.__version__, rows=results), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
