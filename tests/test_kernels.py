"""Fused kernels: torch references against independent formulas (Wan2.1 RoPE numerics), and the
Triton kernels against the references under TRITON_INTERPRET=1 on CPU.

The Triton tests skip only when triton is not importable (CI installs it).
"""
import os
import subprocess
import sys

import pytest
import torch

import camgrid.kernels as K
from camgrid.kernels import fp8_quant as FQ
from camgrid.kernels import gated_residual as GR
from camgrid.kernels import layernorm_modulate as LM
from camgrid.kernels import qk_norm_rope as QR
from camgrid.kernels.rope import rope_apply_reference, rope_axis_dims, rope_cos_sin


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(dtype)


# ---------------------------------------------------------------------------------------------
# RoPE tables and reference, checked against Wan2.1's complex formulation written out here
# ---------------------------------------------------------------------------------------------
def _wan_rope(x, frames, height, width, frame_positions=None, theta=10000.0):
    """Wan2.1 rope_params + rope_apply: per-axis complex128 frequencies, consecutive pairs as complex."""
    b, l, n, d = x.shape
    c = d // 2
    pair_counts = [c - 2 * (c // 3), c // 3, c // 3]

    def axis_freqs(positions, axis_dims):
        inv = 1.0 / torch.pow(theta, torch.arange(0, axis_dims, 2, dtype=torch.float64) / axis_dims)
        ang = torch.outer(positions.to(torch.float64), inv)
        return torch.polar(torch.ones_like(ang), ang)

    fpos = torch.arange(frames) if frame_positions is None else torch.as_tensor(frame_positions)
    ff = axis_freqs(fpos, 2 * pair_counts[0])
    fh = axis_freqs(torch.arange(height), 2 * pair_counts[1])
    fw = axis_freqs(torch.arange(width), 2 * pair_counts[2])
    freqs = torch.cat([
        ff.view(frames, 1, 1, -1).expand(frames, height, width, -1),
        fh.view(1, height, 1, -1).expand(frames, height, width, -1),
        fw.view(1, 1, width, -1).expand(frames, height, width, -1),
    ], dim=-1).reshape(l, 1, c)
    xc = torch.view_as_complex(x.to(torch.float64).reshape(b, l, n, c, 2))
    return torch.view_as_real(xc * freqs).flatten(3)


def test_axis_split_matches_wan():
    assert rope_axis_dims(128) == (44, 42, 42)
    assert rope_axis_dims(64) == (24, 20, 20)
    assert rope_axis_dims(32) == (12, 10, 10)
    assert sum(rope_axis_dims(48)) == 48
    with pytest.raises(ValueError, match="even"):
        rope_axis_dims(33)


@pytest.mark.parametrize("d, grid", [(128, (3, 4, 5)), (32, (2, 3, 2)), (64, (5, 1, 7))])
def test_rope_reference_matches_wan(d, grid):
    f, h, w = grid
    x = _randn(2, f * h * w, 3, d)
    cos, sin = rope_cos_sin(f, h, w, d)
    assert cos.shape == (f * h * w, d // 2) and cos.dtype == torch.float32
    torch.testing.assert_close(rope_apply_reference(x, cos, sin).double(), _wan_rope(x, f, h, w), atol=2e-5, rtol=1e-5)


def test_rope_explicit_frame_positions():
    # SynCamMaster view stream: frame position = view index; ReCamMaster: 0..2T-1; arbitrary lists work
    d, h, w = 64, 2, 3
    positions = [3, 0, 5]
    x = _randn(1, 3 * h * w, 2, d)
    cos, sin = rope_cos_sin(positions, h, w, d)
    torch.testing.assert_close(rope_apply_reference(x, cos, sin).double(),
                               _wan_rope(x, 3, h, w, frame_positions=positions), atol=2e-5, rtol=1e-5)
    # the rows of frame p equal the rows of frame p in the plain 0..5 table
    full_cos, _ = rope_cos_sin(6, h, w, d)
    per_frame = h * w
    for i, p in enumerate(positions):
        torch.testing.assert_close(cos[i * per_frame:(i + 1) * per_frame], full_cos[p * per_frame:(p + 1) * per_frame])
    # tensor positions == list positions; int F == range(F)
    assert torch.equal(rope_cos_sin(torch.tensor(positions), h, w, d)[1], sin)
    assert torch.equal(rope_cos_sin(4, h, w, d)[0], rope_cos_sin(range(4), h, w, d)[0])


def test_rope_tables_are_cached_and_sane():
    a = rope_cos_sin(2, 3, 4, 32)
    assert rope_cos_sin(2, 3, 4, 32) is a or rope_cos_sin(2, 3, 4, 32)[0] is a[0]
    cos, sin = a
    torch.testing.assert_close(cos ** 2 + sin ** 2, torch.ones_like(cos))
    assert torch.equal(cos[0], torch.ones(16)) and torch.equal(sin[0], torch.zeros(16))  # token (0,0,0): identity
    with pytest.raises(ValueError, match="empty grid"):
        rope_cos_sin(0, 3, 4, 32)
    with pytest.raises(ValueError, match="rope_cos_sin"):
        rope_apply_reference(_randn(1, 5, 1, 32), cos, sin)


def test_rope_reference_keeps_dtype_and_pair_norms():
    f, h, w, d = 2, 2, 2, 32
    cos, sin = rope_cos_sin(f, h, w, d)
    x = _randn(1, 8, 2, d, dtype=torch.bfloat16)
    y = rope_apply_reference(x, cos, sin)
    assert y.dtype == torch.bfloat16
    norms = lambda t: t.float().reshape(1, 8, 2, d // 2, 2).norm(dim=-1)
    torch.testing.assert_close(norms(y), norms(x), atol=2e-2, rtol=1e-2)


# ---------------------------------------------------------------------------------------------
# the other references against plain formulas
# ---------------------------------------------------------------------------------------------
def test_qk_norm_rope_reference():
    b, (f, h, w), heads, d = 2, (2, 2, 3), 2, 32
    l, dim = f * h * w, heads * d
    x, weight = _randn(b, l, dim, dtype=torch.bfloat16), _randn(dim, seed=1)
    cos, sin = rope_cos_sin(f, h, w, d)
    out = QR.qk_norm_rope_reference(x, weight, cos, sin, heads)
    assert out.shape == (b, l, heads, d) and out.dtype == torch.bfloat16
    xf = x.double()
    normed = xf / torch.sqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6) * weight.double()
    expected = _wan_rope(normed.view(b, l, heads, d), f, h, w)
    torch.testing.assert_close(out.double(), expected, atol=3e-2, rtol=1e-2)
    # RMSNorm only (cross-attention): cos = sin = None
    torch.testing.assert_close(QR.qk_norm_rope_reference(x, weight, None, None, heads).double(),
                               normed.view(b, l, heads, d), atol=3e-2, rtol=1e-2)
    with pytest.raises(ValueError, match="weight must be"):
        QR.qk_norm_rope_reference(x, weight[:-1], cos, sin, heads)
    with pytest.raises(ValueError, match="cos/sin must be"):
        QR.qk_norm_rope_reference(x, weight, cos[:-1], sin[:-1], heads)
    with pytest.raises(ValueError, match="both cos and sin"):
        QR.qk_norm_rope_reference(x, weight, cos, None, heads)


def test_layer_norm_modulate_reference():
    x = _randn(2, 5, 48, dtype=torch.bfloat16)
    shift, scale = _randn(2, 1, 48, seed=1), _randn(2, 1, 48, seed=2)
    out = LM.layer_norm_modulate_reference(x, shift, scale)
    xf = x.double()
    normed = (xf - xf.mean(-1, keepdim=True)) / torch.sqrt(xf.var(-1, unbiased=False, keepdim=True) + 1e-6)
    expected = normed * (1 + scale.double()) + shift.double()
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), expected, atol=3e-2, rtol=1e-2)
    assert LM.layer_norm_modulate_reference(x, shift, scale, out_dtype=torch.float32).dtype == torch.float32
    # [B, dim] and [dim] broadcast like [B, 1, dim] / [1, 1, dim]
    torch.testing.assert_close(LM.layer_norm_modulate_reference(x, shift[:, 0], scale[:, 0]), out)
    with pytest.raises(ValueError, match=r"shift must broadcast to x's \[B, L, dim\]"):
        LM.layer_norm_modulate_reference(x, shift[..., :7], scale)
    with pytest.raises(ValueError, match=r"x must be tokens \[B, L, dim\]"):
        LM.layer_norm_modulate_reference(x[0], shift, scale)


def test_gated_residual_reference():
    x, y = _randn(2, 5, 16, dtype=torch.bfloat16), _randn(2, 5, 16, seed=1, dtype=torch.bfloat16)
    gate = _randn(2, 1, 16, seed=2)
    out = GR.gated_residual_reference(x, gate, y)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, (x.float() + y.float() * gate).bfloat16())
    x2 = x.clone()
    assert GR.gated_residual_reference(x2, gate, y, inplace=True) is x2 and torch.equal(x2, out)
    with pytest.raises(ValueError, match="must have x's shape"):
        GR.gated_residual_reference(x, gate, y[:, :4])


