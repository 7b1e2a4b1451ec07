"""Per-row fp8 quantisation of a Linear layer's input, in one pass (the fp8 matmul path, model/fp8.py).

torch._scaled_mm needs the activations in fp8 with a scale per row (token). In torch that is
abs -> amax -> divide -> clamp -> cast: five passes over the [tokens, features] input per Linear,
which on an H200 cost more than the fp8 GEMM saves. The kernel reads each row once, keeps it in
registers, and writes the fp8 row and its scale. Optionally it applies the tanh GELU first, so the
FFN's second Linear quantises GELU(hidden) without the GELU's own pass over the largest tensor.

Call signatures (x2 [M, K], any float dtype; fp8_dtype float8_e4m3fn or float8_e5m2)
    xq, scale = quantize_rows_fp8(x2, fp8_dtype, gelu=False)             dispatch
    xq, scale = quantize_rows_fp8_reference(x2, fp8_dtype, gelu=False)   torch
    xq, scale = quantize_rows_fp8_triton(x2, fp8_dtype, gelu=False)      Triton launcher
        xq [M, K] fp8, scale float32 [M, 1] with x2 (or GELU(x2)) ~= xq * scale.
Numerics: fp32 math; scale = max(rowmax|x| / fp8_max, 1e-12); xq = clamp(x / scale, +-fp8_max)
rounded to nearest. The Triton kernel divides with the GPU's fast fp32 division, so a value at an
fp8 rounding tie may land one fp8 step away from the reference (tests allow one step).
"""
import contextlib

import torch

from . import use_triton

try:
    import triton
    import triton.language as tl
except ImportError:  # Triton is optional: the reference below is always available
    triton = None

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
MIN_SCALE = 1e-12  # an all-zero row gets this scale (and zeros), never a division by zero
_GELU_C = 0.7978845608028654  # sqrt(2 / pi)


def _check(x2, fp8_dtype):
    if x2.dim() != 2:
        raise ValueError(f"quantize_rows_fp8: x2 must be [rows, features], got shape {tuple(x2.shape)}; "
                         "reshape(-1, features) first")
    if fp8_dtype not in FP8_DTYPES:
        raise ValueError(f"quantize_rows_fp8: fp8_dtype must be one of {FP8_DTYPES}, got {fp8_dtype}")


def quantize_rows_fp8_reference(x2: torch.Tensor, fp8_dtype=torch.float8_e4m3fn, gelu: bool = False):
    _check(x2, fp8_dtype)
    fmax = float(torch.finfo(fp8_dtype).max)
    xf = x2.float()
    if gelu:
        xf = torch.nn.functional.gelu(xf, approximate="tanh")
    scale = (xf.abs().amax(dim=1, keepdim=True) / fmax).clamp(min=MIN_SCALE)
    return (xf / scale).clamp(-fmax, fmax).to(fp8_dtype), scale


if triton is not None:

    @triton.jit
    def _quantize_rows_fp8_kernel(X, OUT, SCALE, n_cols, stride_x_row, stride_out_row, fp8_max, min_scale,
                                  GELU: tl.constexpr, BLOCK: tl.constexpr):
        # One program per row; the whole row stays in registers between the max and the cast.
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < n_cols
        x = tl.load(X + row * stride_x_row + cols, mask=mask, other=0.0).to(tl.float32)
        if GELU:
            u = 0.7978845608028654 * (x + 0.044715 * x * x * x)
            u = tl.minimum(tl.maximum(u, -40.0), 40.0)  # tanh is +-1 to fp32 precision there; no exp overflow
            # tanh(u) = 1 - 2 / (exp(2u) + 1): exact limits +-1 when exp over/underflows
            x = 0.5 * x * (2.0 - 2.0 / (tl.exp(2.0 * u) + 1.0))
        amax = tl.max(tl.where(mask, tl.abs(x), 0.0), axis=0)
        scale = tl.maximum(amax / fp8_max, min_scale)
        q = tl.minimum(tl.maximum(x / scale, -fp8_max), fp8_max)
        tl.store(OUT + row * stride_out_row + cols, q.to(OUT.dtype.element_ty), mask=mask)
        tl.store(SCALE + row, scale)


def quantize_rows_fp8_triton(x2: torch.Tensor, fp8_dtype=torch.float8_e4m3fn, gelu: bool = False):
    if triton is None:
        raise RuntimeError("quantize_rows_fp8_triton needs the triton package (pip install triton); "
                           "use quantize_rows_fp8_reference on machines without it")
    _check(x2, fp8_dtype)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m, k = x2.shape
    out = torch.empty(m, k, dtype=fp8_dtype, device=x2.device)
    scale = torch.empty(m, 1, dtype=torch.float32, device=x2.device)
    if m == 0 or k == 0:
        return out, scale.fill_(MIN_SCALE)
    block = triton.next_power_of_2(k)
    num_warps = 4 if block <= 2048 else (8 if block <= 8192 else 16)
    with torch.cuda.device(x2.device) if x2.is_cuda else contextlib.nullcontext():
        _quantize_rows_fp8_kernel[(m,)](
            x2, out, scale, k, x2.stride(0), out.stride(0), float(torch.finfo(fp8_dtype).max), MIN_SCALE,
            GELU=bool(gelu), BLOCK=block, num_warps=num_warps,
        )
    return out, scale


def quantize_rows_fp8(x2: torch.Tensor, fp8_dtype=torch.float8_e4m3fn, gelu: bool = False):
    """(x2 or GELU(x2)) -> (fp8 rows, float32 [M, 1] scales); Triton on CUDA, torch elsewhere."""
    if triton is not None and use_triton(x2):
        return quantize_rows_fp8_triton(x2, fp8_dtype, gelu)
    return quantize_rows_fp8_reference(x2, fp8_dtype, gelu)
