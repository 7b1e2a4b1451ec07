"""The speed / memory code paths of GridDiT give the same numbers as the plain path (CPU, fp32).

Row chunking, FFN chunking, torch.compile of the blocks and the kernel dispatch must not change
results beyond fp32 rounding; the old (pre-kernel) block equations are re-derived here in plain
torch as an independent reference. No timing here: benchmarks/bench_dit.py measures speed.
"""
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from camgrid.kernels import gated_residual as gr_mod
from camgrid.kernels import layernorm_modulate as ln_mod
from camgrid.kernels import qk_norm_rope as qk_mod
from camgrid.kernels.sdpa_select import choose_order, sdpa_priority, set_sdpa_policy
from camgrid.model import attach_sync_layers
from camgrid.kernels.rope import rope_apply_reference as rope_apply
from camgrid.kernels.rope import rope_cos_sin
from camgrid.model.attention import attention, attention_backend, attention_naive
from grid_helpers import tiny_model


def grid(b=1, v=3, t=3, h=4, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, v, 16, t, h, w, generator=g)
    cam = torch.randn(b, v, t, 12, generator=g)
    ctx = torch.randn(b, 5, 32, generator=g)
    src = torch.randn(b, 16, t, h, w, generator=g)
    return x, torch.full((b,), 600.0), ctx, cam, src


def run(model, mode, b=1, v=3):
    x, ts, ctx, cam, src = grid(b=b, v=v)
    if mode == "recam":
        return model(x, ts, ctx, mode=mode, camera=cam, source=src)
    return model(x, ts, ctx, mode=mode, camera=cam if mode == "syncam" else None)


def model_for(mode):
    variant = {"syncam": "syncammaster", "recam": "recammaster"}.get(mode, "wan")
    model = tiny_model(variant, seed=5)
    if mode in ("hard", "soft"):
        attach_sync_layers(model)
        g = torch.Generator().manual_seed(9)
        for p in model.parameters():  # sync layers start at zero; make them matter
            if p.abs().max() == 0:
                p.data.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def maxrel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("mode", ["independent", "syncam", "recam", "hard", "soft"])
@pytest.mark.parametrize("rows", [1, 2])
def test_row_chunks_give_the_same_result(mode, rows):
    model = model_for(mode)
    with torch.no_grad():
        plain = run(model, mode, b=2)  # b=2: chunks cross batch elements (text context per row)
        model.set_row_chunks(rows)
        chunked = run(model, mode, b=2)
        model.set_ffn_chunk(7)
        both = run(model, mode, b=2)
        model.set_row_chunks(None)
        model.set_ffn_chunk(None)
        again = run(model, mode, b=2)
    assert torch.equal(again, plain)
    assert maxrel(chunked, plain) < 1e-5
    assert maxrel(both, plain) < 1e-5


def test_row_chunk_rejects_bad_values():
    model = tiny_model("wan")
    for bad in (0, -2, 1.5):
        with pytest.raises(ValueError, match="row_chunks"):
            model.set_row_chunks(bad)


def test_syncam_row_chunks_keep_gradients():
    """Under autograd (training) the chunked syncam block writes into fresh buffers: same loss, same grads."""
    model = model_for("syncam")

    def loss_and_grads():
        model.zero_grad(set_to_none=True)
        out = run(model, "syncam", b=2)
        out.square().mean().backward()
        return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}

    plain, g_plain = loss_and_grads()
    model.set_row_chunks(2)
    chunked, g_chunked = loss_and_grads()
    model.set_row_chunks(None)
    assert maxrel(chunked, plain) < 1e-5
    assert g_plain.keys() == g_chunked.keys() and any("mvs_attn" in k for k in g_plain)
    for k in g_plain:
        assert maxrel(g_chunked[k], g_plain[k]) < 1e-4, k


