"""Sequence parallelism for modes whose sequences are long and few (independent / recam with fewer
views than ranks, a single long video): Ulysses attention (docs/ARCHITECTURE.md §12 Several GPUs).

Every sequence's tokens are split over the ranks (`shard_sizes`, uneven allowed). All per-token steps
(norms, modulation, q / k / v / o projections, RoPE on the rank's own positions, cross-attention to the
text, the FFN, the head) run on the rank's tokens. Self-attention needs the whole sequence, so one
all-to-all trades the token split for a head split (q, k, v of all tokens for this rank's heads), the
attention runs through the model's own attention backend (model/attention.py: cuDNN / FA3 / chunked
...), and a second all-to-all trades back (DeepSpeed-Ulysses). Heads need not divide evenly: a rank
takes `shard_sizes(heads, ranks)[rank]` heads (then the busiest rank sets the pace).

Why not yunchang / xfuser's USP (the engine Wan2.1's generate.py uses): checked with yunchang 0.6.4 (which
xfuser 0.7.0 uses for its attention) on torch 2.13 CPU + gloo. It installs without replacing torch, its
all-to-all is plain all_to_all_single, but every attention it offers ends in
`aten::_scaled_dot_product_flash_attention` or flash_attn: UlyssesAttention with any torch AttnType, and
ring_pytorch_attn_func, raise NotImplementedError on CPU ("Could not run
'aten::_scaled_dot_product_flash_attention' with arguments from the 'CPU' backend"). So the CPU tests
(and CI) cannot run it, and its attention would bypass camgrid's backends. Its all-to-all also needs the
sequence length divisible by the ranks. `ulysses_attention(..., attend=)` takes any attention function on
[B, L, H, D]: a GPU engine (yunchang's ring attention for head counts below the rank count, the fused
mode's block-masked attention) plugs in there.
"""
from __future__ import annotations

import torch

from ...kernels.gated_residual import gated_residual
from ..attention import attention
from ..block import per_row
from ..camera.encoding import extrinsics_rays
from ..layers import norm_heads
from .comm import Group, shard_bounds, shard_sizes


def ulysses_attention(q, k, v, group: Group, token_sizes, attend=None):
    """Attention over whole sequences from token shares: q, k, v [N, l_r, H, D] of this rank's l_r tokens
    -> out [N, l_r, H, D]. token_sizes: every member's token count (sum = the sequence length)."""
    n, _, h, d = q.shape
    me, heads = group.index, shard_sizes(h, group.size)
    qkv = torch.stack([q, k, v])                                          # [3, N, l_r, H, D]
    send = [qkv[:, :, :, h0:h1] for h0, h1 in shard_bounds(heads)]
    recv = group.exchange(send, [(3, n, ts, heads[me], d) for ts in token_sizes])
    full = torch.cat(recv, dim=2)                                         # [3, N, L, H_r, D]
    out = (attend or attention)(full[0], full[1], full[2]) if heads[me] else full[0]   # [N, L, H_r, D]
    send = [out[:, t0:t1] for t0, t1 in shard_bounds(token_sizes)]
    recv = group.exchange(send, [(n, token_sizes[me], hs, d) for hs in heads])
    return torch.cat(recv, dim=2)                                         # [N, l_r, H, D]


def ulysses_self_attention(attn, x, rope, group: Group, token_sizes):
    """SelfAttention.forward (model/layers.py) on this rank's tokens x [N, l_r, d]; rope: their (cos, sin)."""
    n, l, d = x.shape
    x = x.to(attn.q.weight.dtype)
    q = norm_heads(attn.q(x), attn.norm_q, attn.num_heads, rope)
    k = norm_heads(attn.k(x), attn.norm_k, attn.num_heads, rope)
    v = attn.v(x).view(n, l, attn.num_heads, -1)
    return attn.o(ulysses_attention(q, k, v, group, token_sizes).reshape(n, l, d))


def _block(block, x, e, text, rope, cam, use_projector, group: Group, token_sizes):
    """GridDiTBlock.forward_rows with Ulysses self-attention (row chunking does not apply here)."""
    m = block.modulation_of(e)
    h = block.modulated(x, block.norm1, m.shift_msa, m.scale_msa, cam)
    y = ulysses_self_attention(block.self_attn, h, rope, group, token_sizes)
    if use_projector:
        y = block.projector(y)
    x = gated_residual(x, m.gate_msa, y)
    return block.cross_ffn_residual(x, m, text)


def _forward_sequences(model, inp, group: Group, seq, camera_rows, out_frames: int):
    """The rows of `seq` [B, V, C, F, H, W] through the blocks, tokens split over the group; the camera
    (ReCamMaster: [(B V), F, 12] added to the self-attention input, projector on its output) if given."""
    tokens, grid = model.embed_grid(seq)
    token_sizes = shard_sizes(tokens.shape[1], group.size)
    lo, hi = shard_bounds(token_sizes)[group.index]
    tokens = tokens[:, lo:hi].contiguous()
    cos, sin = model.rope(grid.frames, grid, tokens.device)
    rope = (cos[lo:hi], sin[lo:hi])
    e = per_row(inp.t_mod, grid.views)
    frame_of_token = torch.arange(lo, hi, device=tokens.device) // grid.hw
    for block in model._blocks(inp):
        cam = None
        if camera_rows is not None:   # model.camera_features for this rank's tokens only
            cam = block.cam_encoder(camera_rows.to(block.cam_encoder.weight.dtype)).float()[:, frame_of_token]
            if block.has_rays:
                rays = extrinsics_rays(camera_rows, grid.height, grid.width).flatten(1, 2)[:, lo:hi]
                cam = cam + block.ray_encoder(rays.to(block.ray_encoder.weight.dtype)).float()
        tokens = _block(block, tokens, e, block.cross_attn.text_kv(inp.context), rope, cam, camera_rows is not None,
                        group, token_sizes)
    out = group.gather(model.head(tokens, per_row(inp.t, grid.views)), 1, token_sizes)
    return model.unpatchify(out, (grid.frames, grid.height, grid.width))[:, :, :out_frames]


def forward_independent(model, inp, group: Group) -> torch.Tensor:
    """model/dit.py's _forward_independent, every view's tokens split over the ranks."""
    return _forward_sequences(model, inp, group, inp.x, None, inp.x.shape[3])


def forward_recam(model, inp, group: Group) -> torch.Tensor:
    """model/dit.py's _forward_recam (cat([target, source]) along frames per view), tokens split over the ranks."""
    x = inp.x
    b, v, c, t_lat, hh, ww = x.shape
    seq = torch.cat([x, inp.source.to(x.dtype)[:, None].expand(b, v, c, t_lat, hh, ww)], dim=3)
    return _forward_sequences(model, inp, group, seq, inp.camera.flatten(0, 1).repeat(1, 2, 1), t_lat)


SEQUENCE_FORWARDS = {"independent": forward_independent, "recam": forward_recam}
