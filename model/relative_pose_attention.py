"""Relative camera poses inside the multi-view attention (DiTConfig.relative_cameras; PRoPE, Li et al. 2025,
"Cameras as Relative Positional Encoding", arXiv 2507.10496).

SynCamMaster's multi-view attention tells the views apart by RoPE over the view index (the frame axis of its
rows) and reads the cameras only through an embedding added to its input. A model trained on rigs whose views
come in one order learns where view i sits from i, not from its camera (benchmarks/TINY_MODEL.md). With
`relative_cameras` the view axis carries the cameras instead: every view sits at RoPE position 0 (the frame
part of the rotation is the identity), and that part of each head, in blocks of 4, is transformed by the view's
pose. A query of view i is multiplied by P_i^T and a key of view j by P_j^-1, P = the world-to-camera matrix
from the 12-d relative extrinsics, so

    q_i' . k_j' = q_i^T P_i P_j^-1 k_j

depends on the two cameras only through their relative pose, like RoPE on positions, and is the same whatever
camera the rig is expressed against. Unlike PRoPE: no intrinsics in P (the 12 numbers carry none, and one
shared intrinsic matrix is a fixed change of basis the q / k projections can learn), and queries and keys only
(PRoPE also poses the values; left out so the value path of a model switched to it is unchanged). No
parameters: a model gains it by training with it. Where it applies: docs/ARCHITECTURE.md §3.2 Variants.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..kernels.rope import rope_axis_dims
from . import layers


class ViewPoses(NamedTuple):
    """The (query, key) pose matrices [N, G, 4, 4] of N attention rows whose tokens come in G equal groups, one
    camera each: the views of a view-stream row, or the (view, time) frames of a whole-grid row (fused)."""
    query: torch.Tensor
    key: torch.Tensor

    def rows(self, r0: int, r1: int) -> "ViewPoses":
        return ViewPoses(self.query[r0:r1], self.key[r0:r1])

    def attention(self, attend=None):
        """attend(q, k, v) (None: the dispatcher's attention, looked up at call time as SelfAttention does) with
        the queries and keys posed by their group's matrices."""
        def posed(q, k, v):
            base = layers.attention if attend is None else attend
            return base(transform(q, self.query), transform(k, self.key), v)
        return posed


def pose_matrices(camera_rows: torch.Tensor, batch: int, views: int, layout: str = "view_stream") -> ViewPoses:
    """camera_rows [(B V), T, 12] (camera-to-reference [R | t], row-major) -> the query matrices P^T and key
    matrices P^-1 = C, P = C^-1 the world-to-camera pose (rigid, inverted in closed form, so no input can make it
    singular), float32, for rows of `layout`: "view_stream" [(B T), V, 4, 4] or "grid" [B, (V T), 4, 4]."""
    poses = camera_rows.float().reshape(batch, views, camera_rows.shape[1], 3, 4)
    rot_t, trans = poses[..., :3].transpose(-1, -2), poses[..., 3:]
    bottom = torch.zeros_like(poses[..., :1, :])
    bottom[..., 0, 3] = 1.0
    c2w = torch.cat([poses, bottom], dim=-2)
    w2c = torch.cat([torch.cat([rot_t, -rot_t @ trans], dim=-1), bottom], dim=-2)
    query, key = w2c.transpose(-1, -2), c2w                                          # [B, V, T, 4, 4]
    if layout == "grid":
        return ViewPoses(query.flatten(1, 2).contiguous(), key.flatten(1, 2).contiguous())
    return ViewPoses(query.transpose(1, 2).flatten(0, 1).contiguous(), key.transpose(1, 2).flatten(0, 1).contiguous())


def posed_dims(head_dim: int) -> int:
    """Head dims transformed: the RoPE frame part (rope_axis_dims), whole blocks of 4 (20 of 56, 44 of 128)."""
    return rope_axis_dims(head_dim)[0] // 4 * 4


def transform(x: torch.Tensor, matrices: torch.Tensor) -> torch.Tensor:
    """x [N, G*L', H, D] (G groups of tokens, group-major), matrices [N, G, 4, 4] -> x with the first
    posed_dims(D) dims of every head, in blocks of 4, multiplied by its group's matrix (float32 math)."""
    n, l, h, d = x.shape
    v, m = matrices.shape[1], posed_dims(d)
    blocks = x[..., :m].float().reshape(n, v, l // v, h, m // 4, 4)
    posed = torch.einsum("nvij,nvphbj->nvphbi", matrices.float(), blocks).reshape(n, l, h, m)
    return torch.cat([posed.to(x.dtype), x[..., m:]], dim=-1)
