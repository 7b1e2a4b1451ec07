"""LoRA loading (model/lora): every key layout seen in the wild, merged onto tiny DiTs and checked against
a hand merge written here (its own key tables, float64 arithmetic); stacking, variants, fp8 storage, block
swap, refusals, the CamGrid LoRA node and the --lora CLI flag."""
import json
import logging
import sys

import pytest
import torch
from safetensors.torch import save_file

from grid_helpers import tiny_config, tiny_model

from camgrid.model import CheckpointError, GridDiT, apply_lora, save_grid_dit
from camgrid.model.fp8 import FP8Linear, quantize_linear_weights
from camgrid.model.lora import clone_for_patching, parse_lora_arg, plan_lora
from camgrid.model.lora.layouts import ModelIndex
from camgrid.model.offload import disable_block_swap, enable_block_swap

LINEARS = [f"{a}.{p}" for a in ("self_attn", "cross_attn") for p in "qkvo"] + ["ffn.0", "ffn.2"]
# diffusers names of the block linears, written out here (not taken from model/checkpoint.py)
DIFFUSERS = {"self_attn.q": "attn1.to_q", "self_attn.k": "attn1.to_k", "self_attn.v": "attn1.to_v",
             "self_attn.o": "attn1.to_out.0", "cross_attn.q": "attn2.to_q", "cross_attn.k": "attn2.to_k",
             "cross_attn.v": "attn2.to_v", "cross_attn.o": "attn2.to_out.0", "ffn.0": "ffn.net.0.proj",
             "ffn.2": "ffn.net.2", "time_projection.1": "condition_embedder.time_proj", "head.head": "proj_out",
             "text_embedding.0": "condition_embedder.text_embedder.linear_1"}


def block_modules(model, extra=()):
    return [f"blocks.{i}.{m}" for i in range(len(model.blocks)) for m in LINEARS + list(extra)]


def diffusers_name(module):
    if module.startswith("blocks."):
        _, i, rest = module.split(".", 2)
        return f"blocks.{i}.{DIFFUSERS[rest]}"
    return DIFFUSERS[module]


class Lora:
    """A synthetic LoRA: random factors per module, the file's keys, and the expected delta of every parameter."""

    def __init__(self, model, modules, rank=8, alpha=None, seed=0, dtype=torch.float32):
        g = torch.Generator().manual_seed(seed)
        sd = model.state_dict()
        self.factors, self.expected, self.alpha, self.rank = {}, {}, alpha, rank
        for m in modules:
            w = sd[m + ".weight"]
            down = (torch.randn(rank, *w.shape[1:], generator=g) * 0.2).to(dtype)
            up = (torch.randn(w.shape[0], rank, *([1] * (w.dim() - 2)), generator=g) * 0.2).to(dtype)
            self.factors[m] = (down, up)
            scale = 1.0 if alpha is None else alpha / rank
            delta = up.double().flatten(1) @ down.double().flatten(1)
            self.expected[m + ".weight"] = scale * delta.reshape(w.shape)

    def keys(self, down_key, up_key, alpha_key=None):
        """state dict with the factors under the given key spellings (functions of the module name)."""
        out = {}
        for m, (down, up) in self.factors.items():
            out[down_key(m)], out[up_key(m)] = down, up
            if alpha_key is not None and self.alpha is not None:
                out[alpha_key(m)] = torch.tensor(float(self.alpha), dtype=down.dtype)
        return out


def check_merged(before, model, expected, strength=1.0, tol=1e-6):
    after = model.state_dict()
    for k, v in before.items():
        want = v.double() + strength * expected[k] if k in expected else v.double()
        torch.testing.assert_close(after[k].double(), want, rtol=tol, atol=tol, msg=lambda m: f"{k}: {m}")


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def save(tmp_path, sd, name="lora.safetensors", metadata=None):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata)
    return path


# --- every layout, merged exactly like a hand merge ------------------------------------------------------

