#!/usr/bin/env python
"""Attention kernels of issue 14, one device run: exact and 8-bit attention per Wan shape, and the
fused grid mode's attention against the two stream attentions it replaces and dense joint attention.

Section 1, kernels (12 heads x 128, bf16; the reference is fp32 exact attention, chunked, same run):
  shapes  time stream B=1 N=32760 (one 81-frame 480x832 view), view stream B=21 N=6240 (V=4)
  rows    SDPA cuDNN, SDPA flash (FA2), FA3 bf16, FA3 fp8 unscaled cast (issue 14's row), FA3 fp8
          scaled (kernels/fp8_attention.py), our Triton 8-bit kernels (int8 Q K^T + fp8 P V, int8 +
          fp16 P V, fp8 + fp8; kernels/fp8_attention_triton.py)
  columns total ms (quantisation included), kernel-only ms, TFLOP/s (4 B H Lq Lk D / total),
          rel. L2 error and PSNR vs fp32 on N(0,1) inputs, rel. error on keys with channel offsets
          (what K smoothing is for)
Section 2, fused grid attention (V=4, T=21, hw=1560: N=131040, B=1, 12 x 128, bf16):
  the two cuDNN stream attentions of mode `hard`, the fused mask through the exact LSE streams
  (cuDNN / FA3) and through FlexAttention (128-token blocks, unpadded / frame-padded), and dense
  joint attention over all N tokens; error vs an fp32 fused reference; TFLOP/s counts the kept pairs.

    python benchmarks/bench_attention.py --budget 170 --json $OUT/bench_attention.json
    python benchmarks/bench_attention.py --tiny --device cpu         # smoke test, CUDA-only rows n/a

Rows that cannot run (no FA3 module, no Triton, no CUDA) print "n/a (reason)"; rows left when the
wall-clock budget is spent print "skipped (budget)". FA3 comes from the registry wheel
tokenspeed-fa3 (see benchmarks/ATTENTION_GPU.md for carrying it to the device).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()
from camgrid.kernels import fa3, triton_available  # noqa: E402
from camgrid.kernels import fp8_attention as FA  # noqa: E402
from camgrid.kernels import fp8_scaling as S  # noqa: E402
from camgrid.kernels import grid_mask_attention as G  # noqa: E402
from camgrid.kernels.attention_lse import attention_lse_chunked  # noqa: E402
from camgrid.model.files import atomic_write  # noqa: E402

FULL_SHAPES = {"time stream B=1 N=32760": (1, 32760, 12, 128), "view stream B=21 N=6240": (21, 6240, 12, 128)}
TINY_SHAPES = {"tiny B=1 N=384": (1, 384, 2, 64), "tiny B=3 N=160": (3, 160, 2, 64)}
FULL_GRID = dict(views=4, frames=21, hw=1560, heads=12, head_dim=128)
TINY_GRID = dict(views=2, frames=3, hw=40, heads=2, head_dim=64)
TRITON_CONFIGS = ((128, 64, 8, 3), (128, 128, 8, 3))  # (BLOCK_M, BLOCK_N, warps, stages) tried for the main recipe


class Skip(Exception):
    """A row that cannot run here; the message is printed in the table."""


@dataclasses.dataclass
class Row:
    name: str
    run: object                 # callable(q, k, v) -> out
    prepare: object = None      # callable(q, k, v) -> state, for kernel-only timing
    kernel: object = None       # callable(state) -> out
    cpu_ok: bool = False


class Clock:
    def __init__(self, budget):
        self.start, self.budget = time.perf_counter(), budget

    def spent(self):
        return time.perf_counter() - self.start > self.budget


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, reps, device):
    """Median seconds of reps calls after one warm-up call (CUDA events on GPU)."""
    fn()
    sync(device)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            torch.cuda.synchronize(device)
            times.append(a.elapsed_time(b) / 1000)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def make_qkv(b, n, h, d, device, offset=0.0, seed=0):
    """bf16 q / k / v [B, N, H, D]: N(0, 1), or with per-channel gains and K / V channel offsets."""
    g = torch.Generator(device=device).manual_seed(seed)
    rnd = lambda *shape: torch.randn(*shape, generator=g, device=device)  # noqa: E731
    if offset == 0.0:
        return tuple(rnd(b, n, h, d).to(torch.bfloat16) for _ in range(3))
    gain = lambda: 0.75 + 1.5 * torch.rand(h, d, generator=g, device=device)  # noqa: E731
    q = rnd(b, n, h, d) * gain()
    k = rnd(b, n, h, d) * gain() + offset * rnd(h, d)
    v = rnd(b, n, h, d) + 0.5 * offset * rnd(h, d)
    return q.bfloat16(), k.bfloat16(), v.bfloat16()


# ---------------------------------------------------------------------------------------------
# section 1: kernel rows
# ---------------------------------------------------------------------------------------------
def _sdpa(backend_name):
    def run(q, k, v):
        if not q.is_cuda:
            raise Skip("CUDA only")
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel([getattr(SDPBackend, backend_name)]):
            return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    return run


def _sdpa_default(q, k, v):
    return F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)


def _need_fa3(q):
    reason = fa3.unsupported_reason(q)
    if reason:
        raise Skip(reason.split(";")[0][:70])


def _fa3_bf16(q, k, v):
    _need_fa3(q)
    return fa3.attention_flash_attn3(q, k, v)


def _fa3_unscaled_prepare(q, k, v):
    _need_fa3(q)
    return tuple(t.to(torch.float8_e4m3fn) for t in (q, k, v))


def _fa3_unscaled_kernel(state):
    return fa3.call_flash_attn_func(*state)


def _fa3_scaled_prepare(q, k, v):
    _need_fa3(q)
    return FA.fa3_fp8_inputs(q, k, v), q.dtype


def _fa3_scaled_kernel(state):
    return FA.fa3_fp8_run(*state)


def _triton_rows(configs):
    """Rows of our Triton kernel: the main recipe with each config, the others with the first."""
    from camgrid.kernels import fp8_attention_triton as FT

    def make(recipe, config):
        recipe = dataclasses.replace(recipe, q_block=config[0] if recipe.q_block else None,
                                     k_block=config[1] if recipe.k_block else None)

        def prepare(q, k, v):
            if not q.is_cuda:
                raise Skip("CUDA only (the interpreter run is in the tests)")
            if not triton_available():
                raise Skip("triton not installed")
            return FT.quantize_qkv(q, k, v, recipe, config[0], config[1]), q.dtype

        def kernel(state):
            return FT.attention_quantized(state[0], state[1], config[2], config[3])

        return prepare, kernel

    rows = []
    for i, config in enumerate(configs):
        p, kfn = make(S.TRITON_INT8_RECIPE, config)
        rows.append(Row(f"Triton int8 QK + fp8 PV {config[0]}x{config[1]} w{config[2]} s{config[3]}", None, p, kfn))
    for label, recipe in (("Triton int8 QK + fp16 PV", S.TRITON_INT8_FP16PV_RECIPE), ("Triton fp8 QK + fp8 PV", S.TRITON_FP8_RECIPE)):
        p, kfn = make(recipe, configs[0])
        rows.append(Row(f"{label} {configs[0][0]}x{configs[0][1]}", None, p, kfn))
    return rows


def _simulated(recipe):
    def run(q, k, v):
        if q.is_cuda or q.shape[1] > 4096:
            raise Skip("CPU smoke rows only (dense scores)")
        return S.simulated_attention(q, k, v, recipe).to(q.dtype)
    return run


def kernel_rows(configs):
    rows = [
        Row("SDPA cuDNN", _sdpa("CUDNN_ATTENTION")),
        Row("SDPA flash (FA2)", _sdpa("FLASH_ATTENTION")),
        Row("SDPA (PyTorch's choice)", _sdpa_default, cpu_ok=True),
        Row("FA3 bf16", _fa3_bf16),
        Row("FA3 fp8, unscaled cast", None, _fa3_unscaled_prepare, _fa3_unscaled_kernel),
        Row("FA3 fp8, scaled + smoothed (ours)", None, _fa3_scaled_prepare, _fa3_scaled_kernel),
        *_triton_rows(configs),
    ]
    for label, recipe in (("FA3 recipe", S.FA3_RECIPE), ("Triton int8 recipe", S.TRITON_INT8_RECIPE),
                          ("int8 + fp16 PV recipe", S.TRITON_INT8_FP16PV_RECIPE)):
        rows.append(Row(f"simulated {label} (CPU, error only)", _simulated(recipe), cpu_ok=True))
    return rows


def _runner(row):
    """(callable for the total time, callable for kernel-only time or None)."""
    if row.prepare is None:
        return row.run, None

    def total(q, k, v):
        return row.kernel(row.prepare(q, k, v))
    return total, row.kernel


def run_kernel_row(row, shape, data, device, reps, clock):
    b, n, h, d = shape
    flops = 4 * b * h * n * n * d
    cells = dict(row=row.name, shape=shape)
    if clock.spent():
        return dict(cells, status="skipped (budget)")
    total, kernel = _runner(row)
    (q, k, v), ref, (qo, ko, vo), ref_o = data
    try:
        out = total(q, k, v)
        err = S.error_stats(out, ref)
        err_o = S.error_stats(total(qo, ko, vo), ref_o)
        cells.update(rel_err=err["rel_l2"], psnr_db=err["psnr_db"], rel_err_offset=err_o["rel_l2"])
        if row.name.startswith("simulated"):
            return dict(cells, status="ok")
        cells["ms"] = timed(lambda: total(q, k, v), reps, device) * 1e3
        cells["tflops"] = flops / (cells["ms"] * 1e-3) / 1e12
        if kernel is not None:
            state = row.prepare(q, k, v)
            cells["kernel_ms"] = timed(lambda: kernel(state), reps, device) * 1e3
            del state
        return dict(cells, status="ok")
    except Skip as why:
        return dict(cells, status=f"n/a ({why})")
    except Exception as err:  # a kernel refusing a shape is a result too
        return dict(cells, status=f"n/a ({type(err).__name__}: {str(err)[:80]})")
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def reference(q, k, v):
    """fp32 exact attention (chunked, bounded memory) on the same device."""
    return attention_lse_chunked(q.float(), k.float(), v.float())[0]


def section_kernels(shapes, device, reps, clock, configs):
    results = []
    for label, shape in shapes.items():
        if clock.spent():
            results.append(dict(row="(all rows)", shape=shape, status="skipped (budget)", label=label))
            continue
        plain = make_qkv(*shape, device)
        offset = make_qkv(*shape, device, offset=4.0, seed=1)
        data = (plain, reference(*plain), offset, reference(*offset))
        for row in kernel_rows(configs):
            if device.type == "cpu" and not row.cpu_ok:
                results.append(dict(row=row.name, shape=shape, status="n/a (CUDA only)", label=label))
                continue
            results.append(dict(run_kernel_row(row, shape, data, device, reps, clock), label=label))
        del plain, offset, data
    return results


# ---------------------------------------------------------------------------------------------
# section 2: fused grid attention
# ---------------------------------------------------------------------------------------------
def _hard_streams(grid):
    v_, t_, hw = grid["views"], grid["frames"], grid["hw"]

    def prepare(q, k, v):
        b, n, h, d = q.shape
        per_view = [t.reshape(b * v_, t_ * hw, h, d) for t in (q, k, v)]
        # the view stream's regroup (a copy, part of mode `hard`'s block) is done outside the timing
        per_time = [t.view(b, v_, t_, hw, h, d).transpose(1, 2).reshape(b * t_, v_ * hw, h, d) for t in (q, k, v)]
        return per_view, per_time

    def kernel(state):
        if not state[0][0].is_cuda:
            return _sdpa_default(*state[0]), _sdpa_default(*state[1])
        run = _sdpa("CUDNN_ATTENTION")
        return run(*state[0]), run(*state[1])
    return prepare, kernel


def fused_rows(grid):
    v_, t_, hw = grid["views"], grid["frames"], grid["hw"]

    def streams(lse_backend):
        def run(q, k, v):
            if lse_backend == "fa3":
                _need_fa3(q)
            if (lse_backend == "chunked") == q.is_cuda:
                raise Skip("CUDA only" if lse_backend != "chunked" else "the CPU path (fp32 blocks; slow on GPU)")
            return G.grid_mask_streams(q, k, v, v_, t_, hw, lse_backend=lse_backend)
        return run

    def flex(pad):
        def run(q, k, v):
            if not G.flex_available():
                raise Skip("no FlexAttention in this torch")
            if not q.is_cuda and q.shape[1] > 4096:
                raise Skip("eager flex on CPU materialises the scores")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return G.grid_mask_flex(q, k, v, v_, t_, hw, block=128, pad_frames=pad)
        return run

    def joint(q, k, v):
        return (_sdpa("CUDNN_ATTENTION") if q.is_cuda else _sdpa_default)(q, k, v)

    hp, hk = _hard_streams(grid)
    return [
        Row("hard: time + view stream, SDPA (cuDNN on GPU)", None, hp, hk, cpu_ok=True),
        Row("fused: exact LSE streams, cuDNN", streams("cudnn")),
        Row("fused: exact LSE streams, FA3", streams("fa3")),
        Row("fused: exact LSE streams, chunked torch", streams("chunked"), cpu_ok=True),
        Row("joint: dense attention over all tokens", joint, cpu_ok=True),
        # last: the first call compiles (tens of seconds), so the budget may skip them
        Row("fused: FlexAttention 128 blocks, unpadded", flex(False), cpu_ok=True),
        Row("fused: FlexAttention 128 blocks, frame-padded", flex(True), cpu_ok=True),
    ]


def section_fused(grid, device, reps, clock):
    v_, t_, hw, h, d = grid["views"], grid["frames"], grid["hw"], grid["heads"], grid["head_dim"]
    n = v_ * t_ * hw
    q, k, v = make_qkv(1, n, h, d, device)
    ref = G.grid_mask_streams(q.float(), k.float(), v.float(), v_, t_, hw, lse_backend="chunked")
    kept_pairs = v_ * t_ * (v_ + t_ - 1) * hw * hw
    flops = {"mask": 4 * h * kept_pairs * d, "joint": 4 * h * n * n * d,
             "hard": 4 * h * d * (v_ * (t_ * hw) ** 2 + t_ * (v_ * hw) ** 2)}
    results = []
    for row in fused_rows(grid):
        cells = dict(row=row.name, shape=(1, n, h, d))
        if device.type == "cpu" and not row.cpu_ok:
            results.append(dict(cells, status="n/a (CUDA only)"))
            continue
        if clock.spent():
            results.append(dict(cells, status="skipped (budget)"))
            continue
        total, _ = _runner(row)
        kind = "hard" if row.name.startswith("hard") else "joint" if row.name.startswith("joint") else "mask"
        try:
            t0 = time.perf_counter()
            out = total(q, k, v)
            sync(device)
            cells["first_call_s"] = time.perf_counter() - t0
            if kind == "mask":
                cells.update(rel_err=S.error_stats(out, ref)["rel_l2"], psnr_db=S.error_stats(out, ref)["psnr_db"])
            del out
            state = row.prepare(q, k, v) if row.prepare else None
            fn = (lambda: row.kernel(state)) if state is not None else (lambda: total(q, k, v))
            cells["ms"] = timed(fn, reps, device) * 1e3
            cells["tflops"] = flops[kind] / (cells["ms"] * 1e-3) / 1e12
            del state
            results.append(dict(cells, status="ok"))
        except Skip as why:
            results.append(dict(cells, status=f"n/a ({why})"))
        except Exception as err:
            results.append(dict(cells, status=f"n/a ({type(err).__name__}: {str(err)[:80]})"))
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def kernel_table(results):
    lines = []
    for label in dict.fromkeys(r["label"] for r in results):
        lines += [f"\n### {label}", "| attention | ms | kernel-only ms | TFLOP/s | rel. err | PSNR dB | rel. err, K offsets |",
                  "|---|---|---|---|---|---|---|"]
        for r in (r for r in results if r["label"] == label):
            if r["status"] != "ok":
                lines.append(f"| {r['row']} | {r['status']} | | | | | |")
                continue
            lines.append(f"| {r['row']} | {_fmt(r.get('ms'), '.2f')} | {_fmt(r.get('kernel_ms'), '.2f')} | "
                         f"{_fmt(r.get('tflops'), '.0f')} | {r['rel_err']:.4f} | {r['psnr_db']:.1f} | {r['rel_err_offset']:.4f} |")
    return "\n".join(lines)


def fused_table(results, grid):
    st = {pad: G.block_structure(grid["views"], grid["frames"], grid["hw"], 128, pad).stats() for pad in (False, True)}
    lines = [f"\n### fused grid attention, V={grid['views']} T={grid['frames']} hw={grid['hw']}, "
             f"{grid['heads']} x {grid['head_dim']}, bf16",
             "| attention | ms | TFLOP/s | first call s | rel. err | PSNR dB |", "|---|---|---|---|---|---|"]
    for r in results:
        if r["status"] != "ok":
            lines.append(f"| {r['row']} | {r['status']} | | | | |")
            continue
        lines.append(f"| {r['row']} | {r['ms']:.2f} | {r['tflops']:.0f} | {r['first_call_s']:.1f} | "
                     f"{_fmt(r.get('rel_err'), '.4f')} | {_fmt(r.get('psnr_db'), '.1f')} |")
    for pad, s in st.items():
        lines.append(f"\nblock mask {'frame-padded' if pad else 'unpadded'}: {s['skipped_fraction'] * 100:.2f} % of "
                     f"{s['blocks']} blocks skipped (ideal {s['ideal_skipped_fraction'] * 100:.2f} %), "
                     f"{s['partial']} partial, work {s['work_vs_mask']:.3f}x the kept pairs, padding "
                     f"{s['padding_fraction'] * 100:.1f} %")
    lines.append("TFLOP/s: fused rows count the kept pairs, `hard` both streams' pairs, joint all N^2 pairs; "
                 "errors vs fp32 fused attention (chunked LSE streams)")
    return "\n".join(lines)


def environment(device):
    parts = [f"torch {torch.__version__}"]
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
        parts.append(f"cuDNN {torch.backends.cudnn.version()}")
    if triton_available():
        import triton
        parts.append(f"triton {triton.__version__}")
    parts.append(f"FA3 {'importable' if fa3.installed() else 'missing'}")
    return ", ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="small shapes (smoke test; with --device cpu it runs anywhere)")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--budget", type=float, default=170.0, help="wall-clock seconds; later rows are skipped, not cut")
    ap.add_argument("--sections", default="kernels,fused")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here; use --device cpu (with --tiny)")
    clock = Clock(args.budget)
    print(environment(device), flush=True)
    results = {}
    sections = args.sections.split(",")
    grid = TINY_GRID if args.tiny else FULL_GRID
    with torch.inference_mode():
        if "kernels" in sections:
            results["kernels"] = section_kernels(TINY_SHAPES if args.tiny else FULL_SHAPES, device,
                                                 args.reps, clock, TRITON_CONFIGS)
            print(kernel_table(results["kernels"]), flush=True)
        if "fused" in sections:
            results["fused"] = section_fused(grid, device, args.reps, clock)
            print(fused_table(results["fused"], grid), flush=True)
    print(f"\nwall {time.perf_counter() - clock.start:.0f} s")
    if args.json:
        atomic_write(args.json, json.dumps(dict(environment=environment(device), **results), indent=1, default=str))
    return results


if __name__ == "__main__":
    main()
