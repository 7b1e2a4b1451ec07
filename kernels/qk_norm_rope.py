"""Fused q/k RMSNorm (over the full model width) + Wan2.1 3D RoPE, in one pass over the tokens.

In a Wan self-attention block q = RMSNorm(q_proj(x)) over all `dim` channels, weight [dim], then
q is viewed as [B, L, H, D] and each head is rotated by the 3D RoPE (see rope.py). Done in torch
that is four reads and writes of q; the kernel reads each token's row once, normalises it in fp32,
rotates its channel pairs and writes [B, L, H, D] once.

Call signatures (x [B, L, dim] with dim = num_heads * head_dim, any float dtype)
    out = qk_norm_rope(x, weight, cos, sin, num_heads, eps=1e-6)            dispatch (Triton on CUDA)
    out = qk_norm_rope_reference(x, weight, cos, sin, num_heads, eps=1e-6)  torch, fp32 math
    out = qk_norm_rope_triton(x, weight, cos, sin, num_heads, eps=1e-6)     Triton launcher
        weight [dim]; cos / sin [L, head_dim // 2] float32 from rope.rope_cos_sin, or both None
        for RMSNorm only (cross-attention); out [B, L, num_heads, head_dim] in x.dtype.
Numerics: normalise, multiply by the weight and rotate all in fp32, round to x.dtype once (Wan
rounds after the norm too; the difference is within one bf16 ulp).
"""
import contextlib

import torch

from . import use_triton
from .modulation import check_tokens, rows
from .rope import rope_apply_reference

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the reference below is always available
    triton = None


def _check(x, weight, cos, sin, num_heads):
    check_tokens(x)
    b, l, dim = x.shape
    if dim % num_heads or (dim // num_heads) % 2:
        raise ValueError(f"qk_norm_rope: width {dim} must split into num_heads={num_heads} heads of even size")
    if weight.shape != (dim,):
        raise ValueError(f"qk_norm_rope: weight must be [dim] = [{dim}], got {tuple(weight.shape)}")
    if (cos is None) != (sin is None):
        raise ValueError("qk_norm_rope: pass both cos and sin (RoPE) or neither (RMSNorm only)")
    half = dim // num_heads // 2
    if cos is not None and (cos.shape != (l, half) or sin.shape != (l, half)):
        raise ValueError(f"qk_norm_rope: cos/sin must be [L, head_dim/2] = [{l}, {half}], got "
                         f"{tuple(cos.shape)} / {tuple(sin.shape)}; build them with rope_cos_sin for this grid")


def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """RMSNorm over the last dim in fp32, times weight; returns fp32 (callers round once at the end)."""
    xf = x.float()
    return xf * torch.rsqrt(xf.pow(2).mean(dim=-1, keepdim=True) + eps) * weight.float()


def qk_norm_rope_reference(x, weight, cos, sin, num_heads: int, eps: float = 1e-6):
    _check(x, weight, cos, sin, num_heads)
    b, l, dim = x.shape
    y = rms_norm_reference(x, weight, eps).view(b, l, num_heads, dim // num_heads)
    if cos is not None:
        y = rope_apply_reference(y, cos, sin)  # y is fp32, so this stays fp32
    return y.to(x.dtype)


if triton is not None:

    @triton.jit
    def _qk_norm_rope_kernel(
        X, W, COS, SIN, OUT,
        seq_len, n_pairs, half_head,        # n_pairs = dim / 2, half_head = head_dim / 2
        stride_x_row, stride_cos_row, eps,
        HAS_ROPE: tl.constexpr, BLOCK_PAIRS: tl.constexpr,
    ):
        # One program per token: the whole width in registers as (even, odd) channel pairs.
        row = tl.program_id(0)
        pair = tl.arange(0, BLOCK_PAIRS)
        mask = pair < n_pairs
        x_row = X + row * stride_x_row
        x_even = tl.load(x_row + 2 * pair, mask=mask, other=0.0).to(tl.float32)
        x_odd = tl.load(x_row + 2 * pair + 1, mask=mask, other=0.0).to(tl.float32)
        # RMSNorm over the full width (both halves of every pair).
        mean_sq = (tl.sum(x_even * x_even, axis=0) + tl.sum(x_odd * x_odd, axis=0)) / (2 * n_pairs)
        rstd = tl.rsqrt(mean_sq + eps)
        y_even = x_even * rstd * tl.load(W + 2 * pair, mask=mask, other=0.0).to(tl.float32)
        y_odd = x_odd * rstd * tl.load(W + 2 * pair + 1, mask=mask, other=0.0).to(tl.float32)
        if HAS_ROPE:
            # Pair j of every head rotates by the angle of table column j at this token.
            table = (row % seq_len) * stride_cos_row + pair % half_head
            c = tl.load(COS + table, mask=mask, other=1.0)
            s = tl.load(SIN + table, mask=mask, other=0.0)
            r_even = y_even * c - y_odd * s
            r_odd = y_even * s + y_odd * c
        else:
            r_even = y_even
            r_odd = y_odd
        out_row = OUT + row * 2 * n_pairs
        tl.store(out_row + 2 * pair, r_even.to(OUT.dtype.element_ty), mask=mask)
        tl.store(out_row + 2 * pair + 1, r_odd.to(OUT.dtype.element_ty), mask=mask)


def qk_norm_rope_triton(x, weight, cos, sin, num_heads: int, eps: float = 1e-6):
    if triton is None:
        raise RuntimeError("qk_norm_rope_triton needs the triton package (pip install triton); "
                           "use qk_norm_rope_reference on machines without it")
    _check(x, weight, cos, sin, num_heads)
    b, l, dim = x.shape
    head_dim = dim // num_heads
    x2 = rows(x)
    weight = weight.contiguous()
    has_rope = cos is not None
    if has_rope:
        cos = cos.to(device=x.device, dtype=torch.float32).contiguous()
        sin = sin.to(device=x.device, dtype=torch.float32).contiguous()
    else:
        cos = sin = weight  # never read (HAS_ROPE is a compile-time False)
    out = torch.empty(b, l, num_heads, head_dim, dtype=x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    block_pairs = triton.next_power_of_2(dim // 2)
    num_warps = min(max(block_pairs // 256, 1), 8)
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        _qk_norm_rope_kernel[(b * l,)](
            x2, weight, cos, sin, out,
            l, dim // 2, head_dim // 2,
            x2.stride(0), cos.stride(0) if has_rope else 0, eps,
            HAS_ROPE=has_rope, BLOCK_PAIRS=block_pairs, num_warps=num_warps,
        )
    return out


def qk_norm_rope(x, weight, cos, sin, num_heads: int, eps: float = 1e-6):
    """RMSNorm(x) * weight, viewed as heads and rotated by RoPE; Triton on CUDA, torch elsewhere."""
    if triton is not None and use_triton(x, weight):
        return qk_norm_rope_triton(x, weight, cos, sin, num_heads, eps)
    return qk_norm_rope_reference(x, weight, cos, sin, num_heads, eps)

