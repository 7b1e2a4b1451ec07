"""The opt-in `fp8` attention backend: scaled 8-bit attention on Hopper, through FlashAttention-3's
fp8 forward or through our Triton kernel (kernels/fp8_attention_triton.py).

Not exact: it changes the output by 8-bit quantisation noise, so an `auto` dispatcher must never
pick it; the user opts in (docs/ARCHITECTURE.md §7 Attention and memory). The scaling is the
SageAttention-2 recipe of kernels/fp8_scaling.py:
  FA3 path  ("fa3")      q, k in e4m3 with one descale per (batch, head) (the only form FA3's
                         `q_descale` / `k_descale` [B, H_k] take), K smoothed (exact for softmax),
                         V in e4m3 with per-channel scales and V smoothing, both undone after FA3
                         in one fused multiply-add: out = FA3(q8, k8, v8) * scale_v + mean_v.
  Triton path ("triton") Q K^T in int8 with per-block scales (128 queries / 64 keys) and smoothed K,
                         P V in e4m3 with per-channel V scales and V smoothing.
Which one runs: CAMGRID_FP8_ATTENTION = "auto" (default: PREFERRED_IMPLEMENTATIONS order, the first
available) | "fa3" | "triton". benchmarks/bench_attention.py measures both (speed, error vs fp32).

Call signatures (the layout of every camgrid attention backend)
    out = attention_fp8(q, k, v)                  q [B, Lq, H, D], k / v [B, Lk, H, D] -> [B, Lq, H, D] (q.dtype)
    out = attention_fp8_fa3(q, k, v, recipe=FA3_RECIPE) = fa3_fp8_run(fa3_fp8_inputs(q, k, v, recipe), q.dtype)
    available(q=None) -> bool; unsupported_reason(q) -> str | None; implementation(q) -> "fa3" | "triton"
"""
from __future__ import annotations

import os

import torch

from . import fa3, triton_available
from .fp8_attention_triton import attention_fp8_triton, head_dim_reason, per_head, quantize
from .fp8_scaling import FA3_RECIPE, TRITON_INT8_RECIPE, Fp8Recipe, head_scale, v_scales

BACKEND_NAME = "fp8"
EXACT = False  # quantisation noise: never chosen by `auto`
IMPLEMENTATIONS = ("fa3", "triton")
# Measured on an H200 (benchmarks/ATTENTION_GPU.md, /work run1: 12 heads x 128, N = 32760): FA3 fp8 with
# this module's scaling 8.21 ms, 40.5 dB; the best Triton int8 QK + fp8 PV tile 22.38 ms, 42.6 dB; FA3
# bf16 9.70 ms. FA3 first: the Triton kernels are slower than even bf16 FA3 at every measured shape.
PREFERRED_IMPLEMENTATIONS = ("fa3", "triton")
# What the loader node's tooltip says about accuracy: PSNR of one attention call against fp32 (H200, bf16
# inputs with Wan-like key offsets; bf16 attention kernels reach 68.7 dB there).
MEASURED_ACCURACY = ("not exact: 40.5 dB PSNR per attention call on an 81-frame 480p view (44 dB on 4-view "
                     "view-stream rows) vs 68.7 dB for bf16 kernels; 72.7 dB on a whole 1.3B forward "
                     "(benchmarks/RESULTS.md round 3)")
INPUT_DTYPES = (torch.float16, torch.bfloat16)


def _requested() -> str:
    name = os.environ.get("CAMGRID_FP8_ATTENTION", "auto")
    if name not in IMPLEMENTATIONS + ("auto",):
        raise ValueError(f"CAMGRID_FP8_ATTENTION={name!r} is unknown; use auto, fa3 or triton")
    return name


def _implementation_reason(name: str, device: torch.device, dtype: torch.dtype, head_dim: int) -> str | None:
    """Why implementation `name` cannot run inputs of this device / dtype / head_dim, or None."""
    if name == "fa3" and not fa3.installed():
        return f"FA3 fp8: the {fa3.MODULE_NAME!r} module is not importable; {fa3.INSTALL_HINT}"
    if name == "triton" and not triton_available():
        return "Triton fp8: the triton package is not installed"
    # both need Hopper's fp8 tensor cores; the Triton tile also needs a power-of-two head_dim
    reason = fa3.input_reason(fa3.device_capability(device), dtype, head_dim, INPUT_DTYPES)
    if reason is None and name == "triton":
        reason = head_dim_reason(head_dim)
    return f"{'FA3' if name == 'fa3' else 'Triton'} fp8: {reason}" if reason else None


