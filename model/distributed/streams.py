"""Two-stream modes (hard, soft) and syncam split over ranks by views and latent frames
(docs/ARCHITECTURE.md §12 Several GPUs, §3.3 Grid modes).

The time stream is V independent sequences and the view stream T independent ones, so:
    time stream   rank r owns views  V_r:  rows [(B V_r), (T hw), d]
    view stream   rank r owns frames T_r:  rows [(B T_r), (V hw), d]
A block's tokens move between the layouts with one all-to-all (`StreamShards.time_to_view` /
`view_to_time`): rank r sends rank s its views' tokens at s's frames. Each rank holds 1/N of the tokens
in either layout; shares may be uneven or empty (more ranks than views or frames: a rank without rows
skips that stream's compute but still takes part in the exchanges and gathers). Between blocks the
state is the canonical time-stream layout, as in the single-process forwards of model/dit.py, which
these mirror step by step (same equations, same order); the outputs are gathered on every rank.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

from ...kernels.gated_residual import gated_residual
from ..block import TokenGrid, to_view_stream
from ..relative_pose_attention import ViewPoses
from .comm import Group, shard_bounds, shard_sizes


@dataclass
class StreamShards:
    """Which views (time stream) and latent frames (view stream) each member of `group` owns."""

    group: Group
    grid: TokenGrid                 # the whole grid (this group's batch items)
    view_sizes: list
    frame_sizes: list

    @classmethod
    def of(cls, grid: TokenGrid, group: Group) -> "StreamShards":
        return cls(group, grid, shard_sizes(grid.views, group.size), shard_sizes(grid.frames, group.size))

    @property
    def views(self) -> slice:
        return slice(*shard_bounds(self.view_sizes)[self.group.index])

    @property
    def frames(self) -> slice:
        return slice(*shard_bounds(self.frame_sizes)[self.group.index])

    @property
    def local_views(self) -> int:
        return self.view_sizes[self.group.index]

    @property
    def local_frames(self) -> int:
        return self.frame_sizes[self.group.index]

    def time_to_view(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's time-stream rows [(B V_r), (T hw), d] -> its view-stream rows [(B T_r), (V hw), d]."""
        g, me = self.grid, self.group.index
        b, hw, d = g.batch, g.hw, x.shape[-1]
        xt = x.reshape(b, self.local_views, g.frames, hw, d)
        send = [xt[:, :, f0:f1] for f0, f1 in shard_bounds(self.frame_sizes)]
        recv = self.group.exchange(send, [(b, vs, self.frame_sizes[me], hw, d) for vs in self.view_sizes])
        return torch.cat(recv, dim=1).transpose(1, 2).reshape(b * self.local_frames, g.views * hw, d)

    def view_to_time(self, y: torch.Tensor) -> torch.Tensor:
        """This rank's view-stream rows [(B T_r), (V hw), d] -> its time-stream rows [(B V_r), (T hw), d]."""
        g, me = self.grid, self.group.index
        b, hw, d = g.batch, g.hw, y.shape[-1]
        yv = y.reshape(b, self.local_frames, g.views, hw, d)
        send = [yv[:, :, v0:v1] for v0, v1 in shard_bounds(self.view_sizes)]
        recv = self.group.exchange(send, [(b, fs, self.view_sizes[me], hw, d) for fs in self.frame_sizes])
        return torch.cat(recv, dim=1).transpose(1, 2).reshape(b * self.local_views, g.frames * hw, d)

    def gather_views(self, out: torch.Tensor) -> torch.Tensor:
        """Output patches of this rank's views [(B V_r), ...] -> of all views [(B V), ...], on every rank."""
        b = self.grid.batch
        local = out.reshape(b, self.local_views, *out.shape[1:])
        return self.group.gather(local, 1, self.view_sizes).flatten(0, 1)


@dataclass
class LocalStreams:
    """What the view and time streams of one rank share across blocks (model/dit.py's TwoStreams, split)."""

    shards: StreamShards
    tokens: torch.Tensor                   # this rank's time-stream rows [(B V_r), (T hw), d] float32
    rope_time: tuple
    rope_view: tuple
    e_time: torch.Tensor                   # [(B V_r), 6, d]
    e_view: torch.Tensor                   # [(B T_r), 6, d]
    camera_rows: Optional[torch.Tensor]    # [(B V_r), T, 12]: this rank's views, every frame (syncam)
    camera_view_rows: Optional[torch.Tensor]  # [(B V), T_r, 12]: every view at this rank's frames
    view_poses: Optional[ViewPoses] = None    # of this rank's view-stream rows (DiTConfig.relative_cameras)


def repeat_rows(t: torch.Tensor, rows: int) -> torch.Tensor:
    """A per-item tensor [B, ...] repeated for each of an item's `rows` rows (0 allowed: an empty share)."""
    return t.repeat_interleave(rows, 0)


