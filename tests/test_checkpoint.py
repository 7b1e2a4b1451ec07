"""Loading DiT files: every format, layout and prefix; variant and config detection; bad files refused."""
import json
import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from camgrid.model import CheckpointError, GridDiT, describe, get_config, load_grid_dit, save_grid_dit
from camgrid.model.checkpoint import (METADATA_CONFIG_KEY, LoadOptions, read_header, read_state_dict,
                                      to_diffusers_layout)
from camgrid.model.checks import CamGridError, InputError
from camgrid.model.sync import attach_sync_layers, load_sync_weights, save_sync_weights, sync_state_dict
from camgrid.model.weights_io import SAFETENSORS_DTYPES, TensorInfo
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


# --- one loading path: LoadOptions ------------------------------------------------------------------
def test_options_object_and_keyword_shorthand_agree(tmp_path):
    path = tmp_path / "m.safetensors"
    save_grid_dit(tiny_model("syncammaster", seed=8), path)
    options = LoadOptions(dtype=torch.bfloat16, attention="chunked", ffn_chunk=7, row_chunks=3)
    a = load_grid_dit(path, options=options)
    b = load_grid_dit(path, dtype=torch.bfloat16, attention="chunked", ffn_chunk=7, row_chunks=3)
    for m in (a, b):
        assert m.dtype == torch.bfloat16 and m.attention_backend == "chunked"
        assert m.blocks[1].ffn_chunk == 7 and m.blocks[1].row_chunks == 3
        assert not m.training and not any(p.requires_grad for p in m.parameters())
    assert load_grid_dit(path, options=options, dtype=torch.float32).dtype == torch.float32  # dtype= wins
    with pytest.raises(TypeError, match="row_chunk.*LoadOptions has"):
        load_grid_dit(path, row_chunk=2)


@pytest.mark.parametrize("field,value", [("dtype", torch.float64), ("num_heads", 0), ("row_chunks", -1),
                                         ("ffn_chunk", 1 << 21), ("block_swap", 65), ("attention", "fast"),
                                         ("fp8_scaling", "per_row"), ("row_chunks", 2.0), ("sync_weights", 3)])
def test_options_are_checked_when_made(field, value):
    with pytest.raises(InputError, match=field):
        LoadOptions(**{field: value})
    assert issubclass(InputError, CamGridError) and issubclass(CheckpointError, CamGridError)


def test_sync_weights_option_and_block_swap_limit(tmp_path):
    dit = tiny_model(seed=9)
    save_grid_dit(dit, tmp_path / "dit.safetensors")
    with_sync = attach_sync_layers(tiny_model(seed=9), rank=4)
    for block in with_sync.blocks:
        torch.nn.init.normal_(block.sync.gate.proj.weight, std=0.1)
    save_sync_weights(with_sync, tmp_path / "sync.safetensors")
    model = load_grid_dit(tmp_path / "dit.safetensors", sync_weights=tmp_path / "sync.safetensors")
    assert model.has_sync_weights and model.load_info["sync_weights"]
    assert not any(p.requires_grad for p in model.parameters())  # the sync layers too
    assert torch.equal(model.blocks[1].sync.gate.proj.weight, with_sync.blocks[1].sync.gate.proj.weight)
    with pytest.raises(InputError, match="block_swap must be an integer from 0 .* 2 blocks"):
        load_grid_dit(tmp_path / "dit.safetensors", block_swap=3)


# --- a small file never builds a large model (issue 12 #3) ----------------------------------------
@pytest.fixture
def built_models(monkeypatch):
    """Block counts of every GridDiT the loader constructs."""
    import camgrid.model.checkpoint as checkpoint

    built, real = [], checkpoint.GridDiT

    def counting(config):
        built.append(config.num_layers)
        return real(config)

    monkeypatch.setattr(checkpoint, "GridDiT", counting)
    return built


def _file_with(tmp_path, name, sd, metadata=None):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), metadata=metadata)
    return path


