#!/usr/bin/env python
"""Round 3 of the DiT speed benchmark (issue 14): FlashAttention-3, fp8 attention, the fused grid mode,
and where the time of one forward goes now. One script, one device run, a wall-clock budget.

Workload (as rounds 1 and 2): random weights, bf16, 480x832 x 81 frames -> latent 21 x 60 x 104
(30 x 52 tokens per latent frame, 32 760 per view), 512 text tokens, batch 1, one forward, no CFG.
Every row: one warm-up forward, then the median of up to --reps timed forwards (CUDA events);
peak = torch.cuda.max_memory_allocated (weights included). Every row's baseline runs in the same process.

Rows (each model is built once; rows are skipped, never cut, once the budget is spent)
  diffusers-v1          diffusers WanTransformer3DModel, its default attention (PyTorch SDPA): issue 14's baseline
  diffusers-v1-fa3      the same through diffusers' own FA3 backend ("_flash_3"), like for like (when it runs)
  camgrid-v1            attention auto (FA3 on Hopper when flash_attn_interface imports)
  camgrid-v1-cudnn      attention "sdpa" (cuDNN: round 2's kernel), to show what FA3 alone gives
  camgrid-v1-fp8attn    attention "fp8" (opt-in); PSNR of the output against camgrid-v1 (same weights, inputs)
  hard-v4 / fused-v4    4 views; baselines: joint attention over the same grid
  fused-v4-flex         fused-v4 with FlexAttention instead of the exact LSE streams (speed; PSNR vs fused-v4)
  camgrid-joint4        joint attention over the grid with camgrid's kernels: independent mode on the 84-frame
                        video whose frames are the 4 views' frames (one sequence of 131 040 tokens, FA3)
  diffusers-joint4      the same sequence through diffusers (round 1/2's "joint" baseline, SDPA)
  syncam-v2 / official-syncam-v2[-fa3], recam / official-recam[-fa3]
                        the official SynCamMaster / ReCamMaster DiTs (KwaiVGI diffsynth wan_video_dit.py, read from
                        .bench_ref/ at run time; see benchmarks/RESULTS.md). Their code switches to FA3 by itself when
                        flash_attn_interface imports: the plain rows turn that off (PyTorch SDPA, the baseline of
                        rounds 1/2 and issue 14), the -fa3 rows turn it on (like for like).
  fp8w-v1-fp8attn       fp8 weights (model/fp8.py) + fp8 attention; fp8w-v1: fp8 weights, auto attention
Profiles (torch.profiler, kernel time of one forward by category) of camgrid-v1 and fused-v4 (and hard-v4 when
time is left): attention / GEMM / camgrid Triton kernels / fp8 quantisation / other elementwise and copies, and
the GPU's idle time (wall time minus kernel time: what CUDA graphs could remove).

    python benchmarks/bench_round3.py --budget 230 --json round3.json       # the GPU run (see RESULTS.md)
    python benchmarks/bench_round3.py --tiny                                 # CPU smoke test of every code path
Needs on the GPU machine: FA3 (the tokenspeed-fa3 archive unpacked on PYTHONPATH, benchmarks/ATTENTION_GPU.md),
diffusers (its wheel: pip install --no-deps --target), .bench_ref/ (official model files).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_dit as B  # noqa: E402  (load_official, psnr, import_camgrid)


@dataclasses.dataclass(frozen=True)
class Setup:
    device: str
    dtype: torch.dtype
    dim: int
    ffn: int
    heads: int
    layers: int
    text_dim: int
    freq_dim: int
    frames: int            # latent frames T
    h: int                 # token rows per frame (latent / 2); the official code hard-codes 30 x 52
    w: int
    text_len: int

    @property
    def hw(self):
        return self.h * self.w


GPU = Setup("cuda", torch.bfloat16, 1536, 8960, 12, 30, 4096, 256, 21, 30, 52, 512)
TINY = Setup("cpu", torch.float32, 64, 128, 2, 1, 32, 32, 2, 30, 52, 8)  # 1 block, 2 latent frames


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    model: str             # builder key: camgrid-wan, camgrid-syncammaster, camgrid-recammaster, camgrid-wan-fp8w,
                           # diffusers, official-syncammaster, official-recammaster
    mode: str              # camgrid mode, or "joint" (one sequence of all views' frames)
    views: int
    attention: str | None = None   # camgrid: attention backend (None: the model's auto); official / diffusers: "fa3"
    baselines: tuple = ()
    psnr_against: str | None = None
    note: str = ""
    fused_method: str = "auto"     # GridDiT.set_fused_attention for fused rows


ROWS = [
    Row("diffusers-v1", "diffusers", "independent", 1, note="default attention (PyTorch SDPA)"),
    Row("diffusers-v1-fa3", "diffusers", "independent", 1, "fa3", psnr_against="diffusers-v1",
        note="diffusers' FA3 backend"),
    Row("diffusers-joint4", "diffusers", "joint", 4, note="one sequence of 84 frames, SDPA"),
    Row("camgrid-v1", "camgrid-wan", "independent", 1, baselines=("diffusers-v1", "diffusers-v1-fa3"),
        note="attention auto"),
    Row("camgrid-v1-fp8attn", "camgrid-wan", "independent", 1, "fp8", ("diffusers-v1", "camgrid-v1"), "camgrid-v1",
        note="fp8 attention (opt-in)"),
    Row("hard-v4", "camgrid-wan", "hard", 4, baselines=("camgrid-joint4", "diffusers-joint4")),
    Row("fused-v4", "camgrid-wan", "fused", 4, baselines=("hard-v4", "camgrid-joint4", "diffusers-joint4")),
    Row("camgrid-joint4", "camgrid-wan", "joint", 4, note="independent on the 84-frame video of all views"),
    Row("camgrid-v1-cudnn", "camgrid-wan", "independent", 1, "sdpa", ("diffusers-v1", "camgrid-v1"), "camgrid-v1",
        note="cuDNN SDPA (round 2's kernel)"),
    Row("fused-v4-flex", "camgrid-wan", "fused", 4, None, ("fused-v4", "hard-v4"), "fused-v4",
        note="fused attention through FlexAttention (compiled block mask)", fused_method="flex"),
    Row("official-syncam-v2", "official-syncammaster", "syncam", 2, note="official code, PyTorch SDPA"),
    Row("syncam-v2", "camgrid-syncammaster", "syncam", 2, baselines=("official-syncam-v2", "official-syncam-v2-fa3")),
    Row("official-syncam-v2-fa3", "official-syncammaster", "syncam", 2, "fa3", psnr_against="official-syncam-v2",
        note="official code, its FA3 path"),
    Row("official-recam", "official-recammaster", "recam", 1, note="official code, PyTorch SDPA"),
    Row("recam", "camgrid-recammaster", "recam", 1, baselines=("official-recam", "official-recam-fa3")),
    Row("official-recam-fa3", "official-recammaster", "recam", 1, "fa3", psnr_against="official-recam",
        note="official code, its FA3 path"),
    Row("fp8w-v1-fp8attn", "camgrid-wan-fp8w", "independent", 1, "fp8", ("diffusers-v1", "camgrid-v1"), "camgrid-v1",
        note="fp8 weights + fp8 attention"),
    Row("fp8w-v1", "camgrid-wan-fp8w", "independent", 1, None, ("diffusers-v1", "camgrid-v1"), "camgrid-v1",
        note="fp8 weights, attention auto"),
]
BY_NAME = {r.name: r for r in ROWS}
PSNR_REFERENCES = {r.psnr_against for r in ROWS if r.psnr_against}  # outputs kept (on the CPU) for PSNRs
PROFILE_ROWS = ("camgrid-v1", "fused-v4", "hard-v4")


# ------------------------------------------------------------------------------------------
# FLOPs (as bench_dit.flops: per-token linear work + 4 Lq Lk d per attention; fused counts the kept pairs)
# ------------------------------------------------------------------------------------------
def flops(row: Row, s: Setup) -> float:
    d, f, v, T, hw, lc = s.dim, s.ffn, row.views, s.frames, s.hw, s.text_len
    tok = 2 * (6 * d * d + 2 * d * f)
    L = T * hw

    def attn(lq, lk):
        return 4 * lq * lk * d

    per = {
        "independent": lambda: v * (L * tok + attn(L, L) + attn(L, lc)),
        "joint": lambda: v * L * tok + attn(v * L, v * L) + attn(v * L, lc),
        "syncam": lambda: v * (L * tok + attn(L, L) + attn(L, lc)) + v * L * 10 * d * d + T * attn(v * hw, v * hw),
        "recam": lambda: v * (2 * L * (tok + 2 * d * d) + attn(2 * L, 2 * L) + attn(2 * L, lc)),
        "hard": lambda: (2 * v * L * tok + v * (attn(L, L) + attn(L, lc))
                         + T * (attn(v * hw, v * hw) + attn(v * hw, lc))),
        "fused": lambda: v * L * tok + v * L * 4 * (L + (v - 1) * hw) * d + attn(v * L, lc),
    }[row.mode]
    return s.layers * per()


# ------------------------------------------------------------------------------------------
# models and calls
# ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def default_device_dtype(s: Setup):
    old = torch.get_default_dtype()
    torch.set_default_dtype(s.dtype)
    try:
        with torch.device(s.device):
            yield
    finally:
        torch.set_default_dtype(old)


def build(key: str, s: Setup):
    """A model with random weights (seed 0: camgrid-wan and camgrid-wan-fp8w share the weights before fp8)."""
    torch.manual_seed(0)
    with default_device_dtype(s):
        if key.startswith("camgrid-"):
            from camgrid.model.config import DiTConfig
            from camgrid.model.dit import GridDiT

            variant = key.split("-")[1]
            cfg = DiTConfig(dim=s.dim, ffn_dim=s.ffn, num_heads=s.heads, num_layers=s.layers, text_dim=s.text_dim,
                            freq_dim=s.freq_dim, variant=variant)
            model = GridDiT(cfg)
            if key.endswith("-fp8w"):
                from camgrid.model.fp8 import quantize_linear_weights

                quantize_linear_weights(model)
            return model.eval()
        if key == "diffusers":
            from diffusers import WanTransformer3DModel

            return WanTransformer3DModel(num_attention_heads=s.heads, attention_head_dim=s.dim // s.heads,
                                         in_channels=16, out_channels=16, text_dim=s.text_dim, freq_dim=s.freq_dim,
                                         ffn_dim=s.ffn, num_layers=s.layers, cross_attn_norm=True, eps=1e-6).eval()
        kind = key.split("-")[1]
        mod = B.load_official(kind)
        if mod is None:
            return None
        model = mod.WanModel(dim=s.dim, in_dim=16, ffn_dim=s.ffn, out_dim=16, text_dim=s.text_dim, freq_dim=s.freq_dim,
                             eps=1e-6, patch_size=(1, 2, 2), num_heads=s.heads, num_layers=s.layers,
                             has_image_input=False)
        for block in model.blocks:  # the modules the official inference scripts attach
            block.cam_encoder = torch.nn.Linear(12, s.dim)
            block.projector = torch.nn.Linear(s.dim, s.dim)
            if kind == "syncammaster":
                block.norm_mvs = torch.nn.LayerNorm(s.dim, eps=block.norm1.eps, elementwise_affine=False)
                block.modulation_mvs = torch.nn.Parameter(torch.randn(1, 3, s.dim) / s.dim ** 0.5)
                block.mvs_attn = mod.SelfAttention(s.dim, block.self_attn.num_heads, block.self_attn.norm_q.eps)
        return model.eval()


def fa3_available() -> bool:
    from camgrid.kernels import fa3

    return fa3.installed()


class _OfficialFA3:
    """flash_attn_interface as the official code calls it (flash_attn_func(q, k, v) -> out): FA3 builds differ
    in whether they return (out, lse); camgrid's wrapper returns the output either way."""

    @staticmethod
    def flash_attn_func(q, k, v):
        from camgrid.kernels import fa3

        return fa3.call_flash_attn_func(q, k, v)


