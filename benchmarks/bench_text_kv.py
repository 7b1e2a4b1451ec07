"""Cross-attention to the text: k/v copied to every row (before) vs shared by the rows (model/layers.py TextKV).

    python benchmarks/bench_text_kv.py                  # CUDA, bf16, Wan2.1-1.3B sizes, the default backend
    python benchmarks/bench_text_kv.py --device cpu --small    # a smoke run of the script itself

Before (until the DiT refactor): k, v [B, 512, H, D] were `repeat_interleave`d to every row of a stream
and each row attended on its own. Now the rows of one batch element attend as one long query to that
element's k / v (`TextKV.attend`). Both run here on the same inputs, so the table is a same-run
comparison: median time of one cross-attention call, the extra peak memory it allocates, and the
largest difference between the two outputs (they compute the same softmax; bf16 rounding only).
Row layouts of 480x832, 81 frames (latent 21 x 30 x 52 tokens), batched CFG (B = 2).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.attention import attention  # noqa: E402
from camgrid.model.layers import TextKV  # noqa: E402

HW, T_LAT, TEXT, HEADS, HEAD_DIM, BATCH = 30 * 52, 21, 512, 12, 128, 2
# name: (rows per batch element, tokens per row)
LAYOUTS = {
    "independent V=4 (time stream)": (4, T_LAT * HW),
    "hard V=8, time stream": (8, T_LAT * HW),
    "hard V=8, view stream": (T_LAT, 8 * HW),
    "syncam V=2, view stream": (T_LAT, 2 * HW),
}


def copied(q, k, v):
    rep = q.shape[0] // k.shape[0]
    return attention(q, k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0))


def shared(q, k, v):
    return TextKV(k, v).attend(q)


def measure(fn, q, k, v, device, iters):
    """(median seconds, extra peak bytes, output) of fn(q, k, v)."""
    out = fn(q, k, v)  # warm-up (kernel selection, cuDNN plans)
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn(q, k, v)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    peak = 0
    if device.type == "cuda":
        del out
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn(q, k, v)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    return statistics.median(times), peak, out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--small", action="store_true", help="tiny sizes (a smoke run on CPU)")
    args = p.parse_args()
    device = torch.device(args.device)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    heads, head_dim, text, scale = (2, 16, 8, 64) if args.small else (HEADS, HEAD_DIM, TEXT, 1)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}; torch {torch.__version__}; {args.dtype}; text {text} tokens, {heads} heads x {head_dim}")
    print("| layout | rows | tokens/row | copied k/v: ms | shared: ms | copied: extra MiB | shared: extra MiB | max |diff| |")
    print("|---|---|---|---|---|---|---|---|")
    g = torch.Generator(device="cpu").manual_seed(0)
    for layout, (rep, tokens) in LAYOUTS.items():
        tokens = max(1, tokens // scale)
        q = torch.randn(BATCH * rep, tokens, heads, head_dim, generator=g).to(device, dtype)
        k = torch.randn(BATCH, text, heads, head_dim, generator=g).to(device, dtype)
        v = torch.randn(BATCH, text, heads, head_dim, generator=g).to(device, dtype)
        t_old, m_old, o_old = measure(copied, q, k, v, device, args.iters)
        t_new, m_new, o_new = measure(shared, q, k, v, device, args.iters)
        diff = (o_old.float() - o_new.float()).abs().max().item()
        print(f"| {layout} | {BATCH * rep} | {tokens} | {1e3 * t_old:.2f} | {1e3 * t_new:.2f} | "
              f"{m_old / 2**20:.0f} | {m_new / 2**20:.0f} | {diff:.2e} |", flush=True)
        del q, k, v, o_old, o_new


if __name__ == "__main__":
    main()