def kijai_lightx2v(model, lora_seed=0):
    """Kijai / lightx2v: diffusion_model. prefix, lora_down/lora_up + alpha (bf16 like the released files),
    .diff_b bias deltas, .diff norm / modulation deltas, .diff_m modulation deltas, a conv patch_embedding pair."""
    modules = block_modules(model) + ["time_projection.1", "head.head", "text_embedding.0", "patch_embedding"]
    lora = Lora(model, modules, rank=8, alpha=4.0, seed=lora_seed, dtype=torch.bfloat16)
    sd = lora.keys(lambda m: f"diffusion_model.{m}.lora_down.weight", lambda m: f"diffusion_model.{m}.lora_up.weight",
                   lambda m: f"diffusion_model.{m}.alpha")
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(lora_seed + 100)

    def diff(key, param):
        t = (torch.randn(shapes[param], generator=g) * 0.05).to(torch.bfloat16)
        sd[key] = t
        lora.expected[param] = lora.expected.get(param, 0) + t.double()

    for i in range(len(model.blocks)):
        diff(f"diffusion_model.blocks.{i}.self_attn.q.diff_b", f"blocks.{i}.self_attn.q.bias")
        diff(f"diffusion_model.blocks.{i}.ffn.0.diff_b", f"blocks.{i}.ffn.0.bias")
        diff(f"diffusion_model.blocks.{i}.norm3.diff", f"blocks.{i}.norm3.weight")
        diff(f"diffusion_model.blocks.{i}.norm3.diff_b", f"blocks.{i}.norm3.bias")
        diff(f"diffusion_model.blocks.{i}.self_attn.norm_q.diff", f"blocks.{i}.self_attn.norm_q.weight")
        diff(f"diffusion_model.blocks.{i}.diff_m", f"blocks.{i}.modulation")
    diff("diffusion_model.head.diff_m", "head.modulation")
    diff("diffusion_model.time_embedding.0.diff", "time_embedding.0.weight")
    return lora, sd, {}


def kijai_modulation_diff(model):
    """ComfyUI's generic spelling of a parameter delta: <parameter>.diff (blocks.N.modulation.diff)."""
    lora, sd, _ = kijai_lightx2v(model)
    sd = {k.replace(".diff_m", ".modulation.diff"): v for k, v in sd.items()}
    return lora, sd, {}


def peft_transformer(model):
    """diffusers / PEFT: transformer. prefix, diffusers module names, lora_A/lora_B, no alpha (scale 1)."""
    lora = Lora(model, block_modules(model) + ["time_projection.1", "head.head"], rank=4, seed=1)
    return lora, lora.keys(lambda m: f"transformer.{diffusers_name(m)}.lora_A.weight",
                           lambda m: f"transformer.{diffusers_name(m)}.lora_B.weight"), {}


def peft_base_model(model):
    lora = Lora(model, block_modules(model), rank=4, seed=2, dtype=torch.float16)
    return lora, lora.keys(lambda m: f"base_model.model.{diffusers_name(m)}.lora_A.weight",
                           lambda m: f"base_model.model.{diffusers_name(m)}.lora_B.weight"), {}


def peft_with_metadata(model):
    """diffusers save_lora_weights: alpha from the header's lora_adapter_metadata, with an alpha_pattern entry."""
    lora = Lora(model, block_modules(model), rank=4, seed=3)
    sd = lora.keys(lambda m: f"transformer.{diffusers_name(m)}.lora_A.weight",
                   lambda m: f"transformer.{diffusers_name(m)}.lora_B.weight")
    meta = {"transformer.r": 4, "transformer.lora_alpha": 8, "transformer.alpha_pattern": {"blocks.1.attn1.to_q": 2}}
    for k in lora.expected:
        lora.expected[k] = lora.expected[k] * (0.5 if k == "blocks.1.self_attn.q.weight" else 2.0)
    return lora, sd, {"lora_adapter_metadata": json.dumps(meta), "format": "pt"}


def kohya_musubi(model):
    """kohya / musubi-tuner: lora_unet_<name with underscores>, lora_down/lora_up, alpha."""
    lora = Lora(model, block_modules(model), rank=4, alpha=2.0, seed=4, dtype=torch.float16)
    under = lambda m: "lora_unet_" + m.replace(".", "_")  # noqa: E731
    return lora, lora.keys(lambda m: under(m) + ".lora_down.weight", lambda m: under(m) + ".lora_up.weight",
                           lambda m: under(m) + ".alpha"), {}