def test_dispatch_uses_references_on_cpu():
    assert isinstance(K.triton_available(), bool)
    x = _randn(1, 4, 8)
    assert not K.use_triton(x)
    torch.testing.assert_close(GR.gated_residual(x, torch.ones(8), x), 2 * x)


def test_fp8_quant_reference():
    x = _randn(6, 40) * 5
    x[1] = 0.0  # an all-zero row: the minimum scale, zeros out
    x[2, 3] = 1e4  # an outlier sets its row's scale alone
    for fp8 in (torch.float8_e4m3fn, torch.float8_e5m2):
        fmax = torch.finfo(fp8).max
        q, scale = FQ.quantize_rows_fp8_reference(x, fp8)
        assert q.dtype == fp8 and q.shape == x.shape and scale.shape == (6, 1) and scale.dtype == torch.float32
        torch.testing.assert_close(scale[[0, 2]], x[[0, 2]].abs().amax(1, keepdim=True) / fmax)
        assert scale[1].item() == pytest.approx(FQ.MIN_SCALE) and not q[1].float().any()
        assert q.float().abs().amax(1)[[0, 2]].eq(fmax).all()  # each row's largest value maps to fp8's max
        # round to nearest: dequantised error within half an fp8 step (2^-4 e4m3, 2^-3 e5m2, relative)
        rel = 2.0 ** -({torch.float8_e4m3fn: 3, torch.float8_e5m2: 2}[fp8] + 1)  # mantissa bits
        err = (q.float() * scale - x).abs()
        assert (err <= rel * x.abs() + scale * 2.0 ** -9).all()  # + subnormal spacing near zero
    qg, sg = FQ.quantize_rows_fp8_reference(x.bfloat16(), gelu=True)
    ref_q, ref_s = FQ.quantize_rows_fp8_reference(torch.nn.functional.gelu(x.bfloat16().float(), approximate="tanh"))
    assert torch.equal(qg.float(), ref_q.float()) and torch.equal(sg, ref_s)
    assert torch.equal(FQ.quantize_rows_fp8(x)[0].float(), FQ.quantize_rows_fp8_reference(x)[0].float())  # CPU: reference
    with pytest.raises(ValueError, match="x2 must be"):
        FQ.quantize_rows_fp8_reference(x[None])
    with pytest.raises(ValueError, match="fp8_dtype"):
        FQ.quantize_rows_fp8_reference(x, torch.bfloat16)


