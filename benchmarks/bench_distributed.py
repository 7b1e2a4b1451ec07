#!/usr/bin/env python
"""One grid on 1 / 2 / 4 / 8 GPUs (issue 18; docs/ARCHITECTURE.md §12 Several GPUs): speed-up, per-GPU
peak memory and communication share, the single-GPU baseline measured in the same run.

Rows, in the order they run (a row that would not end before the budget is spent is skipped, not cut):
  14B  V=4 hard   one forward at 832x480x81 (T=21 latent frames), bf16, random weights
  1.3B V=8 hard   one forward, same size
  14B  V=4 hard   sampling: --steps UniPC steps with CFG 5 (branches batched: B=2)
  1.3B V=8 hard   sampling, same
Columns per GPU count: seconds (median of --reps after one warm-up; the slowest rank), speed-up against
1 GPU, per-GPU peak memory (the largest over the ranks; torch.cuda.max_memory_allocated) and its ratio
to 1 GPU's, the communication share (seconds inside all-to-all / all-gather over the forward's seconds,
from one extra forward with every collective synchronised, `record_comm`), and the split used.

    python benchmarks/bench_distributed.py --gpus 1,2,4,8 --budget 540 --json $OUT/bench_distributed.json
    python benchmarks/bench_distributed.py --gpus 1,2 --tiny --device cpu     # smoke test (gloo, tiny model)

Each GPU count is one `python -m torch.distributed.run --nproc-per-node N` of this file (--worker); the
budget left is shared evenly by the GPU counts still to run. Expected wall time on H200s: about 9 minutes
for 1,2,4,8 (1 GPU: 14B forward ~19 s, so ~4 minutes for its rows and the model builds; each doubling
about halves that). --shard puts the blocks' weights under FSDP2 (model/distributed/weights.py);
--strategy forces a split (model/distributed/split.py).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]


def import_camgrid():
    """Import *this* checkout as `camgrid` (the repository root is the package), even where another
    copy is installed: a temporary folder holding one link, camgrid -> root, goes first on sys.path
    (and on PYTHONPATH, for the worker processes)."""
    link_dir = Path(tempfile.mkdtemp(prefix="camgrid_pkg_"))
    (link_dir / "camgrid").symlink_to(ROOT)
    sys.path.insert(0, str(link_dir))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(link_dir), os.environ.get("PYTHONPATH")) if p)
    return importlib.import_module("camgrid")


import_camgrid()
from camgrid.model import GridDiT, get_config  # noqa: E402
from camgrid.model.distributed import parallel, record_comm, shard_weights  # noqa: E402
from camgrid.model.files import atomic_write  # noqa: E402
from camgrid.model.sampling import make_scheduler, sample_grid  # noqa: E402

# (name, model size, views, what): the rows, in the order they run
ROWS = [("14B V=4 forward", "14B", 4, "forward"), ("1.3B V=8 forward", "1.3B", 8, "forward"),
        ("14B V=4 sampling", "14B", 4, "sampling"), ("1.3B V=8 sampling", "1.3B", 8, "sampling")]
TINY = dict(dim=64, ffn_dim=128, num_heads=4, num_layers=2, text_dim=32, freq_dim=32)


# ---------------------------------------------------------------------------------------------
# worker: one GPU count
# ---------------------------------------------------------------------------------------------
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _all_max(value: float, device) -> float:
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def _build(size: str, args, device):
    """A GridDiT of `size` with random weights, built directly in the benchmark dtype on the device."""
    cfg = get_config("tiny", **TINY) if args.tiny else get_config(size)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(args.dtype)
    try:
        with torch.device(device), torch.no_grad():
            model = GridDiT(cfg).eval()
    finally:
        torch.set_default_dtype(previous)
    if args.shard and dist.is_initialized() and dist.get_world_size() > 1:
        shard_weights(model)
    return model


def _grid_shape(model, views: int, args):
    t = (args.frames - 1) // 4 + 1
    return (1, views, model.config.in_dim, t, args.height // 8, args.width // 8)


def _timed(fn, device) -> float:
    if dist.is_initialized():
        dist.barrier()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return _all_max(time.perf_counter() - t0, device)


def _row(model, what: str, views: int, args, device, ctx) -> dict:
    shape = _grid_shape(model, views, args)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g).to(device)
    text = torch.randn(1, 512 if not args.tiny else 8, model.config.text_dim, generator=g).to(device)
    ts = torch.tensor([500.0], device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    with torch.no_grad():
        if what == "forward":
            def run():
                model(x, ts, text, mode="hard")
            _timed(run, device)   # warm-up (kernels, autotuning)
            seconds = statistics.median(_timed(run, device) for _ in range(args.reps))
            with record_comm() as comm:
                instrumented = _timed(run, device)
            share = _all_max(comm.seconds, device) / instrumented if instrumented > 0 else 0.0
        else:
            def run():
                sample_grid(model, shape, text, -text, mode="hard", steps=args.steps, cfg=5.0, seed=0)
            seconds, share = _timed(run, device), None
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    split = ctx.last_split.describe() if ctx is not None and ctx.last_split is not None else "one process"
    return dict(seconds=seconds, peak_gib=_all_max(peak, device) if peak is not None else None, comm_share=share,
                split=split)


def _agree(flag: bool, device) -> bool:
    """Rank 0's decision, on every rank (the rows are collective: all ranks must skip the same ones)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