def wan_fun(model):
    """Wan-Fun releases: lora_unet__ (two underscores)."""
    lora = Lora(model, block_modules(model), rank=4, alpha=8.0, seed=5)
    under = lambda m: "lora_unet__" + m.replace(".", "_")  # noqa: E731
    return lora, lora.keys(lambda m: under(m) + ".lora_down.weight", lambda m: under(m) + ".lora_up.weight",
                           lambda m: under(m) + ".alpha"), {}


def onetrainer(model):
    """OneTrainer: lora_transformer_<diffusers name with underscores>."""
    lora = Lora(model, block_modules(model), rank=4, alpha=4.0, seed=6)
    under = lambda m: "lora_transformer_" + diffusers_name(m).replace(".", "_")  # noqa: E731
    return lora, lora.keys(lambda m: under(m) + ".lora_down.weight", lambda m: under(m) + ".lora_up.weight",
                           lambda m: under(m) + ".alpha"), {}


def diffsynth(model):
    """DiffSynth-Studio: pipe.dit. prefix, original names, PEFT's lora_A.default.weight, no alpha."""
    lora = Lora(model, block_modules(model), rank=4, seed=7)
    return lora, lora.keys(lambda m: f"pipe.dit.{m}.lora_A.default.weight",
                           lambda m: f"pipe.dit.{m}.lora_B.default.weight"), {}


def diffsynth_stripped(model):
    """DiffSynth with its default --remove_prefix_in_ckpt pipe.dit."""
    lora = Lora(model, block_modules(model), rank=4, seed=8)
    return lora, lora.keys(lambda m: f"{m}.lora_A.default.weight", lambda m: f"{m}.lora_B.default.weight"), {}


def ai_toolkit(model):
    """ai-toolkit: diffusion_model. prefix, original names, lora_A/lora_B."""
    lora = Lora(model, block_modules(model), rank=4, seed=9)
    return lora, lora.keys(lambda m: f"diffusion_model.{m}.lora_A.weight",
                           lambda m: f"diffusion_model.{m}.lora_B.weight"), {}


LAYOUTS = [kijai_lightx2v, kijai_modulation_diff, peft_transformer, peft_base_model, peft_with_metadata, kohya_musubi,
           wan_fun, onetrainer, diffsynth, diffsynth_stripped, ai_toolkit]


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda f: f.__name__)
def test_every_layout_equals_the_hand_merge(layout, tmp_path):
    model = tiny_model("wan", seed=1)
    lora, sd, meta = layout(model)
    path = save(tmp_path, sd, metadata={k: str(v) for k, v in meta.items()} or None)
    before = snapshot(model)
    assert apply_lora(model, path, strength=0.7) is model
    check_merged(before, model, lora.expected, strength=0.7)
    report = model.applied_loras[-1]
    assert report.unmatched == [] and sorted(report.patched) == sorted(lora.expected)


def test_layout_names():
    model = tiny_model("wan")
    names = {f.__name__: plan_lora(f(model)[1], f(model)[2], ModelIndex(model), "x").layout for f in LAYOUTS}
    assert names["kijai_lightx2v"] == "Kijai/lightx2v/ComfyUI"
    assert names["peft_transformer"] == names["peft_base_model"] == "diffusers/PEFT"
    assert names["kohya_musubi"] == names["wan_fun"] == "kohya/musubi (underscore names)"
    assert names["diffsynth"] == names["diffsynth_stripped"] == "DiffSynth"


def test_a_state_dict_works_like_a_file():
    model = tiny_model("wan", seed=2)
    lora, sd, _ = ai_toolkit(model)
    before = snapshot(model)
    apply_lora(model, sd, 1.0)
    check_merged(before, model, lora.expected)