@contextlib.contextmanager
def official_attention(model, use_fa3: bool):
    """The official module's own switch: FA3 on for the -fa3 rows, else PyTorch SDPA (FA2 / sage off)."""
    mod = sys.modules[type(model).__module__]
    saved = {n: getattr(mod, n, None) for n in ("FLASH_ATTN_3_AVAILABLE", "FLASH_ATTN_2_AVAILABLE",
                                                  "SAGE_ATTN_AVAILABLE", "flash_attn_interface")}
    mod.FLASH_ATTN_3_AVAILABLE, mod.FLASH_ATTN_2_AVAILABLE, mod.SAGE_ATTN_AVAILABLE = use_fa3, False, False
    if use_fa3:
        mod.flash_attn_interface = _OfficialFA3
    try:
        yield
    finally:
        for n, value in saved.items():
            setattr(mod, n, value)


@contextlib.contextmanager
def diffusers_fa3():
    """diffusers' "_flash_3" backend. diffusers detects FA3 by the distribution name flash_attn_3, which the
    registry's tokenspeed-fa3 wheel (module flash_attn_interface) does not have: the harness points diffusers'
    FA3 function at the importable module and marks it usable."""
    import flash_attn_interface
    from diffusers.models import attention_dispatch as AD

    saved = AD._CAN_USE_FLASH_ATTN_3, AD.flash_attn_3_func
    AD._CAN_USE_FLASH_ATTN_3, AD.flash_attn_3_func = True, flash_attn_interface.flash_attn_func
    try:
        with AD.attention_backend("_flash_3"):
            yield
    finally:
        AD._CAN_USE_FLASH_ATTN_3, AD.flash_attn_3_func = saved


