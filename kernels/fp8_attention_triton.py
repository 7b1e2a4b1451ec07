"""8-bit attention in Triton (SageAttention-2 style): Q K^T in int8 or fp8 e4m3 with per-block scales
and smoothed K, P V in fp8 e4m3 with per-channel V scales (or in fp16); plus the one-pass quantiser
it uses.

The scaling math and its torch reference are in kernels/fp8_scaling.py; `simulated_attention`
there is what the kernel computes, up to the order and precision of its fp32 accumulation.

Call signatures
    xq, scale = quantize(x, fmt, block=None, mean=None, pre_scale=1.0, channel_scale=None, transpose=False)
        x [B, L, H, D] -> xq [B, L, H, D] (transpose: [B, H, D, L16], L16 = L rounded up to 16, keys
        contiguous: the operand layout fp8 wgmma wants for P V) in fp8 / int8, and float32 scales:
        block=n -> [B, H, ceil(L/n)] (amax per n tokens, computed in the kernel); channel_scale
        [B, H, D] given (stride 0 along D for one scale per head) -> returned as given.
        Triton on CUDA (or under TRITON_INTERPRET=1), the torch reference elsewhere.
    out = attention_fp8_triton(q, k, v, recipe=TRITON_INT8_RECIPE, config=None)
        = attention_quantized(quantize_qkv(q, k, v, recipe, BLOCK_M, BLOCK_N), q.dtype, num_warps, num_stages)
        q [B, Lq, H, D], k / v [B, Lk, H, D] (bf16 / fp16 / fp32; D a power of two 16..256)
        -> out [B, Lq, H, D] in q.dtype. config = (BLOCK_M, BLOCK_N, num_warps, num_stages); a recipe's
        q_block / k_block must equal BLOCK_M / BLOCK_N (or be None: one scale per (batch, head)).
Recipes (fp8_scaling.py): TRITON_INT8_RECIPE (SageAttention 2: int8 Q K^T, fp8 P V, the default),
TRITON_INT8_FP16PV_RECIPE (int8 Q K^T, fp16 P V: no V rounding), TRITON_FP8_RECIPE (e4m3 Q K^T).
Accumulation: Q K^T accumulates in int32 (int8) or fp32 (fp8); the P V product of each key block is
promoted to the fp32 accumulator after the block (`max_num_imprecise_acc`), the two-level
accumulation of SageAttention 2 (Hopper's fp8 MMA accumulates with fewer mantissa bits).
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os

import torch

from . import use_triton
from .fp8_scaling import (FP8_DTYPE, FP8_MAX, INT8_MAX, LOG2E, MIN_SCALE, TRITON_INT8_RECIPE, Fp8Recipe,
                          head_scale, quantize_reference, v_scales)

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the torch reference path stays usable
    triton = None

# (BLOCK_M, BLOCK_N, num_warps, num_stages); env CAMGRID_FP8_TRITON_CONFIG="128,64,8,3" overrides
DEFAULT_CONFIG = (128, 64, 8, 3)
QUANT_BLOCK_L = 64  # tokens per program of the quantiser when the scale is given (not per block)


def default_config() -> tuple[int, int, int, int]:
    text = os.environ.get("CAMGRID_FP8_TRITON_CONFIG", "")
    if not text:
        return DEFAULT_CONFIG
    parts = tuple(int(p) for p in text.split(","))
    if len(parts) != 4:
        raise ValueError(f"CAMGRID_FP8_TRITON_CONFIG must be 'BLOCK_M,BLOCK_N,num_warps,num_stages', got {text!r}")
    return parts


def head_dim_reason(head_dim: int) -> str | None:
    if head_dim < 16 or head_dim > 256 or head_dim & (head_dim - 1):
        return f"head_dim {head_dim} is not a power of two between 16 and 256"
    return None


def emulate_fp8_cast() -> bool:
    """Under TRITON_INTERPRET=1 the kernels round to the e4m3 grid themselves before casting: the
    interpreter's float32 -> fp8 cast (triton 3.9) rounds wrongly when rounding carries into the next
    power of two (125.5 -> 64 instead of 128). GPUs use the hardware cast (round to nearest even)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