def _candidates() -> tuple[str, ...]:
    requested = _requested()
    return PREFERRED_IMPLEMENTATIONS if requested == "auto" else (requested,)


def implementation(q: torch.Tensor) -> str | None:
    """The implementation attention_fp8 runs for q ("fa3" / "triton"), or None when neither can."""
    for name in _candidates():
        if _implementation_reason(name, q.device, q.dtype, q.shape[-1]) is None:
            return name
    return None


def unsupported_reason(q: torch.Tensor) -> str | None:
    """Why attention_fp8 cannot run q (every candidate's reason), or None when it can."""
    reasons = [_implementation_reason(name, q.device, q.dtype, q.shape[-1]) for name in _candidates()]
    return None if any(r is None for r in reasons) else "; ".join(reasons)


def available(q: torch.Tensor | None = None) -> bool:
    """Whether attention_fp8 can run here: for q when given, else for bf16 head_dim 128 on the current GPU."""
    if q is not None:
        return implementation(q) is not None
    if not torch.cuda.is_available():
        return False
    device = torch.device("cuda", torch.cuda.current_device())
    return any(_implementation_reason(name, device, torch.bfloat16, 128) is None for name in _candidates())


def fa3_fp8_inputs(q, k, v, recipe: Fp8Recipe = FA3_RECIPE):
    """The quantisation passes of attention_fp8_fa3: (q8, k8, v8, q_descale, k_descale, v_mean, v_scale)."""
    if recipe.q_block or recipe.k_block or recipe.qk != "fp8" or not recipe.v_fp8:
        raise ValueError("attention_fp8_fa3: FA3 takes fp8 q / k / v with one scale per (batch, head) for q and k; "
                         "use a recipe with qk='fp8', v_fp8=True, q_block=None, k_block=None")
    d = q.shape[-1]
    q8, q_scale = quantize(q, "fp8", channel_scale=per_head(head_scale(q, "fp8"), d))
    k_mean = k.mean(dim=1, dtype=torch.float32) if recipe.smooth_k else None
    k8, k_scale = quantize(k, "fp8", mean=k_mean, channel_scale=per_head(head_scale(k, "fp8", mean=k_mean), d))
    v_mean, v_scale = v_scales(v, recipe)
    v8, _ = quantize(v, "fp8", mean=v_mean if recipe.smooth_v else None, channel_scale=v_scale)
    # FA3 indexes the descales by (batch, kv head) through their strides; give it plain [B, H] tensors
    return q8, k8, v8, q_scale[..., 0].contiguous(), k_scale[..., 0].contiguous(), v_mean, v_scale


def fa3_fp8_run(inputs, out_dtype: torch.dtype):
    """FA3's fp8 forward on fa3_fp8_inputs(...), V's scale and mean put back in one multiply-add."""
    q8, k8, v8, q_descale, k_descale, v_mean, v_scale = inputs
    out = fa3.call_flash_attn_func(q8, k8, v8, q_descale=q_descale, k_descale=k_descale)  # bf16
    return torch.addcmul(v_mean[:, None], out, v_scale[:, None]).to(out_dtype)


def attention_fp8_fa3(q, k, v, recipe: Fp8Recipe = FA3_RECIPE):
    """FA3 fp8 forward with per-(batch, head) q / k descales, smoothed K, per-channel V (see above)."""
    return fa3_fp8_run(fa3_fp8_inputs(q, k, v, recipe), q.dtype)


def attention_fp8(q, k, v):
    """Scaled 8-bit attention, q [B, Lq, H, D], k / v [B, Lk, H, D] -> [B, Lq, H, D] in q.dtype."""
    name = implementation(q)
    if name is None:
        raise ValueError(f"attention backend 'fp8' cannot run these inputs: {unsupported_reason(q)}")
    if name == "fa3":
        return attention_fp8_fa3(q, k, v)
    return attention_fp8_triton(q, k, v, TRITON_INT8_RECIPE)
