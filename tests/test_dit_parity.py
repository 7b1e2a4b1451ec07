"""GridDiT 'independent' mode == diffusers WanTransformer3DModel (the executable reference)."""
import math

import pytest
import torch

from camgrid.model import load_grid_dit
from camgrid.model.checkpoint import to_diffusers_layout
from grid_helpers import tiny_model

diffusers = pytest.importorskip("diffusers")
from diffusers import WanTransformer3DModel  # noqa: E402

HEADS, HEAD_DIM, LAYERS = 4, 32, 3


def make_pair(seed=0):
    ours = tiny_model(dim=HEADS * HEAD_DIM, num_heads=HEADS, num_layers=LAYERS, ffn_dim=256, freq_dim=64, seed=seed)
    ref = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=HEADS, attention_head_dim=HEAD_DIM,
                                in_channels=16, out_channels=16, text_dim=32, freq_dim=64, ffn_dim=256,
                                num_layers=LAYERS, cross_attn_norm=True, eps=1e-6).eval()
    ref.load_state_dict(to_diffusers_layout(ours.state_dict()), strict=True)
    return ours, ref


def inputs(seed=1):
    g = torch.Generator().manual_seed(seed)
    # non-square latent (6 x 10 -> 3 x 5 tokens), 3 latent frames, batch 2
    return torch.randn(2, 1, 16, 3, 6, 10, generator=g), torch.randn(2, 7, 32, generator=g)


def wan_float64_timesteps(timesteps, embedding_dim, flip_sin_to_cos=False, downscale_freq_shift=1, scale=1, max_period=10000):
    """diffusers' get_timestep_embedding computed in float64 like the Wan reference, then cast to fp32."""
    half = embedding_dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float64) / (half - downscale_freq_shift)
    emb = timesteps[:, None].double() * torch.exp(exponent)[None, :] * scale
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return emb.float()


@pytest.mark.parametrize("timesteps", [[999.0, 250.0], [500.0, 1.0]])
def test_independent_matches_diffusers(monkeypatch, timesteps):
    # diffusers builds the sinusoid in float32: for t ~ 1000 its argument is off by ~1e-4, a difference
    # of the reference (float64, Wan) vs diffusers, not of the model. Give both the same sinusoid.
    import diffusers.models.embeddings as emb

    monkeypatch.setattr(emb, "get_timestep_embedding", wan_float64_timesteps)
    ours, ref = make_pair()
    x, ctx = inputs()
    ts = torch.tensor(timesteps)
    with torch.no_grad():
        a = ours(x, ts, ctx, mode="independent")
        b = ref(x[:, 0], ts, ctx, return_dict=False)[0]
    assert a.shape == (2, 1, 16, 3, 6, 10)
    assert b.abs().max() > 0.5  # a meaningful signal, not near-zero outputs
    assert (a[:, 0] - b).abs().max().item() < 1e-5


def test_independent_matches_stock_diffusers_at_small_timesteps():
    # stock diffusers, no patching: at small t the float32 sinusoid is exact enough for 1e-5
    ours, ref = make_pair(seed=3)
    x, ctx = inputs(seed=4)
    ts = torch.tensor([3.0, 1.0])
    with torch.no_grad():
        a = ours(x, ts, ctx)
        b = ref(x[:, 0], ts, ctx, return_dict=False)[0]
    assert (a[:, 0] - b).abs().max().item() < 1e-5


def test_stock_diffusers_at_t999_differs_only_by_its_fp32_sinusoid():
    ours, ref = make_pair(seed=5)
    x, ctx = inputs(seed=6)
    ts = torch.tensor([999.0, 999.0])
    with torch.no_grad():
        diff = (ours(x, ts, ctx)[:, 0] - ref(x[:, 0], ts, ctx, return_dict=False)[0]).abs().max().item()
    assert diff < 2e-4  # stated tolerance for the float32-sinusoid difference


def test_diffusers_layout_and_original_layout_load_to_the_same_model():
    ours, ref = make_pair(seed=7)
    x, ctx = inputs(seed=8)
    ts = torch.tensor([700.0, 20.0])
    from_orig = load_grid_dit(ours.state_dict(), num_heads=HEADS)
    from_diff = load_grid_dit(ref.state_dict(), num_heads=HEADS)
    with torch.no_grad():
        a, b, c = ours(x, ts, ctx), from_orig(x, ts, ctx), from_diff(x, ts, ctx)
    assert torch.equal(a, b) and torch.equal(a, c)


def test_views_are_a_batch_in_independent_mode():
    ours = tiny_model(seed=9)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 16, 2, 4, 6, generator=g)
    ctx = torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        grid = ours(x, torch.tensor([500.0]), ctx)
        for v in range(3):
            single = ours(x[:, v:v + 1], torch.tensor([500.0]), ctx)
            assert (grid[:, v] - single[:, 0]).abs().max() < 1e-5