def test_keys_and_declared_sizes_checked_before_building(tmp_path, built_models):
    sd = tiny_model(seed=10).state_dict()
    config = json.loads(tiny_model().config.to_json())
    cases = {
        "b9999.safetensors": ({"blocks.9999.x": torch.zeros(2), "patch_embedding.weight": torch.zeros(2)}, None,
                              r"block\(s\) 0, 1, 2, 3, 4, 5 \.\.\. are missing \(highest block: 9999\)"),
        "layers.safetensors": (sd, dict(config, num_layers=20000), r"num_layers 20000 \(the weights: 2\)"),
        "dims.safetensors": (sd, dict(config, dim=10 ** 12, ffn_dim=10 ** 12), r"dim 1000000000000 \(the weights: 64\)"),
        "heads.safetensors": (sd, dict(config, num_heads=10 ** 9), "not a valid DiT config"),
        "one_more.safetensors": ({**sd, "blocks.2.ffn.0.weight": torch.zeros(128, 64)}, None,
                                 r"Missing \d+: blocks\.2\.cross_attn"),
    }
    for name, (weights, meta, pattern) in cases.items():
        metadata = None if meta is None else {METADATA_CONFIG_KEY: json.dumps(meta)}
        with pytest.raises(CheckpointError, match=pattern) as err:
            load_grid_dit(_file_with(tmp_path, name, weights, metadata), num_heads=HEADS)
        assert str(err.value).startswith(name)
    assert max(built_models, default=1) <= 1  # only the one-block meta model that lists the expected keys


# --- corrupt files: one CheckpointError naming the file (issue 12 #5) ------------------------------
def _torch_file(tmp_path, name, obj, **kw):
    torch.save(obj, str(tmp_path / name), **kw)
    return tmp_path / name