def test_two_loras_stack_and_negative_strength_undoes(tmp_path):
    model = tiny_model("wan", seed=3)
    a, sd_a, _ = kijai_lightx2v(model, lora_seed=11)
    b, sd_b, _ = peft_transformer(model)
    before = snapshot(model)
    apply_lora(model, save(tmp_path, sd_a, "a.safetensors"), 1.0)
    apply_lora(model, save(tmp_path, sd_b, "b.safetensors"), 0.5)
    both = {k: a.expected.get(k, 0) + 0.5 * b.expected.get(k, 0) for k in set(a.expected) | set(b.expected)}
    check_merged(before, model, both)
    assert [r.name for r in model.applied_loras] == ["a.safetensors", "b.safetensors"]
    apply_lora(model, tmp_path / "b.safetensors", -0.5)
    apply_lora(model, tmp_path / "a.safetensors", -1.0)
    check_merged(before, model, {}, tol=1e-6)


# --- variants ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["syncammaster", "recammaster"])
def test_a_base_wan_lora_patches_the_shared_modules_of_every_variant(variant, tmp_path):
    model = tiny_model(variant, seed=4)
    lora, sd, _ = kijai_lightx2v(model)
    before = snapshot(model)
    apply_lora(model, save(tmp_path, sd), 1.0)
    check_merged(before, model, lora.expected)  # cam_encoder / projector / mvs_attn untouched (not in expected)


def test_lora_keys_for_the_extra_modules_patch_them_when_present(tmp_path):
    syncam = tiny_model("syncammaster", seed=5)
    extra = ["cam_encoder", "projector", "mvs_attn.q", "mvs_attn.o"]
    lora = Lora(syncam, [f"blocks.{i}.{m}" for i in range(2) for m in LINEARS + extra], rank=4, alpha=4.0, seed=12)
    sd = lora.keys(lambda m: f"diffusion_model.{m}.lora_down.weight", lambda m: f"diffusion_model.{m}.lora_up.weight",
                   lambda m: f"diffusion_model.{m}.alpha")
    path = save(tmp_path, sd)
    before = snapshot(syncam)
    apply_lora(syncam, path)
    check_merged(before, syncam, lora.expected)
    assert syncam.applied_loras[-1].unmatched == []

    recam = tiny_model("recammaster", seed=5)  # has cam_encoder / projector, no mvs_attn
    before = snapshot(recam)
    apply_lora(recam, path)
    unmatched = recam.applied_loras[-1].unmatched
    assert unmatched and all(".mvs_attn." in k for k in unmatched)
    check_merged(before, recam, {k: v for k, v in lora.expected.items() if "mvs_attn" not in k})


# --- fp8 storage and block swap ------------------------------------------------------------------------

def test_fp8_weights_are_dequantised_merged_and_requantised(tmp_path):
    model = tiny_model("wan", seed=6)
    lora, sd, _ = kijai_lightx2v(model)
    quantize_linear_weights(model)
    before = snapshot(model)
    apply_lora(model, save(tmp_path, sd), 1.0)
    after = model.state_dict()
    for name, mod in model.named_modules():
        if not isinstance(mod, FP8Linear):
            continue
        key = name + ".weight"
        old = before[key].double() * before[name + ".scale_weight"].double()[:, None]
        want = old + lora.expected[key]
        got = after[key].double() * after[name + ".scale_weight"].double()[:, None]
        # one e4m3 rounding of the merged weight: half a step = 1/16 of the value, or the subnormal step
        bound = want.abs() / 16 + after[name + ".scale_weight"].double()[:, None] / 1024 + 1e-9
        assert ((got - want).abs() <= bound).all(), name
        assert after[key].dtype == torch.float8_e4m3fn and not torch.equal(after[key], before[key])
    # everything else (biases, norms, modulation, embeddings) is merged exactly as in float32
    fp8_layers = {name for name, mod in model.named_modules() if isinstance(mod, FP8Linear)}
    rest = {k: v for k, v in before.items() if not (k.rsplit(".", 1)[0] in fp8_layers and not k.endswith(".bias"))}
    check_merged(rest, model, lora.expected)