def local_streams(model, inp, group: Group) -> LocalStreams:
    b, v = inp.x.shape[:2]
    pt, ph, pw = model.config.patch_size
    grid = TokenGrid(b, v, inp.x.shape[3] // pt, inp.x.shape[4] // ph, inp.x.shape[5] // pw)
    shards = StreamShards.of(grid, group)
    if shards.local_views:
        tokens, _ = model.embed_grid(inp.x[:, shards.views])
    else:
        tokens = inp.x.new_empty(0, grid.frames * grid.hw, model.config.dim, dtype=torch.float32)
    use_camera = inp.camera is not None and model.has_camera_encoder
    device = inp.x.device
    camera_view_rows = inp.camera[:, :, shards.frames].flatten(0, 1) if use_camera else None
    # RoPE of the view stream and (relative cameras) the poses of this rank's view-stream rows
    rope_view, view_poses = model.multiview_positions(camera_view_rows, grid, device)
    return LocalStreams(
        shards, tokens, rope_time=model.rope(grid.frames, grid, device), rope_view=rope_view,
        e_time=repeat_rows(inp.t_mod, shards.local_views), e_view=repeat_rows(inp.t_mod, shards.local_frames),
        camera_rows=inp.camera[:, shards.views].flatten(0, 1) if use_camera else None,
        camera_view_rows=camera_view_rows, view_poses=view_poses)


def _rows(fn, x):
    """fn(x) for a rank that has rows of this stream; an empty share passes through."""
    return fn(x) if x.shape[0] else x


def run_streams(model, block, x_view, x_time, inp, s: LocalStreams):
    """model/dit.py's _run_streams on this rank's shares: both results in its time-stream rows."""
    sh = s.shards
    text = block.cross_attn.text_kv(inp.context)
    cam_view = None
    if s.camera_view_rows is not None and sh.local_frames:
        cam = model.camera_features(block, s.camera_view_rows, sh.grid)   # [(B V), (T_r hw), d]
        cam_view = to_view_stream(cam, dataclasses.replace(sh.grid, frames=sh.local_frames))
    y_view = _rows(lambda xv: block(xv, s.e_view, text, s.rope_view, cam=cam_view, poses=s.view_poses),
                   sh.time_to_view(x_view))
    y_time = _rows(lambda xt: block(xt, s.e_time, text, s.rope_time), x_time)
    return sh.view_to_time(y_view), y_time


def head_and_gather(model, tokens, inp, s: LocalStreams) -> torch.Tensor:
    sh = s.shards
    g = sh.grid
    if sh.local_views:
        out = model.head_out(tokens, inp.t, dataclasses.replace(g, views=sh.local_views))
    else:
        pt, ph, pw = model.config.patch_size
        out = tokens.new_empty(0, model.config.out_dim, g.frames * pt, g.height * ph, g.width * pw)
    return sh.gather_views(out)


def forward_hard(model, inp, group: Group) -> torch.Tensor:
    """model/dit.py's _forward_hard, split by views / latent frames."""
    s = local_streams(model, inp, group)
    tokens = s.tokens
    for block in model._blocks(inp):
        y_view, y_time = run_streams(model, block, tokens, tokens, inp, s)
        gate = block.sync.gate if block.sync is not None else None
        if gate is None:
            tokens = 0.5 * (y_view + y_time)
        else:
            g = repeat_rows(gate(inp.timestep), s.shards.local_views)
            tokens = (0.5 + g) * y_view + (0.5 - g) * y_time
    return head_and_gather(model, tokens, inp, s)


def forward_soft(model, inp, group: Group) -> torch.Tensor:
    """model/dit.py's _forward_soft, split by views / latent frames (the soft sync is per token)."""
    s = local_streams(model, inp, group)
    x_view = x_time = s.tokens
    for block in model._blocks(inp):
        y_view, y_time = run_streams(model, block, x_view, x_time, inp, s)
        if y_time.shape[0]:
            dv, dt = block.sync.soft(y_view, y_time, s.e_time)
            x_view, x_time = y_view + dv, y_time + dt
        else:
            x_view, x_time = y_view, y_time
    return head_and_gather(model, 0.5 * (x_view + x_time), inp, s)


def forward_syncam(model, inp, group: Group) -> torch.Tensor:
    """model/dit.py's _forward_syncam: self-attention, cross-attention and FFN on this rank's views
    (time-stream rows), SynCamMaster's multi-view attention on its latent frames (view-stream rows)."""
    s = local_streams(model, inp, group)
    tokens = s.tokens
    for block in model._blocks(inp):
        text = block.cross_attn.text_kv(inp.context)
        cam = model.camera_features(block, s.camera_rows, s.shards.grid) if tokens.shape[0] else None
        tokens = syncam_block(block, tokens, s, text, cam)
    return head_and_gather(model, tokens, inp, s)


def syncam_block(block, x, s: LocalStreams, text, cam):
    """GridDiTBlock.forward_syncam with its multi-view step on view-stream rows of this rank's frames."""
    inplace = not torch.is_grad_enabled()
    e, has_rows = s.e_time, x.shape[0] > 0
    dtype = block.ffn[0].weight.dtype
    h = x.new_empty(x.shape, dtype=dtype)
    if has_rows:
        x = block.over_row_chunks(
            lambda xr, er, _t, _c: block.self_attn_residual(xr, block.modulation_of(er), s.rope_time), x, e, text)
        shift, scale, gate = (block.modulation_mvs.float() + e[:, :3]).chunk(3, dim=1)
        h = block.modulated(x, block.norm_mvs, shift, scale, cam)
    attend = None if s.view_poses is None else s.view_poses.attention()
    y_view = _rows(lambda hv: block.projector(block.mvs_attn(hv, s.rope_view, attend)), s.shards.time_to_view(h))
    y = s.shards.view_to_time(y_view)
    if not has_rows:
        return x
    x = gated_residual(x, gate, y, inplace=inplace)
    return block.over_row_chunks(lambda xr, er, tr, _c: block.cross_ffn_residual(xr, block.modulation_of(er), tr),
                                 x, e, text, out=x if inplace else None)


STREAM_FORWARDS = {"hard": forward_hard, "soft": forward_soft, "syncam": forward_syncam}
