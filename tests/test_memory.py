"""Memory features (docs/ARCHITECTURE.md §7 Attention and memory): block swap, fp8 weight storage, the peak-memory predictor. CPU only."""
import copy

import pytest
import torch

from camgrid.model.checkpoint import LoadOptions, load_grid_dit, save_grid_dit
import camgrid.model.fp8 as FP8
from camgrid.kernels.fp8_quant import quantize_rows_fp8_reference
from camgrid.model.fp8 import (FP8Linear, dequantize_model, dequantize_weight, quantize_activation,
                               quantize_linear_weights, quantize_weight, set_fp8_matmul, split_fp8_scales)
from camgrid.model.memory import GIB, predict_peak_memory, weight_bytes
from camgrid.model.offload import block_swap_of, disable_block_swap, enable_block_swap
from grid_helpers import tiny_config, tiny_model


def grid_inputs(model, b=1, v=2, t=3, h=4, w=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    x = torch.randn(b, v, cfg.in_dim, t, h, w, generator=g)
    ctx = torch.randn(b, 5, cfg.text_dim, generator=g)
    cam = torch.randn(b, v, t, 12, generator=g) * 0.1
    return x, torch.tensor([700.0] * b), ctx, cam


def psnr(ref, out):
    mse = (ref.float() - out.float()).pow(2).mean()
    peak = ref.float().abs().max()
    return float(10 * torch.log10(peak ** 2 / mse))


# --- block swap ---------------------------------------------------------------------------------
@pytest.mark.parametrize("mode,variant", [("independent", "wan"), ("hard", "wan"), ("syncam", "syncammaster")])
def test_block_swap_is_bit_identical_and_streams_blocks(mode, variant):
    model = tiny_model(variant, num_layers=3)
    x, t, ctx, cam = grid_inputs(model)
    with torch.no_grad():
        ref = model(x, t, ctx, mode=mode, camera=cam if mode != "independent" else None)
        swap = enable_block_swap(model, 2, "cpu")
        out = model(x, t, ctx, mode=mode, camera=cam if mode != "independent" else None)
    assert torch.equal(ref, out)
    s = swap.stats
    assert s.hook_calls > 0
    assert s.loaded_blocks[:2] == [0, 1]  # block 0 prefetched by the model hook, block 1 while block 0 runs
    assert s.waits_on_demand == 0          # every block arrived by prefetch
    assert s.max_resident <= 2
    assert not swap._resident              # all dropped after the forward
    # between forwards the swapped Linear weights are the CPU masters again, not the streamed copies
    q = model.blocks[0].self_attn.q.weight
    assert any(q.data_ptr() == e[3].data_ptr() for e in swap._entries[0])


def test_block_swap_disable_restores_model():
    model = tiny_model(num_layers=2)
    x, t, ctx, _ = grid_inputs(model)
    with torch.no_grad():
        ref = model(x, t, ctx)
        enable_block_swap(model, 2, "cpu")
        assert disable_block_swap(model)
        assert block_swap_of(model) is None
        out = model(x, t, ctx)
    assert torch.equal(ref, out)
    assert all(not m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ValueError, match="num_blocks"):
        enable_block_swap(model, 3, "cpu")


def test_block_swap_with_fp8_layers():
    model = tiny_model(num_layers=2)
    quantize_linear_weights(model)
    x, t, ctx, _ = grid_inputs(model)
    with torch.no_grad():
        ref = model(x, t, ctx)
        swap = enable_block_swap(model, 1, "cpu")
        out = model(x, t, ctx)
    assert torch.equal(ref, out)
    assert any(e[2] == "weight_fp8" for e in swap._entries[0])


# --- fp8 ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("scaling", ["per_channel", "per_tensor"])
def test_quantize_weight_error_bound(scaling):
    g = torch.Generator().manual_seed(0)
    w = torch.randn(96, 64, generator=g) * torch.logspace(-2, 0, 96)[:, None]  # rows of very different size
    q, s = quantize_weight(w, scaling=scaling)
    assert q.dtype == torch.float8_e4m3fn and s.dtype == torch.float32
    assert s.shape == ((96,) if scaling == "per_channel" else ())
    err = (dequantize_weight(q, s, torch.float32) - w).abs()
    # e4m3 has 3 mantissa bits: relative rounding error <= 2^-4 for normal values; values below the
    # smallest normal (2^-6 * scale) are rounded with an absolute step of 2^-9 * scale
    scale = s[:, None] if s.ndim else s
    assert torch.all(err <= w.abs() * 2 ** -4 + scale * 2 ** -9 + 1e-12)
    rel = float(err.norm() / w.norm())
    assert rel < (0.04 if scaling == "per_channel" else 0.06), rel
    # the scale is bf16-representable and no value overflows
    assert torch.equal(s, s.bfloat16().float())
    assert q.float().abs().max() <= 448


def test_fp8_linear_dequant_and_scaled_mm_paths():
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(64, 48).to(torch.bfloat16).requires_grad_(False)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(48, 64, generator=g) * 0.05)
    x = torch.randn(2, 10, 64, generator=g).to(torch.bfloat16)
    ref = lin(x).float()
    q = FP8Linear.from_linear(lin)
    assert q.weight.dtype == torch.bfloat16 and q.weight.shape == (48, 64)  # what GridDiT reads
    q.matmul = "dequant"
    y_deq = q(x).float()
    assert float((y_deq - ref).norm() / ref.norm()) < 0.05
    # the fp8 matmul path (torch._scaled_mm exists on CPU too): activations quantised per token
    q.matmul = "scaled_mm"
    y_mm = q(x).float()
    assert y_mm.shape == ref.shape
    assert float((y_mm - ref).norm() / ref.norm()) < 0.08
    # ...and it computes exactly (x_fp8 * sx) @ (w_fp8 * sw)^T + b up to bf16 output rounding,
    # x quantised per token (kernels/fp8_quant.py; its torch reference on CPU)
    xq, sx = quantize_rows_fp8_reference(x.reshape(-1, 64))
    emulated = (xq.float() * sx) @ (q.weight_fp8.float() * q.scale_weight[:, None]).t() + q.bias.float()
    assert torch.allclose(y_mm.reshape(-1, 48), emulated, rtol=1e-2, atol=1e-3)