@pytest.mark.parametrize("case,pattern", [
    ("half.pt", "truncated.*download it again"), ("half.ckpt", "truncated.*download it again"),
    ("half_legacy.pt", "truncated.*download it again"), ("empty.pt", "empty"), ("text.ckpt", "text file"),
    ("int_keys.pt", "found 0 \\(int\\)"), ("random.pt", "not a readable"), ("random.safetensors", "not a readable"),
    ("meta_empty.safetensors", "lacks dim"), ("meta_text.safetensors", "not valid JSON"),
    ("int.safetensors", r"floating point.*blocks\.0\.ffn\.0\.weight \(int64\)"),
    ("bool.pt", r"floating point.*\(bool\)"), ("complex.pt", r"floating point.*\(complex64\)"),
    ("patch2d.safetensors", "patch_embedding.weight has shape \\[64, 64\\]; a Wan2.1 DiT's is 5-D"),
    ("both.safetensors", "ambiguous file: 'blocks.0.cross_attn.k.bias' and 'model.diffusion_model.blocks.0.cross"),
    ("letter.safetensors", "key 'blocks.x.foo' is not a block weight"),
    ("nan.safetensors", "weight 'blocks.1.ffn.2.weight' contains NaN"),
    ("expanded.pt", "declare .* bytes but the file stores"),
])
def test_corrupt_files_get_one_clear_error(tmp_path, case, pattern):
    sd = {k: v.contiguous() for k, v in tiny_model(seed=11).state_dict().items()}
    good = _torch_file(tmp_path, "good.pt", sd)
    legacy = _torch_file(tmp_path, "legacy.pt", sd, _use_new_zipfile_serialization=False)
    config = tiny_model().config.to_json()
    g = torch.Generator().manual_seed(0)
    make = {
        "half.pt": lambda p: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]),
        "half.ckpt": lambda p: p.write_bytes(good.read_bytes()[:-200]),
        "half_legacy.pt": lambda p: p.write_bytes(legacy.read_bytes()[: legacy.stat().st_size // 2]),
        "empty.pt": lambda p: p.write_bytes(b""),
        "text.ckpt": lambda p: p.write_text("<html><body>403 Forbidden</body></html>\n"),
        "int_keys.pt": lambda p: torch.save({0: torch.zeros(3)}, str(p)),
        "random.pt": lambda p: p.write_bytes(torch.randint(0, 256, (4096,), generator=g, dtype=torch.uint8).numpy().tobytes()),
        "random.safetensors": lambda p: p.write_bytes(b"\x80\x02" + bytes(range(256)) * 4),
        "meta_empty.safetensors": lambda p: save_file(sd, str(p), metadata={METADATA_CONFIG_KEY: "{}"}),
        "meta_text.safetensors": lambda p: save_file(sd, str(p), metadata={METADATA_CONFIG_KEY: "not json"}),
        "int.safetensors": lambda p: save_file({**sd, "blocks.0.ffn.0.weight": torch.zeros(128, 64, dtype=torch.int64)},
                                               str(p), metadata={METADATA_CONFIG_KEY: config}),
        "bool.pt": lambda p: torch.save({**sd, "head.head.bias": torch.zeros(64, dtype=torch.bool)}, str(p)),
        "complex.pt": lambda p: torch.save({**sd, "head.head.bias": torch.zeros(64, dtype=torch.complex64)}, str(p)),
        "patch2d.safetensors": lambda p: save_file({**sd, "patch_embedding.weight": torch.zeros(64, 64)}, str(p)),
        "both.safetensors": lambda p: save_file({**sd, **{"model.diffusion_model." + k: v.clone() for k, v in sd.items()}},
                                                str(p)),
        "letter.safetensors": lambda p: save_file({**sd, "blocks.x.foo": torch.zeros(1)}, str(p)),
        "nan.safetensors": lambda p: save_file({**sd, "blocks.1.ffn.2.weight": sd["blocks.1.ffn.2.weight"].clone()
                                                .index_fill(1, torch.tensor([3]), float("nan"))}, str(p),
                                               metadata={METADATA_CONFIG_KEY: config}),
        "expanded.pt": lambda p: torch.save({**sd, "blocks.0.ffn.0.weight": torch.zeros(1).expand(128, 64)}, str(p)),
    }
    path = tmp_path / case
    make[case](path)
    for load in (load_grid_dit, describe) if case != "nan.safetensors" else (load_grid_dit,):
        with pytest.raises(CheckpointError, match=pattern) as err:
            load(path, num_heads=HEADS)
        message = str(err.value)
        assert message.startswith(case + ":") and "\n" not in message and "unsafe unpickling" not in message


def test_values_too_large_for_fp16_and_float64_files(tmp_path):
    sd = {k: v.contiguous() for k, v in tiny_model(seed=12).state_dict().items()}
    big = dict(sd, **{"blocks.0.ffn.2.weight": sd["blocks.0.ffn.2.weight"] * 1e6})
    path = _file_with(tmp_path, "big.safetensors", big)
    with pytest.raises(CheckpointError, match="'blocks.0.ffn.2.weight' overflows float16.*bfloat16 or float32"):
        load_grid_dit(path, num_heads=HEADS, dtype=torch.float16)
    assert load_grid_dit(path, num_heads=HEADS, dtype=torch.bfloat16).dtype == torch.bfloat16
    double = _torch_file(tmp_path, "f64.pt", {k: v.double() for k, v in sd.items()})
    model = load_grid_dit(double, num_heads=HEADS)  # float64 files compute in float32, not bf16
    assert model.dtype == torch.float32 and model.load_info["dtype"] == "float32"
    assert describe(double, num_heads=HEADS)["file_dtype"] == torch.float64


def test_every_safetensors_dtype_name_maps_to_its_torch_dtype(tmp_path):
    for name, dtype in SAFETENSORS_DTYPES.items():
        if dtype in (torch.uint16, torch.uint32, torch.uint64, torch.float8_e8m0fnu, torch.complex128):
            continue  # safetensors' writer has no such tensors on this torch
        path = tmp_path / f"{name}.safetensors"
        save_file({"x": torch.zeros(2, 3).to(dtype)}, str(path))
        assert read_header(path)[0]["x"] == TensorInfo((2, 3), dtype), name
        stored = json.loads(path.read_bytes()[8:8 + int.from_bytes(path.read_bytes()[:8], "little")])
        assert stored["x"]["dtype"] == name


def test_auto_dtype_uses_an_fp16_file_on_gpus(tmp_path, monkeypatch):
    """dtype=auto on a GPU keeps an fp16 file in fp16 (it used to read safetensors' 'F16' as no dtype)."""
    from camgrid.nodes import host, loader

    save_grid_dit(tiny_model(seed=13).half(), tmp_path / "f16.safetensors")
    save_grid_dit(tiny_model(seed=13).bfloat16(), tmp_path / "bf16.safetensors")
    monkeypatch.setattr(host, "torch_device", lambda: torch.device("cuda"))
    assert loader.compute_dtype("auto", describe(tmp_path / "f16.safetensors")["file_dtype"]) == torch.float16
    assert loader.compute_dtype("auto", describe(tmp_path / "bf16.safetensors")["file_dtype"]) == torch.bfloat16
    monkeypatch.setattr(host, "torch_device", lambda: torch.device("cpu"))
    assert loader.compute_dtype("auto", torch.float16) == torch.float32


# --- malicious pickles: refused, nothing executed --------------------------------------------------
class RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("variant", ["zip", "legacy", "plain_pickle", "protocol0", "nested", "bin"])
def test_malicious_pickles_refused_without_running(tmp_path, variant):
    marker = tmp_path / "ran"
    payload = {"blocks.0.self_attn.q.weight": torch.zeros(2, 2), "evil": RunsCode(marker)}
    path = tmp_path / ("evil.bin" if variant == "bin" else "evil.ckpt")
    if variant in ("zip", "bin"):
        torch.save(payload, str(path))
    elif variant == "legacy":
        torch.save(payload, str(path), _use_new_zipfile_serialization=False)
    elif variant == "plain_pickle":
        path.write_bytes(pickle.dumps(payload))
    elif variant == "protocol0":
        path.write_bytes(pickle.dumps(RunsCode(marker), protocol=0))
    else:
        torch.save({"state_dict": {"model": payload}}, str(path))
    for load in (load_grid_dit, read_state_dict, lambda p: load_sync_weights(tiny_model(), p)):
        with pytest.raises(CheckpointError, match="refused|not a readable"):
            load(path)
    assert not marker.exists()


# --- sync-weights files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("damage,pattern", [
    ("missing", r"missing blocks\.1\.sync\.soft\.up\.bias"),
    ("missing_block0", r"missing blocks\.0\.sync\.soft\.down\.weight"),
    ("rank", r"shapes blocks\.1\.sync\.soft\.down\.bias \[8\] != \[4\]"),
    ("nan", r"weight 'blocks\.0\.sync\.gate\.proj\.bias' contains NaN"),
    ("int", r"sync weights must be float.*\(int32\)"),
    ("gap", r"block\(s\) 1 are missing"),
    ("extra", r"besides sync weights it holds 1 other tensors \(patch_embedding\.weight\)"),
    ("dit", r"not a camgrid sync-weights file"),
])
def test_damaged_sync_weights_refused_and_model_untouched(tmp_path, damage, pattern):
    source = attach_sync_layers(tiny_model(seed=14), rank=4)
    sd = {k: v.clone() for k, v in sync_state_dict(source).items()}
    if damage == "missing":
        del sd["blocks.1.sync.soft.up.bias"]
    elif damage == "missing_block0":
        del sd["blocks.0.sync.soft.down.weight"]
    elif damage == "rank":
        sd.update({"blocks.1.sync.soft.down.weight": torch.zeros(8, 128), "blocks.1.sync.soft.down.bias": torch.zeros(8),
                   "blocks.1.sync.soft.up.weight": torch.zeros(128, 8)})
    elif damage == "nan":
        sd["blocks.0.sync.gate.proj.bias"][5] = float("nan")
    elif damage == "int":
        sd["blocks.1.sync.gate.proj.bias"] = sd["blocks.1.sync.gate.proj.bias"].int()
    elif damage == "gap":
        sd = {k.replace("blocks.1.", "blocks.2."): v for k, v in sd.items()}
    elif damage == "extra":
        sd["patch_embedding.weight"] = torch.zeros(3)
    else:
        sd = dict(tiny_model().state_dict())
    path = _file_with(tmp_path, "sync.safetensors", sd)
    model = tiny_model(seed=15)
    with pytest.raises(CheckpointError, match=pattern) as err:
        load_sync_weights(model, path)
    assert str(err.value).startswith("sync.safetensors:") and not model.has_sync_weights