def make_call(row: Row, model, s: Setup):
    """A zero-argument closure running one forward of `row` (inputs drawn once, seed 0 on the device)."""
    g = torch.Generator(device=s.device).manual_seed(0)

    def rnd(*shape):
        return torch.randn(*shape, generator=g, device=s.device, dtype=s.dtype)

    v, T, H, W = row.views, s.frames, 2 * s.h, 2 * s.w
    if row.model.startswith("camgrid"):
        from camgrid.model.attention import attention_backend

        joint = row.mode == "joint"
        x = rnd(1, 1, 16, v * T, H, W) if joint else rnd(1, v, 16, T, H, W)  # joint: the views' frames as one video
        ctx, ts = rnd(1, s.text_len, s.text_dim), torch.tensor([500.0], device=s.device)
        cam = rnd(1, v, T, 12) if row.mode in ("syncam", "recam") else None
        src = rnd(1, 16, T, H, W) if row.mode == "recam" else None
        mode = "independent" if joint else row.mode

        def call():
            model.set_fused_attention(row.fused_method)
            try:
                with attention_backend(row.attention):
                    return model(x, ts, ctx, mode=mode, camera=cam, source=src)
            finally:
                model.set_fused_attention("auto")
        return call
    if row.model == "diffusers":
        frames = v * T if row.mode == "joint" else T
        batch = 1 if row.mode == "joint" else v
        x, ctx = rnd(batch, 16, frames, H, W), rnd(batch, s.text_len, s.text_dim)
        ts = torch.full((batch,), 500.0, device=s.device)

        def call():
            with diffusers_fa3() if row.attention == "fa3" else contextlib.nullcontext():
                return model(hidden_states=x, timestep=ts, encoder_hidden_states=ctx, return_dict=False)[0]
        return call
    # official: views are batch rows (syncam), [target, source] along frames (recam); bf16 timestep
    ts = torch.tensor([500.0], device=s.device, dtype=s.dtype)
    if row.mode == "syncam":
        x, cam, ctx = rnd(v, 16, T, H, W), rnd(v, T, 12), rnd(v, s.text_len, s.text_dim)
    else:
        x, cam, ctx = rnd(1, 16, 2 * T, H, W), rnd(1, T, 12), rnd(1, s.text_len, s.text_dim)

    def call():
        with official_attention(model, row.attention == "fa3"):
            return model(x, ts, cam, ctx)
    return call