def test_quantize_activation_per_token_scale():
    x = torch.randn(8, 32).to(torch.bfloat16) * torch.logspace(-3, 1, 8)[:, None].to(torch.bfloat16)
    xq, s = quantize_activation(x)
    assert s.shape == (8, 1) and xq.dtype == torch.float8_e4m3fn
    back = xq.float() * s
    assert float((back - x.float()).norm() / x.float().norm()) < 0.05
    assert torch.all((back - x.float()).abs() <= x.float().abs() * 2 ** -4 + s * 2 ** -9 + 1e-6)


def test_fp8_gelu_fusion_and_shared_input_quantisation(monkeypatch):
    model = tiny_model(num_layers=2, dim=128, ffn_dim=256, num_heads=2).to(torch.bfloat16)
    x, t, ctx, _ = grid_inputs(model)
    unfused, fused = copy.deepcopy(model), copy.deepcopy(model)
    quantize_linear_weights(unfused, fuse_gelu=False)
    quantize_linear_weights(fused)
    ffn = fused.blocks[0].ffn
    assert isinstance(ffn[1], torch.nn.Identity) and ffn[2].input_gelu and not ffn[0].input_gelu
    assert isinstance(unfused.blocks[0].ffn[1], torch.nn.GELU)
    assert fused.blocks[0].self_attn.k.share_input_quant and not fused.blocks[0].self_attn.o.share_input_quant
    assert set(fused.state_dict()) == set(unfused.state_dict())  # same file either way
    calls = []
    real = FP8.quantize_rows_fp8
    monkeypatch.setattr(FP8, "quantize_rows_fp8", lambda x2, *a, **k: calls.append(x2.shape) or real(x2, *a, **k))
    with torch.no_grad():
        for m in (unfused, fused):
            set_fp8_matmul(m, "scaled_mm")
        calls.clear()
        out_unfused = unfused(x, t, ctx)
        n_unfused = len(calls)
        out_fused = fused(x, t, ctx)
        set_fp8_matmul(fused, "dequant")
        out_deq = fused(x, t, ctx)
        set_fp8_matmul(unfused, "dequant")
        out_deq_unfused = unfused(x, t, ctx)
    # per block: self q,k,v share one quantisation, text k,v another: 7 calls instead of 10
    layers, quantised = 2, 4 + 4 + 2  # self q,k,v,o; cross q,k,v,o; ffn 0, 2
    assert n_unfused == layers * (quantised - 3)
    # fused GELU: fp32 GELU straight into fp8 (unfused: GELU rounded to bf16 first): same up to rounding
    assert psnr(out_unfused, out_fused) > 40
    torch.testing.assert_close(out_deq, out_deq_unfused, atol=0, rtol=0)  # dequant path: identical math
    # dequantize_model puts the GELU back
    assert dequantize_model(fused) > 0 and isinstance(fused.blocks[0].ffn[1], torch.nn.GELU)
    with torch.no_grad():
        assert psnr(out_deq, fused(x, t, ctx)) > 60