def test_package_imports_without_triton():
    # `import triton` made to fail in a fresh interpreter: the package and references must still work
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch, camgrid.kernels as K\n"
        "from camgrid.kernels import qk_norm_rope as QR, layernorm_modulate as LM, gated_residual as GR\n"
        "from camgrid.kernels import fp8_quant as FQ\n"
        "assert QR.triton is None and LM.triton is None and GR.triton is None and FQ.triton is None\n"
        "assert FQ.quantize_rows_fp8(torch.randn(3, 16))[0].dtype == torch.float8_e4m3fn\n"
        "x = torch.randn(1, 2, 8)\n"
        "assert GR.gated_residual(x, torch.ones(8), x).shape == x.shape\n"
        "try:\n"
        "    GR.gated_residual_triton(x, torch.ones(8), x)\n"
        "except RuntimeError as e:\n"
        "    assert 'pip install triton' in str(e)\n"
        "else:\n"
        "    raise SystemExit('no error')\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


# ---------------------------------------------------------------------------------------------
# Triton kernels under the interpreter
#
# triton.jit (and triton.language itself) read TRITON_INTERPRET when they are imported, and in a
# full test session triton is usually imported early (diffusers imports it). So the test_interp_*
# tests run in this process only when it was started with TRITON_INTERPRET=1; otherwise
# test_kernels_under_triton_interpreter runs them in a fresh interpreter with the variable set.
# ---------------------------------------------------------------------------------------------
def _in_interpreter() -> bool:
    if os.environ.get("TRITON_INTERPRET") != "1" or not K.triton_available():
        return False
    try:
        import triton.language as tl
    except Exception:
        return False
    return type(tl.sum).__name__ == "InterpretedFunction"


IN_INTERPRETER = _in_interpreter()


