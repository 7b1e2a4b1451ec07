#!/usr/bin/env python
"""Round 2 of the DiT speed benchmark (issue "GPU performance"): int8 attention and the fused fp8 path.

One script, one device run, a wall-clock budget (later steps are skipped, never cut mid-row):
  1. the fused fp8 quantisation kernel on the GPU: agreement with its torch reference, and its time
     against the unfused torch quantisation it replaces (kernels/fp8_quant.py);
  2. attention kernels per shape: cuDNN SDPA vs SageAttention 1.0.6 (through camgrid's `sage`
     backend, so the wrapper's k-smoothing pass is included), time and error against an fp32
     reference on a subset of queries;
  3. full 1.3B forwards (rows of bench_dit.py): diffusers / official baselines, camgrid bf16 cuDNN,
     `attention="sage"`, fp8 (+ sage); PSNR of each variant against the same model's bf16 cuDNN
     output (same weights before quantisation, same inputs);
  4. if time is left: an fp32 camgrid forward (same weights, same inputs) as the reference for PSNR.

    python benchmarks/bench_round2.py --budget 260 --json round2.json
Row timing, FLOPs and models are bench_dit.py's; the device needs sageattention importable for the
sage rows (a wheel on PYTHONPATH: see benchmarks/RESULTS.md).
"""
from __future__ import annotations

import argparse
import gc
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_dit as B  # noqa: E402

ROWS = ["diffusers-v1", "camgrid-v1", "camgrid-v1-sage", "fp8-v1", "fp8-v1-sage",
        "official-syncam-v2", "syncam-v2", "syncam-v2-sage", "official-recam", "recam", "recam-sage"]
# variant row -> the bf16 cuDNN row of the same weights and inputs it is compared with
PSNR_AGAINST = {"camgrid-v1-sage": "camgrid-v1", "fp8-v1": "camgrid-v1", "fp8-v1-sage": "camgrid-v1",
                "syncam-v2-sage": "syncam-v2", "recam-sage": "recam"}
ATTN_SHAPES = {  # name: (batch, Lq, Lk, heads)
    "self 1 view L=32760": (1, 32760, 32760, 12),
    "cross L=32760 x 512": (1, 32760, 512, 12),
    "view stream V=2 (21 x 3120)": (21, 3120, 3120, 12),
    "recam L=65520": (1, 65520, 65520, 12),
}


def cuda_time(fn, reps=10):
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        ts.append(a.elapsed_time(b) / 1000)
    return statistics.median(ts)


def fp8_quant_check():
    from camgrid.kernels.fp8_quant import quantize_rows_fp8_reference, quantize_rows_fp8_triton
    from camgrid.model.fp8 import quantize_activation

    out = {}
    g = torch.Generator(device="cuda").manual_seed(0)
    for k, gelu in ((1536, False), (8960, True)):
        x = torch.randn(32760, k, generator=g, device="cuda", dtype=torch.bfloat16) * 3
        q, s = quantize_rows_fp8_triton(x, gelu=gelu)
        rq, rs = quantize_rows_fp8_reference(x, gelu=gelu)
        codes = (q.view(torch.uint8).int() - rq.view(torch.uint8).int()).abs()
        deq_err = ((q.float() * s - rq.float() * rs).norm() / (rq.float() * rs).norm()).item()
        xin = torch.nn.functional.gelu(x, approximate="tanh") if gelu else x
        t_fused = cuda_time(lambda: quantize_rows_fp8_triton(x, gelu=gelu))
        t_torch = cuda_time(lambda: quantize_activation(torch.nn.functional.gelu(x, approximate="tanh") if gelu else x))
        out[f"K={k} gelu={gelu}"] = dict(
            scale_max_rel_diff=((s / rs) - 1).abs().max().item(), codes_differ=(codes > 0).float().mean().item(),
            max_code_diff=int(codes.max().item()), dequant_rel_diff=deq_err,
            quant_rel_err=((q.float() * s - xin.float()).norm() / xin.float().norm()).item(),
            fused_ms=t_fused * 1e3, torch_unfused_ms=t_torch * 1e3)
        del q, s, rq, rs, codes, xin
    torch.cuda.empty_cache()
    return out


SAGE_SMOKE = """
import math, torch, torch.nn.functional as F
from sageattention import sageattn
g = torch.Generator(device="cuda").manual_seed(0)
q, k, v = (torch.randn(1, 1000, 12, 128, generator=g, device="cuda", dtype=torch.bfloat16) for _ in range(3))
o = sageattn(q, k, v, tensor_layout="NHD", is_causal=False, sm_scale=1 / math.sqrt(128), smooth_k=False)
torch.cuda.synchronize()
r = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v))).transpose(1, 2)
print("sage smoke rel err", ((o.float() - r.float()).norm() / r.float().norm()).item())
"""