# --- files written atomically; files read copy-on-write ----------------------------
@pytest.mark.parametrize("save", ["dit", "sync"])
def test_a_failed_save_keeps_the_previous_file(tmp_path, monkeypatch, save):
    import camgrid.model.checkpoint as checkpoint
    import camgrid.model.sync as sync

    model = attach_sync_layers(tiny_model(seed=16), rank=4)
    path = tmp_path / "out.safetensors"
    writer = save_grid_dit if save == "dit" else save_sync_weights
    writer(model, path)
    before = path.read_bytes()

    def fails_halfway(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint if save == "dit" else sync, "save_file", fails_halfway)
    with pytest.raises(OSError, match="disk full"):
        writer(model, path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["out.safetensors"]


def test_in_place_changes_to_a_loaded_model_never_reach_its_file(tmp_path):
    """Weights may stay memory-mapped (no copy of the model in RAM), but copy-on-write: LoRA merges and other
    in-place edits change the model, never the file."""
    model = tiny_model(seed=17)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    for path in (_torch_file(tmp_path, "m.pt", sd), _file_with(tmp_path, "m.safetensors", sd)):
        before = path.read_bytes()
        loaded = load_grid_dit(path, num_heads=HEADS)
        with torch.no_grad():
            loaded.blocks[0].ffn[0].weight.add_(1.0)
        assert path.read_bytes() == before
        assert torch.equal(loaded.blocks[0].ffn[0].weight, model.blocks[0].ffn[0].weight + 1.0)


# --- the Model Loader node calls load_grid_dit ---------------------------------------------------------
@pytest.fixture
def loader_models(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(tmp_path))
    for sub in ("diffusion_models", "camgrid"):
        (tmp_path / sub).mkdir()
    return tmp_path


def test_loader_node_validates_once_and_leaves_limits_to_the_widgets(loader_models):
    import inspect

    from camgrid.model.checkpoint import OPTION_LIMITS
    from camgrid.nodes.loader import CamGridModelLoader

    # ComfyUI repeats a failed VALIDATE_INPUTS once per input it names and skips min/max for those inputs:
    # naming only dit_name gives one error for a missing file and keeps ComfyUI's range checks
    assert inspect.getfullargspec(CamGridModelLoader.VALIDATE_INPUTS).args == ["cls", "dit_name"]
    assert "not in models/diffusion_models" in CamGridModelLoader.VALIDATE_INPUTS(dit_name="nope.safetensors")
    optional = CamGridModelLoader.INPUT_TYPES()["optional"]
    for name, limit in OPTION_LIMITS.items():
        assert (optional[name][1]["min"], optional[name][1]["max"]) == (limit.low, limit.high), name


def test_loader_node_notes_a_converted_layout_only_when_it_converted(loader_models):
    from camgrid.nodes.loader import CamGridModelLoader

    model = tiny_model("wan", seed=21)
    save_grid_dit(model, loader_models / "diffusion_models" / "original.safetensors")
    save_grid_dit(model, loader_models / "diffusion_models" / "diffusers.safetensors", layout="diffusers")
    _, original = CamGridModelLoader().load("original.safetensors", "fp32", "auto")
    _, converted = CamGridModelLoader().load("diffusers.safetensors", "fp32", "auto")
    assert "converted from" not in original
    assert "converted from diffusers layout" in converted
    rays_model = tiny_model("syncammaster", seed=21, camera_rays=True)
    save_grid_dit(rays_model, loader_models / "diffusion_models" / "rays.safetensors")
    _, rays = CamGridModelLoader().load("rays.safetensors", "fp32", "auto")
    assert "camera rays" in rays and "camera rays" not in original
    save_grid_dit(tiny_model("syncammaster", seed=21, relative_cameras=True),
                  loader_models / "diffusion_models" / "relative.safetensors")
    _, relative = CamGridModelLoader().load("relative.safetensors", "fp32", "auto")
    assert "relative camera poses" in relative and "relative camera poses" not in rays


def test_loader_node_options_reach_the_model(loader_models):
    from camgrid.model.fp8 import FP8Linear
    from camgrid.nodes.loader import CamGridModelLoader

    save_grid_dit(tiny_model("syncammaster", seed=18, dim=128, ffn_dim=256), loader_models / "diffusion_models" / "m.safetensors")
    loaded, info = CamGridModelLoader().load("m.safetensors", "bf16", "chunked", weight_storage="fp8_e4m3fn",
                                             row_chunks=2, ffn_chunk=1024, block_swap=1)
    model = loaded.model
    assert isinstance(model.blocks[0].ffn[0], FP8Linear) and model.dtype == torch.bfloat16
    assert model.attention_backend == "chunked" and model.blocks[0].row_chunks == 2
    assert model.blocks[0].ffn_chunk == 1024 and loaded.block_swap == 1  # block swap: applied per run
    assert "weights fp8_e4m3fn" in info and "block swap 1" in info
    with pytest.raises(InputError, match="block_swap .* 2 blocks"):
        CamGridModelLoader().load("m.safetensors", "bf16", "auto", block_swap=3)


def test_loader_node_refuses_a_damaged_file_with_one_error(loader_models):
    from camgrid.nodes.loader import CamGridModelLoader

    path = loader_models / "diffusion_models" / "half.safetensors"
    save_grid_dit(tiny_model(seed=19), path)
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="^half.safetensors: the file is truncated.*download it again$"):
        CamGridModelLoader().load("half.safetensors", "auto", "auto")


