"""The fused grid mode's attention (kernels/grid_mask_attention.py) and the LSE attention it is
built from (kernels/attention_lse.py), on CPU.

The reference is a dense masked attention whose mask is written out token by token here; the
"streams" decomposition and FlexAttention (eager on CPU) must equal it; V = 1 and T = 1 reduce to
plain full attention; the block structure must cover every kept token pair, never a dropped
pair in a full block, and skip exactly what the frame structure allows.
"""
import math
import warnings

import pytest
import torch

from camgrid.kernels import attention_lse as AL
from camgrid.kernels import grid_mask_attention as G
from camgrid.kernels.rope import rope_cos_sin


def _qkv(b, n, h, d, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, n, h, d, generator=g).to(dtype) for _ in range(3))


def _token_mask(views, frames, hw):
    """keep[i, j] for tokens i, j, from the definition: same view or same latent frame (time)."""
    n = views * frames * hw
    keep = torch.zeros(n, n, dtype=torch.bool)
    for i in range(n):
        view_i, time_i = divmod(i // hw, frames)
        for j in range(n):
            view_j, time_j = divmod(j // hw, frames)
            keep[i, j] = view_i == view_j or time_i == time_j
    return keep


def _masked_attention(q, k, v, keep):
    qh, kh, vh = (t.double().transpose(1, 2) for t in (q, k, v))
    s = (qh @ kh.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return (s.masked_fill(~keep, float("-inf")).softmax(-1) @ vh).transpose(1, 2)


def _full_attention(q, k, v):
    return _masked_attention(q, k, v, torch.ones(q.shape[1], k.shape[1], dtype=torch.bool))


def _flex(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # eager flex on CPU warns that it materialises the scores
        return G.grid_mask_flex(*args, **kwargs)


GRIDS = [(3, 4, 5), (2, 3, 7), (1, 4, 6), (4, 1, 6), (2, 2, 1)]


@pytest.mark.parametrize("views, frames, hw", GRIDS)
def test_naive_reference_matches_the_definition(views, frames, hw):
    q, k, v = _qkv(2, views * frames * hw, 2, 8)
    ref = _masked_attention(q, k, v, _token_mask(views, frames, hw))
    torch.testing.assert_close(G.grid_mask_naive(q, k, v, views, frames, hw), ref, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("views, frames, hw", GRIDS)
def test_streams_equal_the_masked_reference(views, frames, hw):
    q, k, v = _qkv(2, views * frames * hw, 3, 8)
    ref = _masked_attention(q, k, v, _token_mask(views, frames, hw))
    got64 = G.grid_mask_attention(q, k, v, views, frames, hw, backend="streams")
    torch.testing.assert_close(got64, ref, atol=1e-12, rtol=1e-12)
    got32 = G.grid_mask_attention(q.float(), k.float(), v.float(), views, frames, hw, backend="streams")
    assert got32.dtype == torch.float32
    torch.testing.assert_close(got32.double(), ref, atol=2e-6, rtol=2e-6)
    got16 = G.grid_mask_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), views, frames, hw, backend="streams")
    torch.testing.assert_close(got16.double(), ref, atol=3e-2, rtol=3e-2)


@pytest.mark.parametrize("views, frames, hw, block, pad", [
    (3, 4, 5, 16, False), (3, 4, 5, 16, True), (2, 3, 7, 32, False), (1, 3, 9, 16, True), (3, 1, 9, 16, False),
])
def test_flex_equals_the_masked_reference(views, frames, hw, block, pad):
    q, k, v = _qkv(1, views * frames * hw, 2, 16, dtype=torch.float32)
    ref = _masked_attention(q, k, v, _token_mask(views, frames, hw))
    got = _flex(q, k, v, views, frames, hw, block=block, pad_frames=pad)
    assert got.shape == q.shape and got.dtype == q.dtype
    torch.testing.assert_close(got.double(), ref, atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("views, frames", [(1, 5), (5, 1)])
def test_one_view_or_one_frame_is_full_attention(views, frames):
    # V = 1: the video's own attention (mode `independent`); T = 1: full attention over the views
    q, k, v = _qkv(2, views * frames * 4, 2, 8)
    ref = _full_attention(q, k, v)
    for backend in ("streams", "naive"):
        torch.testing.assert_close(G.grid_mask_attention(q, k, v, views, frames, 4, backend=backend), ref,
                                   atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(_flex(q.float(), k.float(), v.float(), views, frames, 4, block=16).double(), ref,
                               atol=2e-6, rtol=2e-6)


@pytest.mark.parametrize("views, frames, hw, block, pad", [
    (3, 4, 5, 16, False), (3, 4, 5, 16, True), (2, 5, 33, 16, False), (2, 5, 33, 32, True), (4, 3, 8, 8, True),
])
def test_block_structure_covers_the_mask_and_skips_only_dropped_pairs(views, frames, hw, block, pad):
    st = G.block_structure(views, frames, hw, block, pad)
    hw_pad = st.padded_tokens_per_frame
    n_blocks = st.partial.shape[0]
    # the token mask on the (padded) layout: padding keys are never kept
    real = torch.zeros(n_blocks * block, dtype=torch.bool)
    idx = torch.arange(st.seq_len)
    real[:st.seq_len] = idx % hw_pad < hw
    frame = (torch.arange(n_blocks * block) // hw_pad).clamp(max=views * frames - 1)
    keep = G.frame_keep_matrix(views, frames)[frame][:, frame] & real[None, :]
    keep[st.seq_len:] = False
    blocks = keep.view(n_blocks, block, n_blocks, block)
    kept_any = blocks.any(dim=3).any(dim=1)
    # full blocks: every pair of real query positions and real keys kept
    in_seq = (torch.arange(n_blocks * block) < st.seq_len).view(n_blocks, block)
    all_kept = (blocks | ~in_seq[:, :, None, None]).all(dim=3).all(dim=1)
    assert torch.equal(st.partial | st.full, kept_any)       # nothing kept is skipped, nothing skipped is kept
    assert not (st.partial & st.full).any()
    assert (all_kept | ~st.full).all()                         # full blocks hold kept pairs only
    if pad and hw_pad == -(-hw // block) * block:
        # frame-aligned blocks: exactly the frames' own sparsity is skipped
        assert st.stats()["skipped_fraction"] == pytest.approx(st.stats()["ideal_skipped_fraction"], abs=1e-12)


def test_block_structure_of_the_issue_shape():
    # V=4, T=21, 1560 tokens per frame (480x832), 128-token blocks: the numbers in the module docstring
    unpadded = G.block_structure(4, 21, 1560, 128, False).stats()
    padded = G.block_structure(4, 21, 1560, 128, True).stats()
    assert padded["skipped_fraction"] == pytest.approx(1 - 24 / 84)
    assert unpadded["skipped_fraction"] == pytest.approx(0.70752, abs=1e-5)
    assert padded["work_vs_mask"] == pytest.approx((1664 / 1560) ** 2)
    assert unpadded["work_vs_mask"] < 1.03 and unpadded["partial"] < padded["partial"]


def test_fused_frame_positions_are_view_times_frames_plus_time():
    views, frames, h, w, d = 3, 4, 2, 3, 32
    positions = G.fused_frame_positions(views, frames)
    assert positions == tuple(a * frames + t for a in range(views) for t in range(frames))
    # the fused RoPE table equals the plain table of a V*T-frame video (view-major frames)
    cos, sin = rope_cos_sin(positions, h, w, d)
    plain_cos, plain_sin = rope_cos_sin(views * frames, h, w, d)
    assert torch.equal(cos, plain_cos) and torch.equal(sin, plain_sin)
    # frame (view 2, time 1) sits at position 9: its rows are those of frame 9
    per_frame = h * w
    row = (2 * frames + 1) * per_frame
    single_cos, _ = rope_cos_sin([9], h, w, d)
    assert torch.equal(cos[row:row + per_frame], single_cos)


def test_bad_inputs_are_named():
    q, k, v = _qkv(1, 24, 2, 8)
    with pytest.raises(ValueError, match="V\\*T\\*hw = 30"):
        G.grid_mask_attention(q, k, v, 2, 3, 5)
    with pytest.raises(ValueError, match=">= 1"):
        G.grid_mask_attention(q, k, v, 0, 3, 8)
    with pytest.raises(ValueError, match="unknown"):
        G.grid_mask_attention(q, k, v, 2, 3, 4, backend="dense")


# ---------------------------------------------------------------------------------------------
# attention with log-sum-exp, and the merge of disjoint key sets
# ---------------------------------------------------------------------------------------------
def test_chunked_lse_attention_matches_logsumexp_and_merges_exactly():
    q, k, v = _qkv(2, 37, 3, 16)
    out, lse = AL.attention_with_lse(q, k, v, backend="chunked")
    scores = (q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)) / 4.0
    torch.testing.assert_close(lse, torch.logsumexp(scores, -1), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(out, _full_attention(q, k, v), atol=1e-12, rtol=1e-12)
    # small budgets force several query blocks; same result
    out_small, lse_small = AL.attention_lse_chunked(q, k, v, budget_bytes=2000)
    torch.testing.assert_close(out_small, out, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(lse_small, lse, atol=1e-12, rtol=1e-12)
    # keys split in two disjoint halves, merged with their LSEs = attention over all keys
    a = AL.attention_with_lse(q, k[:, :20], v[:, :20], backend="chunked")
    b = AL.attention_with_lse(q, k[:, 20:], v[:, 20:], backend="chunked")
    torch.testing.assert_close(AL.merge_attention(*a, *b), out, atol=1e-12, rtol=1e-12)


def test_merge_weights_far_apart_log_sum_exps_without_overflow():
    """lse differences of +-1000 (exp overflows fp32 and fp64) give weights 1 / 0, and bf16 partial outputs
    merge in fp32 back to bf16."""
    g = torch.Generator().manual_seed(3)
    out_a, out_b = torch.randn(1, 5, 2, 8, generator=g), torch.randn(1, 5, 2, 8, generator=g)
    lse_a = torch.tensor([1000.0, -1000.0, 0.0, 3.0, 0.5]).expand(1, 2, 5)
    lse_b = torch.zeros(1, 2, 5)
    merged = AL.merge_attention(out_a, lse_a, out_b, lse_b)
    torch.testing.assert_close(merged[:, 0], out_a[:, 0])
    torch.testing.assert_close(merged[:, 1], out_b[:, 1])
    torch.testing.assert_close(merged[:, 2], 0.5 * (out_a[:, 2] + out_b[:, 2]))
    w = torch.sigmoid(torch.tensor(3.0))
    torch.testing.assert_close(merged[:, 3], w * out_a[:, 3] + (1 - w) * out_b[:, 3])
    half = AL.merge_attention(out_a.bfloat16(), lse_a, out_b.bfloat16(), lse_b)
    assert half.dtype == torch.bfloat16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), merged, atol=2e-2, rtol=2e-2)


def test_lse_backend_choice_on_cpu():
    q = torch.zeros(1, 4, 2, 8)
    assert AL.resolve_lse_backend(q) == "chunked"
    assert AL.resolve_lse_backend(q, "aten") == "chunked"  # PyTorch's fused kernels are CUDA-only
    with pytest.raises(ValueError, match="CUDA"):
        AL.resolve_lse_backend(q, "cudnn")
    with pytest.raises(ValueError, match="unknown"):
        AL.resolve_lse_backend(q, "dense")
