"""The scaling that makes 8-bit attention accurate, in plain torch: quantisers, smoothing, and a
simulated 8-bit attention that the FA3-fp8 and Triton paths are measured against.

Why scaling at all: casting bf16 q / k / v straight to fp8 e4m3 lost 5.4 % of the output on the
H200 (issue 14). What SageAttention 2 (arXiv 2411.10958) does, and what this module implements:
  * K smoothing: subtract the per-channel mean of K over the keys, k' = k - mean_k. Every score of
    a query row shifts by the same q . mean_k, which softmax removes, so the attention is unchanged;
    the quantised range no longer spends its levels on a channel offset shared by all keys
    (Wan's keys have large ones after RMSNorm).
  * Q / K scales per (batch, head) or per block of tokens (Q: BLOCK_M rows, K: BLOCK_N rows,
    matching the kernel's tiles): x = xq * scale, scale = amax|x| / qmax. The softmax scale times
    log2(e) is folded into Q before quantising, so the kernel's scores are base-2 logits.
  * V: per-channel scales (a channel's scale multiplies the output's channel, applied once after
    P V), and optional V smoothing: softmax rows sum to one, so P V = P (V - mean_v) + mean_v.
  * P in fp8: p in [0, 1] is multiplied by 448 (the e4m3 maximum) before the cast; the row sum uses
    the unquantised p, as in SageAttention.
Rounding: fp8 rounds to nearest even (torch's and Triton's cast), int8 rounds half away from zero
(y + 0.5 sign(y), truncated) in both the reference and the kernel, so they agree bit for bit.

Call signatures (x [B, L, H, D]; scales float32)
    quantize_reference(x, fmt, block=None, mean=None, pre_scale=1.0, channel_scale=None) -> (xq, scale)
        fmt "fp8" | "int8"; block=None: one scale per (b, h) -> [B, H]; block=n: per n tokens -> [B, H, ceil(L/n)];
        channel_scale [B, H, D] given: those scales are used (returned as given).
    dequantize_reference(xq, scale, block=None) -> float32 [B, L, H, D]
    channel_stats(x) -> (mean, amin, amax), each float32 [B, H, D] over the tokens
    smoothed_channel_amax(mean, amin, amax) -> max |x - mean| per channel, exactly, without a pass over x
    head_scale(x, fmt, mean=None, pre_scale=1.0) -> float32 [B, H]: the per-(batch, head) amax scale
    v_scales(v, recipe) -> (mean, scale), float32 [B, H, D] each: V's smoothing mean and channel scales
    simulated_attention(q, k, v, recipe) -> float32 [B, Lq, H, D]: the recipe's quantisation with exact
        (fp64) dot products; what the kernels compute up to their accumulation order.
"""
from __future__ import annotations

import dataclasses
import math

import torch

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0   # largest finite e4m3fn value
INT8_MAX = 127.0
LOG2E = 1.4426950408889634
MIN_SCALE = 1e-12  # an all-zero block gets this scale (and zeros), never a division by zero
FORMATS = ("fp8", "int8")


@dataclasses.dataclass(frozen=True)
class Fp8Recipe:
    """How q / k / v / p are quantised for one 8-bit attention.

    qk           "fp8" (e4m3) or "int8" for Q and K (P V is always fp8 e4m3 when p_fp8)
    q_block      tokens per Q scale (None: one scale per (batch, head), FA3's descale form)
    k_block      tokens per K scale (None: per (batch, head))
    smooth_k     subtract the per-channel key mean (exact for softmax)
    smooth_v     subtract the per-channel value mean and add it to the output (exact)
    v_fp8        V in e4m3 (False: V stays 16-bit, P in fp16, an fp16 P V product: slower,
                 and free of V's 3-bit-mantissa rounding, the largest error term on random data)
    v_per_channel  one V scale per channel (else one per (batch, head))
    p_fp8        P quantised to e4m3 (x448) for an fp8 P V product; False: P in fp16 (with fp8 V,
                 V's values widened to fp16, exactly)
    """
    qk: str = "fp8"
    q_block: int | None = None
    k_block: int | None = None
    smooth_k: bool = True
    smooth_v: bool = True
    v_fp8: bool = True
    v_per_channel: bool = True
    p_fp8: bool = True

    def __post_init__(self):
        if self.qk not in FORMATS:
            raise ValueError(f"Fp8Recipe: qk must be one of {FORMATS}, got {self.qk!r}")
        if self.p_fp8 and not self.v_fp8:
            raise ValueError("Fp8Recipe: p_fp8 needs v_fp8 (an fp8 P V product takes both operands in fp8)")


