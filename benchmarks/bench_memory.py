"""Peak GPU memory of one GridDiT forward: predicted (model/memory.py) vs measured.

    python benchmarks/bench_memory.py [--out table.md] [--time-limit 300]

Random weights built directly on the GPU (bf16, or fp8 via model/fp8.py); 480x832, 81 frames
(latent 21x60x104), one forward, no CFG, the default attention backend. Measured =
torch.cuda.max_memory_allocated during the forward (weights included). Also checks on the GPU
that block swap gives bit-identical outputs and what fp8 costs in accuracy / gains in speed at V=1.
"""
from __future__ import annotations

import argparse
import copy
import gc
import math
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.config import get_config  # noqa: E402
from camgrid.model.dit import GridDiT  # noqa: E402
from camgrid.model.fp8 import quantize_linear_weights, set_fp8_matmul  # noqa: E402
from camgrid.model.memory import GIB, latent_grid, predict_peak_memory  # noqa: E402
from camgrid.model.offload import disable_block_swap, enable_block_swap  # noqa: E402

FRAMES, HEIGHT, WIDTH = 81, 480, 832
# (size, views, mode, fp8, block_swap, ffn_chunk, row_chunks)
ROWS = [
    ("wan-1.3b", 1, "independent", False, 0, None, None),
    ("wan-1.3b", 8, "independent", False, 0, None, None),
    ("wan-1.3b", 8, "hard", False, 0, None, None),
    ("wan-1.3b", 8, "hard", False, 0, 16384, None),
    ("wan-1.3b", 8, "hard", False, 0, None, 2),
    ("wan-1.3b", 4, "hard", False, 15, None, None),
    ("wan-1.3b", 8, "syncam", False, 0, None, None),
    ("wan-1.3b", 8, "syncam", False, 0, None, 2),
    ("wan-14b", 4, "independent", True, 0, None, None),
    ("wan-14b", 4, "hard", True, 0, None, None),
]


def random_model(size: str, fp8: bool, variant: str = "wan") -> GridDiT:
    cfg = get_config(size).replace(variant=variant)
    with torch.device("meta"):
        model = GridDiT(cfg).to(torch.bfloat16)
    model = model.to_empty(device="cuda")
    g = torch.Generator(device="cuda").manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
            elif "norm" in name:
                p.fill_(1.0)
            elif p.ndim >= 2 and "modulation" not in name:
                fan_in = math.prod(p.shape[1:])
                p.normal_(0.0, fan_in ** -0.5, generator=g)
            else:
                p.normal_(0.0, cfg.dim ** -0.5, generator=g)
    if fp8:
        quantize_linear_weights(model)
    gc.collect()
    torch.cuda.empty_cache()
    return model.eval().requires_grad_(False)


def inputs(cfg, views):
    t, h, w = latent_grid(FRAMES, HEIGHT, WIDTH, cfg.patch_size)
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(1, views, cfg.in_dim, t, 2 * h, 2 * w, device="cuda", generator=g)
    ctx = torch.randn(1, 512, cfg.text_dim, device="cuda", generator=g)
    cam = torch.randn(1, views, t, 12, device="cuda", generator=g)
    return x, torch.tensor([900.0], device="cuda"), ctx, cam


def measure(model, views, mode):
    x, t, ctx, cam = inputs(model.config, views)
    torch.cuda.synchronize()
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with torch.inference_mode():
        out = model(x, t, ctx, mode=mode, camera=cam if mode == "syncam" else None)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated()
    del x, ctx
    return out, peak, seconds


def psnr(ref, out):
    mse = (ref.float() - out.float()).pow(2).mean()
    return float(10 * torch.log10(ref.float().abs().max() ** 2 / mse))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    ap.add_argument("--time-limit", type=float, default=300, help="skip remaining rows after this many seconds")
    ap.add_argument("--modes", default=None, help="only the rows of these modes, e.g. syncam,hard")
    args = ap.parse_args()
    t0 = time.perf_counter()
    lines = [f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}; {FRAMES} frames {HEIGHT}x{WIDTH}, "
             "one forward, bf16 activations, default attention backend", "",
             "| model | V | mode | fp8 | block swap | ffn chunk | row chunk | predicted GiB | measured GiB | pred/meas | s/forward |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    checks = []
    cache = {}
    for size, views, mode, fp8, swap, chunk, rows in ROWS:
        if args.modes and mode not in args.modes.split(","):
            continue
        if time.perf_counter() - t0 > args.time_limit:
            lines.append(f"| {size} | {views} | {mode} | {fp8} | {swap} | {chunk} | {rows} | skipped (time limit) | | | |")
            continue
        variant = "syncammaster" if mode == "syncam" else "wan"
        key = (size, fp8, variant)
        if key not in cache:
            cache.clear()
            gc.collect()
            torch.cuda.empty_cache()
            cache[key] = random_model(size, fp8, variant)
        model = cache[key]
        model.set_ffn_chunk(chunk)
        model.set_row_chunks(rows)
        if swap:
            enable_block_swap(model, swap, "cuda")
        pred = predict_peak_memory(get_config(size).replace(variant=variant), views, FRAMES, HEIGHT, WIDTH, mode=mode, fp8=fp8, block_swap=swap,
                                   ffn_chunk=chunk, row_chunks=rows)
        try:
            out, peak, secs = measure(model, views, mode)
            row = (f"| {size} | {views} | {mode} | {fp8} | {swap} | {chunk} | {rows} | {pred.gib:.2f} | {peak / GIB:.2f} | "
                   f"{int(pred) / peak:.3f} | {secs:.2f} |")
            del out
        except torch.cuda.OutOfMemoryError:
            row = f"| {size} | {views} | {mode} | {fp8} | {swap} | {chunk} | {rows} | {pred.gib:.2f} | OOM | | |"
        print(row, "  predicted:", pred.describe(), flush=True)
        lines.append(row)
        if swap:
            disable_block_swap(model, "cuda")
        model.set_ffn_chunk(None)
        model.set_row_chunks(None)

        if size == "wan-1.3b" and views == 1 and not fp8 and time.perf_counter() - t0 < args.time_limit:
            # block swap bit-identical on the GPU; fp8 accuracy and speed at V=1
            ref, _, t_bf16 = measure(model, 1, "independent")
            _, _, t_bf16 = measure(model, 1, "independent")  # warm
            enable_block_swap(model, 10, "cuda")
            sw, peak_sw, t_sw = measure(model, 1, "independent")
            disable_block_swap(model, "cuda")
            checks.append(f"- block swap 10 of 30 blocks, 1.3B V=1: bit-identical {torch.equal(sw, ref)}, "
                          f"{t_sw:.2f} s vs {t_bf16:.2f} s without, peak {peak_sw / GIB:.2f} GiB")
            q = copy.deepcopy(model)
            quantize_linear_weights(q)
            for mm in ("dequant", "scaled_mm"):
                set_fp8_matmul(q, mm)
                measure(q, 1, "independent")
                o, pk, tq = measure(q, 1, "independent")
                checks.append(f"- fp8 ({mm}) 1.3B V=1: PSNR vs bf16 {psnr(ref, o):.1f} dB, {tq:.3f} s/forward "
                              f"vs bf16 {t_bf16:.3f} s, peak {pk / GIB:.2f} GiB")
                print(checks[-1], flush=True)
            del q, ref, sw
    text = "\n".join(lines + [""] + checks) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