def sage_smoke() -> bool:
    """One small sageattn call in a child process: a kernel that faults must not take this
    process's CUDA context (and every later row) with it. Also warms Triton's disk cache."""
    import subprocess

    res = subprocess.run([sys.executable, "-c", SAGE_SMOKE], capture_output=True, text=True, timeout=120)
    print((res.stdout + res.stderr)[-1500:], flush=True)
    return res.returncode == 0


def attention_check(have_sage):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from camgrid.model import attention as A

    res = {}
    for name, (b, lq, lk, h) in ATTN_SHAPES.items():
        g = torch.Generator(device="cuda").manual_seed(1)
        q, k, v = (torch.randn(b, L, h, 128, generator=g, device="cuda", dtype=torch.bfloat16)
                   for L in (lq, lk, lk))  # [B, L, H, D], the layout camgrid's backends take
        k = k + 0.5 * torch.randn(1, 1, h, 128, generator=g, device="cuda", dtype=torch.bfloat16)  # a key bias, as real k have
        q = q * 1.5  # sharper softmax than unit-variance noise
        fl = 4 * b * h * lq * lk * 128

        def cudnn():
            with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
                return A.attention_sdpa(q, k, v)

        entry = {}
        sub = slice(0, min(lq, 512))
        qs = q[:1, sub].transpose(1, 2).float()
        ref = torch.softmax(qs @ k[:1].transpose(1, 2).float().transpose(-1, -2) / math.sqrt(128), -1) \
            @ v[:1].transpose(1, 2).float()  # [1, H, 512, D] fp32 reference for the first queries of batch 0
        ref = ref.transpose(1, 2)
        fns = {"cudnn": cudnn}
        if have_sage:
            fns["sage"] = lambda: A.attention_sage(q, k, v)
        for bn, fn in fns.items():
            try:
                t = cuda_time(fn, reps=5 if lk > 40000 else 10)
                out = fn()[:1, sub].float()
                entry[bn] = dict(ms=t * 1e3, tflops=fl / t / 1e12,
                                 rel_err_vs_fp32=((out - ref).norm() / ref.norm()).item())
            except Exception as err:
                entry[bn] = dict(error=f"{type(err).__name__}: {err}"[:300])
        if "ms" in entry.get("sage", {}) and "ms" in entry.get("cudnn", {}):
            entry["speedup_sage_vs_cudnn"] = entry["cudnn"]["ms"] / entry["sage"]["ms"]
        res[name] = entry
        print(f"attention {name}: {entry}", flush=True)
        del qs, ref
        torch.cuda.empty_cache()
    return res