def test_shared_input_cache_sees_in_place_changes():
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(32, 16).to(torch.bfloat16).requires_grad_(False)
    q = FP8Linear.from_linear(lin)
    q.matmul, q.share_input_quant = "scaled_mm", True
    x = torch.randn(3, 32, generator=g).to(torch.bfloat16)
    with torch.no_grad():
        y1 = q(x)
        assert torch.equal(q(x), y1)  # reused (same tensor, same version)
        x.mul_(2)  # version counter moves: the cached fp8 copy must not be reused
        y2 = q(x)
        q.share_input_quant = False
        assert torch.equal(y2, q(x)) and not torch.equal(y1, y2)


@pytest.mark.parametrize("mode,variant", [("independent", "wan"), ("syncam", "syncammaster"), ("hard", "wan")])
def test_fp8_model_close_to_bf16(mode, variant):
    model = tiny_model(variant, num_layers=2, dim=128, ffn_dim=256, num_heads=2).to(torch.bfloat16)
    x, t, ctx, cam = grid_inputs(model)
    kw = dict(mode=mode, camera=cam if mode != "independent" else None)
    with torch.no_grad():
        ref = model(x, t, ctx, **kw)
        q = copy.deepcopy(model)
        names = quantize_linear_weights(q)
        assert "blocks.0.ffn.0" in names and "blocks.1.self_attn.q" in names
        assert not any(n.startswith(("head", "text_embedding", "time_")) or "cam_encoder" in n for n in names)
        if variant == "syncammaster":
            assert "blocks.0.mvs_attn.o" in names and "blocks.0.projector" in names
        out_deq = q(x, t, ctx, **kw)
        set_fp8_matmul(q, "scaled_mm")
        out_mm = q(x, t, ctx, **kw)
    # measured here: dequant ~40 dB, scaled_mm ~35 dB; the bar for the real model is 30 dB
    assert psnr(ref, out_deq) > 32, psnr(ref, out_deq)
    assert psnr(ref, out_mm) > 30, psnr(ref, out_mm)
    assert not torch.equal(ref, out_deq)  # it really ran in fp8
    # weight memory: fp8 layers take 1 byte per weight instead of 2
    lin_bytes = sum(m.weight_fp8.numel() for m in q.modules() if isinstance(m, FP8Linear))
    assert lin_bytes > 0
    total_bf16 = sum(p.numel() * p.element_size() for p in model.parameters())
    total_fp8 = sum(t.numel() * t.element_size() for t in list(q.parameters()) + list(q.buffers()))
    assert total_fp8 < total_bf16 - lin_bytes * 0.9


def test_loader_fp8_option_and_scaled_fp8_files(tmp_path):
    model = tiny_model(num_layers=2, dim=128, ffn_dim=256, num_heads=2).to(torch.bfloat16)
    x, t, ctx, _ = grid_inputs(model)
    path = tmp_path / "dit.safetensors"
    save_grid_dit(model, path)
    with torch.no_grad():
        ref = model(x, t, ctx)
        m8 = load_grid_dit(path, options=LoadOptions(fp8=True, attention="chunked", ffn_chunk=7, row_chunks=3))
        assert isinstance(m8.blocks[0].ffn[0], FP8Linear) and m8.load_info["fp8"]
        assert m8.attention_backend == "chunked" and m8.blocks[0].ffn_chunk == 7 and m8.blocks[0].row_chunks == 3
        out8 = m8(x, t, ctx)
    assert psnr(ref, out8) > 30
    # a ComfyUI-style scaled fp8 file: prefixed keys, fp8 weights with per-tensor `scale_weight`,
    # `scale_input` and the `scaled_fp8` marker
    sd = {}
    for k, v in model.base_state_dict().items():
        layer = k[: -len(".weight")]
        if k.endswith(".weight") and v.ndim == 2 and k.startswith("blocks."):
            q, s = quantize_weight(v, scaling="per_tensor")
            sd["model.diffusion_model." + k], sd["model.diffusion_model." + layer + ".scale_weight"] = q, s
            sd["model.diffusion_model." + layer + ".scale_input"] = torch.ones(())
        else:
            sd["model.diffusion_model." + k] = v
    sd["model.diffusion_model.scaled_fp8"] = torch.zeros(2, dtype=torch.float8_e4m3fn)
    stripped, scales = split_fp8_scales({k.split("model.diffusion_model.")[1]: v for k, v in sd.items()})
    assert "blocks.0.self_attn.q.weight" in scales and "scaled_fp8" not in stripped
    with torch.no_grad():
        as_bf16 = load_grid_dit(sd, num_heads=2)          # dequantised on load (scales applied)
        kept = load_grid_dit(sd, num_heads=2, fp8=True)   # kept in fp8 with the file's own scales
        out_a, out_b = as_bf16(x, t, ctx), kept(x, t, ctx)
    assert as_bf16.dtype == torch.bfloat16 and as_bf16.blocks[0].self_attn.q.weight.dtype == torch.bfloat16
    assert kept.blocks[0].self_attn.q.scale_weight.shape == ()
    stored = sd["model.diffusion_model.blocks.0.self_attn.q.weight"]
    assert kept.blocks[0].self_attn.q.weight_fp8.dtype == stored.dtype
    assert torch.equal(kept.blocks[0].self_attn.q.weight_fp8.view(torch.uint8), stored.view(torch.uint8))
    assert psnr(ref, out_a) > 30 and psnr(ref, out_b) > 30
    # saving an fp8 model and reloading it is lossless
    p2 = tmp_path / "dit_fp8.safetensors"
    save_grid_dit(kept, p2)
    again = load_grid_dit(p2, fp8=True)
    with torch.no_grad():
        assert torch.equal(again(x, t, ctx), out_b)