def worker(args) -> list:
    """The rows on this process group's GPU count (all ranks run it; rank 0's list is the result)."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if args.device == "cuda" else torch.device("cpu")
    rows, forward_seconds, models = [], {}, {}
    make_scheduler()   # imports diffusers now, not inside the first timed sampling row
    with parallel(strategy=args.strategy, device=device) as ctx:
        for name, size, views, what in ROWS:
            estimate = forward_seconds.get(size, 0.0) * (args.steps * 2 + 1 if what == "sampling" else args.reps + 2)
            if not _agree(time.time() + estimate < args.deadline, device):
                rows.append(dict(row=name, status="skipped (budget)"))
                continue
            if size not in models:
                models.clear()   # one model at a time on the GPU
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                models[size] = _build(size, args, device)
            result = _row(models[size], what, views, args, device, ctx)
            if what == "forward":
                forward_seconds[size] = result["seconds"]
            rows.append(dict(row=name, status="ok", **result))
    return rows


# ---------------------------------------------------------------------------------------------
# parent: one torch.distributed.run per GPU count, then the table
# ---------------------------------------------------------------------------------------------
def _launch(n: int, args, deadline: float, out: Path) -> list:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={n}", __file__,
           "--worker", "--deadline", str(deadline), "--json", str(out)]
    for flag in ("device", "dtype_name", "frames", "width", "height", "steps", "reps", "strategy"):
        cmd += [f"--{flag.replace('_name', '').replace('_', '-')}", str(getattr(args, flag))]
    cmd += ["--tiny"] * args.tiny + ["--shard"] * args.shard
    timeout = max(30.0, deadline - time.time() + 60)   # the worker stops starting rows at the deadline
    try:
        proc = subprocess.run(cmd, timeout=timeout, capture_output=True, text=True)
    except subprocess.TimeoutExpired:
        return [dict(row=name, status="timed out") for name, *_ in ROWS]
    if proc.returncode != 0 or not out.is_file():
        reason = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return [dict(row=name, status=f"failed: {reason}") for name, *_ in ROWS]
    return json.loads(out.read_text())


def _table(results: dict) -> str:
    lines = ["| row | GPUs | seconds | speed-up | peak GiB / GPU | peak vs 1 GPU | comm share | split |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for name, *_ in ROWS:
        base = next((r for r in results.get(1, []) if r["row"] == name and r["status"] == "ok"), None)
        for n, rows in results.items():
            r = next(r for r in rows if r["row"] == name)
            if r["status"] != "ok":
                lines.append(f"| {name} | {n} | {r['status']} | | | | | |")
                continue
            speed = f"{base['seconds'] / r['seconds']:.2f}x" if base else "n/a"
            peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] is not None else "n/a (CPU)"
            ratio = f"{r['peak_gib'] / base['peak_gib']:.0%}" if base and r["peak_gib"] and base["peak_gib"] else "n/a"
            comm = f"{r['comm_share']:.0%}" if r["comm_share"] is not None else "-"
            lines.append(f"| {name} | {n} | {r['seconds']:.2f} | {speed} | {peak} | {ratio} | {comm} | {r['split']} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpus", default="1,2,4,8", help="GPU (process) counts, comma-separated; 1 is the baseline")
    ap.add_argument("--budget", type=float, default=540.0, help="wall-clock seconds for everything")
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--dtype", dest="dtype_name", default="bf16", choices=("bf16", "fp32"))
    ap.add_argument("--frames", type=int, default=81)
    ap.add_argument("--width", type=int, default=832)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--steps", type=int, default=2, help="sampling steps of the sampling rows")
    ap.add_argument("--reps", type=int, default=1, help="timed forwards after the warm-up")
    ap.add_argument("--strategy", default="auto", help="force a split (model/distributed/split.py STRATEGIES)")
    ap.add_argument("--shard", action="store_true", help="shard the blocks' weights (FSDP2)")
    ap.add_argument("--tiny", action="store_true", help="tiny random model and grid (smoke test)")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype_name]
    if args.tiny:
        args.frames, args.width, args.height, args.steps, args.dtype = 9, 64, 32, 2, torch.float32
        args.dtype_name = "fp32"
    if args.worker:
        rows = worker(args)
        if int(os.environ.get("RANK", "0")) == 0:
            atomic_write(args.json, json.dumps(rows))
        return {"rows": rows}
    start = time.time()
    counts = [int(n) for n in args.gpus.split(",")]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, n in enumerate(counts):
            share = (args.budget - (time.time() - start)) / (len(counts) - i)
            results[n] = _launch(n, args, time.time() + share, Path(tmp) / f"gpus{n}.json")
    table = _table(results)
    print(f"one grid over several {'GPUs' if args.device == 'cuda' else 'CPU processes'} "
          f"({args.width}x{args.height}x{args.frames}, {args.dtype_name}{', tiny model' if args.tiny else ''}, "
          f"mode hard, {args.steps} sampling steps, strategy {args.strategy}"
          f"{', sharded weights' if args.shard else ''})")
    print(table)
    report = {"settings": {k: str(v) for k, v in vars(args).items()},
              "results": {str(k): v for k, v in results.items()}, "wall_seconds": time.time() - start}
    if args.json:
        atomic_write(args.json, json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
