"""Loading DiT files: every format, layout and prefix; variant and config detection; bad files refused."""
import pickle

import pytest
import torch
from safetensors.torch import save_file

from camgrid.model import CheckpointError, GridDiT, describe, get_config, load_grid_dit, save_grid_dit
from camgrid.model.checkpoint import to_diffusers_layout
from camgrid.model.config import infer_config
from grid_helpers import tiny_model

HEADS = 2


def sample_inputs(v=1):
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, v, 16, 2, 4, 4, generator=g), torch.tensor([600.0]), torch.randn(1, 3, 32, generator=g)


def same(a, b):
    # identical weights; memory alignment of mmap'd files can change the float summation order slightly
    return (a - b).abs().max().item() < 1e-5


def write(sd, path):
    sd = {k: v.contiguous() for k, v in sd.items()}
    if path.suffix == ".safetensors":
        save_file(sd, str(path))
    else:
        torch.save(sd, str(path))
    return path


@pytest.mark.parametrize("variant", ["wan", "syncammaster", "recammaster"])
@pytest.mark.parametrize("prefix", ["", "model.diffusion_model.", "model."])
@pytest.mark.parametrize("suffix", [".safetensors", ".ckpt", ".pt", ".pth"])
def test_every_format_prefix_and_variant_loads(tmp_path, variant, prefix, suffix):
    model = tiny_model(variant, seed=1)
    path = write({prefix + k: v for k, v in model.state_dict().items()}, tmp_path / f"dit{suffix}")
    loaded = load_grid_dit(path, num_heads=HEADS)
    assert loaded.variant == variant
    assert loaded.config == model.config
    x, t, ctx = sample_inputs()
    with torch.no_grad():
        assert same(loaded(x, t, ctx), model(x, t, ctx))


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_diffusers_layout_file(tmp_path, prefix):
    model = tiny_model(seed=2)
    sd = {prefix + k: v for k, v in to_diffusers_layout(model.state_dict()).items()}
    assert any(k.endswith("attn1.to_q.weight") for k in sd)
    loaded = load_grid_dit(write(sd, tmp_path / "diffusers.safetensors"), num_heads=HEADS)
    assert "diffusers" in loaded.load_info["layout"]
    x, t, ctx = sample_inputs()
    with torch.no_grad():
        assert same(loaded(x, t, ctx), model(x, t, ctx))


def test_saved_file_carries_its_config_and_dtype_conversion(tmp_path):
    model = tiny_model("syncammaster", seed=3)
    save_grid_dit(model, tmp_path / "m.safetensors")
    loaded = load_grid_dit(tmp_path / "m.safetensors", dtype=torch.bfloat16)  # head count from metadata
    assert loaded.config.num_heads == HEADS and loaded.dtype == torch.bfloat16 and loaded.variant == "syncammaster"
    assert describe(tmp_path / "m.safetensors")["variant"] == "syncammaster"


def meta_state_dict(preset, variant):
    with torch.device("meta"):
        return GridDiT(get_config(preset, variant=variant)).state_dict()


@pytest.mark.parametrize("preset,dim,heads,layers", [("wan-1.3b", 1536, 12, 30), ("wan-14b", 5120, 40, 40)])
@pytest.mark.parametrize("variant", ["wan", "syncammaster", "recammaster"])
def test_real_sizes_detected_from_shapes_alone(preset, dim, heads, layers, variant):
    sd = meta_state_dict(preset, variant)
    cfg = infer_config(sd)
    assert (cfg.dim, cfg.num_heads, cfg.num_layers, cfg.variant, cfg.size_name) == (dim, heads, layers, variant, preset)
    assert cfg.ffn_dim == get_config(preset).ffn_dim and cfg.text_dim == 4096 and cfg.freq_dim == 256
    # shapes only (no tensors at all), in diffusers layout with a ComfyUI prefix
    shapes = {"model.diffusion_model." + k: tuple(v.shape) for k, v in to_diffusers_layout(sd).items()}
    info = describe(shapes)
    assert info["size"] == preset and info["variant"] == variant and "diffusers" in info["layout"]


def test_1_3b_head_dim_and_rope_split():
    cfg = infer_config(meta_state_dict("wan-1.3b", "wan"))
    assert cfg.head_dim == 128 and cfg.rope_dims == (44, 42, 42)


class NotATensor:  # any custom class needs unsafe unpickling
    pass


def test_unsafe_pickle_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    torch.save({"blocks.0.self_attn.q.weight": torch.zeros(2, 2), "payload": NotATensor()}, str(path))
    with pytest.raises(CheckpointError, match=r"refused.*unsafe unpickling.*safetensors"):
        load_grid_dit(path)


def test_legacy_pickle_with_code_refused(tmp_path):
    path = tmp_path / "legacy.pt"
    with open(path, "wb") as f:
        pickle.dump({"x": NotATensor()}, f)
    with pytest.raises(CheckpointError, match="refused"):
        load_grid_dit(path)


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    sd = tiny_model(seed=4).state_dict()
    del sd["blocks.1.ffn.2.bias"]
    sd["blocks.0.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as err:
        load_grid_dit(write(sd, tmp_path / "broken.safetensors"), num_heads=HEADS)
    msg = str(err.value)
    assert "Missing 1: blocks.1.ffn.2.bias" in msg and "Unexpected 1: blocks.0.extra.weight" in msg


def test_shape_mismatch_is_reported():
    sd = tiny_model(seed=5).state_dict()
    sd["blocks.0.self_attn.o.weight"] = torch.zeros(64, 32)
    with pytest.raises(CheckpointError, match=r"blocks\.0\.self_attn\.o\.weight"):
        load_grid_dit(sd, num_heads=HEADS)


def test_not_a_dit_file(tmp_path):
    vae_like = {"encoder.conv1.weight": torch.zeros(4, 3, 3, 3), "decoder.conv_out.bias": torch.zeros(3)}
    with pytest.raises(CheckpointError, match=r"not a Wan2\.1 DiT.*patch_embedding"):
        load_grid_dit(write(vae_like, tmp_path / "vae.safetensors"))


def test_i2v_refused_with_reason():
    sd = dict(tiny_model(seed=6).state_dict())
    sd["img_emb.proj.1.weight"] = torch.zeros(64, 64)
    with pytest.raises(CheckpointError, match="image-to-video"):
        load_grid_dit(sd, num_heads=HEADS)


def test_unknown_head_count_asks_for_it():
    with pytest.raises(CheckpointError, match="num_heads"):
        load_grid_dit(tiny_model(seed=7).state_dict())


def test_bad_paths(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_grid_dit(tmp_path / "nope.safetensors")
    (tmp_path / "x.gguf").write_bytes(b"123")
    with pytest.raises(CheckpointError, match="unsupported checkpoint format"):
        load_grid_dit(tmp_path / "x.gguf")
    (tmp_path / "junk.safetensors").write_bytes(b"not really")
    with pytest.raises(CheckpointError, match="not a readable"):
        load_grid_dit(tmp_path / "junk.safetensors")
