"""3D rotary position embedding of Wan2.1 (pure torch; no Triton needed to import this file).

Numerics follow Wan2.1 `rope_params` / `rope_apply` (wan/modules/model.py):
  * head_dim d is split into a frame / height / width part of  d - 4*(d//6), 2*(d//6), 2*(d//6)
    dims (44 / 42 / 42 for d = 128); each part is a run of consecutive pairs (x[2i], x[2i+1]).
  * pair j of an axis part of n dims rotates by  angle = position * theta^(-2j / n), theta = 10000,
    i.e. (x[2i] + i x[2i+1]) * exp(i angle), as a complex multiply.
  * token (f, h, w) of an F x H x W grid sits at row-major index (f * H + h) * W + w (f outer); its
    frame-axis position is `frame_positions[f]` (0..F-1 for a plain video; the view index in the
    SynCamMaster view stream; 0..2T-1 for ReCamMaster's [target, source] concatenation).
Angles are computed in float64 as Wan does, then cos / sin are stored in float32.

Call signatures
    cos, sin = rope_cos_sin(frame_positions, height, width, head_dim, theta=10000.0, device=None)
        frame_positions: int F (means 0..F-1) or a sequence / 1-D tensor of F integer positions
        -> cos, sin: float32 [F * height * width, head_dim // 2], cached per argument set; treat as read-only
    out = rope_apply_reference(x, cos, sin)
        x [B, L, H, D] any float dtype, cos / sin [L, D // 2] -> [B, L, H, D] in x.dtype (fp32 math)
"""
from __future__ import annotations

import functools
from typing import Sequence

import torch

ROPE_THETA = 10000.0


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Head dims given to the (frame, height, width) axes: 44 / 42 / 42 for head_dim 128."""
    if head_dim % 2:
        raise ValueError(f"rope: head_dim must be even, got {head_dim}")
    return head_dim - 4 * (head_dim // 6), 2 * (head_dim // 6), 2 * (head_dim // 6)


def _axis_angles(positions: torch.Tensor, axis_dims: int, theta: float) -> torch.Tensor:
    """[P, axis_dims // 2] float64 angles: position * theta^(-2j / axis_dims)."""
    inv_freq = 1.0 / torch.pow(theta, torch.arange(0, axis_dims, 2, dtype=torch.float64) / axis_dims)
    return torch.outer(positions.to(torch.float64), inv_freq)


@functools.lru_cache(maxsize=64)
def _cos_sin_cached(frame_positions: tuple[int, ...], height: int, width: int, head_dim: int,
                    theta: float, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    # the tables outlive the call that made them: made under torch.inference_mode (sampling) they would be
    # inference tensors, which a later forward with autograd (training, in the same process) cannot save
    with torch.inference_mode(False):
        return _cos_sin(frame_positions, height, width, head_dim, theta, device)


def _cos_sin(frame_positions: tuple[int, ...], height: int, width: int, head_dim: int,
             theta: float, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    dims_f, dims_h, dims_w = rope_axis_dims(head_dim)
    n_f = len(frame_positions)
    ang_f = _axis_angles(torch.tensor(frame_positions), dims_f, theta)  # [F, dims_f / 2]
    ang_h = _axis_angles(torch.arange(height), dims_h, theta)          # [H, dims_h / 2]
    ang_w = _axis_angles(torch.arange(width), dims_w, theta)           # [W, dims_w / 2]
    grid = (n_f, height, width)
    angles = torch.cat([
        ang_f[:, None, None, :].expand(*grid, -1),
        ang_h[None, :, None, :].expand(*grid, -1),
        ang_w[None, None, :, :].expand(*grid, -1),
    ], dim=-1).reshape(n_f * height * width, head_dim // 2)
    cos = angles.cos().to(torch.float32).to(device)
    sin = angles.sin().to(torch.float32).to(device)
    return cos, sin


def rope_cos_sin(frame_positions: int | Sequence[int] | torch.Tensor, height: int, width: int, head_dim: int,
                 theta: float = ROPE_THETA, device: torch.device | str | None = None):
    """cos, sin tables [F * height * width, head_dim // 2] (float32) for an F x height x width token grid."""
    if isinstance(frame_positions, int):
        positions = tuple(range(frame_positions))
    elif isinstance(frame_positions, torch.Tensor):
        if frame_positions.dim() != 1:
            raise ValueError(f"rope_cos_sin: frame_positions must be 1-D, got shape {tuple(frame_positions.shape)}")
        positions = tuple(int(p) for p in frame_positions.tolist())
    else:
        positions = tuple(int(p) for p in frame_positions)
    if not positions or height < 1 or width < 1:
        raise ValueError(f"rope_cos_sin: empty grid (frames {len(positions)}, height {height}, width {width})")
    device = str(torch.device(device)) if device is not None else "cpu"
    return _cos_sin_cached(positions, int(height), int(width), int(head_dim), float(theta), device)


def rope_apply_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive pairs of x [B, L, H, D] by the per-token angles in cos / sin [L, D // 2]."""
    b, l, h, d = x.shape
    if cos.shape != (l, d // 2) or sin.shape != (l, d // 2):
        raise ValueError(f"rope: cos/sin must be [L, D/2] = [{l}, {d // 2}], got {tuple(cos.shape)} / {tuple(sin.shape)}; "
                         "build them with rope_cos_sin for this token grid")
    pairs = x.float().reshape(b, l, h, d // 2, 2)
    x_even, x_odd = pairs.unbind(-1)
    c = cos.float()[None, :, None, :]
    s = sin.float()[None, :, None, :]
    out = torch.stack([x_even * c - x_odd * s, x_even * s + x_odd * c], dim=-1)
    return out.reshape(b, l, h, d).to(x.dtype)