def test_loader_block_swap_option(tmp_path):
    model = tiny_model(num_layers=2)
    x, t, ctx, _ = grid_inputs(model)
    with torch.no_grad():
        ref = model(x, t, ctx)
        m = load_grid_dit(model.base_state_dict(), options=LoadOptions(num_heads=2, block_swap=1))
        assert block_swap_of(m) is not None and m.load_info["block_swap"] == 1
        assert torch.equal(m(x, t, ctx), ref)


# --- predictor ----------------------------------------------------------------------------------
def test_weight_term_equals_real_parameter_bytes():
    cfg = tiny_config("syncammaster", num_layers=3)
    model = tiny_model("syncammaster", num_layers=3).to(torch.bfloat16)
    real = sum(p.numel() * p.element_size() for p in model.parameters())
    assert weight_bytes(cfg, torch.bfloat16) == real
    est = predict_peak_memory(cfg, 2, 9, 64, 64, mode="syncam")
    assert est.breakdown["weights"] == real and int(est) == sum(est.breakdown.values())
    q = copy.deepcopy(model)
    quantize_linear_weights(q)
    real8 = sum(t.numel() * t.element_size() for t in list(q.parameters()) + list(q.buffers()))
    assert weight_bytes(cfg, torch.bfloat16, fp8=True) == real8


def test_predictor_monotonic_and_consistent():
    base = dict(frames=81, height=480, width=832, mode="hard")
    p = {v: predict_peak_memory("wan-1.3b", v, **base) for v in (1, 2, 4, 8)}
    assert p[1] < p[2] < p[4] < p[8]
    # activations scale linearly with views, weights do not
    act = {v: int(p[v]) - p[v].breakdown["weights"] for v in p}
    assert abs(act[8] / act[4] - 2) < 0.05
    assert predict_peak_memory("wan-1.3b", 4, 81, 480, 832) < predict_peak_memory("wan-1.3b", 4, 81, 480, 832, mode="hard")
    assert predict_peak_memory("wan-1.3b", 4, 41, 480, 832) < predict_peak_memory("wan-1.3b", 4, 81, 480, 832)
    assert predict_peak_memory("wan-1.3b", 4, 81, 480, 832, cfg_batch=2) > p[4]
    # fp8 halves the big Linear weights: the weights term drops to just over half (norms, embeddings stay)
    w16 = predict_peak_memory("wan-14b", 4, 81, 480, 832).breakdown["weights"]
    w8 = predict_peak_memory("wan-14b", 4, 81, 480, 832, fp8=True).breakdown["weights"]
    assert 0.5 < w8 / w16 < 0.52
    # 14B bf16 is ~28.6 GB of weights
    assert 26 * GIB < w16 < 27 * GIB
    # block swap and FFN chunking only ever lower the prediction
    swap = predict_peak_memory("wan-14b", 4, 81, 480, 832, block_swap=20).breakdown["weights"]
    assert swap < w16 * 0.6
    chunked = predict_peak_memory("wan-1.3b", 8, 81, 480, 832, ffn_chunk=8192)
    assert chunked.breakdown["block_transient"] < p[8].breakdown["block_transient"]
    assert predict_peak_memory("wan-1.3b", 8, 81, 480, 832, attention="naive") > 100 * GIB  # the N x N trap
    with pytest.raises(ValueError, match="mode"):
        predict_peak_memory("wan-1.3b", 1, 81, 480, 832, mode="joint")
    with pytest.raises(ValueError, match="4k\\+1"):
        predict_peak_memory("wan-1.3b", 1, 80, 480, 832)


def test_predictor_knows_every_grid_mode():
    # the sampler node asks the predictor for the mode it runs: a mode without counts would fail there
    from camgrid.model import memory
    from camgrid.model.modes import MODES

    for table in (memory.STATES_AT_FFN, memory.STATES_AT_ATTN, memory.ROWS_AT_FFN, memory.MERGE_STATES):
        assert set(table) == set(MODES)
    for mode in MODES:
        assert int(memory.predict_peak_memory("wan-1.3b", views=2, frames=5, height=64, width=64, mode=mode)) > 0
