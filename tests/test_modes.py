"""The grid modes of docs/ARCHITECTURE.md §3.3 Grid modes: equivalences, any view count, errors, sync weights,
fp32 vs bf16; one forward's machinery (inputs object, mode table, shared text k/v, interrupt, finite inputs)."""
import dataclasses

import pytest
import torch

from camgrid.model import GridDiT, attach_sync_layers, load_sync_weights, save_sync_weights
from camgrid.model.attention import attention_masked, attention_naive
from camgrid.model.checks import NonFiniteError
from camgrid.model.layers import TextKV
from camgrid.kernels.rope import rope_apply_reference as rope_apply
from camgrid.kernels.rope import rope_cos_sin
from camgrid.model.block import TokenGrid, from_view_stream, to_view_stream
from grid_helpers import randomize, tiny_config, tiny_model


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
            rope = rope_cos_sin(v, h, w, hd)
            tg = TokenGrid(b, v, t, h, w)
            out = from_view_stream(attn(to_view_stream(x, tg), rope), tg)
            pos_f, mask = view_id, time_id[:, None] == time_id[None, :]
        else:
            rope = rope_cos_sin(t, h, w, hd)
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
            c, s = rope_cos_sin([int(pos_f[i])], h, w, hd)
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
                                          ("wan", "hard"), ("syncammaster", "hard"), ("wan", "soft"),
                                          ("wan", "fused"), ("syncammaster", "fused")])
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


# --- fused (4Real-Video-V2): one masked attention over the whole grid ------------------------------------------------

def fused_reference(model, x, ts, ctx, camera=None):
    """The fused mode from its definition, independently of GridDiT's fused code: per block, LN + modulation,
    q / k / v of every token of a batch element, RoPE of each token from its own frame index view*T + time,
    attention over all V*T*hw tokens with a dense boolean mask (same view or same time), gated residual;
    then the block's cross-attention + FFN step (shared with every mode); the head."""
    b, v, _, t, hh, ww = x.shape
    h, w = hh // 2, ww // 2
    hw, d = h * w, model.config.dim
    heads, hd = model.config.num_heads, model.config.head_dim
    frame = torch.arange(v * t * hw) // hw
    view, time = frame // t, frame % t
    mask = (view[:, None] == view[None, :]) | (time[:, None] == time[None, :])          # [N, N] dense
    cos = torch.cat([rope_cos_sin([int(f)], h, w, hd)[0] for f in range(v * t)])        # per token: frame view*T+time
    sin = torch.cat([rope_cos_sin([int(f)], h, w, hd)[1] for f in range(v * t)])
    tokens, tgrid = model.embed_grid(x)
    xs = tokens.reshape(b, v * t * hw, d).clone()
    t_emb, t_mod = model.embed_time(ts)
    text = model.text_embedding(ctx)
    for block in model.blocks:
        m = block.modulation_of(t_mod)  # per batch element [B, 1, d] chunks
        a = torch.nn.functional.layer_norm(xs, (d,), eps=block.norm1.eps) * (1 + m.scale_msa) + m.shift_msa
        if camera is not None:
            a = a + block.cam_encoder(camera)[:, :, :, None, :].expand(b, v, t, hw, d).reshape(b, -1, d)
        attn = block.self_attn
        q = rope_apply(attn.norm_q(attn.q(a)).view(b, -1, heads, hd), cos, sin)   # [B, N, H, D]
        k = rope_apply(attn.norm_k(attn.k(a)).view(b, -1, heads, hd), cos, sin)
        val = attn.v(a).view(b, -1, heads, hd)
        xs = xs + m.gate_msa * attn.o(attention_masked(q, k, val, mask).reshape(b, -1, d))
        xs = block.cross_ffn_residual(xs, m, block.cross_attn.text_kv(text))
    return model.head_out(xs.reshape(b * v, t * hw, d), t_emb, tgrid).reshape(b, v, 16, t, hh, ww)