def test_kernels_under_triton_interpreter():
    if not K.triton_available():
        pytest.skip("triton is not installed; the Triton kernels are compared with their references in CI")
    if IN_INTERPRETER:
        pytest.skip("TRITON_INTERPRET=1 is set: the test_interp_* tests run in this process")
    names = sorted(name for name in globals() if name.startswith("test_interp_"))
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__, "-k", "interp_"],
        capture_output=True, text=True, timeout=300, env=env,
    )
    report = res.stdout[-6000:] + res.stderr[-2000:]
    assert res.returncode == 0, report
    assert f"{len(names)} passed" in res.stdout and "skipped" not in res.stdout, report


@pytest.fixture
def interpreted():
    if not IN_INTERPRETER:
        pytest.skip("runs in a TRITON_INTERPRET=1 subprocess (test_kernels_under_triton_interpreter)")
    kernels = {"qk": (QR, "_qk_norm_rope_kernel"), "ln": (LM, "_layer_norm_modulate_kernel"),
               "gr": (GR, "_gated_residual_kernel"), "fq": (FQ, "_quantize_rows_fp8_kernel")}
    for module, kernel in kernels.values():
        assert type(getattr(module, kernel)).__name__ == "InterpretedFunction"
    mods = {key: module for key, (module, _) in kernels.items()}
    return mods


def _close(out, ref, what=""):
    assert out.shape == ref.shape and out.dtype == ref.dtype, what
    if out.dtype == torch.float32:
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5, msg=lambda m: f"{what}: {m}")
    else:
        # the interpreter rounds fp32 -> bf16/fp16 toward zero (GPUs round to nearest): allow ~2 ulp
        torch.testing.assert_close(out.float(), ref.float(), atol=1e-2, rtol=2e-2, msg=lambda m: f"{what}: {m}")


QK_CASES = [  # (B, (F, H, W), heads, head_dim, frame_positions)
    (2, (2, 3, 2), 2, 32, None),
    (1, (3, 2, 2), 2, 128, None),
    (2, (2, 2, 1), 3, 48, [4, 1]),   # non power-of-two width (144), explicit frame positions
    (1, (1, 1, 5), 1, 64, [7]),
]


def test_interp_qk_norm_rope(interpreted):
    qr = interpreted["qk"]
    for b, (f, h, w), heads, d, positions in QK_CASES:
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            l, dim = f * h * w, heads * d
            x = _randn(b, l, dim, dtype=dtype)
            weight = _randn(dim, seed=1, dtype=dtype)
            cos, sin = rope_cos_sin(positions if positions is not None else f, h, w, d)
            what = f"B={b} grid={(f, h, w)} heads={heads} d={d} {dtype}"
            _close(qr.qk_norm_rope_triton(x, weight, cos, sin, heads),
                   qr.qk_norm_rope_reference(x, weight, cos, sin, heads), what)
            _close(qr.qk_norm_rope_triton(x, weight, None, None, heads),
                   qr.qk_norm_rope_reference(x, weight, None, None, heads), what + " norm only")
    # q projected by a fused qkv Linear arrives as a slice with row stride 3 * dim
    heads, d, (f, h, w) = 2, 32, (2, 2, 2)
    dim = heads * d
    q = _randn(2, f * h * w, 3 * dim)[..., :dim]
    weight = _randn(dim, seed=1)
    cos, sin = rope_cos_sin(f, h, w, d)
    _close(qr.qk_norm_rope_triton(q, weight, cos, sin, heads), qr.qk_norm_rope_reference(q, weight, cos, sin, heads),
           "strided rows")


def test_interp_layer_norm_modulate(interpreted):
    lm = interpreted["ln"]
    b, l = 2, 7
    for dim in (64, 96, 200):
        for dtype in (torch.float32, torch.bfloat16):
            what = f"dim={dim} {dtype}"
            x = (_randn(b, l, dim) * 3 + 1).to(dtype)  # non-zero mean so centring matters
            shift, scale = _randn(b, 6, dim, seed=1).chunk(6, dim=1)[:2]  # strided [B, 1, dim] views, as the DiT passes
            _close(lm.layer_norm_modulate_triton(x, shift, scale), lm.layer_norm_modulate_reference(x, shift, scale), what)
            _close(lm.layer_norm_modulate_triton(x, shift, scale, out_dtype=torch.float32),
                   lm.layer_norm_modulate_reference(x, shift, scale, out_dtype=torch.float32), what + " fp32 out")
            _close(lm.layer_norm_modulate_triton(x, shift[:1], scale[:1]),
                   lm.layer_norm_modulate_reference(x, shift[:1], scale[:1]), what + " shared modulation")
            per_token = _randn(b, l, dim, seed=3)
            _close(lm.layer_norm_modulate_triton(x, per_token, scale),
                   lm.layer_norm_modulate_reference(x, per_token, scale), what + " per-token shift")


