"""Fused LayerNorm (no affine, fp32 math) + timestep modulation:  LN(x) * (1 + scale) + shift.

Every Wan block does this twice (before self-attention and before the FFN) and the head once.
In torch it is an fp32 copy of x, the norm, a multiply and an add, each a full pass over the
tokens; the kernel reads each row once and writes the modulated row once.

Call signatures (x [B, L, dim], any float dtype)
    out = layer_norm_modulate(x, shift, scale, eps=1e-6, out_dtype=None)            dispatch
    out = layer_norm_modulate_reference(x, shift, scale, eps=1e-6, out_dtype=None)  torch
    out = layer_norm_modulate_triton(x, shift, scale, eps=1e-6, out_dtype=None)     Triton launcher
        shift / scale: fp32 [B, 1, dim] (also [1, 1, dim], [B, dim], [dim] or per token [B, L, dim]);
        views such as (modulation + t_mod).chunk(6, dim=1)[i] are fine (no copy).
        out [B, L, dim] in out_dtype (default x.dtype).
Numerics as diffusers' Wan block: (LN(x.float()) * (1 + scale) + shift).to(x.dtype), one rounding.
"""
import contextlib

import torch
import torch.nn.functional as F

from . import use_triton
from .modulation import as_token_view, check_tokens, rows

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the reference below is always available
    triton = None


def layer_norm_modulate_reference(x, shift, scale, eps: float = 1e-6, out_dtype=None):
    check_tokens(x)
    shift = as_token_view(shift, x, "shift")
    scale = as_token_view(scale, x, "scale")
    y = F.layer_norm(x.float(), (x.shape[-1],), eps=eps)
    return (y * (1 + scale.float()) + shift.float()).to(out_dtype or x.dtype)


if triton is not None:

    @triton.jit
    def _layer_norm_modulate_kernel(
        X, SHIFT, SCALE, OUT,
        seq_len, dim, stride_x_row,
        stride_shift_b, stride_shift_l, stride_scale_b, stride_scale_l, eps,
        BLOCK: tl.constexpr,
    ):
        # One program per token row; batch / token index pick the modulation row (stride 0 = broadcast).
        row = tl.program_id(0)
        b = row // seq_len
        t = row % seq_len
        cols = tl.arange(0, BLOCK)
        mask = cols < dim
        x = tl.load(X + row * stride_x_row + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.sum(x, axis=0) / dim
        centred = tl.where(mask, x - mean, 0.0)
        var = tl.sum(centred * centred, axis=0) / dim  # biased, as nn.LayerNorm
        y = centred * tl.rsqrt(var + eps)
        shift = tl.load(SHIFT + b * stride_shift_b + t * stride_shift_l + cols, mask=mask, other=0.0).to(tl.float32)
        scale = tl.load(SCALE + b * stride_scale_b + t * stride_scale_l + cols, mask=mask, other=0.0).to(tl.float32)
        out = y * (1.0 + scale) + shift
        tl.store(OUT + row * dim + cols, out.to(OUT.dtype.element_ty), mask=mask)


def layer_norm_modulate_triton(x, shift, scale, eps: float = 1e-6, out_dtype=None):
    if triton is None:
        raise RuntimeError("layer_norm_modulate_triton needs the triton package (pip install triton); "
                           "use layer_norm_modulate_reference on machines without it")
    check_tokens(x)
    shift = as_token_view(shift, x, "shift")
    scale = as_token_view(scale, x, "scale")
    b, l, dim = x.shape
    x2 = rows(x)
    out = torch.empty(b, l, dim, dtype=out_dtype or x.dtype, device=x.device)
    if out.numel() == 0:
        return out
    block = triton.next_power_of_2(dim)
    num_warps = min(max(block // 512, 1), 16)
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        _layer_norm_modulate_kernel[(b * l,)](
            x2, shift, scale, out,
            l, dim, x2.stride(0),
            shift.stride(0), shift.stride(1), scale.stride(0), scale.stride(1), eps,
            BLOCK=block, num_warps=num_warps,
        )
    return out


def layer_norm_modulate(x, shift, scale, eps: float = 1e-6, out_dtype=None):
    """LN(x) * (1 + scale) + shift; Triton on CUDA, torch elsewhere."""
    if triton is not None and use_triton(x, shift, scale):
        return layer_norm_modulate_triton(x, shift, scale, eps, out_dtype)
    return layer_norm_modulate_reference(x, shift, scale, eps, out_dtype)