@pytest.mark.parametrize("variant,b,v,t", [("wan", 2, 3, 2), ("wan", 1, 2, 3), ("syncammaster", 1, 3, 2)])
def test_fused_equals_a_dense_masked_attention_over_the_whole_grid(variant, b, v, t):
    model = tiny_model(variant, seed=21)
    x, ts, ctx, cam = grid(b=b, v=v, t=t, h=4, w=4, seed=22)
    camera = cam if variant == "syncammaster" else None
    with torch.no_grad():
        out = model(x, ts, ctx, mode="fused", camera=camera)
        ref = fused_reference(model, x, ts, ctx, camera)
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)  # fp32 tight
    assert maxdiff(out, model(x, ts, ctx, mode="independent")) > 1e-3  # the views are coupled


def test_fused_with_one_view_equals_independent():
    """V = 1: the mask keeps every pair and the frame index is the time: the plain Wan forward."""
    model = tiny_model("wan", seed=23)
    x, ts, ctx, _ = grid(b=2, v=1, t=3, seed=24)
    with torch.no_grad():
        torch.testing.assert_close(model(x, ts, ctx, mode="fused"), model(x, ts, ctx, mode="independent"),
                                   atol=1e-6, rtol=1e-6)


def test_fused_with_one_frame_equals_independent_on_the_video_of_the_views():
    """T = 1: every pair shares the time, and frame (view a, time 0) has RoPE index a*1 + 0 = a, so the grid is
    the video whose a-th frame is view a (docs/ARCHITECTURE.md §3.3 Grid modes)."""
    model = tiny_model("wan", seed=25)
    x, ts, ctx, _ = grid(b=1, v=4, t=1, seed=26)
    with torch.no_grad():
        fused = model(x, ts, ctx, mode="fused")
        as_video = model(x.transpose(1, 3), ts, ctx, mode="independent")  # [B, 1, C, V, H, W]: views as frames
    torch.testing.assert_close(fused, as_video.transpose(1, 3), atol=1e-5, rtol=1e-5)


def test_fused_methods_and_row_chunks_give_the_same_grid():
    model = tiny_model("wan", seed=27)
    x, ts, ctx, _ = grid(b=2, v=3, t=2, seed=28)
    with torch.no_grad():
        ref = model(x, ts, ctx, mode="fused")
        for method in ("streams", "flex", "naive"):
            model.set_fused_attention(method)
            torch.testing.assert_close(model(x, ts, ctx, mode="fused"), ref, atol=2e-5, rtol=2e-5)
        model.set_fused_attention("auto")
        for rows in (1, 2, 5):
            model.set_row_chunks(rows)
            torch.testing.assert_close(model(x, ts, ctx, mode="fused"), ref, atol=2e-5, rtol=2e-5)
    with pytest.raises(ValueError, match="fused attention method must be one of auto, streams, flex, naive"):
        model.set_fused_attention("dense")


def test_fused_uses_the_camera_only_with_a_camera_encoder():
    x, ts, ctx, cam = grid(v=2, seed=29)
    with torch.no_grad():
        wan = tiny_model("wan", seed=30)
        assert maxdiff(wan(x, ts, ctx, mode="fused", camera=cam), wan(x, ts, ctx, mode="fused")) == 0
        scm = tiny_model("syncammaster", seed=30)
        assert maxdiff(scm(x, ts, ctx, mode="fused", camera=cam), scm(x, ts, ctx, mode="fused")) > 1e-4
    with pytest.raises(ValueError, match=r"camera must be \[B, V, T, 12\]"):
        scm(x, ts, ctx, mode="fused", camera=cam[:, :1])


def test_fused_adds_no_parameters_and_auto_never_picks_it():
    from camgrid.model.modes import AUTO_MODE, pick_mode

    model = tiny_model("wan", seed=31)
    assert "fused" not in AUTO_MODE.values()
    assert all(pick_mode(variant) != "fused" for variant in AUTO_MODE)
    assert pick_mode("wan", "fused") == "fused"
    before = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        model(*grid(v=2, seed=32)[:3], mode="fused")
    assert sum(p.numel() for p in model.parameters()) == before