def test_interp_gated_residual(interpreted):
    gr = interpreted["gr"]
    b, l = 2, 3
    for dim in (48, 1500):  # 1500: two column blocks, the second partly masked
        for dtype in (torch.float32, torch.bfloat16):
            what = f"dim={dim} {dtype}"
            x, y = _randn(b, l, dim, dtype=dtype), _randn(b, l, dim, seed=1, dtype=dtype)
            gate = _randn(b, 3, dim, seed=2).chunk(3, dim=1)[1]
            ref = gr.gated_residual_reference(x, gate, y)
            _close(gr.gated_residual_triton(x, gate, y), ref, what)
            _close(gr.gated_residual_triton(x, gate[:, 0], y), ref, what + " [B, dim] gate")
            x_inplace = x.clone()
            assert gr.gated_residual_triton(x_inplace, gate, y, inplace=True) is x_inplace
            _close(x_inplace, ref, what + " in place")
            y_view = y.transpose(0, 1).contiguous().transpose(0, 1)  # non-contiguous branch output
            _close(gr.gated_residual_triton(x, gate, y_view), ref, what + " strided y")


def _fp8_codes_agree(out, ref):
    """fp8 tensors equal up to one rounding step. The interpreter's fp32 -> fp8 cast (numpy
    emulation) also drops the carry when a value rounds up to the next power of two (124.7 -> 64
    instead of 128 in e4m3); GPUs round to nearest. Those elements may be exactly half the reference."""
    a, b = out.view(torch.uint8).int(), ref.view(torch.uint8).int()
    af, bf = out.float(), ref.float()
    same_sign = (a >= 128) == (b >= 128)
    adjacent = (a - b).abs() <= 1
    carry_artifact = (af * 2 == bf) & (bf.abs().log2() == bf.abs().log2().round())
    ok = same_sign & (adjacent | carry_artifact)
    return bool(ok.all()) and float((a != b).float().mean()) < 0.1


def test_interp_fp8_quant(interpreted):
    fq = interpreted["fq"]
    for k in (48, 1500):  # 1500: non power-of-two row, masked tail of the block
        for dtype in (torch.float32, torch.bfloat16):
            for gelu in (False, True):
                # e4m3 only: the fp8 matmul path uses it, and the interpreter's e5m2 emulation is
                # off by several codes for small values (GPU builds cast with cvt.rn)
                for fp8 in (torch.float8_e4m3fn,):
                    what = f"K={k} {dtype} gelu={gelu} {fp8}"
                    x = (_randn(5, k) * 3).to(dtype)
                    x[1] = 0.0
                    q, scale = fq.quantize_rows_fp8_triton(x, fp8, gelu=gelu)
                    ref_q, ref_scale = fq.quantize_rows_fp8_reference(x, fp8, gelu=gelu)
                    assert q.dtype == fp8 and q.shape == x.shape and scale.shape == (5, 1), what
                    torch.testing.assert_close(scale, ref_scale, atol=0, rtol=1e-5, msg=lambda m: f"{what}: {m}")
                    assert _fp8_codes_agree(q, ref_q), what
    # strided rows (a slice of a wider activation) and an empty input
    x = _randn(4, 96)[:, :64]
    q, scale = fq.quantize_rows_fp8_triton(x)
    ref_q, ref_scale = fq.quantize_rows_fp8_reference(x)
    torch.testing.assert_close(scale, ref_scale, atol=0, rtol=1e-5)
    assert _fp8_codes_agree(q, ref_q)
    q, scale = fq.quantize_rows_fp8_triton(torch.zeros(0, 32))
    assert q.shape == (0, 32) and scale.shape == (0, 1)


def test_rope_tables_made_while_sampling_serve_a_later_training_forward():
    """The cached tables are made once per grid; made first under inference_mode (sampling), they must still be
    usable where autograd records (training in the same process, e.g. after a preview sample)."""
    with torch.inference_mode():
        cos, sin = rope_cos_sin([0, 3, 7], 5, 3, 24)
    assert not cos.is_inference() and not sin.is_inference()
    x = torch.randn(1, 3 * 5 * 3, 2, 24, requires_grad=True)
    rope_apply_reference(x, *rope_cos_sin([0, 3, 7], 5, 3, 24)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
