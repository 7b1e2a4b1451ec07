"""The grid modes of DESIGN §3.3: equivalences, any view count, errors, sync weights, fp32 vs bf16."""
import pytest
import torch

from camgrid.model import attach_sync_layers, load_sync_weights, save_sync_weights
from camgrid.model.dit import from_view_stream, to_view_stream
from camgrid.model.rope import rope_apply, rope_table
from grid_helpers import tiny_model


def grid(b=1, v=2, t=3, h=4, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, v, 16, t, h, w, generator=g)
    cam = torch.randn(b, v, t, 12, generator=g)
    ctx = torch.randn(b, 5, 32, generator=g)
    ts = torch.full((b,), 700.0)
    return x, ts, ctx, cam


def maxdiff(a, b):
    return (a.float() - b.float()).abs().max().item()


@pytest.mark.parametrize("v", [1, 2, 4])
def test_syncam_with_zero_initialised_modules_equals_independent(v):
    model = tiny_model("syncammaster", seed=1, zero_new_modules=True)
    x, ts, ctx, cam = grid(v=v)
    with torch.no_grad():
        assert maxdiff(model(x, ts, ctx, mode="syncam", camera=cam), model(x, ts, ctx, mode="independent")) < 1e-6


def test_syncam_trained_modules_couple_the_views():
    model = tiny_model("syncammaster", seed=2)
    x, ts, ctx, cam = grid(v=2)
    with torch.no_grad():
        out = model(x, ts, ctx, mode="syncam", camera=cam)
        x2 = x.clone()
        x2[:, 1] += 1.0  # change view 1 only
        out2 = model(x2, ts, ctx, mode="syncam", camera=cam)
        assert maxdiff(out[:, 0], out2[:, 0]) > 1e-3  # view 0 sees view 1 through multi-view attention
        assert maxdiff(model(x, ts, ctx, mode="independent")[:, 0],
                       model(x2, ts, ctx, mode="independent")[:, 0]) < 1e-6


@pytest.mark.parametrize("v", [1, 3])
def test_hard_with_time_weight_one_equals_independent(v):
    model = attach_sync_layers(tiny_model("wan", seed=3), soft=False)
    for block in model.blocks:
        block.sync.gate.proj.bias.data.fill_(-0.5)  # g = -1/2 -> Wv = 0, Wt = 1
    x, ts, ctx, _ = grid(v=v)
    with torch.no_grad():
        assert maxdiff(model(x, ts, ctx, mode="hard"), model(x, ts, ctx, mode="independent")) < 1e-6


def test_hard_without_sync_weights_is_the_plain_average_of_both_streams():
    model = tiny_model("wan", seed=4)
    x, ts, ctx, _ = grid(v=2)
    with torch.no_grad():
        plain = model(x, ts, ctx, mode="hard")
        attach_sync_layers(model, soft=False)  # zero-initialised gate: g = 0
        assert maxdiff(plain, model(x, ts, ctx, mode="hard")) < 1e-6
        assert maxdiff(plain, model(x, ts, ctx, mode="independent")) > 1e-3


def naive_masked(q, k, v, mask):
    s = torch.einsum("qhd,khd->hqk", q, k) / q.shape[-1] ** 0.5
    s = s.masked_fill(~mask[None], float("-inf"))
    return torch.einsum("hqk,khd->qhd", s.softmax(-1), v)


@pytest.mark.parametrize("stream", ["view", "time"])
def test_regrouped_stream_attention_equals_masked_attention_over_the_whole_grid(stream):
    """The view stream == full attention masked to the same latent frame; the time stream == same view."""
    model = tiny_model("wan", seed=5)
    attn = model.blocks[0].self_attn
    b, v, t, h, w = 1, 3, 4, 2, 3
    hw, d = h * w, model.config.dim
    x = torch.randn(b * v, t * hw, d, generator=torch.Generator().manual_seed(6))
    heads, hd = attn.num_heads, d // attn.num_heads
    view_id = torch.arange(v)[:, None, None].expand(v, t, hw).reshape(-1)
    time_id = torch.arange(t)[None, :, None].expand(v, t, hw).reshape(-1)
    with torch.no_grad():
        if stream == "view":
            rope = rope_table(range(v), h, w, hd)
            out = from_view_stream(attn(to_view_stream(x, b, v, t, hw), rope), b, v, t, hw)
            pos_f, mask = view_id, time_id[:, None] == time_id[None, :]
        else:
            rope = rope_table(range(t), h, w, hd)
            out = attn(x, rope)
            pos_f, mask = time_id, view_id[:, None] == view_id[None, :]
        # reference: every token of the grid at once, RoPE from its own (frame-axis, row, col) position
        flat = x.reshape(v * t * hw, d)
        q = attn.norm_q(attn.q(flat)).view(-1, 1, heads, hd)
        k = attn.norm_k(attn.k(flat)).view(-1, 1, heads, hd)
        val = attn.v(flat).view(-1, heads, hd)
        rows = torch.arange(hw) // w
        cols = torch.arange(hw) % w
        cos_all, sin_all = [], []
        for i in range(v * t * hw):
            c, s = rope_table([int(pos_f[i])], h, w, hd)
            j = i % hw
            cos_all.append(c[j])
            sin_all.append(s[j])
        cos_all, sin_all = torch.stack(cos_all), torch.stack(sin_all)
        qr = rope_apply(q.transpose(0, 1), cos_all, sin_all)[0]
        kr = rope_apply(k.transpose(0, 1), cos_all, sin_all)[0]
        ref = attn.o(naive_masked(qr, kr, val, mask).reshape(-1, d)).reshape(b * v, t * hw, d)
    assert maxdiff(out, ref) < 1e-5