def row_unavailable(row: Row, s: Setup) -> str | None:
    """Why this row cannot run here (None: it can)."""
    if row.attention == "fa3" and not fa3_available():
        return "FA3 (flash_attn_interface) not importable"
    if row.attention == "fp8":
        from camgrid.kernels import fp8_attention

        probe = torch.empty(1, 1, s.heads, s.dim // s.heads, device=s.device, dtype=s.dtype)
        reason = fp8_attention.unsupported_reason(probe)
        if reason:
            return f"fp8 attention cannot run here ({reason[:160]})"
    if row.model.endswith("-fp8w") and s.device != "cuda":
        return "fp8 weights are timed on the GPU only"
    if row.fused_method == "flex" and s.device != "cuda":
        return "FlexAttention rows run on the GPU only (eager FlexAttention on the CPU materialises the scores)"
    return None


# ------------------------------------------------------------------------------------------
# timing and profiling
# ------------------------------------------------------------------------------------------
def _sync(s: Setup):
    if s.device == "cuda":
        torch.cuda.synchronize()


def time_row(call, s: Setup, reps: int, max_seconds: float):
    """(median seconds, all times, warm-up seconds, peak GiB or None, output)."""
    if s.device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = call()
        _sync(s)
        warm = time.perf_counter() - t0
        n = max(1, min(reps, int(max_seconds // max(warm, 1e-3))))
        times = []
        for _ in range(n):
            if s.device == "cuda":
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                out = call()
                b.record()
                torch.cuda.synchronize()
                times.append(a.elapsed_time(b) / 1000)
            else:
                t1 = time.perf_counter()
                out = call()
                times.append(time.perf_counter() - t1)
    peak = torch.cuda.max_memory_allocated() / 2**30 if s.device == "cuda" else None
    return statistics.median(times), times, warm, peak, out


CATEGORIES = (  # (category, substrings of kernel names, lower case), first match wins
    ("attention", ("flash", "fmha", "cudnn", "sdpa", "attention_kernel", "_attention")),
    ("fp8 quantisation", ("_quantize_kernel", "_quantize_rows_fp8")),
    ("camgrid Triton (qk-norm+RoPE, LN+mod, gated residual)", ("_qk_norm_rope", "_layer_norm_modulate",
                                                                 "_gated_residual")),
    ("GEMM", ("gemm", "nvjet", "xmma", "cutlass", "cublas", "sm90_", "matmul", "scaled_mm")),
    ("copies / gathers / cat", ("copy", "index", "gather", "cat", "direct_copy")),
)


def categorize(name: str) -> str:
    low = name.lower()
    return next((cat for cat, keys in CATEGORIES if any(k in low for k in keys)), "other elementwise / reductions")


def profile_forward(call, s: Setup, top: int = 12) -> dict:
    """Kernel time of one forward by category (+ the top kernels) and the device's idle time."""
    from torch.profiler import ProfilerActivity, profile

    activity = ProfilerActivity.CUDA if s.device == "cuda" else ProfilerActivity.CPU
    with torch.inference_mode():
        call()
        _sync(s)
        with profile(activities=[activity]) as prof:
            t0 = time.perf_counter()
            call()
            _sync(s)
            wall = time.perf_counter() - t0
    if s.device == "cuda":
        events = [e for e in prof.key_averages() if e.self_device_time_total > 0]
        us = {e.key: e.self_device_time_total for e in events}
    else:  # the CPU smoke run: operator self times (categories are meant for GPU kernels)
        events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
        us = {e.key: e.self_cpu_time_total for e in events}
    counts = {e.key: e.count for e in events}
    total = sum(us.values())
    by_cat: dict = {}
    for name, t in us.items():
        by_cat[categorize(name)] = by_cat.get(categorize(name), 0.0) + t
    top_kernels = sorted(us.items(), key=lambda kv: -kv[1])[:top]
    return dict(wall_ms=wall * 1e3, kernel_ms=total / 1e3, idle_ms=max(0.0, wall * 1e3 - total / 1e3),
                categories={k: v / 1e3 for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
                top=[(k[:110], counts[k], t / 1e3) for k, t in top_kernels])


def print_profile(name: str, p: dict):
    print(f"\n### profile {name}: wall {p['wall_ms']:.1f} ms (profiled), kernels {p['kernel_ms']:.1f} ms, "
          f"device idle {p['idle_ms']:.1f} ms ({100 * p['idle_ms'] / max(p['wall_ms'], 1e-9):.1f} %)")
    print("| category | ms | % of kernel time |\n|---|---|---|")
    for cat, ms in p["categories"].items():
        print(f"| {cat} | {ms:.1f} | {100 * ms / max(p['kernel_ms'], 1e-9):.1f} |")
    print("| top kernel | calls | ms |\n|---|---|---|")
    for name_, calls, ms in p["top"]:
        print(f"| {name_} | {calls} | {ms:.1f} |")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------
# the run
# ------------------------------------------------------------------------------------------
def predicted_gib(row: Row, s: Setup):
    """model/memory.py's prediction for camgrid rows (bf16 GPU runs only)."""
    if not row.model.startswith("camgrid") or row.mode == "joint" or s.device != "cuda":
        return None
    from camgrid.model.config import DiTConfig
    from camgrid.model.memory import predict_peak_memory

    cfg = DiTConfig(dim=s.dim, ffn_dim=s.ffn, num_heads=s.heads, num_layers=s.layers, text_dim=s.text_dim,
                    freq_dim=s.freq_dim, variant=row.model.split("-")[1])
    est = predict_peak_memory(cfg, views=row.views, frames=4 * (s.frames - 1) + 1, height=16 * s.h, width=16 * s.w,
                              mode=row.mode, dtype=s.dtype, fp8=row.model.endswith("-fp8w"),
                              attention=row.attention or "auto", text_len=s.text_len)
    return est.gib


def run_rows(names, s: Setup, args, left, report):
    results, outputs, profiles = report["rows"], {}, report["profiles"]
    order = sorted(names, key=lambda n: ([BY_NAME[m].model for m in names].index(BY_NAME[n].model), names.index(n)))
    current, model = None, None
    for name in order:
        row = BY_NAME[name]
        reason = row_unavailable(row, s)
        if reason:
            results[name] = dict(error=reason)
            print(f"{name}: {reason}", flush=True)
            continue
        if left() < args.reserve:
            results[name] = dict(error="skipped: time budget")
            print(f"{name}: skipped (budget)", flush=True)
            continue
        if row.model != current:
            model, current = None, row.model
            gc.collect()
            if s.device == "cuda":
                torch.cuda.empty_cache()
            t0 = time.perf_counter()
            try:
                model = build(row.model, s)
            except Exception as err:  # a missing baseline package is a result, not a crash
                print(f"# could not build {row.model}: {type(err).__name__}: {err}"[:400], flush=True)
            if model is not None:
                print(f"# built {row.model} in {time.perf_counter() - t0:.1f} s", flush=True)
        if model is None:
            results[name] = dict(error="official model files not in .bench_ref/" if "official" in row.model
                                 else "build failed")
            print(f"{name}: {results[name]['error']}", flush=True)
            continue
        try:
            call = make_call(row, model, s)
            sec, times, warm, peak, out = time_row(call, s, args.reps, args.max_seconds)
        except Exception as err:
            results[name] = dict(error=f"{type(err).__name__}: {err}"[:300])
            print(f"{name}: {results[name]['error']}", flush=True)
            gc.collect()
            if s.device == "cuda":
                torch.cuda.empty_cache()
            continue
        fl = flops(row, s)
        res = dict(seconds=sec, times=times, warmup_s=warm, peak_gib=peak, predicted_gib=predicted_gib(row, s),
                   tflops=fl / sec / 1e12, finite=bool(torch.isfinite(out).all()), note=row.note)
        if row.model.startswith("camgrid"):
            from camgrid.model.attention import resolve_backend

            probe = torch.empty(1, 1, s.heads, s.dim // s.heads, device=s.device, dtype=s.dtype)
            res["attention_ran"] = resolve_backend(probe, row.attention or model.attention_backend or "auto")
        if name in PSNR_REFERENCES:
            outputs[name] = out.float().cpu()
        if row.psnr_against in outputs:
            res["psnr_db"] = B.psnr(outputs[row.psnr_against], out.float().cpu())
        results[name] = res
        del out
        extra = f" PSNR vs {row.psnr_against} {res['psnr_db']:.1f} dB" if "psnr_db" in res else ""
        mem = f" peak {peak:.1f} GiB" if peak is not None else ""
        pred = f" (predicted {res['predicted_gib']:.1f})" if res["predicted_gib"] is not None else ""
        print(f"{name}: {sec:.3f} s{mem}{pred} {res['tflops']:.0f} TFLOP/s warm-up {warm:.1f} s runs "
              f"{[round(t, 3) for t in times]} attention {res.get('attention_ran', row.attention or 'default')}"
              f"{extra}{'' if res['finite'] else ' NON-FINITE OUTPUT'}", flush=True)
        if name in args.profile and left() > args.reserve + 10:
            try:
                profiles[name] = profile_forward(call, s)
                print_profile(name, profiles[name])
            except Exception as err:
                print(f"profile {name} failed: {type(err).__name__}: {err}"[:300], flush=True)
        del call
        save(report, args.json)


def speedups(report):
    rows = report["rows"]
    for name, res in rows.items():
        if "seconds" not in res:
            continue
        res["speedup"] = {b: rows[b]["seconds"] / res["seconds"] for b in BY_NAME[name].baselines
                          if "seconds" in rows.get(b, {})}


TARGETS = (  # (what, row, baseline, rule, target) from issue 14
    ("V=1 >= 1.5x diffusers (exact attention)", "camgrid-v1", "diffusers-v1", "speedup", 1.5),
    ("V=1 fp8 attention >= 1.7x diffusers", "camgrid-v1-fp8attn", "diffusers-v1", "speedup", 1.7),
    ("  ... at >= 35 dB PSNR vs camgrid bf16", "camgrid-v1-fp8attn", None, "psnr", 35.0),
    ("syncam V=2 >= 1.7x official SynCamMaster", "syncam-v2", "official-syncam-v2", "speedup", 1.7),
    ("recam >= 1.4x official ReCamMaster", "recam", "official-recam", "speedup", 1.4),
    ("hard V=4 <= 0.35x the time of joint attention", "hard-v4", "camgrid-joint4", "time_ratio", 0.35),
    ("  (joint attention through diffusers, round 1/2's baseline)", "hard-v4", "diffusers-joint4", "time_ratio", 0.35),
    ("fused V=4 vs hard V=4 (time ratio)", "fused-v4", "hard-v4", "time_ratio", None),
    ("fused V=4 vs joint attention (time ratio)", "fused-v4", "camgrid-joint4", "time_ratio", None),
)


def print_summary(report, names):
    rows = report["rows"]
    print("\n| row | s / forward | peak GiB (predicted) | TFLOP/s | attention | speed-up vs baselines | PSNR | note |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        res = rows.get(name, {})
        if "seconds" not in res:
            print(f"| {name} | {res.get('error', 'not run')} | | | | | | |")
            continue
        mem = "" if res["peak_gib"] is None else f"{res['peak_gib']:.1f}"
        if res.get("predicted_gib") is not None:
            mem += f" ({res['predicted_gib']:.1f})"
        ups = ", ".join(f"{v:.2f}x vs {b}" for b, v in res.get("speedup", {}).items())
        ps = f"{res['psnr_db']:.1f} dB" if "psnr_db" in res else ""
        print(f"| {name} | {res['seconds']:.3f} | {mem} | {res['tflops']:.0f} | {res.get('attention_ran', '')} | "
              f"{ups} | {ps} | {res.get('note', '')} |")
    print("\n| issue 14 target | measured | met? |\n|---|---|---|")
    for what, name, base, rule, target in TARGETS:
        a, b = rows.get(name, {}), rows.get(base, {}) if base else {}
        if "seconds" not in a or (base and "seconds" not in b) or (rule == "psnr" and "psnr_db" not in a):
            print(f"| {what} | not measured | |")
            continue
        if rule == "psnr":
            value, text = a["psnr_db"], f"{a['psnr_db']:.1f} dB"
        elif rule == "speedup":
            value = b["seconds"] / a["seconds"]
            text = f"{value:.2f}x ({a['seconds']:.3f} vs {b['seconds']:.3f} s)"
        else:
            value = a["seconds"] / b["seconds"]
            text = f"{value:.2f}x the time ({a['seconds']:.3f} vs {b['seconds']:.3f} s)"
        met = "" if target is None else ("yes" if (value <= target if rule == "time_ratio" else value >= target)
                                         else "no")
        print(f"| {what} | {text} | {met} |")


def save(report, path):
    if path:
        Path(path).write_text(json.dumps(report, indent=1, default=str))


def header(s: Setup) -> str:
    parts = [f"torch {torch.__version__}"]
    if s.device == "cuda":
        parts += [torch.cuda.get_device_name(), f"CUDA {torch.version.cuda}", f"cuDNN {torch.backends.cudnn.version()}"]
    for pkg in ("triton", "diffusers", "flash_attn_interface"):
        try:
            mod = __import__(pkg)
            parts.append(f"{pkg} {getattr(mod, '__version__', 'importable')}")
        except Exception as err:
            parts.append(f"{pkg} absent ({type(err).__name__})")
    return "; ".join(parts)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=230.0, help="wall-clock seconds for everything (rows past it "
                    "are skipped, never cut)")
    ap.add_argument("--reserve", type=float, default=15.0, help="a row starts only with this many seconds left")
    ap.add_argument("--reps", type=int, default=3, help="timed forwards per row (median), after one warm-up")
    ap.add_argument("--max-seconds", type=float, default=8.0, help="cap on timed seconds per row")
    ap.add_argument("--rows", default=",".join(r.name for r in ROWS), help="comma-separated (default: all)")
    ap.add_argument("--profile", default=",".join(PROFILE_ROWS), help="rows to profile (one forward each)")
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: tiny model, fp32, every code path")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    start = time.perf_counter()

    def left():
        return args.budget - (time.perf_counter() - start)

    s = TINY if args.tiny else GPU
    if args.tiny:  # a smoke test of the code paths: one timed forward per row
        args.reps, args.max_seconds = 1, 0.0
    if s.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_round3.py needs a CUDA GPU (or --tiny for the CPU smoke test)")
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; rows: {', '.join(BY_NAME)}")
    args.profile = [n.strip() for n in args.profile.split(",") if n.strip()]
    B.import_camgrid()
    report = dict(header=header(s), setup=dataclasses.asdict(s), rows={}, profiles={})
    print(report["header"], flush=True)
    run_rows(names, s, args, left, report)
    speedups(report)
    save(report, args.json)
    print_summary(report, names)
    print(f"\ntotal {time.perf_counter() - start:.0f} s (budget {args.budget:.0f} s)", flush=True)
    return report


if __name__ == "__main__":
    main()