if triton is not None:

    @triton.jit
    def _to_fp8(y, EMULATE: tl.constexpr):
        """y (|y| <= 448, float32) -> float8e4nv, rounding to nearest even."""
        if EMULATE:
            # normal e4m3 numbers keep 3 of fp32's 23 mantissa bits: round the bit pattern at bit 20
            bits = y.to(tl.int32, bitcast=True)
            bits = (bits + 0x7FFFF + ((bits >> 20) & 1)) & -1048576
            # e4m3 subnormals (|y| < 2^-6) are multiples of 2^-9: the add/sub of 1.5 * 2^14 rounds there
            y = tl.where(tl.abs(y) < 0.015625, (y + 24576.0) - 24576.0, bits.to(tl.float32, bitcast=True))
        return y.to(tl.float8e4nv)

    @triton.jit
    def _quantize_kernel(X, MEAN, SCALE_IN, OUT, SCALE_OUT,
                         stride_xb, stride_xl, stride_xh,
                         stride_ob, stride_ol, stride_oh, stride_od,
                         stride_sb, stride_sh, stride_sd,
                         H, L, N_BLK, pre_scale, qmax, min_scale,
                         HEAD_DIM: tl.constexpr, BLOCK_L: tl.constexpr, HAS_MEAN: tl.constexpr,
                         GIVEN_SCALE: tl.constexpr, TO_INT8: tl.constexpr, EMULATE_FP8: tl.constexpr):
        # one program: BLOCK_L tokens of one (batch, head); the tile stays in registers
        pid_l = tl.program_id(0)
        h = tl.program_id(1).to(tl.int64)
        b = tl.program_id(2).to(tl.int64)
        rows = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
        d = tl.arange(0, HEAD_DIM)
        mask = rows[:, None] < L
        x = tl.load(X + b * stride_xb + h * stride_xh + rows[:, None].to(tl.int64) * stride_xl + d[None, :],
                    mask=mask, other=0.0).to(tl.float32)
        if HAS_MEAN:
            x = x - tl.load(MEAN + (b * H + h) * HEAD_DIM + d)[None, :]
        x = tl.where(mask, x * pre_scale, 0.0)  # padded rows never raise the block's amax
        if GIVEN_SCALE:
            scale = tl.load(SCALE_IN + b * stride_sb + h * stride_sh + d * stride_sd)[None, :]
        else:
            scale = tl.maximum(tl.div_rn(tl.max(tl.max(tl.abs(x), axis=1), axis=0), qmax), min_scale)
            tl.store(SCALE_OUT + (b * H + h) * N_BLK + pid_l, scale)
        y = tl.div_rn(x, scale)
        if TO_INT8:
            y = y + tl.where(y >= 0, 0.5, -0.5)  # round half away from zero (the cast truncates)
            y = tl.minimum(tl.maximum(y, -qmax), qmax).to(tl.int8)
        else:
            y = _to_fp8(tl.minimum(tl.maximum(y, -qmax), qmax), EMULATE_FP8)
        tl.store(OUT + b * stride_ob + h * stride_oh + rows[:, None].to(tl.int64) * stride_ol + d[None, :] * stride_od,
                 y, mask=mask)

    @triton.jit
    def _attention_kernel(Q, K, V, QS, KS, VSCALE, VMEAN, OUT,
                          stride_qb, stride_ql, stride_qh, stride_kb, stride_kl, stride_kh,
                          stride_vb, stride_vl, stride_vh, stride_vd, stride_ob, stride_ol, stride_oh,
                          stride_qsb, stride_qsh, stride_qsm, stride_ksb, stride_ksh, stride_ksn,
                          H, LQ, LK,
                          HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                          QK_INT8: tl.constexpr, V_FP8: tl.constexpr, P_FP8: tl.constexpr,
                          EMULATE_FP8: tl.constexpr):
        # one program: BLOCK_M queries of one (batch, head), online softmax over key blocks (base 2:
        # the softmax scale times log2(e) was folded into Q before quantising)
        pid_m = tl.program_id(0)
        h = tl.program_id(1).to(tl.int64)
        b = tl.program_id(2).to(tl.int64)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_n = tl.arange(0, BLOCK_N)
        d = tl.arange(0, HEAD_DIM)
        q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None].to(tl.int64) * stride_ql + d[None, :],
                    mask=offs_m[:, None] < LQ, other=0.0)
        q_scale = tl.load(QS + b * stride_qsb + h * stride_qsh + pid_m * stride_qsm)
        k_base = K + b * stride_kb + h * stride_kh
        v_base = V + b * stride_vb + h * stride_vh
        ks_base = KS + b * stride_ksb + h * stride_ksh
        m_i = tl.full([BLOCK_M], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK_M], tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], tl.float32)
        for start in range(0, LK, BLOCK_N):
            keys = start + offs_n
            kmask = keys < LK
            k = tl.load(k_base + keys[None, :].to(tl.int64) * stride_kl + d[:, None], mask=kmask[None, :], other=0.0)
            if QK_INT8:
                s = tl.dot(q, k, out_dtype=tl.int32).to(tl.float32)
            else:
                s = tl.dot(q, k)
            s = s * (q_scale * tl.load(ks_base + (start // BLOCK_N) * stride_ksn))
            s = tl.where(kmask[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.math.exp2(s - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            # fp8 V comes transposed ([B, H, D, L16]: keys contiguous, stride_vl 1), 16-bit V as given
            v = tl.load(v_base + d[None, :] * stride_vd + keys[:, None].to(tl.int64) * stride_vl,
                        mask=kmask[:, None], other=0.0)
            if P_FP8:
                pv = tl.dot(_to_fp8(p * 448.0, EMULATE_FP8), v, max_num_imprecise_acc=BLOCK_N)
            else:
                pv = tl.dot(p.to(tl.float16), v.to(tl.float16))  # fp8 and bf16 values are exact in fp16
            acc = acc * alpha[:, None] + pv
            m_i = m_new
        if P_FP8:
            l_i = l_i * 448.0
        out = acc / l_i[:, None]
        if V_FP8:
            bh = (b * H + h) * HEAD_DIM
            out = out * tl.load(VSCALE + bh + d)[None, :] + tl.load(VMEAN + bh + d)[None, :]
        tl.store(OUT + b * stride_ob + h * stride_oh + offs_m[:, None].to(tl.int64) * stride_ol + d[None, :],
                 out.to(OUT.dtype.element_ty), mask=offs_m[:, None] < LQ)


def _launch_context(x: torch.Tensor):
    return torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext()


def _quantize_triton(x, fmt, block, mean, pre_scale, channel_scale, transpose):
    b, l, h, d = x.shape
    out_dtype = FP8_DTYPE if fmt == "fp8" else torch.int8
    if transpose:
        storage = torch.empty(b, h, d, -(-l // 16) * 16, dtype=out_dtype, device=x.device)
        out_strides = (storage.stride(0), 1, storage.stride(1), storage.stride(2))  # (b, l, h, d)
    else:
        storage = torch.empty(b, l, h, d, dtype=out_dtype, device=x.device)
        out_strides = (storage.stride(0), storage.stride(1), storage.stride(2), 1)
    block_l = block if channel_scale is None else QUANT_BLOCK_L
    n_blk = -(-l // block_l)
    if channel_scale is None:
        scale = torch.empty(b, h, n_blk, dtype=torch.float32, device=x.device)
        scale_in, s_strides = scale, (0, 0, 0)
    else:
        scale = channel_scale.float()
        scale_in, s_strides = scale, scale.stride()
    mean_arg = mean.float().contiguous() if mean is not None else scale
    with _launch_context(x):
        _quantize_kernel[(n_blk, h, b)](
            x, mean_arg, scale_in, storage, scale,
            x.stride(0), x.stride(1), x.stride(2), *out_strides, *s_strides,
            h, l, n_blk, float(pre_scale), FP8_MAX if fmt == "fp8" else INT8_MAX, MIN_SCALE,
            HEAD_DIM=d, BLOCK_L=block_l, HAS_MEAN=mean is not None, GIVEN_SCALE=channel_scale is not None,
            TO_INT8=fmt == "int8", EMULATE_FP8=emulate_fp8_cast(), num_warps=4,
        )
    return storage, scale


def quantize(x, fmt="fp8", block=None, mean=None, pre_scale=1.0, channel_scale=None, transpose=False):
    """Quantise x [B, L, H, D] (see the module docstring); Triton where it can run, else torch."""
    if x.stride(-1) != 1:
        x = x.contiguous()
    if block is None and channel_scale is None:
        raise ValueError("quantize: give a token block size or a channel_scale (per-head scales: compute "
                         "them first, e.g. with fp8_scaling.channel_stats, and pass them expanded to [B, H, D])")
    if triton is not None and (use_triton(x) or os.environ.get("TRITON_INTERPRET") == "1"):
        return _quantize_triton(x, fmt, block, mean, pre_scale, channel_scale, transpose)
    xq, scale = quantize_reference(x, fmt, block, mean, pre_scale, channel_scale)
    if transpose:
        l = x.shape[1]
        xt = xq.new_zeros(x.shape[0], x.shape[2], x.shape[3], -(-l // 16) * 16)
        xt[..., :l] = xq.permute(0, 2, 3, 1)
        xq = xt
    return xq, scale


def per_head(scale: torch.Tensor, head_dim: int) -> torch.Tensor:
    """[B, H] per-head scales viewed as [B, H, D] (stride 0 along D), the quantiser's channel_scale form."""
    return scale[..., None].expand(-1, -1, head_dim)


def _scale_strides(scale: torch.Tensor) -> tuple[int, int, int]:
    """(batch, head, block) strides of a [B, H] (per head: block stride 0) or [B, H, n] scale tensor."""
    return (scale.stride(0), scale.stride(1), 0) if scale.dim() == 2 else tuple(scale.stride())


@dataclasses.dataclass
class QuantizedQKV:
    """q / k / v quantised for _attention_kernel, with their scales (what quantize_qkv returns)."""
    q: torch.Tensor
    q_scale: torch.Tensor      # [B, H] or [B, H, ceil(Lq / BLOCK_M)]
    k: torch.Tensor
    k_scale: torch.Tensor      # [B, H] or [B, H, ceil(Lk / BLOCK_N)]
    v: torch.Tensor            # fp8 [B, H, D, L16] or the 16-bit input
    v_strides: tuple           # (b, l, h, d) strides of v
    v_scale: torch.Tensor      # [B, H, D] (fp8 V) or a placeholder
    v_mean: torch.Tensor
    recipe: Fp8Recipe
    block_m: int
    block_n: int


def quantize_qkv(q, k, v, recipe: Fp8Recipe, block_m: int, block_n: int) -> QuantizedQKV:
    """The quantisation passes of attention_fp8_triton (separate so benchmarks can time them apart)."""
    d = q.shape[-1]
    pre = LOG2E / math.sqrt(d)
    if recipe.q_block:
        qq, qs = quantize(q, recipe.qk, block=block_m, pre_scale=pre)
    else:
        qq, qs = quantize(q, recipe.qk, pre_scale=pre, channel_scale=per_head(head_scale(q, recipe.qk, pre_scale=pre), d))
        qs = qs[..., 0]  # per-head scales were expanded along D for the quantiser
    k_mean = k.mean(dim=1, dtype=torch.float32) if recipe.smooth_k else None
    if recipe.k_block:
        kq, ks = quantize(k, recipe.qk, block=block_n, mean=k_mean)
    else:
        kq, ks = quantize(k, recipe.qk, mean=k_mean, channel_scale=per_head(head_scale(k, recipe.qk, mean=k_mean), d))
        ks = ks[..., 0]
    if recipe.v_fp8:
        v_mean, vs = v_scales(v, recipe)
        vq, _ = quantize(v, "fp8", mean=v_mean if recipe.smooth_v else None, channel_scale=vs, transpose=True)
        v_strides = (vq.stride(0), 1, vq.stride(1), vq.stride(2))       # (b, l, h, d) of [B, H, D, L16]
        v_mean, vs = v_mean.contiguous(), vs.contiguous()
    else:
        vq = v if v.stride(-1) == 1 else v.contiguous()
        v_strides = (vq.stride(0), vq.stride(1), vq.stride(2), 1)
        v_mean = vs = torch.empty(1, dtype=torch.float32, device=q.device)  # unused without fp8 V
    return QuantizedQKV(qq, qs, kq, ks, vq, v_strides, vs, v_mean, recipe, block_m, block_n)


def attention_quantized(x: QuantizedQKV, out_dtype: torch.dtype, num_warps: int = 8, num_stages: int = 3):
    """Run _attention_kernel on quantize_qkv's output -> [B, Lq, H, D] in out_dtype."""
    b, lq, h, d = x.q.shape
    lk = x.k.shape[1]
    out = torch.empty(b, lq, h, d, dtype=out_dtype, device=x.q.device)
    with _launch_context(x.q):
        _attention_kernel[(-(-lq // x.block_m), h, b)](
            x.q, x.k, x.v, x.q_scale, x.k_scale, x.v_scale, x.v_mean, out,
            x.q.stride(0), x.q.stride(1), x.q.stride(2), x.k.stride(0), x.k.stride(1), x.k.stride(2),
            *x.v_strides, out.stride(0), out.stride(1), out.stride(2),
            *_scale_strides(x.q_scale), *_scale_strides(x.k_scale), h, lq, lk,
            HEAD_DIM=d, BLOCK_M=x.block_m, BLOCK_N=x.block_n, QK_INT8=x.recipe.qk == "int8",
            V_FP8=x.recipe.v_fp8, P_FP8=x.recipe.p_fp8, EMULATE_FP8=emulate_fp8_cast(),
            num_warps=num_warps, num_stages=num_stages,
        )
    return out


def attention_fp8_triton(q, k, v, recipe: Fp8Recipe = TRITON_INT8_RECIPE, config=None):
    """8-bit attention (see the module docstring); q [B, Lq, H, D], k / v [B, Lk, H, D] -> q.dtype."""
    if triton is None:
        raise RuntimeError("attention_fp8_triton needs the triton package (pip install triton)")
    reason = head_dim_reason(q.shape[-1])
    if reason:
        raise ValueError(f"attention_fp8_triton: {reason}")
    block_m, block_n, num_warps, num_stages = config or default_config()
    if recipe.q_block not in (None, block_m) or recipe.k_block not in (None, block_n):
        raise ValueError(f"attention_fp8_triton: recipe blocks (q {recipe.q_block}, k {recipe.k_block}) must equal "
                         f"the kernel tiles (BLOCK_M {block_m}, BLOCK_N {block_n}) or be None")
    return attention_quantized(quantize_qkv(q, k, v, recipe, block_m, block_n), q.dtype, num_warps, num_stages)