@pytest.mark.parametrize("fp8", [False, True])
def test_block_swapped_weights_are_patched_in_their_cpu_masters(tmp_path, fp8):
    lora_path = save(tmp_path, kijai_lightx2v(tiny_model("wan", seed=7))[1])
    plain, swapped = tiny_model("wan", seed=7), tiny_model("wan", seed=7)
    if fp8:
        quantize_linear_weights(plain)
        quantize_linear_weights(swapped)
    apply_lora(plain, lora_path)
    enable_block_swap(swapped, 1, "cpu")
    apply_lora(swapped, lora_path)
    x = torch.randn(1, 2, 16, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    ctx = torch.randn(1, 5, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(plain(x, torch.tensor([500.0]), ctx), swapped(x, torch.tensor([500.0]), ctx))
    disable_block_swap(swapped)
    for k, v in plain.state_dict().items():
        assert torch.equal(v, swapped.state_dict()[k]), k


# --- reports and refusals ------------------------------------------------------------------------------

def test_unmatched_keys_are_logged_and_listed(tmp_path, caplog):
    model = tiny_model("wan", seed=8)
    lora, sd, _ = ai_toolkit(model)
    sd["diffusion_model.blocks.0.cross_attn.k_img.lora_A.weight"] = torch.zeros(4, 64)
    sd["diffusion_model.blocks.0.cross_attn.k_img.lora_B.weight"] = torch.zeros(64, 4)
    sd["lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight"] = torch.zeros(4, 8)
    sd["diffusion_model.blocks.1.ffn.0.lora_A.weight_extra"] = torch.zeros(1)
    with caplog.at_level(logging.WARNING, logger="camgrid"):
        apply_lora(model, save(tmp_path, sd))
    unmatched = model.applied_loras[-1].unmatched
    assert sorted(unmatched) == sorted(k for k in sd if "k_img" in k or "lora_te" in k or "extra" in k)
    assert "4 LoRA keys matched nothing" in caplog.text and "image-to-video" in caplog.text


def lora_for(cfg_overrides, blocks=None):
    """A Kijai-layout LoRA built on a model of another size (only block keys: what a size check sees)."""
    model = GridDiT(tiny_config("wan", **cfg_overrides))
    modules = [f"blocks.{i}.{m}" for i in range(model.config.num_layers if blocks is None else blocks) for m in LINEARS]
    lora = Lora(model, modules, rank=2, alpha=2.0)
    return lora.keys(lambda m: f"diffusion_model.{m}.lora_down.weight", lambda m: f"diffusion_model.{m}.lora_up.weight",
                     lambda m: f"diffusion_model.{m}.alpha")


def test_a_lora_for_another_size_is_refused_with_both_sizes(tmp_path):
    model = tiny_model("wan")
    with pytest.raises(CheckpointError, match=r"wide\.safetensors: this LoRA is for a 96-wide, 2-block DiT; the "
                                              r"loaded model is 64-wide, 2 blocks\. Use a LoRA made for"):
        apply_lora(model, save(tmp_path, lora_for({"dim": 96}), "wide.safetensors"))
    with pytest.raises(CheckpointError, match="for a 64-wide, 3-block DiT; the loaded model is 64-wide, 2 blocks"):
        apply_lora(model, save(tmp_path, lora_for({"num_layers": 3}), "deep.safetensors"))
    with pytest.raises(CheckpointError, match=r"does not fit blocks\.0\.ffn\.0\.weight"):  # same width, other FFN
        apply_lora(model, lora_for({"ffn_dim": 96}))


def test_a_14b_lora_on_a_1_3b_model_names_both():
    with torch.device("meta"):
        small = GridDiT(tiny_config("wan", dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, text_dim=4096,
                                    freq_dim=256))
    sd = {}
    for i in (0, 39):
        for m in ("self_attn.q", "ffn.2"):
            sd[f"diffusion_model.blocks.{i}.{m}.lora_down.weight"] = torch.zeros(1, 5120 if m != "ffn.2" else 13824)
            sd[f"diffusion_model.blocks.{i}.{m}.lora_up.weight"] = torch.zeros(5120, 1)
    with pytest.raises(CheckpointError, match=r"this LoRA is for a 5120-wide, 40-block DiT \(Wan2\.1 14B\); the loaded "
                                              r"model is 1536-wide, 30 blocks \(Wan2\.1 1\.3B\)"):
        apply_lora(small, sd)


def test_damaged_and_foreign_files_are_refused_before_any_change(tmp_path):
    model = tiny_model("wan", seed=9)
    before = snapshot(model)
    lora, sd, _ = kijai_lightx2v(model)
    bad = dict(sd)
    bad["diffusion_model.blocks.1.ffn.2.lora_up.weight"] = bad["diffusion_model.blocks.1.ffn.2.lora_up.weight"].clone()
    bad["diffusion_model.blocks.1.ffn.2.lora_up.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match=r"blocks\.1\.ffn\.2\.lora_up\.weight' contains NaN or infinite"):
        apply_lora(model, save(tmp_path, bad, "nan.safetensors"))
    with pytest.raises(CheckpointError, match="none of its 2 keys patch this DiT"):
        apply_lora(model, {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 8),
                           "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(8, 4)})
    with pytest.raises(CheckpointError, match=r"DoRA \(dora_scale\) adapters are not supported"):
        apply_lora(model, {**sd, "diffusion_model.blocks.0.self_attn.q.dora_scale": torch.ones(64, 1)})
    with pytest.raises(CheckpointError, match="LyCORIS LoKr"):
        apply_lora(model, {"lycoris_blocks_0_attn1_to_q.lokr_w1": torch.ones(2, 2)})
    with pytest.raises(CheckpointError, match="not a LoRA pair"):
        apply_lora(model, {"diffusion_model.blocks.0.self_attn.q.lora_down.weight": torch.ones(4, 64),
                           "diffusion_model.blocks.0.self_attn.q.lora_up.weight": torch.ones(64, 3)})
    with pytest.raises(ValueError, match="strength must be finite"):
        apply_lora(model, sd, float("inf"))
    check_merged(before, model, {}, tol=0)


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"

    class Boom:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Boom()}, str(path))
    with pytest.raises(CheckpointError, match="unsafe unpickling"):
        apply_lora(tiny_model("wan"), path)


def test_merging_to_infinity_is_an_error():
    model = tiny_model("wan", seed=10).half()
    sd = {"diffusion_model.blocks.0.self_attn.q.diff": torch.full((64, 64), 60000.0)}
    with pytest.raises(CheckpointError, match="overflows float16"):
        apply_lora(model, sd, 2.0)
    sd = {"diffusion_model.blocks.0.self_attn.q.diff": torch.full((64, 64), 3e38)}
    with pytest.raises(CheckpointError, match=r"strength 2 made blocks\.0\.self_attn\.q\.weight non-finite"):
        apply_lora(tiny_model("wan"), sd, 2.0)


# --- copies for the node -------------------------------------------------------------------------------

def test_a_clone_is_patched_without_touching_the_original(tmp_path):
    model = tiny_model("syncammaster", seed=11)
    lora, sd, _ = kijai_lightx2v(model)
    before = snapshot(model)
    clone = clone_for_patching(model)
    apply_lora(clone, sd)
    check_merged(before, model, {}, tol=0)
    check_merged(before, clone, lora.expected)
    assert not hasattr(model, "applied_loras") and len(clone.applied_loras) == 1
    # unpatched tensors are shared, not copied
    assert clone.blocks[0].mvs_attn.q.weight.data_ptr() == model.blocks[0].mvs_attn.q.weight.data_ptr()
    assert clone.blocks[0].self_attn.q.weight.data_ptr() != model.blocks[0].self_attn.q.weight.data_ptr()
    # moving the copy moves only the copy
    clone.to(torch.float64)
    assert model.blocks[0].mvs_attn.q.weight.dtype == torch.float32
    with pytest.raises(ValueError, match="block swap"):
        enable_block_swap(model, 1, "cpu")
        clone_for_patching(model)


# --- CLI -------------------------------------------------------------------------------------------------

def test_lora_argument_parsing(tmp_path):
    import argparse

    from camgrid.model.pipeline import add_arguments

    a, b = save(tmp_path, {"x": torch.zeros(1)}, "a.safetensors"), save(tmp_path, {"x": torch.zeros(1)}, "b:c.pt")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--dit", "d", "--vae", "v", "--text-encoder", "t", "--prompt", "p"]
    assert parser.parse_args(base).lora == []
    args = parser.parse_args(base + ["--lora", str(a), "--lora", f"{b}:-0.5", "--lora", f"{a}:2"])
    assert args.lora == [(str(a), 1.0), (str(b), -0.5), (str(a), 2.0)]
    assert parse_lora_arg(str(b)) == (str(b), 1.0)  # a ':' that is not followed by a number is part of the path
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        parse_lora_arg(str(tmp_path / "missing.safetensors:0.5"))
    with pytest.raises(argparse.ArgumentTypeError, match="finite"):
        parse_lora_arg(f"{a}:nan")


def test_generate_passes_the_loras_to_the_pipeline(tmp_path, monkeypatch):
    from camgrid.model import pipeline

    a = save(tmp_path, {"x": torch.zeros(1)}, "a.safetensors")
    seen = {}

    def fake_from_files(*args, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(pipeline.Pipeline, "from_files", staticmethod(fake_from_files))
    monkeypatch.setattr(pipeline, "check_generate_args", lambda args: None)  # no real DiT/VAE/umT5 files here
    import argparse

    parser = argparse.ArgumentParser()
    pipeline.add_arguments(parser)
    args = parser.parse_args(["--dit", "d", "--vae", "v", "--text-encoder", "t", "--prompt", "p", "--lora",
                              f"{a}:0.25", "--device", "cpu", "--out", str(tmp_path / "o")])
    with pytest.raises(RuntimeError, match="stop here"):
        pipeline.run(args)
    assert seen["loras"] == [(str(a), 0.25)] and seen["vae_dtype"] == torch.float32
    args = parser.parse_args(["--dit", "d", "--vae", "v", "--text-encoder", "t", "--prompt", "p", "--device", "cpu",
                              "--vae-dtype", "bfloat16", "--out", str(tmp_path / "o")])
    with pytest.raises(RuntimeError, match="stop here"):
        pipeline.run(args)
    assert seen["vae_dtype"] == torch.bfloat16


def test_pipeline_merges_its_loras(tmp_path, monkeypatch):
    """Pipeline.from_files(loras=...) merges into the DiT it loads (stopped when the VAE would load; diffusers
    and transformers are stand-ins here, the DiT part is real)."""
    import types

    from camgrid.model import checkpoint, pipeline

    model = tiny_model("wan", seed=12)
    save_grid_dit(model, tmp_path / "dit.safetensors")
    lora, sd, _ = kijai_lightx2v(model)
    path = save(tmp_path, sd)

    class Stop(Exception):
        pass

    class Stub:
        @classmethod
        def from_pretrained(cls, *_, **__):
            raise Stop

    monkeypatch.setitem(sys.modules, "diffusers", types.SimpleNamespace(AutoencoderKLWan=Stub))
    monkeypatch.setitem(sys.modules, "transformers", types.SimpleNamespace(AutoTokenizer=Stub, UMT5EncoderModel=Stub))
    loaded, real_load = [], checkpoint.load_grid_dit
    monkeypatch.setattr(pipeline, "load_grid_dit", lambda *a, **k: loaded.append(real_load(*a, **k)) or loaded[-1])
    (tmp_path / "vae").mkdir()
    (tmp_path / "te").mkdir()
    (tmp_path / "vae" / "config.json").write_text("{}")          # folders as diffusers / transformers write them:
    (tmp_path / "te" / "spiece.model").write_bytes(b"stand-in")  # from_files checks the tokenizer before loading
    logs = []
    with pytest.raises(Stop):
        pipeline.Pipeline.from_files(tmp_path / "dit.safetensors", tmp_path / "vae", tmp_path / "te",
                                     loras=[(path, 0.5)], log=logs.append)
    check_merged(snapshot(model), loaded[0], lora.expected, strength=0.5)
    assert any("LoRA lora.safetensors x0.5" in line for line in logs)


# --- the CamGrid LoRA node -------------------------------------------------------------------------------

@pytest.fixture
def lora_models(tmp_path, monkeypatch):
    """A models folder as the nodes see it outside ComfyUI: a tiny DiT and two LoRAs for it."""
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(tmp_path))
    for sub in ("diffusion_models", "loras"):
        (tmp_path / sub).mkdir()
    model = tiny_model("syncammaster", seed=13)
    save_grid_dit(model, tmp_path / "diffusion_models" / "tiny.safetensors")
    a, sd_a, _ = kijai_lightx2v(model, lora_seed=21)
    b, sd_b, _ = kohya_musubi(model)
    save(tmp_path / "loras", sd_a, "distill.safetensors")
    (tmp_path / "loras" / "styles").mkdir()
    save(tmp_path / "loras" / "styles", sd_b, "style.safetensors")
    return a.expected, b.expected


def test_lora_node_patches_a_copy_and_chains(lora_models):
    from camgrid.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from camgrid.nodes.loader import CamGridModelLoader
    from camgrid.nodes.lora import CamGridLora

    assert NODE_CLASS_MAPPINGS["CamGridLora"] is CamGridLora
    assert NODE_DISPLAY_NAME_MAPPINGS["CamGridLora"] == "CamGrid LoRA"
    assert CamGridLora.CATEGORY == "CamGrid/loaders" and CamGridLora.RETURN_TYPES == ("CAMGRID_MODEL",)
    spec = CamGridLora.INPUT_TYPES()["required"]
    assert spec["lora_name"][0] == ["distill.safetensors", "styles/style.safetensors"]
    assert (spec["strength"][1]["min"], spec["strength"][1]["max"], spec["strength"][1]["default"]) == (-4, 4, 1)
    assert CamGridLora.VALIDATE_INPUTS("distill.safetensors", 1.0) is True
    assert "not in models/loras" in CamGridLora.VALIDATE_INPUTS("missing.safetensors", 1.0)
    assert "between -4 and 4" in CamGridLora.VALIDATE_INPUTS("distill.safetensors", 5.0)

    a, b = lora_models
    loaded, _ = CamGridModelLoader().load("tiny.safetensors", "fp32", "auto")
    before, notes = snapshot(loaded.model), list(loaded.notes)
    node = CamGridLora()
    (one,) = node.apply(loaded, "distill.safetensors", 1.0)
    (other,) = node.apply(loaded, "styles/style.safetensors", 0.5)  # a second branch on the same loaded model
    (chained,) = node.apply(one, "styles/style.safetensors", 0.5)
    check_merged(before, loaded.model, {}, tol=0)  # the cached input is untouched
    check_merged(before, one.model, a)
    check_merged(before, other.model, {k: 0.5 * v for k, v in b.items()})  # not stacked on top of `one`
    check_merged(before, chained.model, {k: a.get(k, 0) + 0.5 * b.get(k, 0) for k in set(a) | set(b)})
    check_merged(before, one.model, a)  # chaining did not touch the first node's output either
    assert loaded.notes == notes and one.notes[len(notes):] == [one.model.applied_loras[0].summary()]
    assert "LoRA distill.safetensors x1 (Kijai/lightx2v/ComfyUI)" in one.summary()
    assert len(chained.notes) == len(notes) + 2 and (chained.variant, chained.name) == (loaded.variant, loaded.name)
    assert node.apply(loaded, "distill.safetensors", 0.0)[0] is loaded


def test_lora_node_output_samples_and_leaves_the_input_reproducible(lora_models):
    from test_nodes import run_sampler

    from camgrid.nodes.loader import CamGridModelLoader
    from camgrid.nodes.lora import CamGridLora

    loaded, _ = CamGridModelLoader().load("tiny.safetensors", "fp32", "auto")
    plain = run_sampler(loaded, steps=1)[0]["samples"]
    (patched,) = CamGridLora().apply(loaded, "distill.safetensors", 1.0)
    with_lora = run_sampler(patched, steps=1)[0]["samples"]
    again = run_sampler(loaded, steps=1)[0]["samples"]
    assert torch.equal(plain, again) and not torch.allclose(plain, with_lora)


def test_lora_node_refuses_a_lora_for_another_size(lora_models, tmp_path):
    from camgrid.nodes.loader import CamGridModelLoader
    from camgrid.nodes.lora import CamGridLora

    save(tmp_path / "loras", lora_for({"dim": 96}), "big.safetensors")
    loaded, _ = CamGridModelLoader().load("tiny.safetensors", "fp32", "auto")
    with pytest.raises(CheckpointError, match="big.safetensors: this LoRA is for a 96-wide, 2-block DiT"):
        CamGridLora().apply(loaded, "big.safetensors", 1.0)
