"""One GridDiT block and the row layouts (streams) the grid modes run it on (docs/ARCHITECTURE.md §3 The model).

A block runs on *rows* of tokens [N, L, d]; which tokens form a row is the mode's choice:
    time stream  [(B V), (T h w), d]   a view's whole video (the canonical layout between blocks)
    view stream  [(B T), (V h w), d]   every view at one latent frame
    whole grid   [B, (V T h w), d]     the time-stream rows of a batch element back to back (a view, no
                                       copy): the fused mode's self-attention row
Rows are independent in every step of a block (attention stays inside a row), which is what row
chunking (`row_chunks`) relies on.

Equations of the Wan block (docs/ARCHITECTURE.md §3.1 Base block), x the float32 residual stream:
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = modulation + t_mod
    1. x = x + gate_msa * self_attn(LN(x) * (1 + scale_msa) + shift_msa, rope)
    2. x = x + cross_attn(norm3(x), text)
    3. x = x + gate_mlp * ffn(LN(x) * (1 + scale_mlp) + shift_mlp)
Precision: LayerNorm, modulation, gates and the residual in float32 (fused kernels on CUDA, their torch
references elsewhere); linear layers and attention in the model dtype.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels.gated_residual import gated_residual
from ..kernels.layernorm_modulate import layer_norm_modulate
from .config import DiTConfig
from .layers import CrossAttention, LayerNorm32, SelfAttention, TextKV
from .relative_pose_attention import ViewPoses


# ---------------------------------------------------------------------------------------------
# row layouts
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TokenGrid:
    """Sizes of a patchified latent grid: batch, views, latent frames and token rows / columns per frame."""

    batch: int
    views: int
    frames: int
    height: int
    width: int

    @property
    def hw(self) -> int:
        return self.height * self.width


def to_view_stream(x, grid: TokenGrid):
    """[(B V), (T hw), d] -> [(B T), (V hw), d]"""
    b, v, t, hw, d = grid.batch, grid.views, grid.frames, grid.hw, x.shape[-1]
    return x.reshape(b, v, t, hw, d).transpose(1, 2).reshape(b * t, v * hw, d)


def from_view_stream(x, grid: TokenGrid):
    """[(B T), (V hw), d] -> [(B V), (T hw), d]"""
    b, v, t, hw, d = grid.batch, grid.views, grid.frames, grid.hw, x.shape[-1]
    return x.reshape(b, t, v, hw, d).transpose(1, 2).reshape(b * v, t * hw, d)


def per_row(t, rows_per_item: int):
    """A per-batch-element tensor [B, ...] repeated for each of its rows [(B rows), ...]."""
    return t.repeat_interleave(rows_per_item, 0) if rows_per_item > 1 else t


# ---------------------------------------------------------------------------------------------
# the block
# ---------------------------------------------------------------------------------------------
class Modulation(NamedTuple):
    """The timestep modulation of one block, float32, one [N, 1, d] slice per row (or per batch element)."""

    shift_msa: torch.Tensor
    scale_msa: torch.Tensor
    gate_msa: torch.Tensor
    shift_mlp: torch.Tensor
    scale_mlp: torch.Tensor
    gate_mlp: torch.Tensor


_GELU_EPILOGUE: dict = {}


def gelu_epilogue_is_tanh(device) -> bool:
    """Whether torch._addmm_activation(use_gelu=True) computes the tanh GELU on `device`.

    cuBLASLt's GELU epilogue is the tanh approximation Wan uses; other builds (torch's CPU
    kernel uses the erf GELU) must not take the fused path. Checked once per device in fp32 on
    values where the two GELUs differ by ~1e-3.
    """
    key = str(device)
    if key not in _GELU_EPILOGUE:
        with torch.no_grad():
            x = torch.linspace(-3, 3, 64 * 64, device=device).view(64, 64)
            eye = torch.eye(64, device=device)
            got = torch._addmm_activation(torch.zeros(64, device=device), x, eye, use_gelu=True)
            d_tanh = (got - F.gelu(x, approximate="tanh")).abs().max().item()
            d_erf = (got - F.gelu(x)).abs().max().item()
        _GELU_EPILOGUE[key] = d_tanh < 1e-5 < d_erf
    return _GELU_EPILOGUE[key]


class GridDiTBlock(nn.Module):
    """A Wan2.1 block (+ SynCamMaster / ReCamMaster modules), run on rows of any stream (module docstring)."""

    # memory policies, set for all blocks by GridDiT.set_row_chunks / set_ffn_chunk; None = off
    row_chunks: Optional[int] = None  # at most this many rows go through a step at a time
    ffn_chunk: Optional[int] = None   # at most this many tokens go through the FFN at a time

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim, eps = cfg.dim, cfg.eps
        self.self_attn = SelfAttention(dim, cfg.num_heads, eps)
        self.cross_attn = CrossAttention(dim, cfg.num_heads, eps)
        self.norm1 = LayerNorm32(dim, eps=eps, elementwise_affine=False)
        self.norm2 = LayerNorm32(dim, eps=eps, elementwise_affine=False)
        self.norm3 = LayerNorm32(dim, eps=eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)
        if cfg.variant in ("syncammaster", "recammaster"):
            self.cam_encoder = nn.Linear(12, dim)
            self.projector = nn.Linear(dim, dim)
            if cfg.camera_rays:
                self.ray_encoder = nn.Linear(6, dim)   # per-token Plücker rays (DiTConfig.camera_rays)
        if cfg.variant == "syncammaster":
            self.norm_mvs = LayerNorm32(dim, eps=eps, elementwise_affine=False)
            self.modulation_mvs = nn.Parameter(torch.randn(1, 3, dim) / dim ** 0.5)
            self.mvs_attn = SelfAttention(dim, cfg.num_heads, eps)
        self.sync: Optional[nn.Module] = None  # a sync.SyncLayer, attached from a camgrid sync-weights file

    @property
    def has_camera(self) -> bool:
        return hasattr(self, "cam_encoder")

    @property
    def has_rays(self) -> bool:
        return hasattr(self, "ray_encoder")

    def modulation_of(self, e) -> Modulation:
        """e [N, 6, d] float32 timestep projection per row -> this block's Modulation."""
        return Modulation(*(self.modulation.float() + e).chunk(6, dim=1))

    # --- the forwards ---------------------------------------------------------------------------
    def forward(self, x, e, text: TextKV, rope, cam=None, use_projector=False, poses: Optional[ViewPoses] = None):
        """One Wan block on rows x [N, L, d] (float32 residual stream); x itself is not modified.

        e: [N, 6, d] float32 timestep projection per row. text: this block's text k/v (CrossAttention.text_kv).
        rope: (cos, sin) of the row layout. cam: optional [N, L, d] camera features added to the
        self-attention input (ReCamMaster; the view stream of hard / soft with a camera encoder).
        use_projector: ReCamMaster's projector on the self-attention output. poses: the rows' ViewPoses (the view
        stream of a DiTConfig.relative_cameras model): the self-attention's queries and keys are posed.
        """
        return self.over_row_chunks(partial(self.forward_rows, rope=rope, use_projector=use_projector), x, e, text, cam,
                                    poses=poses)

    def forward_rows(self, x, e, text, cam=None, *, rope, use_projector=False, poses=None):
        m = self.modulation_of(e)
        attend = None if poses is None else poses.attention()
        x = self.self_attn_residual(x, m, rope, cam, use_projector, attend)  # 1.
        return self.cross_ffn_residual(x, m, text)                           # 2. and 3.

    def forward_syncam(self, x, e, text: TextKV, rope, rope_mvs, cam, grid: TokenGrid, poses=None):
        """SynCamMaster block on time-stream rows x [(B V), (T hw), d], e per row:
            1.  x = x + gate_msa * self_attn(LN(x) * (1 + scale_msa) + shift_msa, rope)       time-stream rows
            1b. x = x + gate_mvs * projector(mvs_attn(LN_mvs(x) * (1 + scale_mvs) + shift_mvs + cam, rope_mvs))
                                                                                  view-stream rows
            2., 3. cross-attention and FFN as in every block                                  time-stream rows
        With `row_chunks` set, each step runs on at most that many rows of its own layout. poses: the views'
        ViewPoses of a DiTConfig.relative_cameras model (GridDiT.multiview_positions)."""
        inplace = not torch.is_grad_enabled()
        x = self.over_row_chunks(lambda xr, er, _text, _cam: self.self_attn_residual(xr, self.modulation_of(er), rope),
                                 x, e, text)
        x = self.multiview_residual(x, e, cam, rope_mvs, grid, poses)
        return self.over_row_chunks(lambda xr, er, tr, _cam: self.cross_ffn_residual(xr, self.modulation_of(er), tr),
                                    x, e, text, out=x if inplace else None)

    def forward_fused(self, x, e, text: TextKV, rope, attend, grid: TokenGrid, cam=None,
                      poses: Optional[ViewPoses] = None):
        """4Real-Video-V2 fused block on time-stream rows x [(B V), (T hw), d], e [(B V), 6, d] per row:
            1.     x = x + gate_msa * self_attn(LN(x) * (1 + scale_msa) + shift_msa (+ cam), rope)
                   on whole-grid rows [B, (V T hw), d], attend = the grid-masked attention (same view or
                   same time), rope with frame index view*T + time
            2., 3. cross-attention and FFN as in every block, once, on the time-stream rows
        The modulation is per batch element, so the whole-grid rows take every view's (equal) row of e.
        poses: the whole-grid rows' ViewPoses (a DiTConfig.relative_cameras model), one per (view, time) frame.
        With `row_chunks` set, step 1 runs on at most that many batch elements, steps 2 and 3 on at most
        that many views at a time."""
        b, v, n = grid.batch, grid.views, x.shape[1]
        e_grid = e[::v]  # [B, 6, d]: rows of one batch element share their timestep
        cam_grid = None if cam is None else cam.reshape(b, v * n, -1)
        def step(xr, er, _text, cr, poses=None):
            posed = attend if poses is None else poses.attention(attend)
            return self.self_attn_residual(xr, self.modulation_of(er), rope, cr, attend=posed)

        y = self.over_row_chunks(step, x.reshape(b, v * n, -1), e_grid, text, cam_grid, poses=poses).view(b * v, n, -1)
        inplace = not torch.is_grad_enabled()
        return self.over_row_chunks(lambda xr, er, tr, _cam: self.cross_ffn_residual(xr, self.modulation_of(er), tr),
                                    y, e, text, out=y if inplace else None)

    # --- the steps ------------------------------------------------------------------------------
    def self_attn_residual(self, x, m: Modulation, rope, cam=None, use_projector=False, attend=None):
        """1. x + gate_msa * self_attn(LN(x) * (1 + scale_msa) + shift_msa (+ cam)), ReCamMaster's projector on
        the attention output. Out of place: the caller's x may feed the other stream too. attend: the
        attention of SelfAttention.forward (None: the dispatcher's full attention)."""
        h = self.modulated(x, self.norm1, m.shift_msa, m.scale_msa, cam)
        y = self.self_attn(h, rope) if attend is None else self.self_attn(h, rope, attend)
        if use_projector:
            y = self.projector(y)
        return gated_residual(x, m.gate_msa, y)

    def cross_ffn_residual(self, x, m: Modulation, text: TextKV):
        """2. x + cross_attn(norm3(x), text), then 3. x + gate_mlp * ffn(LN(x) * (1 + scale_mlp) + shift_mlp).

        At inference x (a tensor this block owns) is updated in place; with autograd recording (training)
        everything stays out of place: backward needs the old x."""
        inplace = not torch.is_grad_enabled()
        y = self.cross_attn(self.cross_input(x), text)
        x = x.add_(y) if inplace else x + y
        y = self.ffn_forward(self.modulated(x, self.norm2, m.shift_mlp, m.scale_mlp))
        return gated_residual(x, m.gate_mlp, y, inplace=inplace)

    def multiview_residual(self, x, e, cam, rope_mvs, grid: TokenGrid, poses=None):
        """1b. SynCamMaster's multi-view attention on view-stream rows (every view at one latent frame).

        x [(B V), (T hw), d] stays in the time-stream layout: each span of (batch elements, latent frames)
        is modulated there, regrouped to view-stream rows, attended, regrouped back and added with its
        gate. Without `row_chunks` one span covers the grid; with it, spans of one batch element and at most
        `row_chunks` latent frames. Updates x in place at inference; under autograd returns a new tensor."""
        shift, scale, gate = (self.modulation_mvs.float() + e[:, :3]).chunk(3, dim=1)  # per time-stream row
        b, v, t, hw = grid.batch, grid.views, grid.frames, grid.hw
        c = self.row_chunks
        if c is None or b * t <= c:
            spans = [(0, b, 0, t)]
        else:
            spans = [(i, i + 1, t0, min(t, t0 + c)) for i in range(b) for t0 in range(0, t, min(c, t))]
        inplace = not torch.is_grad_enabled()
        out = x if inplace or len(spans) == 1 else torch.empty_like(x)
        for b0, b1, t0, t1 in spans:
            rows, cols = slice(b0 * v, b1 * v), slice(t0 * hw, t1 * hw)
            span = dataclasses.replace(grid, batch=b1 - b0, frames=t1 - t0)
            xs = x[rows, cols]  # a view: [(b v), (t hw), d] of this span
            h = self.modulated(xs, self.norm_mvs, shift[rows], scale[rows], None if cam is None else cam[rows, cols])
            # this span's view-stream rows are contiguous (one batch element, or whole ones)
            attend = None if poses is None else poses.rows(b0 * t + t0, (b1 - 1) * t + t1).attention()
            y = from_view_stream(self.projector(self.mvs_attn(to_view_stream(h, span), rope_mvs, attend)), span)
            if inplace:
                gated_residual(xs, gate[rows], y, inplace=True)
            elif len(spans) == 1:
                return gated_residual(xs, gate[rows], y)
            else:
                out[rows, cols] = gated_residual(xs, gate[rows], y)
        return out

    def over_row_chunks(self, step, x, e, text: TextKV, cam=None, out=None, poses: Optional[ViewPoses] = None):
        """step(x_rows, e_rows, text_rows, cam_rows) -> new rows, on all N rows of x at once, or (with
        `row_chunks` set) chunk by chunk into `out` (a new [N, L, d] tensor unless given; a step that
        updated out's rows in place is not copied). Rows are independent: the result is the same.
        With `poses` the step also gets poses=the rows' ViewPoses."""
        n, c = x.shape[0], self.row_chunks

        def posed(r0, r1):
            return {} if poses is None else {"poses": poses.rows(r0, r1)}

        if c is None or n <= c:
            return step(x, e, text.rows(0, n, n), cam, **posed(0, n))
        out = torch.empty_like(x) if out is None else out
        for r0 in range(0, n, c):
            r1 = min(n, r0 + c)
            y = step(x[r0:r1], e[r0:r1] if e.shape[0] == n else e, text.rows(r0, r1, n),
                     None if cam is None else cam[r0:r1], **posed(r0, r1))
            if y.data_ptr() != out[r0:r1].data_ptr():
                out[r0:r1] = y
        return out

    # --- pieces ---------------------------------------------------------------------------------
    def modulated(self, x, norm, shift, scale, cam=None):
        """LN(x) * (1 + scale) + shift (+ cam), in the linear layers' dtype (fused kernel on CUDA)."""
        dtype = self.ffn[0].weight.dtype
        if cam is None:
            return layer_norm_modulate(x, shift, scale, norm.eps, out_dtype=dtype)
        return (layer_norm_modulate(x, shift, scale, norm.eps, out_dtype=torch.float32) + cam).to(dtype)

    def cross_input(self, x):
        """norm3(x) in the linear layers' dtype. On CUDA the affine LayerNorm runs as the fused
        LN + modulation kernel: LN(x) * w + b == LN(x) * (1 + (w - 1)) + b."""
        n3 = self.norm3
        if not (x.is_cuda and isinstance(n3, LayerNorm32) and n3.weight is not None
                and not torch.compiler.is_compiling()):
            return n3(x)
        return layer_norm_modulate(x, n3.bias.float(), n3.weight.float() - 1, n3.eps, out_dtype=self.ffn[0].weight.dtype)

    def ffn_forward(self, x):
        x = x.to(self.ffn[0].weight.dtype)
        c = self.ffn_chunk
        if c is None or x.shape[1] <= c:
            return self.ffn_apply(x)
        return torch.cat([self.ffn_apply(part) for part in x.split(c, dim=1)], dim=1)

    def ffn_apply(self, x):
        """Linear, GELU(tanh), Linear. On CUDA in half precision (inference) the GELU runs in the
        first matmul's cuBLASLt epilogue (torch._addmm_activation): one pass less over the
        [L, ffn_dim] hidden activation, the largest tensor of the block."""
        up = self.ffn[0]
        fused = (x.is_cuda and type(up) is nn.Linear and x.dtype in (torch.float16, torch.bfloat16)
                 and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
                 and gelu_epilogue_is_tanh(x.device))
        if not fused:
            return self.ffn(x)
        hidden = torch._addmm_activation(up.bias, x.reshape(-1, x.shape[-1]), up.weight.t(), use_gelu=True)
        return self.ffn[2](hidden).view(*x.shape[:-1], -1)