def test_sample_grid_in_fused_mode():
    from camgrid.model.sampling import sample_grid

    model = tiny_model("wan", seed=33)
    g = torch.Generator().manual_seed(34)
    ctx, neg = torch.randn(1, 5, 32, generator=g), torch.randn(1, 5, 32, generator=g)
    kw = dict(steps=2, cfg=2.0, seed=5, scheduler="euler")
    fused = sample_grid(model, (1, 2, 16, 2, 4, 4), ctx, neg, mode="fused", **kw)
    assert fused.shape == (1, 2, 16, 2, 4, 4) and torch.isfinite(fused).all()
    # one view: the same sampling as independent
    torch.testing.assert_close(sample_grid(model, (1, 1, 16, 2, 4, 4), ctx, neg, mode="fused", **kw),
                               sample_grid(model, (1, 1, 16, 2, 4, 4), ctx, neg, mode="independent", **kw),
                               atol=1e-5, rtol=1e-5)


# --- one forward: inputs object, mode table, text k/v once per block, interrupt, finite inputs ---------------------

@pytest.mark.parametrize("variant,mode", [("wan", "independent"), ("syncammaster", "syncam"), ("wan", "hard"),
                                          ("wan", "soft"), ("recammaster", "recam")])
def test_text_keys_and_values_are_projected_once_per_block(variant, mode):
    """Every stream of a block shares one text k/v (two streams in hard / soft, three steps in syncam)."""
    model = tiny_model(variant, seed=15)
    if mode == "soft":
        attach_sync_layers(model)
    calls = []
    for i, block in enumerate(model.blocks):
        block.cross_attn.k.register_forward_hook(lambda m, a, o, i=i: calls.append(i))
    x, ts, ctx, cam = grid(b=2, v=3, t=2)
    src = torch.randn(2, 16, 2, 4, 6) if mode == "recam" else None
    with torch.no_grad():
        model(x, ts, ctx, mode=mode, camera=cam, source=src)
    assert calls == [0, 1]


@pytest.mark.parametrize("chunk", [1, 2, 5, 7, 12])
def test_text_kv_shared_by_rows_equals_per_row_attention(chunk):
    """Rows of one batch element attend as one long query; chunks that cut a batch element's rows run per
    element. Both equal attention of every row to its own copy of the text (what repeat_interleave built)."""
    g = torch.Generator().manual_seed(16)
    b, rep, l, lc, h, d = 3, 4, 5, 6, 2, 8
    q = torch.randn(b * rep, l, h, d, generator=g)
    k, v = torch.randn(b, lc, h, d, generator=g), torch.randn(b, lc, h, d, generator=g)
    want = attention_naive(q, k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0))
    text, n = TextKV(k, v), b * rep
    got = torch.cat([text.rows(r0, min(n, r0 + chunk), n).attend(q[r0:r0 + chunk]) for r0 in range(0, n, chunk)])
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(text.attend(q), want, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="batch elements"):
        text.rows(0, 7, 7)


def test_forward_calls_interrupt_before_every_block():
    model = tiny_model("wan", seed=17)
    x, ts, ctx, _ = grid(v=2)
    seen = []
    with torch.no_grad():
        model(x, ts, ctx, mode="hard", interrupt=lambda: seen.append(1))
    assert len(seen) == len(model.blocks)

    class Stop(Exception):
        pass

    def stop():
        raise Stop

    with pytest.raises(Stop), torch.no_grad():
        model(x, ts, ctx, interrupt=stop)
    assert not hasattr(model, "interrupt_check")


def test_a_new_mode_is_one_method_and_one_table_entry():
    """How to add a mode (model/dit.py): a method taking the GridInputs, one entry in MODE_FORWARDS."""

    class WithMirror(GridDiT):
        def _forward_mirror(self, inp):  # independent mode on the views in reverse order, reversed back
            out = self._forward_independent(dataclasses.replace(inp, x=inp.x.flip(1)))
            return out.unflatten(0, (inp.x.shape[0], inp.x.shape[1])).flip(1).flatten(0, 1)

        MODE_FORWARDS = {**GridDiT.MODE_FORWARDS, "mirror": _forward_mirror}

    model = randomize(WithMirror(tiny_config("wan")).eval(), seed=18)
    x, ts, ctx, _ = grid(v=3)
    with torch.no_grad():
        assert maxdiff(model(x, ts, ctx, mode="mirror"), model(x, ts, ctx, mode="independent")) < 1e-6


