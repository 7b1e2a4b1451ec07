"""The attention of the `fused` grid mode (4Real-Video-V2, arXiv 2506.18839): one attention over all
V*T latent frames of a grid, a token pair kept iff its two frames share the view or the time.

Token order (view-major, docs/ARCHITECTURE.md §3.3 Grid modes): frame (view a, time t) is frame
index a*T + t, its hw tokens are contiguous, so the fused sequence of one grid is the per-view
token rows [(B V), (T hw), d] reshaped to [B, (V T hw), d] with no copy. RoPE's frame-axis
position of frame (a, t) is a*T + t as well (`fused_frame_positions`).

Call signatures
    out = grid_mask_attention(q, k, v, views, frames, tokens_per_frame, backend="auto", lse_backend="auto")
        q / k / v [B, V*T*hw, H, D] -> out [B, V*T*hw, H, D] (q.dtype); softmax scale 1 / sqrt(D).
        lse_backend: the dense kernel of the "streams" path (kernels/attention_lse.py: auto, aten, fa3,
        cudnn, flash, chunked).
        backends
          "streams"  exact decomposition into dense attentions, no mask: the temporal stream (each
                     view's T frames, [(B V), (T hw)]) and, per query frame, the V-1 other views at
                     its time (gathered: [(B V T), ((V-1) hw)]); disjoint key sets, merged with their
                     log-sum-exps (kernels/attention_lse.py). FLOPs are exactly the mask's; runs on
                     any device with bounded memory (FA3 / cuDNN on Hopper, chunked torch on CPU).
          "flex"     torch FlexAttention with a block mask built from the frame structure (never an
                     N x N mask). pad_frames=True pads every frame to a multiple of the block size
                     (frame-aligned blocks, padding keys masked). At V=4, T=21, hw=1560, 128-token
                     blocks (block_structure(...).stats()): unpadded skips 70.75 % of the blocks and
                     computes 1.024x the kept score entries (14239 partial blocks); padded skips the
                     ideal 71.43 % but computes 1.138x (its padding: +6.7 % tokens; 26208 partial
                     blocks, one per kept key frame). So unpadded is the default. Compiled on CUDA;
                     on CPU it runs eagerly (which materialises the scores: tests only).
          "naive"    dense boolean mask, fp32: the test reference.
          "auto"     PREFERRED_BACKENDS order, first that runs (see the benchmark for why).
    fused_frame_positions(views, frames) -> tuple of V*T RoPE frame positions (view*T + time)
    frame_keep_matrix(views, frames) -> bool [V*T, V*T]
    block_structure(views, frames, tokens_per_frame, block, pad_frames) -> BlockStructure (which blocks
        are skipped / partial / full; .stats() gives the skip ratio)
    grid_block_mask(views, frames, tokens_per_frame, block=128, pad_frames=False, device) -> BlockMask
"""
from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import torch
import torch.nn.functional as F

from .attention_lse import attention_with_lse, merge_attention

BACKENDS = ("auto", "streams", "flex", "naive")
# "streams" first: dense FA3 / cuDNN kernels run near peak and do exactly the mask's FLOPs; issue 14
# measured FlexAttention (128-token blocks) at 75 ms vs 54 ms for the two cuDNN streams at V=4, T=21.
PREFERRED_BACKENDS = ("streams",)
DEFAULT_BLOCK = 128


def _check(q, k, v, views, frames, tokens_per_frame):
    n = views * frames * tokens_per_frame
    if min(views, frames, tokens_per_frame) < 1:
        raise ValueError(f"grid_mask_attention: views {views}, frames {frames}, tokens_per_frame "
                         f"{tokens_per_frame} must all be >= 1")
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4 or t.shape[1] != n:
            raise ValueError(f"grid_mask_attention: {name} must be [B, V*T*hw = {n}, H, D], got {tuple(t.shape)}")
    if not (q.shape == k.shape and k.shape[:3] == v.shape[:3]):
        raise ValueError(f"grid_mask_attention: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)} disagree")


