"""Fused gated residual:  x + gate * y, fp32 math, result in x.dtype.

After self-attention and after the FFN a Wan block adds its branch output y scaled by a per-batch
gate (fp32, from the timestep modulation). In torch that is an fp32 copy of x, one of y, a
multiply and an add; the kernel reads x and y once and writes once (optionally into x).

Call signatures (x, y [B, L, dim], any float dtypes)
    out = gated_residual(x, gate, y, inplace=False)             dispatch
    out = gated_residual_reference(x, gate, y, inplace=False)   torch
    out = gated_residual_triton(x, gate, y, inplace=False)      Triton launcher
        gate: fp32 [B, 1, dim] (also [1, 1, dim], [B, dim], [dim], per token [B, L, dim]);
        out [B, L, dim] in x.dtype; inplace=True writes into x and returns it.
Numerics as diffusers' Wan block: (x.float() + y.float() * gate).to(x.dtype).
"""
import contextlib

import torch

from . import use_triton
from .modulation import as_token_view, check_tokens

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the reference below is always available
    triton = None


def _check(x, y):
    check_tokens(x)
    if y.shape != x.shape:
        raise ValueError(f"gated_residual: y {tuple(y.shape)} must have x's shape {tuple(x.shape)}")


def gated_residual_reference(x, gate, y, inplace: bool = False):
    _check(x, y)
    gate = as_token_view(gate, x, "gate")
    out = (x.float() + y.float() * gate.float()).to(x.dtype)
    return x.copy_(out) if inplace else out


if triton is not None:

    @triton.jit
    def _gated_residual_kernel(
        X, Y, GATE, OUT,
        seq_len, dim, stride_x_row, stride_y_row, stride_out_row, stride_gate_b, stride_gate_l,
        BLOCK: tl.constexpr,
    ):
        # Grid: (token rows, column blocks). Elementwise, so writing into X in place is safe.
        row = tl.program_id(0)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < dim
        b = row // seq_len
        t = row % seq_len
        x = tl.load(X + row * stride_x_row + cols, mask=mask, other=0.0).to(tl.float32)
        y = tl.load(Y + row * stride_y_row + cols, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(GATE + b * stride_gate_b + t * stride_gate_l + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(OUT + row * stride_out_row + cols, (x + g * y).to(OUT.dtype.element_ty), mask=mask)


def gated_residual_triton(x, gate, y, inplace: bool = False):
    if triton is None:
        raise RuntimeError("gated_residual_triton needs the triton package (pip install triton); "
                           "use gated_residual_reference on machines without it")
    _check(x, y)
    gate = as_token_view(gate, x, "gate")
    b, l, dim = x.shape
    if inplace and not (x.stride(-1) == 1 and x.stride(0) == l * x.stride(1)):
        # x's rows are not evenly strided: compute out of place, then copy back.
        return x.copy_(gated_residual_triton(x, gate, y))
    x2 = x.view(b * l, dim) if inplace else x.reshape(b * l, dim)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    y2 = y.reshape(b * l, dim)
    if y2.stride(-1) != 1:
        y2 = y2.contiguous()
    out2 = x2 if inplace else torch.empty(b * l, dim, dtype=x.dtype, device=x.device)
    if out2.numel() == 0:
        return x if inplace else out2.view(b, l, dim)
    block = min(triton.next_power_of_2(dim), 1024)
    grid = (b * l, triton.cdiv(dim, block))
    with torch.cuda.device(x.device) if x.is_cuda else contextlib.nullcontext():
        _gated_residual_kernel[grid](
            x2, y2, gate, out2,
            l, dim, x2.stride(0), y2.stride(0), out2.stride(0), gate.stride(0), gate.stride(1),
            BLOCK=block, num_warps=4,
        )
    return x if inplace else out2.view(b, l, dim)


def gated_residual(x, gate, y, inplace: bool = False):
    """x + gate * y in x.dtype; Triton on CUDA, torch elsewhere."""
    if triton is not None and use_triton(x, gate, y):
        return gated_residual_triton(x, gate, y, inplace)
    return gated_residual_reference(x, gate, y, inplace)
