"""3D rotary position embedding as in Wan2.1, with an explicit frame-position axis.

head_dim d is split into (frame, height, width) parts of d - 4*(d//6), 2*(d//6), 2*(d//6) dims
(44/42/42 for d = 128). Within a part of n dims, consecutive pairs (x[2j], x[2j+1]) are rotated as a
complex number by angle pos * theta^(-2j/n). Tokens are ordered (frame, row, col), frame outermost.

The multi-view modes reuse the frame axis for something else: the view-stream attention gives each
view its own "frame" index (SynCamMaster's freqs_mvs), ReCamMaster numbers target+source frames
0..2T-1. So the frame positions are an explicit list, not just range(T).

Tables are built in float64 (as the reference builds its complex table) and cached per shape, then
applied in float32: the rotation itself is exact to fp32 rounding, so nothing float64 runs per step.
"""
from __future__ import annotations

import functools

import torch


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    return head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6)


def _axis_angles(positions: torch.Tensor, dims: int, theta: float) -> torch.Tensor:
    inv_freq = 1.0 / torch.pow(torch.tensor(theta, dtype=torch.float64),
                               torch.arange(0, dims, 2, dtype=torch.float64) / dims)
    return positions.to(torch.float64)[:, None] * inv_freq[None, :]  # [n, dims/2]


@functools.lru_cache(maxsize=64)
def _rope_table_cached(frame_positions: tuple, h: int, w: int, head_dim: int, theta: float, device: str):
    fd, hd, wd = rope_axis_dims(head_dim)
    f = len(frame_positions)
    af = _axis_angles(torch.tensor(frame_positions), fd, theta)          # [f, fd/2]
    ah = _axis_angles(torch.arange(h), hd, theta)                        # [h, hd/2]
    aw = _axis_angles(torch.arange(w), wd, theta)                        # [w, wd/2]
    angles = torch.cat([
        af[:, None, None, :].expand(f, h, w, -1),
        ah[None, :, None, :].expand(f, h, w, -1),
        aw[None, None, :, :].expand(f, h, w, -1),
    ], dim=-1).reshape(f * h * w, head_dim // 2)
    return angles.cos().float().to(device), angles.sin().float().to(device)


def rope_table(frame_positions, h: int, w: int, head_dim: int, device="cpu", theta: float = 10000.0):
    """(cos, sin), each [f*h*w, head_dim/2] float32, for tokens ordered (frame, row, col)."""
    positions = tuple(int(p) for p in frame_positions)
    return _rope_table_cached(positions, int(h), int(w), int(head_dim), float(theta), str(torch.device(device)))


def rope_apply(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [N, L, H, D] by the table (cos, sin) [L, D/2]; math in fp32, result in x.dtype."""
    n, l, h, d = x.shape
    xf = x.float().reshape(n, l, h, d // 2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.stack([x0 * c - x1 * s, x0 * s + x1 * c], dim=-1)
    return out.reshape(n, l, h, d).to(x.dtype)
