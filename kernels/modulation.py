"""Shape handling shared by the modulation kernels: per-batch (or per-token) vectors as [B, L, dim] views.

Wan's timestep modulation gives shift / scale / gate as [B, 1, dim] fp32 slices of a [B, 6, dim]
tensor (so their batch stride is 6 * dim). Expanding them to [B, L, dim] gives a zero token stride,
which both the torch references (broadcasting) and the Triton kernels (explicit strides) use as is,
without copying.
"""
import torch


def as_token_view(t: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    """`t` ([B or 1, 1 or L, dim], [B, dim] or [dim]) expanded to x's [B, L, dim], last dim contiguous."""
    b, l, dim = x.shape
    if t.dim() == 1:
        t = t[None, None]
    elif t.dim() == 2:
        t = t[:, None]
    ok = t.dim() == 3 and t.shape[0] in (1, b) and t.shape[1] in (1, l) and t.shape[2] == dim
    if not ok:
        raise ValueError(f"{name} must broadcast to x's [B, L, dim] = [{b}, {l}, {dim}] "
                         f"(e.g. [{b}, 1, {dim}]), got shape {tuple(t.shape)}")
    if t.device != x.device:
        raise ValueError(f"{name} is on {t.device} but x is on {x.device}; move it to x's device")
    if t.stride(-1) != 1:
        t = t.contiguous()
    return t.expand(b, l, dim)


def check_tokens(x: torch.Tensor, name: str = "x") -> None:
    if x.dim() != 3:
        raise ValueError(f"{name} must be tokens [B, L, dim], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating point tensor, got {x.dtype}")


def rows(x: torch.Tensor) -> torch.Tensor:
    """x [B, L, dim] as a [B*L, dim] view with unit column stride (copies only when it must)."""
    x2 = x.reshape(-1, x.shape[-1])
    return x2 if x2.stride(-1) == 1 else x2.contiguous()
