"""Attention dispatch: every backend against the naive reference, selection rules, bounded memory."""
import math
import types
import warnings

import pytest
import torch

from camgrid.kernels import fa3
from camgrid.model import attention as A
from camgrid.model.attention import attention, attention_backend, available_backends, resolve_backend

SHAPES = [  # (B, Lq, Lk, H, D)
    (2, 17, 17, 3, 32),
    (1, 33, 7, 2, 64),   # Lq != Lk (cross-attention like)
    (2, 5, 41, 1, 128),  # odd lengths, Lk > Lq
    (1, 1, 1, 2, 32),
]
# the exact backends that run here (an inexact one, fp8 / sage, is compared with looser bounds elsewhere)
CONCRETE = [name for name in available_backends() if name not in ("auto", "naive") and A.IMPLEMENTATIONS[name].exact]


def _qkv(b, lq, lk, h, d, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, lq, h, d, generator=g)
    k = torch.randn(b, lk, h, d, generator=g)
    v = torch.randn(b, lk, h, d, generator=g)
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _by_hand(q, k, v):
    """Plain per-head loop in float64: an independent check of the naive reference itself."""
    out = torch.empty(q.shape, dtype=torch.float64)
    for b in range(q.shape[0]):
        for h in range(q.shape[2]):
            s = q[b, :, h].double() @ k[b, :, h].double().T / math.sqrt(q.shape[-1])
            out[b, :, h] = torch.softmax(s, dim=-1) @ v[b, :, h].double()
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_naive_matches_per_head_loop(shape):
    q, k, v = _qkv(*shape)
    torch.testing.assert_close(attention(q, k, v, backend="naive").double(), _by_hand(q, k, v), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", CONCRETE + ["auto"])
@pytest.mark.parametrize("shape", SHAPES)
def test_backend_matches_naive_fp32(backend, shape):
    q, k, v = _qkv(*shape)
    out = attention(q, k, v, backend=backend)
    assert out.shape == q.shape and out.dtype == q.dtype
    torch.testing.assert_close(out, attention(q, k, v, backend="naive"), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("backend", CONCRETE + ["auto"])
@pytest.mark.parametrize("shape", SHAPES[:3])
def test_backend_matches_naive_bf16(backend, shape):
    q, k, v = _qkv(*shape, dtype=torch.bfloat16)
    out = attention(q, k, v, backend=backend)
    assert out.dtype == torch.bfloat16
    ref = attention(q, k, v, backend="naive")  # fp32 math on the same bf16 inputs
    torch.testing.assert_close(out.float(), ref.float(), atol=2e-2, rtol=2e-2)


def test_chunked_bf16_keeps_fp32_softmax():
    # With bf16 softmax the error against the fp64 loop would be ~1e-2; per-block fp32 keeps it at bf16 output rounding.
    q, k, v = _qkv(1, 64, 300, 2, 64, dtype=torch.bfloat16)
    out = A.attention_chunked(q, k, v, budget_bytes=4 * 300 * 16)  # 16 query rows per block
    exact = _by_hand(q, k, v)
    assert (out.double() - exact).abs().max() <= 2 ** -8 * exact.abs().max() + 1e-3


@pytest.mark.parametrize("budget", [1, 4 * 7 * 3, 4 * 7 * 33, 4 * 7 * 33 * 3, 4 * 7 * 33 * 3 * 2, 10**9])
def test_chunked_any_block_split_is_exact(budget):
    # budgets from one query row of one head per step, through whole heads, to several batch elements
    q, k, v = _qkv(3, 33, 7, 3, 32)
    torch.testing.assert_close(A.attention_chunked(q, k, v, budget_bytes=budget),
                               attention(q, k, v, backend="naive"), atol=2e-5, rtol=2e-5)


def test_chunk_sizes_respect_budget():
    assert A.chunk_sizes(2, 8, 1000, 1000, 4 * 1000 * 100) == (1, 1, 100)
    assert A.chunk_sizes(2, 8, 10, 10, 4 * 10 * 10 * 3) == (1, 3, 10)
    assert A.chunk_sizes(4, 8, 10, 10, 4 * 10 * 10 * 8 * 2) == (2, 8, 10)
    assert A.chunk_sizes(4, 8, 10, 10, 10**9) == (4, 8, 10)
    assert A.chunk_sizes(4, 8, 10, 10**6, 16) == (1, 1, 1)  # never below one query row


def test_non_contiguous_inputs():
    # the two-stream regrouping hands attention permuted views; results must not depend on layout
    q, k, v = _qkv(2, 12, 12, 2, 32)
    qp, kp, vp = (t.permute(2, 0, 1, 3).contiguous().permute(1, 2, 0, 3) for t in (q, k, v))
    assert not qp.is_contiguous()
    ref = attention(q, k, v, backend="naive")
    for backend in CONCRETE:
        torch.testing.assert_close(attention(qp, kp, vp, backend=backend), ref, atol=2e-5, rtol=2e-5)


def test_masked_reference():
    q, k, v = _qkv(1, 8, 8, 2, 32)
    everything = torch.ones(8, 8, dtype=torch.bool)
    torch.testing.assert_close(A.attention_masked(q, k, v, everything), attention(q, k, v, backend="naive"))
    # block-diagonal mask == attention within each half separately
    group = torch.arange(8) // 4
    out = A.attention_masked(q, k, v, group[:, None] == group[None, :])
    for s in (slice(0, 4), slice(4, 8)):
        torch.testing.assert_close(out[:, s], attention(q[:, s], k[:, s], v[:, s], backend="naive"))


# ---------------------------------------------------------------------------------------------
# selection
# ---------------------------------------------------------------------------------------------
def test_unknown_backend_names_the_choices():
    q, k, v = _qkv(1, 4, 4, 1, 32)
    with pytest.raises(ValueError, match="flashy.*sdpa.*chunked.*naive"):
        attention(q, k, v, backend="flashy")
    with pytest.raises(ValueError, match="choose one of"):
        A.set_default_backend("flashy")
    with pytest.raises(ValueError, match="choose one of"):
        with attention_backend("flashy"):
            pass


def test_available_backends():
    names = available_backends()
    assert {"auto", "sdpa", "chunked", "naive"} <= set(names)
    assert set(names) <= set(A.BACKENDS)


def test_auto_on_cpu_picks_sdpa_only_where_pytorch_runs_its_blocked_kernel(monkeypatch):
    """auto on a CPU: SDPA when PyTorch says it runs its flash kernel (bounded memory), else chunked, never
    PyTorch's math kernel, which holds the whole score matrix."""
    for dtype in (torch.float32, torch.bfloat16):
        q, k, v = _qkv(1, 4, 4, 1, 32, dtype=dtype)
        assert A.cpu_sdpa_is_blocked(dtype, 32)   # what torch>=2.4 does; a newer torch that stops must be noticed
        assert resolve_backend(q, "auto") == "sdpa"
        torch.testing.assert_close(attention(q, k, v), A.attention_naive(q, k, v), atol=2e-2, rtol=2e-2)
    monkeypatch.setattr(A, "cpu_sdpa_is_blocked", lambda dtype, head_dim: False)
    assert resolve_backend(q, "auto") == "chunked"
    assert resolve_backend(q, "sdpa") == "sdpa"          # asked for by name, it still runs


def test_cpu_sdpa_check_asks_pytorch(monkeypatch):
    A.cpu_sdpa_is_blocked.cache_clear()
    try:
        monkeypatch.setattr(torch, "_fused_sdp_choice", lambda *a, **k: int(A.SDPBackend.MATH), raising=False)
        assert not A.cpu_sdpa_is_blocked(torch.float32, 32)
        A.cpu_sdpa_is_blocked.cache_clear()
        monkeypatch.delattr(torch, "_fused_sdp_choice")   # a PyTorch without the query: chunked, to be safe
        assert not A.cpu_sdpa_is_blocked(torch.float32, 32)
    finally:
        A.cpu_sdpa_is_blocked.cache_clear()


def _fake_cuda_query(dtype, d=128):
    # resolve_backend only looks at device / dtype / shape, so CUDA rules are testable without a GPU
    return types.SimpleNamespace(device=torch.device("cuda", 0), is_cuda=True, dtype=dtype, shape=(1, 8, 2, d))


def _no_fa3(monkeypatch):
    missing = (None, "ModuleNotFoundError: No module named 'flash_attn_interface'")
    monkeypatch.setattr(fa3, "_load_module", lambda: missing)


def _fake_fa3(monkeypatch, calls=None):
    """A stand-in `flash_attn_interface` that computes exact attention (FA3's layout and arguments)."""
    def flash_attn_func(q, k, v, softmax_scale=None, causal=False, return_attn_probs=False, **kwargs):
        if calls is not None:
            calls.append((tuple(q.shape), softmax_scale, causal))
        return A.attention_naive(q, k, v)

    monkeypatch.setattr(fa3, "_load_module", lambda: (types.SimpleNamespace(flash_attn_func=flash_attn_func), None))


def _gpu(monkeypatch, capability):
    monkeypatch.setattr(fa3, "device_capability", lambda device: capability if device.type == "cuda" else None)


def test_auto_on_cuda(monkeypatch):
    _gpu(monkeypatch, (8, 0))  # an Ampere GPU: FlashAttention-2 when installed, else SDPA
    _no_fa3(monkeypatch)
    monkeypatch.setattr(A, "_optional_module", lambda name: None)
    assert resolve_backend(_fake_cuda_query(torch.bfloat16), "auto") == "sdpa"
    fake = types.SimpleNamespace(flash_attn_func=None, sageattn=None)
    monkeypatch.setattr(A, "_optional_module", lambda name: fake)
    assert resolve_backend(_fake_cuda_query(torch.bfloat16), "auto") == "flash_attn"
    assert resolve_backend(_fake_cuda_query(torch.float16), "auto") == "flash_attn"
    assert resolve_backend(_fake_cuda_query(torch.float32), "auto") == "sdpa"
    assert resolve_backend(_fake_cuda_query(torch.bfloat16, d=512), "auto") == "sdpa"


def test_auto_on_hopper_picks_fa3_first_and_skips_fa2(monkeypatch):
    """auto = the fastest exact backend installed: on sm 9.x FA3 (measured 1.16x cuDNN), then cuDNN SDPA;
    FlashAttention-2 is never picked there (1.6x slower than cuDNN on the H200)."""
    _gpu(monkeypatch, (9, 0))
    monkeypatch.setattr(A, "_optional_module", lambda name: types.SimpleNamespace(flash_attn_func=None))
    _fake_fa3(monkeypatch)
    for dtype in (torch.bfloat16, torch.float16):
        assert resolve_backend(_fake_cuda_query(dtype), "auto") == "flash_attn3"
    assert resolve_backend(_fake_cuda_query(torch.float32), "auto") == "sdpa"        # FA3 takes 16-bit inputs
    assert resolve_backend(_fake_cuda_query(torch.bfloat16, d=100), "auto") == "sdpa"  # nor every head_dim
    _no_fa3(monkeypatch)
    assert resolve_backend(_fake_cuda_query(torch.bfloat16), "auto") == "sdpa"  # FA2 installed but skipped
    _gpu(monkeypatch, (10, 0))  # FA3 is Hopper-only: a newer GPU keeps the generic order even with FA3 present
    _fake_fa3(monkeypatch)
    assert resolve_backend(_fake_cuda_query(torch.bfloat16), "auto") == "flash_attn"


def test_auto_on_cpu_never_picks_fa3_even_when_installed(monkeypatch):
    _fake_fa3(monkeypatch)
    q, _, _ = _qkv(1, 4, 4, 1, 32, dtype=torch.bfloat16)
    assert resolve_backend(q, "auto") == "sdpa"
    _no_fa3(monkeypatch)
    assert resolve_backend(q, "auto") == "sdpa"


def test_auto_lists_only_exact_backends():
    for order in A.AUTO_ORDER.values():
        assert all(A.IMPLEMENTATIONS[name].exact for name in order), order
    assert not A.IMPLEMENTATIONS["fp8"].exact and not A.IMPLEMENTATIONS["sage"].exact
    assert A.IMPLEMENTATIONS["flash_attn3"].exact


def test_flash_attn3_missing_is_a_clear_error_naming_the_wheel(monkeypatch):
    _no_fa3(monkeypatch)
    q, k, v = _qkv(1, 4, 4, 1, 32)
    assert "flash_attn3" not in available_backends()
    for call in (lambda: attention(q, k, v, backend="flash_attn3"), lambda: A.set_default_backend("flash_attn3"),
                 lambda: A.require_installed("flash_attn3")):
        with pytest.raises(ValueError, match="flash_attn3.*flash_attn_interface.*pip install tokenspeed-fa3"):
            call()


def test_flash_attn3_runs_fa3_with_our_layout_and_falls_back_off_hopper(monkeypatch):
    calls = []
    _fake_fa3(monkeypatch, calls)
    assert "flash_attn3" in available_backends()
    q, k, v = _qkv(1, 9, 5, 2, 64, dtype=torch.bfloat16)
    out = A.IMPLEMENTATIONS["flash_attn3"].run(q, k, v)  # what resolve_backend hands a Hopper GPU's inputs
    torch.testing.assert_close(out, A.attention_naive(q, k, v))
    assert calls == [((1, 9, 2, 64), 1 / 8, False)]
    monkeypatch.setattr(A, "_warned", set())
    with pytest.warns(UserWarning, match="flash_attn3.*CUDA only.*sdpa"):
        assert resolve_backend(q, "flash_attn3") == "sdpa"  # CPU inputs: installed but unsupported here
    _gpu(monkeypatch, (8, 6))
    monkeypatch.setattr(A, "_warned", set())
    with pytest.warns(UserWarning, match="Hopper"):
        assert resolve_backend(_fake_cuda_query(torch.bfloat16), "flash_attn3") == "sdpa"


def test_fp8_is_opt_in_and_falls_back_where_it_cannot_run(monkeypatch):
    _gpu(monkeypatch, (9, 0))
    _fake_fa3(monkeypatch)
    monkeypatch.delenv("CAMGRID_FP8_ATTENTION", raising=False)
    query = _fake_cuda_query(torch.bfloat16)
    assert resolve_backend(query, "auto") == "flash_attn3"  # never fp8, although it could run
    assert resolve_backend(query, "fp8") == "fp8"
    # on the CPU: one warning that says why (every implementation's reason), then the exact sdpa
    q, k, v = _qkv(1, 6, 6, 2, 64, dtype=torch.bfloat16)
    monkeypatch.setattr(A, "_warned", set())
    with pytest.warns(UserWarning, match="'fp8' cannot run these inputs.*FA3 fp8.*CUDA"):
        out = attention(q, k, v, backend="fp8")
    torch.testing.assert_close(out.float(), A.attention_naive(q, k, v).float(), atol=2e-2, rtol=2e-2)
    # neither FA3 nor Triton importable: asking for fp8 is an error that names the wheel
    _no_fa3(monkeypatch)
    monkeypatch.setattr(A, "triton_available", lambda: False)
    with pytest.raises(ValueError, match="'fp8' needs.*tokenspeed-fa3.*triton"):
        attention(q, k, v, backend="fp8")


def test_auto_never_picks_sage(monkeypatch):
    # int8 attention changes the numerics: only an explicit request runs it
    _gpu(monkeypatch, (8, 0))
    only_sage = types.SimpleNamespace(sageattn=None)
    monkeypatch.setattr(A, "_optional_module", lambda name: only_sage if name == "sage" else None)
    for dtype in (torch.bfloat16, torch.float16):
        assert resolve_backend(_fake_cuda_query(dtype), "auto") == "sdpa"
        assert resolve_backend(_fake_cuda_query(dtype), "sage") == "sage"
    monkeypatch.setattr(A, "_warned", set())
    with pytest.warns(UserWarning, match="head_dim 80 is not one of"):
        assert resolve_backend(_fake_cuda_query(torch.bfloat16, d=80), "sage") == "sdpa"


def test_missing_optional_backend_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(A, "_optional_module", lambda name: None)
    q, k, v = _qkv(1, 4, 4, 1, 32)
    for name, package in (("flash_attn", "flash_attn"), ("sage", "sageattention")):
        with pytest.raises(ValueError, match=f"{package}.*install"):
            attention(q, k, v, backend=name)
        with pytest.raises(ValueError, match=package):
            A.set_default_backend(name)
    assert "flash_attn" not in available_backends() or A._optional_module("flash_attn") is not None


def test_optional_backends_layout_and_fallback(monkeypatch):
    calls = []

    def flash_attn_func(q, k, v, dropout_p, softmax_scale, causal):  # takes [B, L, H, D] like the real one
        calls.append(("flash", softmax_scale, causal))
        return A.attention_naive(q, k, v)

    def sageattn(q, k, v, tensor_layout, is_causal, sm_scale, smooth_k):
        # the real kernels assert a contiguous last dim, and smooth_k=True would do `k -= mean` in place
        assert q.stride(-1) == k.stride(-1) == v.stride(-1) == 1 and not is_causal and smooth_k is False
        calls.append(("sage", tensor_layout, sm_scale))
        return A.attention_naive(q, k, v)

    fake = types.SimpleNamespace(flash_attn_func=flash_attn_func, sageattn=sageattn)
    monkeypatch.setattr(A, "_optional_module", lambda name: fake)
    q, k, v = _qkv(1, 9, 5, 2, 64)
    ref = A.attention_naive(q, k, v)
    torch.testing.assert_close(A.attention_flash_attn(q, k, v), ref)
    k_before = k.clone()
    # the wrapper smooths k itself (softmax ignores a per-query constant), out of place
    torch.testing.assert_close(A.attention_sage(q, k, v), ref, atol=2e-6, rtol=2e-5)
    assert torch.equal(k, k_before)
    assert calls == [("flash", 1 / 8, False), ("sage", "NHD", 1 / 8)]
    # views whose last dim is strided are made contiguous before the call
    wide = torch.randn(1, 5, 2, 128)[..., ::2]
    torch.testing.assert_close(A.attention_sage(q, wide, wide), A.attention_naive(q, wide, wide), atol=2e-6, rtol=2e-5)
    # CPU / fp32 inputs cannot go to these kernels: one warning, then sdpa
    monkeypatch.setattr(A, "_warned", set())
    with pytest.warns(UserWarning, match="flash_attn.*CUDA.*sdpa"):
        out = attention(q, k, v, backend="flash_attn")
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=2e-5)
    assert len(calls) == 3  # flash, sage, sage (strided); the fallback called neither
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        attention(q, k, v, backend="flash_attn")  # warned once only


def test_default_and_context(monkeypatch):
    monkeypatch.setattr(A, "_default_backend", "auto")
    q, _, _ = _qkv(1, 4, 4, 1, 32)
    assert resolve_backend(q) == "sdpa"
    A.set_default_backend("chunked")
    assert resolve_backend(q) == "chunked"
    A.set_default_backend("sdpa")
    assert resolve_backend(q) == "sdpa"
    with attention_backend("naive"):
        assert resolve_backend(q) == "naive"
        with attention_backend("chunked"):
            assert resolve_backend(q) == "chunked"
        assert resolve_backend(q) == "naive"
        assert resolve_backend(q, "sdpa") == "sdpa"  # an explicit argument wins
    assert resolve_backend(q) == "sdpa"


def test_bad_shapes_are_named():
    q, k, v = _qkv(1, 4, 6, 2, 32)
    with pytest.raises(ValueError, match=r"q must be \[B, L, H, D\]"):
        attention(q[0], k, v)
    with pytest.raises(ValueError, match="k .* and v .* must share"):
        attention(q, k, v[:, :5])
    with pytest.raises(ValueError, match="must share B, H and D"):
        attention(q[..., :16], k, v)
    with pytest.raises(ValueError, match="dtypes differ"):
        attention(q, k.double(), v)


# ---------------------------------------------------------------------------------------------
# memory: measured with the profiler's allocation events, not estimated
# ---------------------------------------------------------------------------------------------
def _peak_extra_bytes(fn):
    """Peak of (bytes allocated - bytes freed) by torch's CPU allocator while fn runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        pytest.skip("this torch's profiler exposes no allocation events (kineto_results)")
    events = sorted((e for e in results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def test_memory_probe_sees_a_score_matrix():
    # the probe must be able to fail: the naive backend's [Lq, Lk] fp32 scores must show up
    n = 1024
    q, k, v = _qkv(1, n, n, 2, 32)
    assert _peak_extra_bytes(lambda: attention(q, k, v, backend="naive")) >= 2 * n * n * 4


def test_chunked_memory_is_bounded(monkeypatch):
    n, d = 16384, 32
    q, k, v = _qkv(1, n, n, 1, d)
    budget = 16 * 2**20
    monkeypatch.setattr(A, "DEFAULT_CHUNK_BUDGET_BYTES", budget)
    out = []
    peak = _peak_extra_bytes(lambda: out.append(attention(q, k, v, backend="chunked")))
    score_matrix = n * n * 4  # 1 GiB
    io_bytes = 4 * n * d * 4  # output + fp32 copies of q, k, v
    assert peak <= budget + 2 * io_bytes + 2**20, peak
    assert peak < score_matrix / 32
    # and the result is still right (spot-check a few query rows against the naive formula)
    rows = torch.tensor([0, 1, 4097, n - 1])
    ref = attention(q[:, rows], k, v, backend="naive")
    torch.testing.assert_close(out[0][:, rows], ref, atol=2e-5, rtol=2e-5)


def test_chunked_backend_supports_autograd():
    """Training (the built-in model's trainer) backpropagates through the default CPU backend."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 33, 2, 16, generator=g, requires_grad=True) for _ in range(3))
    out = A.attention_chunked(q, k, v, budget_bytes=4096)
    ref = A.attention_naive(q.detach().requires_grad_(), k.detach().requires_grad_(), v.detach().requires_grad_())
    out.sum().backward()
    assert q.grad is not None and torch.isfinite(q.grad).all()
    assert (out - ref).abs().max() < 1e-5


# ---------------------------------------------------------------------------------------------
# the backend table and the model's one context per forward
# ---------------------------------------------------------------------------------------------
def test_a_backend_joins_with_one_table_entry(monkeypatch):
    calls = []

    def fake(q, k, v):
        calls.append(tuple(q.shape))
        return A.attention_naive(q, k, v)

    monkeypatch.setitem(A.IMPLEMENTATIONS, "fake", A.Backend(fake))
    q, k, v = _qkv(1, 5, 7, 2, 32)
    torch.testing.assert_close(attention(q, k, v, backend="fake"), A.attention_naive(q, k, v))
    assert "fake" in available_backends()
    with attention_backend("fake"):
        attention(q, k, v)
    assert calls == [(1, 5, 2, 32)] * 2
    # a CUDA-only entry handed CPU inputs falls back to sdpa with one warning
    monkeypatch.setitem(A.IMPLEMENTATIONS, "gpu_only", A.Backend(fake, unsupported=A.needs_cuda_half(max_head_dim=128)))
    monkeypatch.setattr(A, "_warned", set())
    with pytest.warns(UserWarning, match="gpu_only.*CUDA only.*sdpa"):
        assert resolve_backend(q, "gpu_only") == "sdpa"
    too_wide = A.needs_cuda_half(max_head_dim=64)(_fake_cuda_query(torch.bfloat16, d=128))
    assert too_wide == "head_dim 128 exceeds its limit of 64"


@pytest.mark.parametrize("mode,expected_calls", [("independent", 2 * 2), ("hard", 2 * 4)])
def test_the_model_runs_every_attention_on_its_backend(monkeypatch, mode, expected_calls):
    """GridDiT.forward enters `attention_backend(model.attention_backend)` once; no layer takes a backend argument."""
    from grid_helpers import tiny_model

    calls = []

    def fake(q, k, v):
        calls.append(tuple(q.shape))
        return A.attention_naive(q, k, v)

    monkeypatch.setitem(A.IMPLEMENTATIONS, "fake", A.Backend(fake))
    model = tiny_model("wan", seed=3)  # 2 blocks; per block: self + cross attention, per stream
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(1, 2, 16, 2, 4, 4, generator=g), torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        reference = model(x, torch.tensor([500.0]), ctx, mode=mode)
        assert calls == []
        model.attention_backend = "fake"
        out = model(x, torch.tensor([500.0]), ctx, mode=mode)
    assert len(calls) == expected_calls
    torch.testing.assert_close(out, reference, atol=2e-5, rtol=2e-5)
    q, _, _ = _qkv(1, 4, 4, 1, 32)
    assert resolve_backend(q) == resolve_backend(q, A.get_default_backend())  # the context ended with the forward


# ---------------------------------------------------------------------------------------------
# the fused grid mode's masked attention follows the same backend choice
# ---------------------------------------------------------------------------------------------
def _grid_qkv(b=1, views=3, frames=2, hw=4, h=2, d=16, dtype=torch.float32):
    return _qkv(b, views * frames * hw, views * frames * hw, h, d, dtype=dtype)


def test_fused_grid_attention_picks_the_lse_kernel_of_the_dispatch_backend(monkeypatch):
    seen = []
    real = A.grid_mask_attention

    def spy(q, k, v, views, frames, hw, backend, lse_backend):
        seen.append((backend, lse_backend))
        return real(q, k, v, views, frames, hw, backend=backend, lse_backend=lse_backend)

    monkeypatch.setattr(A, "grid_mask_attention", spy)
    q, k, v = _grid_qkv()
    ref = A.fused_grid_attention(q, k, v, 3, 2, 4, method="naive")
    for backend, expected in (("auto", ("streams", "aten")), ("chunked", ("streams", "chunked")),
                              ("sdpa", ("streams", "aten")), ("naive", ("naive", "chunked"))):
        seen.clear()
        with attention_backend(backend):
            out = A.fused_grid_attention(q, k, v, 3, 2, 4)
        assert seen == [expected], backend
        torch.testing.assert_close(out, ref, atol=2e-6, rtol=2e-6)
    assert A.LSE_KERNEL["flash_attn3"] == "fa3"
    with pytest.raises(ValueError, match="fused attention method 'dense' is unknown"):
        A.fused_grid_attention(q, k, v, 3, 2, 4, method="dense")


def test_fused_grid_attention_equals_a_dense_mask(monkeypatch):
    """Every method against the definition: attention over all tokens, a pair kept iff same view or time."""
    views, frames, hw = 3, 4, 5
    q, k, v = _grid_qkv(b=2, views=views, frames=frames, hw=hw)
    frame = torch.arange(views * frames * hw) // hw
    view, time = frame // frames, frame % frames
    mask = (view[:, None] == view[None, :]) | (time[:, None] == time[None, :])
    ref = A.attention_masked(q, k, v, mask)
    for method in ("auto", "streams", "flex", "naive"):
        torch.testing.assert_close(A.fused_grid_attention(q, k, v, views, frames, hw, method), ref,
                                   atol=2e-6, rtol=2e-6)