# The unscaled cast measured in issue 14 (no smoothing, unit scales are not expressible here:
# amax scaling per (batch, head) is the closest, and equal to it up to fp8's exponent range).
PLAIN_PER_HEAD = Fp8Recipe(qk="fp8", smooth_k=False, smooth_v=False, v_per_channel=False)
FA3_RECIPE = Fp8Recipe(qk="fp8")  # FA3 takes one descale per (batch, head) for q and k
TRITON_INT8_RECIPE = Fp8Recipe(qk="int8", q_block=128, k_block=64)
TRITON_FP8_RECIPE = Fp8Recipe(qk="fp8", q_block=128, k_block=64)
# SageAttention-1 style: int8 Q K^T, 16-bit P V (no V rounding)
TRITON_INT8_FP16PV_RECIPE = Fp8Recipe(qk="int8", q_block=128, k_block=64, smooth_v=False, v_fp8=False, p_fp8=False)


def _qmax(fmt: str) -> float:
    if fmt not in FORMATS:
        raise ValueError(f"quantize: fmt must be one of {FORMATS}, got {fmt!r}")
    return FP8_MAX if fmt == "fp8" else INT8_MAX


def cast_scaled(y: torch.Tensor, fmt: str) -> torch.Tensor:
    """y (already divided by its scale, float32) -> fp8 (round to nearest even) or int8 (half away from 0)."""
    if fmt == "fp8":
        return y.clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)
    return torch.trunc(y + 0.5 * torch.sign(y)).clamp(-INT8_MAX, INT8_MAX).to(torch.int8)


