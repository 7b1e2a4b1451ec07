"""The layers a GridDiT block is built from: norms, self-attention, cross-attention to the text.

Numerics (docs/ARCHITECTURE.md §3.1 Base block): norms compute in float32; q / k are RMS-normalised
over the full width, then viewed as heads and rotated by the 3D RoPE in one fused pass
(kernels/qk_norm_rope.py); the linear layers run in the model dtype. Attention goes through
`model.attention.attention`, whose backend is the one the surrounding `attention_backend(...)`
context names (GridDiT.forward enters it once per forward).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels.qk_norm_rope import qk_norm_rope, rms_norm_reference
from .attention import attention


class RMSNorm(nn.Module):
    """RMSNorm over the last dim, weight [dim]; float32 math (kernels/qk_norm_rope.py's reference)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        return rms_norm_reference(x, self.weight, self.eps).to(x.dtype)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 (Wan's WanLayerNorm), returning float32."""

    def forward(self, x):
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps)


def norm_heads(x, norm: RMSNorm, num_heads: int, rope=None):
    """RMSNorm(x) over the full width, viewed as heads [N, L, H, D], rotated by RoPE when `rope` = (cos, sin)."""
    cos, sin = rope if rope is not None else (None, None)
    return qk_norm_rope(x, norm.weight, cos, sin, num_heads, norm.eps)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(self, x, rope, attend=None):
        """x [N, L, d] -> [N, L, d]; rope = (cos, sin) [L, head_dim / 2] of this row layout.

        attend(q, k, v) on [N, L, H, D]: None = the dispatcher's full attention (looked up at call time, so a
        wrapper of `attention` applies), or a masked one (the fused grid mode passes
        model.attention.fused_grid_attention bound to its grid)."""
        attend = attention if attend is None else attend
        n, l, d = x.shape
        x = x.to(self.q.weight.dtype)
        q = norm_heads(self.q(x), self.norm_q, self.num_heads, rope)
        k = norm_heads(self.k(x), self.norm_k, self.num_heads, rope)
        v = self.v(x).view(n, l, self.num_heads, -1)
        return self.o(attend(q, k, v).reshape(n, l, d))


class TextKV(NamedTuple):
    """The text's keys and values of one block, [B, Lc, H, D]: one copy per batch element, shared by rows.

    A stream lays its rows out item-major (all rows of batch element 0, then of 1, ...; `rows_per_item`
    each), so query row r attends to item r // rows_per_item. `rows(r0, r1, n)` describes rows r0..r1 of a
    stream of n rows (row chunking); the default describes all rows of the query it is given.
    """

    k: torch.Tensor
    v: torch.Tensor
    row0: int = 0            # stream index of the first query row
    rows_per_item: int = 0   # rows of one batch element in the stream; 0: all of them are in the query

    def rows(self, r0: int, r1: int, n: int) -> "TextKV":
        if n % self.k.shape[0]:
            raise ValueError(f"a stream of {n} rows does not split into {self.k.shape[0]} batch elements")
        return self._replace(row0=r0, rows_per_item=n // self.k.shape[0])

    def attend(self, q: torch.Tensor) -> torch.Tensor:
        """Cross-attention of q [N, L, H, D] to the text -> [N, L, H, D].

        Cross-attention has no positions, so the rows of one batch element attend as one long query
        ([rows * L] tokens) to that element's k / v: the same result as per-row attention, without
        copying k / v to every row. Whole items go in one call; a row chunk that cuts an item runs
        per item.
        """
        n, l, h, d = q.shape
        rep = self.rows_per_item or self.rows(0, n, n).rows_per_item
        r0 = self.row0
        if r0 % rep == 0 and n % rep == 0:
            items = slice(r0 // rep, (r0 + n) // rep)
            return attention(q.reshape(n // rep, rep * l, h, d), self.k[items], self.v[items]).reshape(n, l, h, d)
        parts = []
        for item in range(r0 // rep, (r0 + n - 1) // rep + 1):
            a, b = max(r0, item * rep) - r0, min(r0 + n, (item + 1) * rep) - r0
            parts.append(attention(q[a:b].reshape(1, (b - a) * l, h, d), self.k[item:item + 1], self.v[item:item + 1]))
        return torch.cat(parts, dim=1).reshape(n, l, h, d)


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def text_kv(self, context) -> TextKV:
        """The embedded text [B, Lc, d] as k, v [B, Lc, H, D]; computed once per block and forward, then
        shared by every row of every stream that block runs."""
        b = context.shape[0]
        k = norm_heads(self.k(context), self.norm_k, self.num_heads)
        v = self.v(context).view(b, -1, self.num_heads, context.shape[-1] // self.num_heads)
        return TextKV(k, v)

    def forward(self, x, text: TextKV):
        """x [N, L, d] -> [N, L, d]: the rows attend to their batch element's text (see TextKV)."""
        n, l, d = x.shape
        x = x.to(self.q.weight.dtype)
        q = norm_heads(self.q(x), self.norm_q, self.num_heads)
        return self.o(text.attend(q).reshape(n, l, d))