@pytest.mark.parametrize("name,message", [("x", "the latent x holds 1 NaN"), ("context", "context holds 1 NaN"),
                                          ("camera", "camera holds 1 NaN or infinite.*check the rig"),
                                          ("source", "source holds 1 NaN"), ("timestep", "timestep holds 1 NaN")])
def test_non_finite_inputs_are_refused_by_the_model(name, message):
    model = tiny_model("recammaster", seed=19)
    x, ts, ctx, cam = grid(v=1)
    inputs = dict(x=x, timestep=ts, context=ctx, camera=cam, source=torch.randn(1, 16, 3, 4, 6))
    inputs[name] = inputs[name].clone()
    inputs[name].view(-1)[0] = float("nan") if name != "camera" else float("inf")
    with pytest.raises(NonFiniteError, match=message):
        model(inputs["x"], inputs["timestep"], inputs["context"], mode="recam", camera=inputs["camera"],
              source=inputs["source"])


def test_latent_and_text_mismatch_errors_name_the_fix():
    model = tiny_model("wan", seed=20)
    x, ts, ctx, _ = grid(v=2)
    with pytest.raises(ValueError, match="8 channels but the model expects 16.*Empty Latent"):
        model(x[:, :, :8], ts, ctx)
    with pytest.raises(ValueError, match=r"context must be \[B=1, L, 32\].*CLIP Loader type 'wan'"):
        model(x, ts, ctx[..., :16])
    with pytest.raises(ValueError, match="not divisible by the patch size"):
        model(x[..., :5], ts, ctx)


def test_sampler_node_offers_and_runs_fused():
    """CamGridSampler's sync_mode list holds fused; the node runs it (memory prediction, info, latent out)."""
    from camgrid.nodes.latent import CamGridEmptyLatent
    from camgrid.nodes.sampler import CamGridSampler
    from camgrid.nodes.sockets import LoadedModel

    assert "fused" in CamGridSampler.INPUT_TYPES()["required"]["sync_mode"][0]
    assert CamGridSampler.VALIDATE_INPUTS(sync_mode="fused") is True
    model = LoadedModel(model=tiny_model("wan", seed=35), name="tiny", variant="wan", size="tiny",
                        dtype=torch.float32, attention="auto")
    latent = CamGridEmptyLatent().generate(2, 32, 32, 5)[0]
    g = torch.Generator().manual_seed(36)
    positive, negative = [[torch.randn(1, 5, 32, generator=g), {}]], [[torch.randn(1, 5, 32, generator=g), {}]]
    args = dict(seed=3, steps=2, cfg=2.0, shift=5.0, scheduler="euler", denoise=1.0)
    out, info = CamGridSampler().sample(model, positive, negative, latent, sync_mode="fused", **args)
    assert "sync mode fused (4Real-Video-V2" in info
    independent, _ = CamGridSampler().sample(model, positive, negative, latent, sync_mode="independent", **args)
    assert out["samples"].shape == independent["samples"].shape and torch.isfinite(out["samples"]).all()
    assert maxdiff(out["samples"], independent["samples"]) > 1e-4


def test_the_modes_offered_are_the_modes_the_model_runs():
    # one list of modes (model/modes.py) for the nodes, the CLI and the library; one forward for each
    from camgrid.model import modes
    from camgrid.nodes.sampler import MODE_NOTES, SYNC_MODES

    assert tuple(GridDiT.MODE_FORWARDS) == modes.MODES
    assert SYNC_MODES == ("auto",) + modes.MODES and set(MODE_NOTES) == set(modes.MODES)
    for mode in modes.MODES:
        for variant in modes.VARIANTS:
            problem = modes.mode_problem(mode, variant, soft_sync=True)
            assert problem is None or variant in problem, (mode, variant)
    assert modes.mode_problem("soft", "wan", soft_sync=False) is not None