def test_loader_node_loads_the_builtin_model_from_its_files(loader_models, monkeypatch):
    import camgrid.train.builtin as builtin
    from camgrid.nodes.loader import CamGridModelLoader, dit_files
    from camgrid.nodes.builtin import BUILTIN_MODEL_NAME
    from camgrid.train.autoencoder import TinyVideoAE
    from camgrid.train.text import TinyTextEncoder

    dit = attach_sync_layers(tiny_model("syncammaster", seed=20, in_dim=8, out_dim=8, text_dim=64), rank=4)
    tiny = builtin.TinyGridModel(dit, TinyTextEncoder(text_dim=64), TinyVideoAE(latent_dim=8, width=8),
                                 {"height": 32, "width": 48, "frames": 5, "shift": 3.0})
    builtin.save_builtin(tiny, loader_models / "assets")
    monkeypatch.setattr(builtin, "ASSETS_DIR", loader_models / "assets")
    assert dit_files()[0] == BUILTIN_MODEL_NAME
    loaded, info = CamGridModelLoader().load(BUILTIN_MODEL_NAME, "bf16", "auto")
    assert loaded.dtype == torch.float32 and loaded.model.dtype == torch.float32  # the tiny model runs in fp32
    assert loaded.model.has_sync_weights and "sync weights built-in" in info
    reference = builtin.load_builtin(device="cpu").dit
    x, t, ctx = (torch.randn(1, 2, 8, 2, 4, 4), torch.tensor([500.0]), torch.randn(1, 3, 64))
    with torch.no_grad():
        assert torch.equal(loaded.model(x, t, ctx, mode="soft"), reference(x, t, ctx, mode="soft"))