def test_recam_uses_the_source_and_treats_views_independently():
    model = tiny_model("recammaster", seed=7)
    x, ts, ctx, cam = grid(v=2, t=2)
    src = torch.randn(1, 16, 2, 4, 6, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        out = model(x, ts, ctx, mode="recam", camera=cam, source=src)
        assert out.shape == x.shape
        assert maxdiff(out, model(x, ts, ctx, mode="recam", camera=cam, source=src + 1)) > 1e-3
        for v in range(2):
            one = model(x[:, v:v + 1], ts, ctx, mode="recam", camera=cam[:, v:v + 1], source=src)
            assert maxdiff(out[:, v], one[:, 0]) < 1e-5


def test_recam_camera_path_matters():
    model = tiny_model("recammaster", seed=9)
    x, ts, ctx, cam = grid(v=1, t=2)
    src = torch.randn(1, 16, 2, 4, 6)
    with torch.no_grad():
        a = model(x, ts, ctx, mode="recam", camera=cam, source=src)
        b = model(x, ts, ctx, mode="recam", camera=cam * 0, source=src)
    assert maxdiff(a, b) > 1e-4


@pytest.mark.parametrize("v", [1, 2, 4, 8])
@pytest.mark.parametrize("variant,mode", [("wan", "independent"), ("syncammaster", "syncam"), ("recammaster", "recam"),
                                          ("wan", "hard"), ("syncammaster", "hard"), ("wan", "soft")])
def test_every_mode_runs_for_any_view_count_fp32_and_bf16(v, variant, mode):
    model = tiny_model(variant, seed=10)
    if mode == "soft":
        attach_sync_layers(model)
        for block in model.blocks:  # give the soft layers non-trivial weights
            torch.nn.init.normal_(block.sync.soft.up.weight, std=0.05)
    x, ts, ctx, cam = grid(v=v, t=2, h=4, w=4, seed=v)
    src = torch.randn(1, 16, 2, 4, 4) if mode == "recam" else None
    with torch.no_grad():
        out32 = model(x, ts, ctx, mode=mode, camera=cam, source=src)
        assert out32.shape == x.shape and torch.isfinite(out32).all()
        out16 = model.to(torch.bfloat16)(x, ts, ctx, mode=mode, camera=cam, source=src)
    # bf16 loose: relative to the output scale
    assert out16.dtype == torch.float32
    assert maxdiff(out16, out32) < 0.05 * out32.abs().max().item()


def test_soft_sync_changes_output_only_when_trained():
    model = attach_sync_layers(tiny_model("wan", seed=11))
    x, ts, ctx, _ = grid(v=2)
    with torch.no_grad():
        untrained = model(x, ts, ctx, mode="soft")
        for block in model.blocks:
            torch.nn.init.normal_(block.sync.soft.up.weight, std=0.1)
        assert maxdiff(untrained, model(x, ts, ctx, mode="soft")) > 1e-4


def test_sync_weights_roundtrip_and_size_check(tmp_path):
    model = attach_sync_layers(tiny_model("wan", seed=12), rank=8)
    for block in model.blocks:
        torch.nn.init.normal_(block.sync.soft.up.weight, std=0.1)
        torch.nn.init.normal_(block.sync.gate.proj.weight, std=0.1)
    save_sync_weights(model, tmp_path / "sync.safetensors")
    fresh = load_sync_weights(tiny_model("wan", seed=12), tmp_path / "sync.safetensors")
    x, ts, ctx, _ = grid(v=2)
    with torch.no_grad():
        for mode in ("hard", "soft"):
            assert maxdiff(model(x, ts, ctx, mode=mode), fresh(x, ts, ctx, mode=mode)) < 1e-6
    with pytest.raises(ValueError, match=r"trained for a model of width 64 with 2 blocks.*width 96"):
        load_sync_weights(tiny_model("wan", dim=96, num_heads=2), tmp_path / "sync.safetensors")


@pytest.mark.parametrize("variant,kwargs,pattern", [
    ("wan", dict(mode="syncam"), "needs SynCamMaster weights"),
    ("syncammaster", dict(mode="syncam"), "needs camera embeddings"),
    ("recammaster", dict(mode="recam", camera=torch.zeros(1, 2, 3, 12)), "needs a source video"),
    ("wan", dict(mode="recam"), "needs ReCamMaster weights"),
    ("wan", dict(mode="soft"), "needs trained soft-sync weights"),
    ("syncammaster", dict(mode="syncam", camera=torch.zeros(1, 3, 3, 12)), r"camera must be \[B, V, T, 12\] = \[1, 2, 3, 12\]"),
    ("wan", dict(mode="joint"), "not one of"),
])
def test_bad_input_gets_a_clear_error(variant, kwargs, pattern):
    model = tiny_model(variant, seed=13)
    x, ts, ctx, _ = grid(v=2)
    with pytest.raises(ValueError, match=pattern):
        model(x, ts, ctx, **kwargs)


def test_planned_mode_says_it_is_not_implemented():
    model = tiny_model("wan", seed=14)
    x, ts, ctx, _ = grid(v=2)
    with pytest.raises(NotImplementedError, match="fused"):
        model(x, ts, ctx, mode="fused")