def fused_frame_positions(views: int, frames: int) -> tuple[int, ...]:
    """RoPE frame-axis positions of the fused sequence: frame (a, t) sits at a*T + t (= 0 .. V*T-1).

    Build the table with kernels.rope.rope_cos_sin(fused_frame_positions(V, T), h, w, head_dim).
    """
    return tuple(a * frames + t for a in range(views) for t in range(frames))


def frame_keep_matrix(views: int, frames: int, device=None) -> torch.Tensor:
    """keep[fq, fk] = same view or same time, frames indexed view-major (a*T + t)."""
    f = torch.arange(views * frames, device=device)
    view, time = f // frames, f % frames
    return (view[:, None] == view[None, :]) | (time[:, None] == time[None, :])


# ---------------------------------------------------------------------------------------------
# reference and exact decomposition
# ---------------------------------------------------------------------------------------------
def grid_mask_naive(q, k, v, views, frames, tokens_per_frame):
    """Dense masked attention in fp32 (fp64 for fp64 inputs). Tests only: O(N^2) memory."""
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    token_frame = torch.arange(q.shape[1], device=q.device) // tokens_per_frame
    keep = frame_keep_matrix(views, frames, q.device)[token_frame][:, token_frame]
    qh, kh, vh = (t.transpose(1, 2).to(acc) for t in (q, k, v))
    s = (qh @ kh.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(~keep, float("-inf"))
    return (s.softmax(dim=-1) @ vh).transpose(1, 2).to(q.dtype)


def _other_views(x, views, frames, hw):
    """[B, V*T*hw, H, D] -> [(B V T), (V-1)*hw, H, D]: for each frame (a, t), the frames (b != a, t).

    One gather straight into the output layout (indices on the view and time axes broadcast to
    [V, T, V-1]), so the copy exists once: (V-1) x the tokens of x."""
    b, _, h, d = x.shape
    x6 = x.view(b, views, frames, hw, h, d)
    others = torch.tensor([[o for o in range(views) if o != a] for a in range(views)], device=x.device)
    times = torch.arange(frames, device=x.device)
    g = x6[:, others[:, None, :], times[None, :, None]]  # [B, V, T, V-1, hw, H, D], contiguous
    return g.view(b * views * frames, (views - 1) * hw, h, d)


def grid_mask_streams(q, k, v, views, frames, tokens_per_frame, lse_backend="auto"):
    """Exact fused attention = merge(temporal stream, other views at the same time); see the module doc."""
    b, n, h, d = q.shape
    hw = tokens_per_frame
    per_view = lambda t: t.reshape(b * views, frames * hw, h, d)  # noqa: E731  (view-major: no copy)
    out_t, lse_t = attention_with_lse(per_view(q), per_view(k), per_view(v), lse_backend)
    if views == 1:
        return out_t.reshape(b, n, h, d)
    q_frames = q.reshape(b * views * frames, hw, h, d)
    out_v, lse_v = attention_with_lse(q_frames, _other_views(k, views, frames, hw),
                                      _other_views(v, views, frames, hw), lse_backend)
    # both partial results back to [B, N, ...] token order; lse [B', H, L'] -> [B, H, N]
    out_t = out_t.reshape(b, n, h, d)
    out_v = out_v.reshape(b, n, h, d)
    lse_t = lse_t.reshape(b, views, h, frames * hw).permute(0, 2, 1, 3).reshape(b, h, n)
    lse_v = lse_v.reshape(b, views * frames, h, hw).permute(0, 2, 1, 3).reshape(b, h, n)
    return merge_attention(out_t, lse_t, out_v, lse_v)


# ---------------------------------------------------------------------------------------------
# FlexAttention: block structure straight from the frame structure
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class BlockStructure:
    """Which (query block, key block) pairs a block-sparse kernel computes.

    partial / full: bool [n_blocks, n_blocks]; partial blocks hold kept and dropped pairs (the kernel
    evaluates the mask there), full blocks only kept pairs, the rest are skipped.
    """
    views: int
    frames: int
    tokens_per_frame: int
    block: int
    padded_tokens_per_frame: int
    partial: torch.Tensor
    full: torch.Tensor

    @property
    def seq_len(self) -> int:
        return self.views * self.frames * self.padded_tokens_per_frame

    def stats(self) -> dict:
        total = self.partial.numel()
        computed = int(self.partial.sum() + self.full.sum())
        n_real = self.views * self.frames * self.tokens_per_frame
        return {
            "blocks": total,
            "computed": computed,
            "partial": int(self.partial.sum()),
            "skipped_fraction": 1.0 - computed / total,
            "ideal_skipped_fraction": 1.0 - (self.views + self.frames - 1) / (self.views * self.frames),
            "padding_fraction": self.seq_len / n_real - 1.0,
            # score entries computed, relative to those the mask keeps (1.0 = no waste)
            "work_vs_mask": computed * self.block ** 2 / ((self.views + self.frames - 1) * self.frames * self.views
                                                         * self.tokens_per_frame ** 2),
        }


def _block_frame_counts(token_frame: torch.Tensor, valid: torch.Tensor, n_blocks: int, block: int, n_frames: int):
    """counts[i, f] = tokens of frame f in block i (valid tokens only)."""
    idx = (torch.arange(token_frame.numel()) // block) * n_frames + token_frame
    counts = torch.bincount(idx[valid], minlength=n_blocks * n_frames)
    return counts.view(n_blocks, n_frames)


@functools.lru_cache(maxsize=16)
def block_structure(views: int, frames: int, tokens_per_frame: int, block: int = DEFAULT_BLOCK,
                    pad_frames: bool = False) -> BlockStructure:
    """The block structure of the fused mask for one token layout (CPU tensors; small: blocks^2 bools)."""
    hw_pad = -(-tokens_per_frame // block) * block if pad_frames else tokens_per_frame
    n = views * frames * hw_pad
    n_blocks = -(-n // block)
    pos = torch.arange(n_blocks * block)
    token_frame = (pos // hw_pad).clamp(max=views * frames - 1)
    real = (pos < n) & (pos % hw_pad < tokens_per_frame)
    # queries: every position inside the sequence counts (padding queries compute throw-away rows);
    # keys: only real tokens (padding keys and positions past the end are masked)
    present_q = _block_frame_counts(token_frame, pos < n, n_blocks, block, views * frames) > 0
    present_k = _block_frame_counts(token_frame, real, n_blocks, block, views * frames) > 0
    keep = frame_keep_matrix(views, frames).float()
    kept_pairs = present_q.float() @ keep @ present_k.float().T
    all_pairs = present_q.sum(1, keepdim=True).float() * present_k.sum(1).float()[None, :]
    key_block_has_masked = (~real).view(n_blocks, block).any(dim=1)
    any_kept = kept_pairs > 0
    full = any_kept & (kept_pairs == all_pairs) & ~key_block_has_masked[None, :]
    return BlockStructure(views, frames, tokens_per_frame, block, hw_pad, any_kept & ~full, full)


def _indices(blocks: torch.Tensor):
    """(counts [1, 1, n], indices [1, 1, n, n] int32) of the True columns of each row, in order."""
    counts = blocks.sum(dim=1).to(torch.int32)
    order = torch.argsort((~blocks).to(torch.int8), dim=1, stable=True).to(torch.int32)
    return counts[None, None], order[None, None]


def _mask_mod(views: int, frames: int, tokens_per_frame: int, hw_pad: int):
    def keep(b, h, q_idx, kv_idx):
        fq, fk = q_idx // hw_pad, kv_idx // hw_pad
        same = ((fq // frames) == (fk // frames)) | ((fq % frames) == (fk % frames))
        return same & ((kv_idx % hw_pad) < tokens_per_frame)
    return keep


def grid_block_mask(views, frames, tokens_per_frame, block=DEFAULT_BLOCK, pad_frames=False, device="cpu"):
    """FlexAttention BlockMask of the fused mask on the (padded) token layout of block_structure (cached)."""
    return _block_mask_cached(views, frames, tokens_per_frame, block, pad_frames, str(torch.device(device)))


@functools.lru_cache(maxsize=8)
def _block_mask_cached(views, frames, tokens_per_frame, block, pad_frames, device):
    from torch.nn.attention.flex_attention import BlockMask  # torch >= 2.5; imported when flex is used

    st = block_structure(views, frames, tokens_per_frame, block, pad_frames)
    kv_num, kv_idx = _indices(st.partial)
    full_num, full_idx = _indices(st.full)
    return BlockMask.from_kv_blocks(
        kv_num.to(device), kv_idx.to(device), full_num.to(device), full_idx.to(device), BLOCK_SIZE=block,
        mask_mod=_mask_mod(views, frames, tokens_per_frame, st.padded_tokens_per_frame),
        seq_lengths=(st.seq_len, st.seq_len))


def _pad_frames(x, n_frames, hw, hw_pad):
    if hw_pad == hw:
        return x
    b, _, h, d = x.shape
    return F.pad(x.view(b, n_frames, hw, h, d), (0, 0, 0, 0, 0, hw_pad - hw)).view(b, n_frames * hw_pad, h, d)


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def grid_mask_flex(q, k, v, views, frames, tokens_per_frame, block=DEFAULT_BLOCK, pad_frames=False, block_mask=None):
    """FlexAttention over the fused mask; `block_mask` (from grid_block_mask) may be passed to reuse it."""
    from torch.nn.attention.flex_attention import flex_attention

    b, n, h, d = q.shape
    n_frames = views * frames
    st = block_structure(views, frames, tokens_per_frame, block, pad_frames)
    if block_mask is None:
        block_mask = grid_block_mask(views, frames, tokens_per_frame, block, pad_frames, q.device)
    hw_pad = st.padded_tokens_per_frame
    qp, kp, vp = (_pad_frames(t, n_frames, tokens_per_frame, hw_pad).transpose(1, 2) for t in (q, k, v))
    if q.is_cuda:
        out = _compiled_flex()(qp, kp, vp, block_mask=block_mask, scale=1.0 / math.sqrt(d))
    else:
        with warnings.catch_warnings():  # eager flex (CPU) materialises the scores: the documented test path
            warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
            out = flex_attention(qp, kp, vp, block_mask=block_mask, scale=1.0 / math.sqrt(d))
    out = out.transpose(1, 2)
    if hw_pad != tokens_per_frame:
        out = out.reshape(b, n_frames, hw_pad, h, d)[:, :, :tokens_per_frame].reshape(b, n, h, d)
    return out


def flex_available() -> bool:
    try:
        from torch.nn.attention import flex_attention  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(q: torch.Tensor, backend: str = "auto") -> str:
    if backend not in BACKENDS:
        raise ValueError(f"grid_mask_attention: backend {backend!r} is unknown; choose one of {', '.join(BACKENDS)}")
    if backend == "flex" and not flex_available():
        raise ValueError("grid_mask_attention: backend 'flex' needs torch >= 2.5 (torch.nn.attention.flex_attention)")
    return PREFERRED_BACKENDS[0] if backend == "auto" else backend


def grid_mask_attention(q, k, v, views, frames, tokens_per_frame, backend="auto", lse_backend="auto"):
    """Fused grid attention (see the module docstring); q / k / v [B, V*T*hw, H, D]."""
    _check(q, k, v, views, frames, tokens_per_frame)
    name = resolve_backend(q, backend)
    if name == "streams":
        return grid_mask_streams(q, k, v, views, frames, tokens_per_frame, lse_backend)
    if name == "flex":
        return grid_mask_flex(q, k, v, views, frames, tokens_per_frame)
    return grid_mask_naive(q, k, v, views, frames, tokens_per_frame)