@pytest.mark.parametrize("backend", ["eager", "aot_eager"])
def test_compiled_blocks_match_eager_blocks(backend):
    torch._dynamo.reset()
    model = model_for("hard")
    with torch.no_grad():
        ref_ind, ref_hard = run(model, "independent"), run(model, "hard")
        model.compile_blocks(backend=backend)
        assert all(getattr(b, "_compiled_call_impl", None) is not None for b in model.blocks)
        got_ind, got_hard = run(model, "independent"), run(model, "hard")
        model.compile_blocks(False)
        assert all(b._compiled_call_impl is None for b in model.blocks)
        assert torch.equal(run(model, "independent"), ref_ind)
    torch._dynamo.reset()
    assert maxrel(got_ind, ref_ind) < 1e-5
    assert maxrel(got_hard, ref_hard) < 1e-5


def test_importing_camgrid_does_not_load_torch_dynamo():
    """model/attention.py never_compiled: the quick start (any `import camgrid`) does not pay for importing
    torch._dynamo (1.3 s on 2 CPU cores, benchmarks/bench_import_time.py) when nothing is compiled."""
    code = "import sys, camgrid.nodes, camgrid.train.demo; print('torch._dynamo' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


def test_compiled_code_does_not_trace_the_attention_dispatcher(monkeypatch):
    """never_compiled keeps torch.compiler.disable's meaning: the dispatcher runs eagerly (a graph break at the
    call), so the compiled code uses exactly the backend it picks."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    from camgrid.model import attention as attention_mod

    traced = []
    check = attention_mod._check_inputs
    def spy(q, k, v):   # the dispatcher's first line: records whether it runs under a trace
        traced.append(torch.compiler.is_compiling())
        return check(q, k, v)
    monkeypatch.setattr(attention_mod, "_check_inputs", spy)
    torch._dynamo.reset()
    counters.clear()
    q = torch.randn(1, 16, 2, 8)
    got = torch.compile(lambda q: attention(q * 2, q, q).sin(), backend="eager")(q)
    torch._dynamo.reset()
    assert torch.allclose(got, attention_naive(q * 2, q, q).sin(), atol=1e-5)
    assert traced == [False]
    assert sum(counters["graph_break"].values()) >= 1


def test_cpu_never_calls_the_triton_launchers(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a Triton launcher ran for CPU tensors")

    monkeypatch.setattr(qk_mod, "qk_norm_rope_triton", boom)
    monkeypatch.setattr(ln_mod, "layer_norm_modulate_triton", boom)
    monkeypatch.setattr(gr_mod, "gated_residual_triton", boom)
    model = model_for("soft")
    with torch.no_grad():
        for mode in ("independent", "hard", "soft"):
            assert torch.isfinite(run(model, mode)).all()


def old_block(block, x, e, ctx, rope):
    """The Wan block as plain torch (the equations of docs/ARCHITECTURE.md §3.1 Base block, as the model had them before the
    fused kernels): fp32 LN / modulation / residual, RMSNorm + RoPE, naive attention."""
    heads = block.self_attn.num_heads
    n, l, d = x.shape

    def rms(t, w, eps):
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + eps) * w

    def ln(t):
        return F.layer_norm(t, (d,), eps=block.norm1.eps)

    s1, c1, g1, s2, c2, g2 = (block.modulation + e).chunk(6, dim=1)
    sa = block.self_attn
    h = ln(x) * (1 + c1) + s1
    q = rms(sa.q(h), sa.norm_q.weight, sa.norm_q.eps).view(n, l, heads, -1)
    k = rms(sa.k(h), sa.norm_k.weight, sa.norm_k.eps).view(n, l, heads, -1)
    v = sa.v(h).view(n, l, heads, -1)
    y = sa.o(attention_naive(rope_apply(q, *rope), rope_apply(k, *rope), v).reshape(n, l, d))
    x = x + g1 * y
    ca = block.cross_attn
    hc = F.layer_norm(x, (d,), block.norm3.weight, block.norm3.bias, block.norm3.eps)
    q = rms(ca.q(hc), ca.norm_q.weight, ca.norm_q.eps).view(n, l, heads, -1)
    k = rms(ca.k(ctx), ca.norm_k.weight, ca.norm_k.eps).view(ctx.shape[0], -1, heads, d // heads)
    v = ca.v(ctx).view(ctx.shape[0], -1, heads, d // heads)
    x = x + ca.o(attention_naive(q, k, v).reshape(n, l, d))
    return x + g2 * block.ffn(ln(x) * (1 + c2) + s2)


def test_block_equals_the_plain_torch_equations():
    model = tiny_model("wan", seed=7)
    block = model.blocks[0]
    g = torch.Generator().manual_seed(3)
    f, hh, ww = 3, 2, 3
    x = torch.randn(2, f * hh * ww, model.config.dim, generator=g)
    e = 0.1 * torch.randn(2, 6, model.config.dim, generator=g)
    ctx = torch.randn(2, 5, model.config.dim, generator=g)
    rope = rope_cos_sin(f, hh, ww, model.config.head_dim)
    with torch.no_grad(), attention_backend("naive"):
        want = old_block(block, x, e, ctx, rope)
        got = block(x, e, block.cross_attn.text_kv(ctx), rope)
        block.row_chunks = 1
        got_chunked = block(x, e, block.cross_attn.text_kv(ctx), rope)
    assert maxrel(got, want) < 1e-5
    assert maxrel(got_chunked, want) < 1e-5


def test_block_does_not_modify_its_input():
    model = tiny_model("wan", seed=8)
    x, ts, ctx, _, _ = grid(v=1)
    tokens, (f, h, w) = model.embed_patches(x.flatten(0, 1))
    before = tokens.clone()
    t, t_mod = model.embed_time(ts)
    rope = rope_cos_sin(f, h, w, model.config.head_dim)
    with torch.no_grad():
        model.blocks[0](tokens, t_mod, model.blocks[0].cross_attn.text_kv(model.text_embedding(ctx)), rope)
    assert torch.equal(tokens, before)  # hard/soft feed the same tokens to both streams


def test_sdpa_policy_is_a_no_op_off_cuda_and_checks_names():
    q = torch.randn(1, 2048, 2, 128, dtype=torch.bfloat16)
    assert choose_order(q, q) is None
    with sdpa_priority(q, q):
        pass
    for policy in ("cudnn", "flash", "default"):
        assert choose_order(q, q, policy) is None  # CPU tensors: PyTorch's own choice
    with pytest.raises(ValueError, match="sdpa policy"):
        set_sdpa_policy("fastest")


def test_ffn_epilogue_is_taken_only_where_it_is_the_tanh_gelu():
    """The CUDA path of ffn_apply uses torch._addmm_activation(use_gelu=True) (cuBLASLt epilogue,
    tanh GELU). torch's CPU kernel of that op is the erf GELU: the detector must say so, and the
    CPU FFN must stay the plain Sequential."""
    from camgrid.model.block import gelu_epilogue_is_tanh

    assert gelu_epilogue_is_tanh("cpu") is False
    block = tiny_model("wan", seed=11).blocks[0]
    x = torch.randn(1, 37, block.ffn[0].in_features, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(block.ffn_apply(x), block.ffn(x))


def test_cuda_norm3_as_modulated_layer_norm_equals_norm3():
    """CUDA runs norm3 (affine LayerNorm) as LN(x) * (1 + (w - 1)) + b through the fused kernel."""
    block = tiny_model("wan", seed=12).blocks[0]
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        block.norm3.weight.copy_(1 + 0.3 * torch.randn(block.norm3.weight.shape, generator=g))
        block.norm3.bias.copy_(0.3 * torch.randn(block.norm3.bias.shape, generator=g))
        x = torch.randn(2, 9, block.norm3.weight.shape[0], generator=g)
        as_mod = ln_mod.layer_norm_modulate_reference(x, block.norm3.bias, block.norm3.weight - 1, block.norm3.eps)
        assert maxrel(as_mod, block.norm3(x)) < 1e-6
        assert torch.equal(block.cross_input(x), block.norm3(x))  # CPU: the plain LayerNorm