def _blocked(x: torch.Tensor, block: int) -> torch.Tensor:
    """[B, L, H, D] -> [B, nblk, block, H, D], zero-padded along L (zeros never raise an amax)."""
    b, l, h, d = x.shape
    nblk = -(-l // block)
    if nblk * block != l:
        x = torch.cat([x, x.new_zeros(b, nblk * block - l, h, d)], dim=1)
    return x.reshape(b, nblk, block, h, d)


def quantize_reference(x, fmt="fp8", block=None, mean=None, pre_scale=1.0, channel_scale=None):
    """(x - mean) * pre_scale quantised to `fmt` with amax scaling; see the module docstring."""
    qmax = _qmax(fmt)
    xf = x.float()
    if mean is not None:
        xf = xf - mean.float()[:, None]  # mean [B, H, D]
    xf = xf * pre_scale
    if channel_scale is not None:
        scale = channel_scale.float()
        return cast_scaled(xf / scale[:, None], fmt), scale
    if block is None:
        scale = (xf.abs().amax(dim=(1, 3)) / qmax).clamp(min=MIN_SCALE)  # [B, H]
        return cast_scaled(xf / scale[:, None, :, None], fmt), scale
    b, l, h, d = x.shape
    blocks = _blocked(xf, block)                                                  # [B, n, block, H, D]
    scale = (blocks.abs().amax(dim=(2, 4)) / qmax).clamp(min=MIN_SCALE)           # [B, n, H]
    q = cast_scaled(blocks / scale[:, :, None, :, None], fmt).reshape(b, -1, h, d)[:, :l]
    return q, scale.transpose(1, 2).contiguous()                                  # [B, H, n]


def dequantize_reference(xq, scale, block=None):
    """float32 x ~= xq * scale for the scale layouts of quantize_reference."""
    xf = xq.float()
    if block is None and scale.dim() == 3:  # per channel [B, H, D]
        return xf * scale[:, None]
    if block is None:                       # per (batch, head) [B, H]
        return xf * scale[:, None, :, None]
    per_token = scale.repeat_interleave(block, dim=2)[:, :, :xq.shape[1]]       # [B, H, L]
    return xf * per_token.transpose(1, 2)[..., None]


def channel_stats(x: torch.Tensor):
    """Per-channel mean, min and max over the tokens: float32 [B, H, D] each (two passes over x)."""
    mean = x.mean(dim=1, dtype=torch.float32)
    amin, amax = torch.aminmax(x, dim=1)
    return mean, amin.float(), amax.float()


def smoothed_channel_amax(mean, amin, amax):
    """max_l |x[l] - mean| per channel, exactly: the extreme deviation is at the min or at the max."""
    return torch.maximum(amax - mean, mean - amin)


def head_scale(x: torch.Tensor, fmt: str, mean=None, pre_scale: float = 1.0) -> torch.Tensor:
    """One amax scale per (batch, head) for (x - mean) * pre_scale: float32 [B, H].

    From per-channel min / max (one pass, no temporary of x's size); equal bit for bit to the
    per-head scale of quantize_reference (the extreme deviation sits at a channel's min or max).
    """
    lo, hi = (t.float() for t in torch.aminmax(x, dim=1))
    dev = smoothed_channel_amax(mean.float(), lo, hi) if mean is not None else torch.maximum(hi.abs(), lo.abs())
    return (dev.amax(dim=-1) * abs(pre_scale) / _qmax(fmt)).clamp(min=MIN_SCALE)


def v_scales(v: torch.Tensor, recipe: Fp8Recipe):
    """(mean [B, H, D] float32 (zeros without smoothing), per-channel scale [B, H, D]) for V in fp8.

    Without v_per_channel every channel of a head gets the head's scale (the same [B, H, D] shape).
    """
    mean, amin, amax = channel_stats(v)
    if recipe.smooth_v:
        dev = smoothed_channel_amax(mean, amin, amax)
    else:
        mean = torch.zeros_like(mean)
        dev = torch.maximum(amax.abs(), amin.abs())
    if not recipe.v_per_channel:
        dev = dev.amax(dim=-1, keepdim=True).expand_as(dev)
    return mean, (dev / FP8_MAX).clamp(min=MIN_SCALE)


def simulated_attention(q, k, v, recipe: Fp8Recipe):
    """The recipe's 8-bit attention with exact products (float64 math); float32 [B, Lq, H, D].

    Dense [Lq, Lk] scores: for tests and small benchmarks only.
    """
    d = q.shape[-1]
    pre = LOG2E / math.sqrt(d)  # scores in base-2 logits
    qq, qs = quantize_reference(q, recipe.qk, recipe.q_block, pre_scale=pre)
    k_mean = k.mean(dim=1, dtype=torch.float32) if recipe.smooth_k else None
    kq, ks = quantize_reference(k, recipe.qk, recipe.k_block, mean=k_mean)
    if recipe.v_fp8:
        v_mean, vs = v_scales(v, recipe)
        vq, _ = quantize_reference(v, "fp8", mean=v_mean, channel_scale=vs)
    else:  # 16-bit V: the kernel widens it to fp16 (exact for bf16 values in fp16's normal range)
        vq = v.to(torch.float16)
        v_mean, vs = torch.zeros_like(vq[:, 0], dtype=torch.float32), torch.ones_like(vq[:, 0], dtype=torch.float32)
    qd = dequantize_reference(qq, qs, recipe.q_block).double().transpose(1, 2)   # [B, H, Lq, D]
    kd = dequantize_reference(kq, ks, recipe.k_block).double().transpose(1, 2)
    s = qd @ kd.transpose(-1, -2)
    p = torch.exp2(s - s.amax(dim=-1, keepdim=True))
    denom = p.sum(dim=-1, keepdim=True)
    if recipe.p_fp8 and recipe.v_fp8:
        p = (p.float() * FP8_MAX).to(FP8_DTYPE).double()
        denom = denom * FP8_MAX
    else:
        p = p.to(torch.float16).double()
    out = (p @ vq.double().transpose(1, 2)) / denom                              # [B, H, Lq, D] in V's units
    out = out.transpose(1, 2) * vs.double()[:, None] + v_mean.double()[:, None]
    return out.float()


def error_stats(out: torch.Tensor, ref: torch.Tensor) -> dict:
    """rel_l2 = ||out - ref|| / ||ref||, max_abs, psnr_db = 10 log10(max|ref|^2 / mse) (float64)."""
    o, r = out.double(), ref.double()
    err = o - r
    mse = float(err.pow(2).mean())
    peak = float(r.abs().max()) ** 2
    return {
        "rel_l2": float(err.norm() / r.norm().clamp(min=1e-300)),
        "max_abs": float(err.abs().max()),
        "psnr_db": float("inf") if mse == 0 else 10.0 * math.log10(peak / mse),
    }
