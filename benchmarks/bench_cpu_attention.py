#!/usr/bin/env python
"""CPU attention for the built-in model: `chunked` (camgrid's pure-torch blocks) against PyTorch's SDPA, which
on a CPU runs its blocked flash kernel for unmasked inputs (memory bounded like chunked). Decides what `auto`
picks on a CPU (model/attention.py AUTO_ORDER).

Section 1: the three attention shapes of the quick start (`python -m camgrid demo`: 8 grids of 4 views, the
4-step student), fp32; median ms of --reps calls after one warm-up, and the largest difference from fp64
attention. Section 2: one batch of the demo's 8 grids per mode, sampled under each backend (the same seed),
wall seconds and the largest latent difference between the two backends.

    python benchmarks/bench_cpu_attention.py [--reps 10] [--modes independent,syncam,hard] [--json OUT]

Run it on the machine whose time you report (tests never time anything); ratios are sdpa / chunked.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()
from camgrid.model import attention as A  # noqa: E402
from camgrid.model.files import atomic_write  # noqa: E402

# [B, L, H, D] of q and of k / v, as the demo's DiT calls them (8 grids x 4 views, 5 latent frames of 6x10 tokens)
DEMO_SHAPES = {"cross-attention to the caption": ((8, 1200, 4, 56), (8, 16, 4, 56)),
               "time stream: one view's frames": ((32, 300, 4, 56), (32, 300, 4, 56)),
               "view stream: one moment's views": ((40, 240, 4, 56), (40, 240, 4, 56))}
BACKENDS = ("chunked", "sdpa")


def median_seconds(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def shape_rows(reps: int) -> list[dict]:
    rows = []
    g = torch.Generator().manual_seed(0)
    for name, (q_shape, kv_shape) in DEMO_SHAPES.items():
        q, k, v = (torch.randn(s, generator=g) for s in (q_shape, kv_shape, kv_shape))
        exact = A.attention_naive(q.double(), k.double(), v.double())
        row = {"shape": name, "q": list(q_shape), "kv": list(kv_shape)}
        for backend in BACKENDS:
            run = A.IMPLEMENTATIONS[backend].run
            row[f"{backend}_ms"] = 1000 * median_seconds(lambda: run(q, k, v), reps)
            row[f"{backend}_max_err"] = float((run(q, k, v).double() - exact).abs().max())
        row["ratio"] = row["sdpa_ms"] / row["chunked_ms"]
        rows.append(row)
    return rows


def sampling_rows(modes) -> list[dict]:
    from camgrid.train.demo import DEMO_CAPTION, DEMO_GRIDS, demo_rig, load_demo_model
    model = load_demo_model(log=lambda *a: None)
    cams = model.camera_embedding(demo_rig(model))[None].expand(DEMO_GRIDS, -1, -1, -1)
    rows = []
    for mode in modes:
        row, latents = {"mode": mode, "grids": DEMO_GRIDS}, {}
        for backend in BACKENDS:
            with A.attention_backend(backend):
                model.generate_latents([DEMO_CAPTION] * DEMO_GRIDS, cams, mode, seed=0)   # warm-up
                t0 = time.perf_counter()
                latents[backend] = model.generate_latents([DEMO_CAPTION] * DEMO_GRIDS, cams, mode, seed=0)
                row[f"{backend}_s"] = time.perf_counter() - t0
        row["ratio"] = row["sdpa_s"] / row["chunked_s"]
        row["max_latent_diff"] = float((latents["sdpa"] - latents["chunked"]).abs().max())
        rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--modes", default="independent,syncam,hard", help="demo modes to sample (empty: none)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    with torch.no_grad():   # not set_grad_enabled(False): a caller (the tests) keeps its own autograd state
        return report(args)


def report(args) -> int:
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"auto picks {A.resolve_backend(torch.zeros(1, 1, 1, 56))} for fp32 CPU inputs")
    shapes = shape_rows(args.reps)
    print("\n| shape (q / kv) | chunked ms | sdpa ms | sdpa / chunked | max err vs fp64 (chunked, sdpa) |")
    print("|---|---:|---:|---:|---|")
    for r in shapes:
        print(f"| {r['shape']} {tuple(r['q'])} / {tuple(r['kv'])} | {r['chunked_ms']:.1f} | {r['sdpa_ms']:.1f} | "
              f"{r['ratio']:.2f} | {r['chunked_max_err']:.1e}, {r['sdpa_max_err']:.1e} |")
    modes = [m for m in args.modes.split(",") if m]
    sampling = sampling_rows(modes) if modes else []
    if sampling:
        print("\n| mode, 8 demo grids, 4 student steps | chunked s | sdpa s | sdpa / chunked | max latent diff |")
        print("|---|---:|---:|---:|---:|")
        for r in sampling:
            print(f"| {r['mode']} | {r['chunked_s']:.2f} | {r['sdpa_s']:.2f} | {r['ratio']:.2f} | "
                  f"{r['max_latent_diff']:.1e} |")
    if args.json:
        atomic_write(args.json, json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(),
                                            "shapes": shapes, "sampling": sampling}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
