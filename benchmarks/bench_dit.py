#!/usr/bin/env python
"""One DiT forward at real size, camgrid against its baselines (issue "GPU performance").

Random weights, bf16, 480x832 x 81 frames -> latent 21 x 60 x 104 (1560 tokens per latent frame,
32760 per view), text context 512 tokens, batch 1, no CFG. Every row: one warm-up forward, then
the median of timed forwards (CUDA events); peak = torch.cuda.max_memory_allocated over warm-up +
timed runs, weights included.

    python benchmarks/bench_dit.py                      # every row that fits
    python benchmarks/bench_dit.py --rows camgrid-v1,diffusers-v1 --reps 5
    python benchmarks/bench_dit.py --list

Baselines
  diffusers  `WanTransformer3DModel` (installed diffusers), default PyTorch attention.
  official   the SynCamMaster / ReCamMaster DiTs from KwaiVGI's public `diffsynth/models/
             wan_video_dit.py`, copied at benchmark time into .bench_ref/{syncammaster,recammaster}_dit/
             (git-ignored, never committed; see benchmarks/RESULTS.md). Their code hard-codes a 30x52
             token grid and 2 views, which is what these rows use. Absent -> "official baseline not
             available".

FLOP count (analytic, per forward; d = width, f = ffn width, Lc = 512 text tokens, n layers):
  per token per block:   2 * (6 d^2 + 2 d f)          q,k,v,o + cross q,o + FFN
  attention Lq x Lk:     4 * Lq * Lk * d              QK^T and PV
  per block: tokens * per-token + sum over sequences of attn(L, L) + attn(L, Lc)
  syncam adds 2 * 5 d^2 per token (mvs q,k,v,o + projector) and T view-stream sequences of V*hw;
  recam: one sequence of 2T*hw tokens + projector 2 d^2 per token; hard/soft: both streams
  (2x the per-token work, V time sequences of T*hw and T view sequences of V*hw), soft adds
  8 d r per token per stream pair (r = 64). Embeddings, head, modulation, norms are not counted
  (< 0.1 %). Multiplied by n. 1.3B, one view: 2.83e14.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import importlib.util
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / ".bench_ref"
T_LAT, H_TOK, W_TOK, LC = 21, 30, 52, 512  # latent frames, token grid (latent 60x104 / patch 2), text tokens
HW = H_TOK * W_TOK
SIZES = {
    "1.3b": dict(dim=1536, ffn=8960, heads=12, layers=30),
    "14b": dict(dim=5120, ffn=13824, heads=40, layers=40),
}
BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12}  # dense bf16 tensor-core peak (SXM datasheet)


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)


def import_camgrid():
    """This checkout as `camgrid` (tools/camgrid_checkout.py), imported."""
    use_this_checkout()
    return importlib.import_module("camgrid")


# ------------------------------------------------------------------------------------------
# rows: name -> (implementation, size, mode, views, options, baseline row)
# ------------------------------------------------------------------------------------------
def row(impl, size, mode, v, baseline=None, **opts):
    return dict(impl=impl, size=size, mode=mode, v=v, baseline=baseline, opts=opts)


ROWS = {
    # baselines
    "diffusers-v1": row("diffusers", "1.3b", "independent", 1),
    "diffusers-v1-cudnn": row("diffusers", "1.3b", "independent", 1, "diffusers-v1", sdpa="cudnn"),
    "diffusers-v4-batch": row("diffusers", "1.3b", "independent", 4),
    "diffusers-joint4": row("diffusers", "1.3b", "joint", 4),
    "official-syncam-v2": row("official_syncam", "1.3b", "syncam", 2),
    "official-recam": row("official_recam", "1.3b", "recam", 1),
    # camgrid, plain Wan weights
    "camgrid-v1": row("camgrid", "1.3b", "independent", 1, "diffusers-v1"),
    "camgrid-v1-flash": row("camgrid", "1.3b", "independent", 1, "diffusers-v1", sdpa="flash"),
    "camgrid-v1-sdpa-default": row("camgrid", "1.3b", "independent", 1, "diffusers-v1", sdpa="default"),
    "camgrid-v1-no-triton": row("camgrid", "1.3b", "independent", 1, "diffusers-v1", triton=False),
    "camgrid-v1-compile": row("camgrid", "1.3b", "independent", 1, "diffusers-v1", compile=True),
    "camgrid-v4": row("camgrid", "1.3b", "independent", 4, "diffusers-v4-batch"),
    "hard-v4": row("camgrid", "1.3b", "hard", 4, "diffusers-joint4"),
    "hard-v8": row("camgrid", "1.3b", "hard", 8),
    "hard-v8-chunked": row("camgrid", "1.3b", "hard", 8, "hard-v8", row_chunks=2, ffn_chunk=8192),
    "independent-v8-chunked": row("camgrid", "1.3b", "independent", 8, None, row_chunks=1, ffn_chunk=8192),
    "soft-v4": row("camgrid", "1.3b", "soft", 4, "diffusers-joint4"),
    "soft-v8": row("camgrid", "1.3b", "soft", 8),
    "soft-v8-chunked": row("camgrid", "1.3b", "soft", 8, "soft-v8", row_chunks=2, ffn_chunk=8192),
    "fp8-v1": row("camgrid", "1.3b", "independent", 1, "diffusers-v1", fp8=True),
    # int8 attention (SageAttention 1.0.6, a user choice: attention="sage"; numerics change)
    "camgrid-v1-sage": row("camgrid", "1.3b", "independent", 1, "diffusers-v1", attention="sage"),
    "fp8-v1-sage": row("camgrid", "1.3b", "independent", 1, "diffusers-v1", fp8=True, attention="sage"),
    # camgrid, SynCamMaster / ReCamMaster weights
    "syncam-v2": row("camgrid", "1.3b", "syncam", 2, "official-syncam-v2"),
    "syncam-v4": row("camgrid", "1.3b", "syncam", 4),
    "syncam-v8": row("camgrid", "1.3b", "syncam", 8),
    "recam": row("camgrid", "1.3b", "recam", 1, "official-recam"),
    "syncam-v2-sage": row("camgrid", "1.3b", "syncam", 2, "official-syncam-v2", attention="sage"),
    "recam-sage": row("camgrid", "1.3b", "recam", 1, "official-recam", attention="sage"),
    # 14B
    "diffusers-14b-v1": row("diffusers", "14b", "independent", 1),
    "camgrid-14b-v1": row("camgrid", "14b", "independent", 1, "diffusers-14b-v1"),
    "camgrid-14b-v4-fp8": row("camgrid", "14b", "independent", 4, None, fp8=True, row_chunks=1, ffn_chunk=8192),
}
DEFAULT_ROWS = [n for n in ROWS if n not in ("camgrid-v1-compile",) and "attention" not in ROWS[n]["opts"]]


def variant_of(mode):
    return {"syncam": "syncammaster", "recam": "recammaster"}.get(mode, "wan")


def model_key(name):
    r = ROWS[name]
    fp8, compiled = bool(r["opts"].get("fp8")), bool(r["opts"].get("compile"))
    return (r["impl"], r["size"], variant_of(r["mode"]) if r["impl"] == "camgrid" else r["mode"], fp8, compiled)


# ------------------------------------------------------------------------------------------
# FLOPs
# ------------------------------------------------------------------------------------------
def flops(name):
    r = ROWS[name]
    s = SIZES[r["size"]]
    d, f, n, v, mode = s["dim"], s["ffn"], s["layers"], r["v"], r["mode"]
    tok = 2 * (6 * d * d + 2 * d * f)

    def attn(lq, lk):
        return 4 * lq * lk * d

    L = T_LAT * HW
    if mode == "independent":
        per = v * (L * tok + attn(L, L) + attn(L, LC))
    elif mode == "joint":
        per = v * L * tok + attn(v * L, v * L) + attn(v * L, LC)
    elif mode == "syncam":
        per = v * (L * tok + attn(L, L) + attn(L, LC)) + v * L * 2 * 5 * d * d + T_LAT * attn(v * HW, v * HW)
    elif mode == "recam":
        per = v * (2 * L * (tok + 2 * d * d) + attn(2 * L, 2 * L) + attn(2 * L, LC))
    elif mode in ("hard", "soft"):
        per = (2 * v * L * tok + v * (attn(L, L) + attn(L, LC))
               + T_LAT * (attn(v * HW, v * HW) + attn(v * HW, LC)))
        if mode == "soft":
            per += v * L * 8 * d * 64
    else:
        raise ValueError(mode)
    return n * per


# ------------------------------------------------------------------------------------------
# model builders (random weights, straight onto the GPU in bf16)
# ------------------------------------------------------------------------------------------
class on_gpu_bf16:
    def __enter__(self):
        self.dev = torch.device("cuda")
        self.dev.__enter__()
        self.old = torch.get_default_dtype()
        torch.set_default_dtype(torch.bfloat16)

    def __exit__(self, *exc):
        torch.set_default_dtype(self.old)
        self.dev.__exit__(*exc)


def load_official(kind):
    pkg = f"{kind}_dit"
    if not (REF_DIR / pkg / "wan_video_dit.py").is_file():
        return None
    if str(REF_DIR) not in sys.path:
        sys.path.insert(0, str(REF_DIR))
    mod = importlib.import_module(f"{pkg}.wan_video_dit")
    # DiffSynth's attention silently switches to FlashAttention-3 / -2 or SageAttention when
    # `flash_attn_interface` / `flash_attn` / `sageattention` is importable (round 2 measured sage that way
    # by accident: 1.82 / 2.33 s instead of 1.54 / 1.93 s). The baseline is the official DiT on PyTorch
    # SDPA, so the switches are turned off here (bench_round3.py times its FA3 path as a separate row).
    for switch in ("FLASH_ATTN_3_AVAILABLE", "FLASH_ATTN_2_AVAILABLE", "SAGE_ATTN_AVAILABLE"):
        if getattr(mod, switch, False):
            setattr(mod, switch, False)
    return mod


def build(key):
    impl, size, variant, fp8, _ = key
    s = SIZES[size]
    d = s["dim"]
    torch.manual_seed(0)  # same random weights for the same model (fp8 vs bf16 PSNR)
    with on_gpu_bf16():
        if impl == "camgrid":
            cg = import_camgrid()
            from camgrid.model.config import DiTConfig
            from camgrid.model.dit import GridDiT

            cfg = DiTConfig(dim=d, ffn_dim=s["ffn"], num_heads=s["heads"], num_layers=s["layers"], variant=variant)
            m = GridDiT(cfg)
            if variant == "wan":
                from camgrid.model.sync import attach_sync_layers

                attach_sync_layers(m)  # hard gate + soft layers (random); hard/soft rows need them
            if fp8:
                from camgrid.model.fp8 import quantize_linear_weights

                quantize_linear_weights(m)
            return m.eval()
        if impl == "diffusers":
            from diffusers import WanTransformer3DModel

            return WanTransformer3DModel(num_attention_heads=s["heads"], attention_head_dim=128, in_channels=16,
                                         out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=s["ffn"],
                                         num_layers=s["layers"], cross_attn_norm=True, eps=1e-6).eval()
        if impl in ("official_syncam", "official_recam"):
            kind = "syncammaster" if impl == "official_syncam" else "recammaster"
            mod = load_official(kind)
            if mod is None:
                return None
            m = mod.WanModel(dim=d, in_dim=16, ffn_dim=s["ffn"], out_dim=16, text_dim=4096, freq_dim=256, eps=1e-6,
                             patch_size=(1, 2, 2), num_heads=s["heads"], num_layers=s["layers"], has_image_input=False)
            # the extra modules exactly as the official inference scripts attach them
            for block in m.blocks:
                block.cam_encoder = torch.nn.Linear(12, d)
                block.projector = torch.nn.Linear(d, d)
                if kind == "syncammaster":
                    block.norm_mvs = torch.nn.LayerNorm(d, eps=block.norm1.eps, elementwise_affine=False)
                    block.modulation_mvs = torch.nn.Parameter(torch.randn(1, 3, d) / d ** 0.5)
                    block.mvs_attn = mod.SelfAttention(d, block.self_attn.num_heads, block.self_attn.norm_q.eps)
            return m.eval()
    raise ValueError(impl)


def make_call(name, model):
    """A zero-argument closure running one forward of row `name`, and a description of the inputs."""
    r = ROWS[name]
    impl, mode, v = r["impl"], r["mode"], r["v"]
    g = torch.Generator(device="cuda").manual_seed(0)
    bf = torch.bfloat16

    def rnd(*shape):
        return torch.randn(*shape, generator=g, device="cuda", dtype=bf)

    H, W = 2 * H_TOK, 2 * W_TOK
    if impl == "camgrid":
        from camgrid.kernels.sdpa_select import set_sdpa_policy

        x = rnd(1, v, 16, T_LAT, H, W)
        ctx = rnd(1, LC, 4096)
        ts = torch.tensor([500.0], device="cuda")
        cam = rnd(1, v, T_LAT, 12) if mode in ("syncam", "recam") else None
        src = rnd(1, 16, T_LAT, H, W) if mode == "recam" else None
        model.set_row_chunks(r["opts"].get("row_chunks"))
        model.set_ffn_chunk(r["opts"].get("ffn_chunk"))
        model.compile_blocks(bool(r["opts"].get("compile")))
        policy = r["opts"].get("sdpa", "auto")
        triton_on = r["opts"].get("triton", True)
        backend = r["opts"].get("attention")  # None: the model's own choice (auto)

        def call():
            from contextlib import nullcontext

            from camgrid.model.attention import attention_backend

            set_sdpa_policy(policy)
            os.environ["CAMGRID_DISABLE_TRITON"] = "0" if triton_on else "1"
            try:
                with attention_backend(backend) if backend else nullcontext():
                    return model(x, ts, ctx, mode=mode, camera=cam, source=src)
            finally:
                set_sdpa_policy("auto")
                os.environ["CAMGRID_DISABLE_TRITON"] = "0"
        return call
    if impl == "diffusers":
        frames = T_LAT * v if mode == "joint" else T_LAT
        batch = 1 if mode == "joint" else v
        x = rnd(batch, 16, frames, H, W)
        ctx = rnd(batch, LC, 4096)
        ts = torch.full((batch,), 500.0, device="cuda")
        policy = r["opts"].get("sdpa")

        def call():
            if policy == "cudnn":
                from torch.nn.attention import SDPBackend, sdpa_kernel

                with sdpa_kernel([SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION,
                                  SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH], set_priority=True):
                    return model(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)[0]
            return model(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)[0]
        return call
    # official: views are batch rows (syncam), [target, source] along frames (recam); bf16 timestep
    ts = torch.tensor([500.0], device="cuda", dtype=bf)
    if impl == "official_syncam":
        x = rnd(v, 16, T_LAT, H, W)
        cam = rnd(v, T_LAT, 12)
        ctx = rnd(v, LC, 4096)
    else:
        x = rnd(1, 16, 2 * T_LAT, H, W)
        cam = rnd(1, T_LAT, 12)
        ctx = rnd(1, LC, 4096)
    return lambda: model(x, ts, cam, ctx)


# ------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------
def time_row(call, reps, max_seconds):
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = call()  # warm-up (compilation, cuDNN plans, caches)
        torch.cuda.synchronize()
        warm = time.perf_counter() - t0
        n = reps if warm * reps < max_seconds else max(1, int(max_seconds // max(warm, 1e-3)))
        times = []
        for _ in range(n):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            out = call()
            b.record()
            torch.cuda.synchronize()
            times.append(a.elapsed_time(b) / 1000)
    peak = torch.cuda.max_memory_allocated() / 2**30
    return statistics.median(times), times, warm, peak, out


def psnr(ref, test):
    ref, test = ref.float(), test.float()
    mse = (ref - test).pow(2).mean().item()
    rng = (ref.max() - ref.min()).item()
    return float("inf") if mse == 0 else 10 * math.log10(rng * rng / mse)


def attention_micro(reps=10):
    """TFLOP/s of each SDPA kernel for the attention shapes of the rows above (bf16, head_dim 128)."""
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    shapes = {  # name: (batch, Lq, Lk, heads)
        "self 1 view L=32760": (1, 32760, 32760, 12),
        "cross L=32760 x 512": (1, 32760, 512, 12),
        "view stream V=2 (21 x 3120)": (21, 3120, 3120, 12),
        "view stream V=4 (21 x 6240)": (21, 6240, 6240, 12),
        "view stream V=8 (21 x 12480)": (21, 12480, 12480, 12),
        "recam L=65520": (1, 65520, 65520, 12),
        "14B self L=32760 (40 heads)": (1, 32760, 32760, 40),
    }
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                "efficient": SDPBackend.EFFICIENT_ATTENTION}
    lines = ["| attention shape | " + " | ".join(f"{b} ms (TFLOP/s)" for b in backends) + " |",
             "|---|" + "---|" * len(backends)]
    res = {}
    for name, (b, lq, lk, h) in shapes.items():
        q = torch.randn(b, h, lq, 128, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(b, h, lk, 128, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(b, h, lk, 128, device="cuda", dtype=torch.bfloat16)
        fl = 4 * b * h * lq * lk * 128
        cells = []
        for bn, be in backends.items():
            try:
                with sdpa_kernel([be]):
                    F.scaled_dot_product_attention(q, k, v)
                    torch.cuda.synchronize()
                    ts = []
                    for _ in range(reps):
                        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                        e0.record()
                        F.scaled_dot_product_attention(q, k, v)
                        e1.record()
                        torch.cuda.synchronize()
                        ts.append(e0.elapsed_time(e1) / 1000)
                t = statistics.median(ts)
                res[(name, bn)] = t
                cells.append(f"{t * 1e3:.2f} ({fl / t / 1e12:.0f})")
            except Exception as err:  # a backend refusing the shape is a result too
                cells.append(f"n/a ({type(err).__name__})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        del q, k, v
        torch.cuda.empty_cache()
    return "\n".join(lines)


def profile_table(call, name, top=22):
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        call()
        torch.cuda.synchronize()
    events = [e for e in prof.key_averages() if e.device_time_total > 0]
    total = sum(e.self_device_time_total for e in events)
    events.sort(key=lambda e: -e.self_device_time_total)
    lines = [f"## profile {name}: {total / 1e3:.1f} ms of kernels", "| kernel | calls | ms | % |", "|---|---|---|---|"]
    for e in events[:top]:
        lines.append(f"| {e.key[:90]} | {e.count} | {e.self_device_time_total / 1e3:.1f} | "
                     f"{100 * e.self_device_time_total / total:.1f} |")
    return "\n".join(lines)


def matmul_peak():
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(10):
        a @ b
    e1.record()
    torch.cuda.synchronize()
    return 10 * 2 * 8192 ** 3 / (e0.elapsed_time(e1) / 1000)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", default=",".join(DEFAULT_ROWS), help="comma-separated row names (--list)")
    ap.add_argument("--reps", type=int, default=3, help="timed forwards per row (median)")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="cap on timed seconds per row")
    ap.add_argument("--attention", action="store_true", help="also time each SDPA kernel per attention shape")
    ap.add_argument("--json", default=None, help="write all numbers here")
    ap.add_argument("--profile", default="", help="comma-separated rows to profile (top CUDA kernels of one forward)")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    if args.list:
        for n, r in ROWS.items():
            print(f"{n:26s} {r['impl']:16s} {r['size']:5s} {r['mode']:12s} V={r['v']} {r['opts']}")
        return
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; --list shows them")
    if not torch.cuda.is_available():
        raise SystemExit("bench_dit.py needs a CUDA GPU")
    gpu = torch.cuda.get_device_name()
    peak_rate = next((v for k, v in BF16_PEAK.items() if k in gpu), 989.4e12)
    try:
        import triton
        triton_v = triton.__version__
    except ImportError:
        triton_v = "absent"
    try:
        import diffusers
        diffusers_v = diffusers.__version__
    except ImportError:
        diffusers_v = "absent"
    import_camgrid()
    header = (f"GPU: {gpu}; torch {torch.__version__}; CUDA {torch.version.cuda}; cuDNN {torch.backends.cudnn.version()}; "
              f"triton {triton_v}; diffusers {diffusers_v}")
    print(header, flush=True)
    from camgrid.model.block import gelu_epilogue_is_tanh

    print(f"cuBLASLt GELU epilogue is the tanh GELU: {gelu_epilogue_is_tanh('cuda')}", flush=True)
    mm = matmul_peak()
    print(f"measured 8192^3 bf16 matmul: {mm / 1e12:.0f} TFLOP/s; % of peak below is of {peak_rate / 1e12:.0f}", flush=True)
    micro = attention_micro() if args.attention else None
    if micro:
        print(micro, flush=True)

    # group rows by model so each model is built once; fp8 models last (quantisation is in place)
    order = sorted(names, key=lambda n: (list(dict.fromkeys(model_key(m) for m in names)).index(model_key(n)),
                                         names.index(n)))
    results, outputs = {}, {}
    current_key, model = None, None
    for name in order:
        key = model_key(name)
        if key != current_key:
            model = None
            gc.collect()
            torch.cuda.empty_cache()
            current_key = key
            try:
                t0 = time.perf_counter()
                model = build(key)
                print(f"# built {key} in {time.perf_counter() - t0:.1f}s", flush=True)
            except Exception as err:
                print(f"# could not build {key}: {type(err).__name__}: {err}", flush=True)
                model = None
        if model is None:
            note = "official baseline not available" if ROWS[name]["impl"].startswith("official") else "build failed"
            results[name] = dict(error=note)
            print(f"{name}: {note}", flush=True)
            continue
        try:
            call = make_call(name, model)
            t, times, warm, peak, out = time_row(call, args.reps, args.max_seconds)
            del call
        except torch.cuda.OutOfMemoryError as err:
            results[name] = dict(error=f"OOM: {str(err).splitlines()[0]}")
            print(f"{name}: OOM", flush=True)
            gc.collect()
            torch.cuda.empty_cache()
            continue
        except Exception as err:
            results[name] = dict(error=f"{type(err).__name__}: {err}")
            print(f"{name}: {type(err).__name__}: {err}", flush=True)
            continue
        if name in args.profile.split(","):
            print(profile_table(make_call(name, model), name), flush=True)
        fl = flops(name)
        res = dict(seconds=t, times=times, warmup_s=warm, peak_gib=peak, flops=fl, tflops=fl / t / 1e12,
                   pct_peak=100 * fl / t / peak_rate)
        if ROWS[name]["impl"] == "camgrid" and ROWS[name]["mode"] == "independent" and ROWS[name]["v"] == 1 \
                and ROWS[name]["size"] == "1.3b":
            outputs.setdefault("bf16-v1", out.float().cpu())
        if name == "fp8-v1" and "bf16-v1" in outputs:
            res["psnr_vs_bf16"] = psnr(outputs["bf16-v1"], out.float().cpu())
        elif name != "camgrid-v1" and "bf16-v1" in outputs and model_key(name)[:4] == model_key("camgrid-v1")[:4] \
                and ROWS[name]["mode"] == "independent" and ROWS[name]["v"] == 1:
            ref = outputs["bf16-v1"]  # same weights and inputs: kernels / backends agree to bf16 rounding
            res["rel_err_vs_camgrid_v1"] = ((out.float().cpu() - ref).norm() / ref.norm()).item()
        finite = bool(torch.isfinite(out).all())
        res["finite"] = finite
        results[name] = res
        del out
        print(f"{name}: {t:.3f} s  peak {peak:.1f} GiB  {res['tflops']:.0f} TFLOP/s ({res['pct_peak']:.0f}%)"
              f"  warm-up {warm:.1f}s  runs {[round(x, 3) for x in times]}"
              + (f"  PSNR {res['psnr_vs_bf16']:.1f} dB" if "psnr_vs_bf16" in res else "")
              + (f"  rel.err vs camgrid-v1 {res['rel_err_vs_camgrid_v1']:.2e}" if "rel_err_vs_camgrid_v1" in res else "")
              + ("" if finite else "  NON-FINITE OUTPUT"), flush=True)
    model = None

    lines = [header, "", "| row | impl | size | mode | V | s / forward | peak GiB | TFLOP/s | % of bf16 peak | baseline | speed-up vs baseline |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        r, res = ROWS[name], results[name]
        if "error" in res:
            lines.append(f"| {name} | {r['impl']} | {r['size']} | {r['mode']} | {r['v']} | {res['error']} | | | | | |")
            continue
        base = r["baseline"]
        ratio = ""
        if base and base in results and "seconds" in results[base]:
            ratio = f"{results[base]['seconds'] / res['seconds']:.2f}x"
        lines.append(f"| {name} | {r['impl']} | {r['size']} | {r['mode']} | {r['v']} | {res['seconds']:.3f} | "
                     f"{res['peak_gib']:.1f} | {res['tflops']:.0f} | {res['pct_peak']:.0f}% | {base or ''} | {ratio} |")
    table = "\n".join(lines)
    print("\n" + table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(header=header, matmul_tflops=mm / 1e12, attention=micro, results=results), fh, indent=1,
                      default=str)


if __name__ == "__main__":
    main()