def fp32_reference(outputs, report):
    """camgrid-v1's weights in fp32, the same inputs (bf16 values) in fp32: PSNR of the rows against it."""
    model = B.build(B.model_key("camgrid-v1")).float()
    g = torch.Generator(device="cuda").manual_seed(0)  # the same draws as bench_dit.make_call
    x = torch.randn(1, 1, 16, B.T_LAT, 2 * B.H_TOK, 2 * B.W_TOK, generator=g, device="cuda", dtype=torch.bfloat16)
    ctx = torch.randn(1, B.LC, 4096, generator=g, device="cuda", dtype=torch.bfloat16)
    ts = torch.tensor([500.0], device="cuda")
    t0 = time.perf_counter()
    with torch.inference_mode():
        ref = model(x.float(), ts, ctx.float()).float().cpu()
    torch.cuda.synchronize()
    report["fp32_forward_s"] = time.perf_counter() - t0
    for name in ("camgrid-v1", "camgrid-v1-sage", "fp8-v1", "fp8-v1-sage"):
        if name in outputs:
            report.setdefault("psnr_vs_fp32", {})[name] = B.psnr(ref, outputs[name])
    print(f"fp32 reference: {report.get('psnr_vs_fp32')}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=260.0, help="seconds; later steps are skipped past it")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--profile", default="fp8-v1-sage", help="rows to profile (top kernels of one forward)")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    start = time.perf_counter()

    def left():
        return args.budget - (time.perf_counter() - start)

    if not torch.cuda.is_available():
        raise SystemExit("bench_round2.py needs a CUDA GPU")
    B.import_camgrid()
    from camgrid.model.attention import backend_installed

    have_sage = backend_installed("sage") and sage_smoke()
    try:
        from importlib.metadata import version
        sage_v = version("sageattention") if have_sage else "absent"
    except Exception:
        sage_v = "unknown"
    import triton
    report = dict(header=f"GPU: {torch.cuda.get_device_name()}; torch {torch.__version__}; CUDA {torch.version.cuda}; "
                         f"cuDNN {torch.backends.cudnn.version()}; triton {triton.__version__}; sageattention {sage_v}")
    print(report["header"], flush=True)

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=1, default=str))

    report["fp8_quant"] = fp8_quant_check()
    print(f"fp8 quant kernel: {report['fp8_quant']}", flush=True)
    save()
    report["attention"] = attention_check(have_sage)
    save()

    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    order = sorted(names, key=lambda n: (list(dict.fromkeys(B.model_key(m) for m in names)).index(B.model_key(n)),
                                         names.index(n)))
    outputs, results = {}, {}
    report["rows"] = results
    current, model = None, None
    peak_rate = 989.4e12
    for name in order:
        if left() < 25:
            results[name] = dict(error="skipped: time budget")
            print(f"{name}: skipped (budget)", flush=True)
            continue
        if "sage" in name and not have_sage:
            results[name] = dict(error="sageattention not importable")
            continue
        key = B.model_key(name)
        if key != current:
            model = None
            gc.collect()
            torch.cuda.empty_cache()
            current = key
            try:
                model = B.build(key)
            except Exception as err:
                print(f"# could not build {key}: {type(err).__name__}: {err}", flush=True)
        if model is None:
            results[name] = dict(error="official baseline not available" if "official" in name else "build failed")
            continue
        try:
            t, times, warm, peak, out = B.time_row(B.make_call(name, model), args.reps, 8.0)
        except Exception as err:
            results[name] = dict(error=f"{type(err).__name__}: {err}"[:300])
            print(f"{name}: {results[name]['error']}", flush=True)
            gc.collect()
            torch.cuda.empty_cache()
            continue
        fl = B.flops(name)
        res = dict(seconds=t, times=times, warmup_s=warm, peak_gib=peak, tflops=fl / t / 1e12,
                   pct_peak=100 * fl / t / peak_rate, finite=bool(torch.isfinite(out).all()))
        if B.ROWS[name]["impl"] == "camgrid":
            outputs[name] = out.float().cpu()
        base = PSNR_AGAINST.get(name)
        if base in outputs and name in outputs:
            res[f"psnr_vs_{base}"] = B.psnr(outputs[base], outputs[name])
        results[name] = res
        del out
        print(f"{name}: {t:.3f} s peak {peak:.1f} GiB {res['tflops']:.0f} TFLOP/s ({res['pct_peak']:.0f}%) "
              f"runs {[round(x, 3) for x in times]} warm-up {warm:.1f}s"
              + (f" PSNR vs {base} {res[f'psnr_vs_{base}']:.1f} dB" if f"psnr_vs_{base}" in res else ""), flush=True)
        if name in args.profile.split(",") and left() > 40:
            print(B.profile_table(B.make_call(name, model), name), flush=True)
        save()
    model = None
    gc.collect()
    torch.cuda.empty_cache()
    for name, res in results.items():
        base = B.ROWS[name]["baseline"]
        if "seconds" in res and base in results and "seconds" in results[base]:
            res["speedup"] = results[base]["seconds"] / res["seconds"]
    save()
    if left() > 45:
        try:
            fp32_reference(outputs, report)
        except Exception as err:
            report["fp32_error"] = f"{type(err).__name__}: {err}"[:300]
            print(f"fp32 reference failed: {report['fp32_error']}", flush=True)
    else:
        print("fp32 reference skipped (budget)", flush=True)
    save()
    print("\n| row | s / forward | peak GiB | TFLOP/s | % of peak | baseline | speed-up | PSNR |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        res = results.get(name, {})
        if "seconds" not in res:
            print(f"| {name} | {res.get('error', 'not run')} | | | | | | |")
            continue
        ps = next((f"{v:.1f} dB vs {k[len('psnr_vs_'):]}" for k, v in res.items() if k.startswith("psnr_vs_")), "")
        speedup = f"{res['speedup']:.2f}x" if "speedup" in res else ""
        print(f"| {name} | {res['seconds']:.3f} | {res['peak_gib']:.1f} | {res['tflops']:.0f} | {res['pct_peak']:.0f}% "
              f"| {B.ROWS[name]['baseline'] or ''} | {speedup} | {ps} |")
    print(f"total {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
