"""Every node called as a plain class (no ComfyUI) on a tiny DiT, with a weight-free VAE stand-in."""
import os
import sys
from pathlib import Path

import pytest
import torch

from grid_helpers import tiny_model

import camgrid
from camgrid.model import save_grid_dit
from camgrid.model.checkpoint import OPTION_LIMITS
from camgrid.model.sync import attach_sync_layers, save_sync_weights
from camgrid.nodes import NODE_CLASS_MAPPINGS, host, latent_convert
from camgrid.nodes.decode import CamGridDecode, CamGridSelectView, contact_sheet, resolve_layout
from camgrid.nodes.latent import CamGridEmptyLatent, CamGridSourceVideo
from camgrid.nodes.loader import CamGridModelLoader
from camgrid.nodes.rig import CamGridCameraEncode, CamGridLoadRig, CamGridRig, CamGridRigPreview
from camgrid.nodes.sampler import CamGridSampler
from camgrid.nodes.sampler_options import CamGridSamplerOptions

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "host"))
from standin_pack import StandInCLIP, StandInVAE  # noqa: E402

W, H, LENGTH, VIEWS = 32, 32, 5, 2  # latent 4x4, 2 latent frames


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(tmp_path))
    for sub in ("diffusion_models", "camgrid"):
        (tmp_path / sub).mkdir()
    for variant in ("wan", "syncammaster", "recammaster"):
        save_grid_dit(tiny_model(variant, seed=1), tmp_path / "diffusion_models" / f"tiny_{variant}.safetensors")
    return tmp_path


def prompt(text="a red fox in the snow"):
    clip = StandInCLIP()
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def load(name, **kw):
    model, info = CamGridModelLoader().load(f"tiny_{name}.safetensors", "fp32", "auto", **kw)
    return model, info


def run_sampler(model, views=VIEWS, camera=True, source=None, **kw):
    latent = CamGridEmptyLatent().generate(views, W, H, LENGTH)[0]
    embeds = None
    if camera:
        rig = CamGridRig().build("orbit_arc", views, LENGTH, 60.0, 10.0, 3.0, 1.0, 60.0, 0.0)[0]
        embeds = CamGridCameraEncode().encode(rig, LENGTH, "auto", 0.0)[0]
    args = dict(seed=3, steps=2, cfg=2.0, shift=5.0, scheduler="euler", sync_mode="auto", denoise=1.0)
    args.update(kw)
    return CamGridSampler().sample(model, prompt(), prompt("blurry"), latent, camera=embeds, source=source, **args)


# --- node definitions ----------------------------------------------------------------------------

def test_every_node_is_a_well_formed_v1_class_with_tooltips():
    assert camgrid.NODE_CLASS_MAPPINGS is NODE_CLASS_MAPPINGS or camgrid.NODE_CLASS_MAPPINGS == NODE_CLASS_MAPPINGS
    assert len(NODE_CLASS_MAPPINGS) == 14
    for node_id, cls in NODE_CLASS_MAPPINGS.items():
        assert node_id.startswith("CamGrid") and cls.CATEGORY.startswith("CamGrid/")
        assert callable(getattr(cls, cls.FUNCTION))
        assert len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)) == len(cls.RETURN_TYPES)
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, entry in spec.get(section, {}).items():
                assert len(entry) == 2 and entry[1].get("tooltip"), f"{node_id}.{name} has no tooltip"


def test_defaults_are_the_wan_defaults():
    latent = CamGridEmptyLatent.INPUT_TYPES()["required"]
    assert (latent["width"][1]["default"], latent["height"][1]["default"], latent["length"][1]["default"],
            latent["views"][1]["default"]) == (832, 480, 81, 4)
    sampler = CamGridSampler.INPUT_TYPES()["required"]
    assert (sampler["steps"][1]["default"], sampler["cfg"][1]["default"], sampler["shift"][1]["default"],
            sampler["sync_mode"][1]["default"]) == (50, 5.0, 5.0, "auto")
    assert CamGridRig.INPUT_TYPES()["required"]["views"][1]["default"] == 4


def test_validate_inputs_catch_bad_combinations_early():
    assert CamGridEmptyLatent.VALIDATE_INPUTS(width=832, height=480, length=81) is True
    assert "multiple of 16" in CamGridEmptyLatent.VALIDATE_INPUTS(width=830, height=480, length=81)
    assert "4k+1" in CamGridEmptyLatent.VALIDATE_INPUTS(width=832, height=480, length=80)
    assert "views to 1" in CamGridRig.VALIDATE_INPUTS(preset="recammaster_pan_left", views=4, radius=3, spacing=1)
    assert "at most 10" in CamGridRig.VALIDATE_INPUTS(preset="syncammaster_example", views=12, radius=3, spacing=1)
    assert "dolly" in CamGridRig.VALIDATE_INPUTS(preset="dolly", views=4, radius=1.0, spacing=-1.0)
    assert CamGridRig.VALIDATE_INPUTS(preset="orbit_arc", views=4, radius=3, spacing=1) is True
    assert "view 0" in CamGridSourceVideo.VALIDATE_INPUTS(width=832, height=480, length=81, use="first_row", view=2)
    assert "source" in CamGridSampler.VALIDATE_INPUTS(sync_mode="independent", guidance="two_scale")
    assert "(0..3)" in CamGridSelectView.VALIDATE_INPUTS(views=4, view=4)
    assert CamGridCameraEncode.VALIDATE_INPUTS(length=81) is True and "4k+1" in CamGridCameraEncode.VALIDATE_INPUTS(length=10)
    assert "half" in CamGridDecode.VALIDATE_INPUTS(tile_size=64, overlap=64)
    # inputs fed by links are unknown at validation time: no false alarms
    assert CamGridEmptyLatent.VALIDATE_INPUTS() is True and CamGridRig.VALIDATE_INPUTS() is True


def test_conditioning_is_masked_here_and_padded_to_512_zero_tokens_once_by_the_sampler():
    from camgrid.model.conditioning import TEXT_LENGTH, pad_text

    cond = [[torch.ones(1, 7, 32), {"attention_mask": torch.tensor([[1, 1, 1, 1, 1, 0, 0]])}]]
    ctx = latent_convert.conditioning_to_context(cond)
    assert ctx.shape == (1, 7, 32)
    assert ctx[0, :5].eq(1).all() and ctx[0, 5:].eq(0).all()
    padded = pad_text(ctx, TEXT_LENGTH)
    assert padded.shape == (1, 512, 32) and padded[0, 5:].eq(0).all()
    with pytest.raises(ValueError, match="CLIP Text Encode"):
        latent_convert.conditioning_to_context([[torch.ones(7, 32), {}]])


def test_latent_normalisation_round_trips_and_grid_is_view_major():
    grid = torch.randn(2, 3, 16, 2, 4, 4)
    assert torch.allclose(latent_convert.denormalize(latent_convert.normalize(grid, 2), 2), grid, atol=1e-5)
    latent = latent_convert.grid_to_latent(grid)
    assert latent["samples"].shape == (6, 16, 2, 4, 4) and latent["camgrid"] == {"views": 3, "batch": 2}
    assert torch.equal(latent["samples"][1], grid[1, 0])  # entry v*B + b
    assert torch.equal(latent_convert.latent_to_grid(latent), grid)


# --- loader ------------------------------------------------------------------------------------

def test_loader_lists_files_detects_variant_and_reports(models_dir):
    names = CamGridModelLoader.INPUT_TYPES()["required"]["dit_name"][0]
    assert {"tiny_wan.safetensors", "tiny_syncammaster.safetensors"} <= set(names)
    model, info = load("syncammaster")
    assert model.variant == "syncammaster" and model.dtype == torch.float32
    assert "syncammaster DiT" in info and "no sync weights" in info
    assert "not in models/diffusion_models" in CamGridModelLoader.VALIDATE_INPUTS(dit_name="nope.safetensors")


def test_loader_memory_chunking_options_give_the_same_grid(models_dir):
    plain, _ = load("syncammaster")
    ref = run_sampler(plain)[0]["samples"]
    chunked, info = load("syncammaster", row_chunks=1, ffn_chunk=1024)
    assert "row chunks 1" in info and "FFN chunk 1024 tokens" in info
    assert chunked.model.blocks[0].row_chunks == 1 and chunked.model.blocks[0].ffn_chunk == 1024
    got = run_sampler(chunked)[0]["samples"]
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-5)
    # limits: ComfyUI enforces the widgets' min/max (VALIDATE_INPUTS does not name these inputs), which are
    # the library's; a direct call gets the library's own check
    widget = CamGridModelLoader.INPUT_TYPES()["optional"]["row_chunks"][1]
    assert (widget["min"], widget["max"]) == (OPTION_LIMITS["row_chunks"].low, OPTION_LIMITS["row_chunks"].high)
    with pytest.raises(ValueError, match="row_chunks"):
        load("syncammaster", row_chunks=-1)


def test_soft_sync_needs_and_uses_sync_weights(models_dir):
    wan, _ = load("wan")
    with pytest.raises(ValueError, match="sync weights"):
        run_sampler(wan, camera=False, sync_mode="soft")
    dit = tiny_model("wan", seed=1)
    save_sync_weights(attach_sync_layers(dit, rank=4), models_dir / "camgrid" / "tiny_sync.safetensors")
    assert "tiny_sync.safetensors" in CamGridModelLoader.INPUT_TYPES()["optional"]["sync_weights"][0]
    model, info = load("wan", sync_weights="tiny_sync.safetensors")
    assert "sync weights tiny_sync.safetensors" in info and model.model.has_sync_weights
    latent, text = run_sampler(model, camera=False, sync_mode="soft")
    assert "sync mode soft" in text and torch.isfinite(latent["samples"]).all()


def test_block_swap_gives_the_same_result(models_dir):
    plain, _ = load("wan")
    swapped, info = load("wan", block_swap=1)
    assert "block swap 1" in info
    a = run_sampler(plain, camera=False)[0]["samples"]
    b = run_sampler(swapped, camera=False)[0]["samples"]
    assert torch.allclose(a, b, atol=1e-5)


# --- rigs ---------------------------------------------------------------------------------------

def test_rig_preview_and_encode():
    rig, summary = CamGridRig().build("orbit_arc", 3, 81, 90.0, 10.0, 3.0, 1.0, 60.0, 0.0)
    assert rig.num_views == 3 and "3 cameras" in summary
    image = CamGridRigPreview().draw(rig, 256)[0]
    assert image.shape == (1, 256, 512, 3) and 0 <= image.min() and image.max() <= 1
    assert image.std() > 0.05  # something is drawn
    embeds, text = CamGridCameraEncode().encode(rig, 81, "syncammaster", 0.0)
    extrinsics = embeds.relative("syncammaster")
    assert extrinsics.shape == (3, 21, 12) and "view0" in text
    assert torch.allclose(extrinsics[0, 0], torch.eye(4)[:3].flatten())  # view 0 is the reference
    recam = CamGridRig().build("recammaster_arc_left", 1, 81, 0, 0, 0, 0, 60.0, 0.0)[0]
    assert recam.num_views == 1 and not recam.is_static


def test_load_rig_from_reference_file(reference_data, models_dir):
    import shutil

    shutil.copy(reference_data / "syncammaster_camera_extrinsics.json", models_dir / "camgrid" / "syncam.json")
    assert "syncam.json" in CamGridLoadRig.INPUT_TYPES()["required"]["rig_file"][0]
    rig, summary = CamGridLoadRig().load("syncam.json", "cam01, cam03", 0)
    assert rig.names == ["cam01", "cam03"] and rig.num_frames == 81
    assert "not in models/camgrid" in CamGridLoadRig.VALIDATE_INPUTS(rig_file="other.json")


# --- end to end -------------------------------------------------------------------------------------

def test_text_to_multicamera_end_to_end(models_dir):
    model, _ = load("syncammaster")
    latent, info = run_sampler(model)
    assert "sync mode auto -> syncam" in info and "cameras:" in info
    assert latent["samples"].shape == (VIEWS, 16, 2, H // 8, W // 8) and latent["camgrid"]["views"] == VIEWS
    vae = StandInVAE()
    frames, side, sheet, views = CamGridDecode().decode(latent, vae, 0, 0, 3)
    assert views == VIEWS and frames.shape == (VIEWS * LENGTH, H, W, 3)
    assert side.shape == (LENGTH, H, 2 * W, 3)  # 2 views side by side
    assert torch.equal(side[:, :, W:], frames[LENGTH:])  # the right half is view 1
    assert sheet.shape == (1, 2 * H + 4, 3 * W + 2 * 4, 3)
    assert [c[0] for c in vae.calls] == ["decode", "decode"]  # one view at a time
    one = CamGridSelectView().select(frames, VIEWS, 1)[0]
    assert torch.equal(one, frames[LENGTH:])


def test_auto_mode_plain_wan_is_hard_sync_and_says_camera_is_unused(models_dir):
    model, _ = load("wan")
    latent, info = run_sampler(model)
    assert "sync mode auto -> hard" in info and "camera input ignored" in info


def test_syncam_without_camera_and_wrong_view_count_are_refused(models_dir):
    model, _ = load("syncammaster")
    with pytest.raises(ValueError, match="camera embeddings"):  # the model's own check
        run_sampler(model, camera=False)
    rig = CamGridRig().build("orbit_arc", 3, LENGTH, 60.0, 0.0, 3.0, 1.0, 60.0, 0.0)[0]
    embeds = CamGridCameraEncode().encode(rig, LENGTH, "auto", 0.0)[0]
    latent = CamGridEmptyLatent().generate(VIEWS, W, H, LENGTH)[0]
    with pytest.raises(ValueError, match="set views to 3"):
        CamGridSampler().sample(model, prompt(), prompt(), latent, 0, 1, 1.0, 5.0, "euler", "auto", 1.0, camera=embeds)


def video_frames(n=9):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 40, 48, 3, generator=g)  # other size and aspect than the output: cropped and resized


def test_video_to_new_camera_path_with_recammaster(models_dir):
    model, _ = load("recammaster")
    vae = StandInVAE()
    source, fitted = CamGridSourceVideo().encode(video_frames(), vae, W, H, LENGTH, "auto", 0, 2)
    assert fitted.shape == (LENGTH, H, W, 3) and source.latent.shape == (1, 16, 2, H // 8, W // 8)
    rig = CamGridRig().build("recammaster_arc_left", 1, 81, 0, 0, 0, 0, 60.0, 0.0)[0]
    embeds = CamGridCameraEncode().encode(rig, LENGTH, "auto", 0.0)[0]
    latent = CamGridEmptyLatent().generate(1, W, H, LENGTH)[0]
    out, info = CamGridSampler().sample(model, prompt(), prompt(), latent, 1, 2, 2.0, 5.0, "unipc", "auto", 1.0,
                                        camera=embeds, source=source)
    assert "auto -> recam" in info and "source video used as recam" in info
    assert out["samples"].shape == (1, 16, 2, H // 8, W // 8) and torch.isfinite(out["samples"]).all()


def test_replace_view_source_is_kept_exactly_in_its_view(models_dir):
    model, _ = load("wan")
    vae = StandInVAE()
    source, _ = CamGridSourceVideo().encode(video_frames(), vae, W, H, LENGTH, "replace_view", 1, 0, noise=0.5)
    assert source.noise_scale == 0.5
    latent, info = run_sampler(model, camera=False, source=source, guidance="two_scale", video_cfg=1.5)
    assert "replace_view (view 1) at 0.5 of the noise level" in info
    raw_source = vae.encode(CamGridSourceVideo().encode(video_frames(), vae, W, H, LENGTH, "auto", 1, 0)[1])
    assert torch.allclose(latent["samples"][1], raw_source[0], atol=1e-4)


def test_decode_tiled_and_layout():
    latent = latent_convert.grid_to_latent(torch.randn(1, 3, 16, 2, 4, 4))
    vae = StandInVAE()
    frames, side, sheet, views = CamGridDecode().decode(latent, vae, 0, 1, 2, tiled=True, tile_size=64, overlap=16)
    assert views == 3 and side.shape == (LENGTH, 3 * 32, 32, 3)
    assert vae.calls[0][0] == "decode_tiled" and vae.calls[0][2] == 64 // 8
    assert resolve_layout(5, 0, 0) == (2, 3) and resolve_layout(5, 1, 0) == (1, 5)
    with pytest.raises(ValueError, match="layout"):
        CamGridDecode().decode(latent, vae, 1, 1, 2)
    big = contact_sheet(torch.rand(2, 9, 8, 2000, 3), 4)
    assert big.shape[2] == 4096


def test_cancel_stops_the_sampler_and_a_stale_cancel_does_not(models_dir):
    model, _ = load("wan")
    host.request_interrupt()  # issued while nothing runs: the next run must not be cancelled by it
    latent, _ = run_sampler(model, camera=False)
    assert torch.isfinite(latent["samples"]).all()

    hook = model.model.blocks[0].register_forward_hook(lambda *_: host.request_interrupt())  # cancel mid-run
    try:
        with pytest.raises(host.Interrupted):
            run_sampler(model, camera=False)
    finally:
        hook.remove()
        host.interrupt_event.clear()
    assert model.model.device.type == "cpu"  # offloaded even after a cancel


# --- the built-in tiny model ---------------------------------------------------------------------------

@pytest.fixture
def builtin_assets(tmp_path, monkeypatch):
    """A random model in the built-in model's file format, standing in for the shipped assets."""
    import camgrid.train.builtin as builtin
    from camgrid.train.autoencoder import TinyVideoAE
    from camgrid.train.text import TinyTextEncoder

    dit = tiny_model("syncammaster", seed=2, in_dim=8, out_dim=8, text_dim=64)
    attach_sync_layers(dit, rank=4)
    tiny = builtin.TinyGridModel(dit, TinyTextEncoder(text_dim=64), TinyVideoAE(latent_dim=8, width=8),
                                 {"height": 32, "width": 48, "frames": 5, "shift": 3.0})
    builtin.save_builtin(tiny, tmp_path / "assets")
    monkeypatch.setattr(builtin, "ASSETS_DIR", tmp_path / "assets")
    return tmp_path / "assets"


def test_builtin_model_runs_through_core_style_clip_and_vae(builtin_assets):
    from camgrid.nodes.builtin import CamGridBuiltinModel
    from camgrid.nodes.builtin import BUILTIN_MODEL_NAME

    assert CamGridBuiltinModel.VALIDATE_INPUTS(use_sync_layers=True) is True
    assert BUILTIN_MODEL_NAME in CamGridModelLoader.INPUT_TYPES()["required"]["dit_name"][0]
    model, clip, vae, info = CamGridBuiltinModel().load(True)
    assert "syncammaster" in info and "width 48, height 32, length 5" in info
    positive = clip.encode_from_tokens_scheduled(clip.tokenize("a red sphere and a blue box"))
    assert positive[0][0].shape == (1, 16, 64)
    latent = CamGridEmptyLatent().generate(3, 48, 32, 5, vae=vae)[0]
    assert latent["samples"].shape == (3, 8, 2, 8, 12)  # the tiny autoencoder: 8 channels, 4x
    rig = CamGridRig().build("orbit_arc", 3, 5, 60.0, 10.0, 3.0, 1.0, 60.0, 0.0)[0]
    embeds = CamGridCameraEncode().encode(rig, 5, "auto", 0.0)[0]
    negative = clip.encode_from_tokens_scheduled(clip.tokenize(""))
    out, text = CamGridSampler().sample(model, positive, negative, latent, 0, 2, 3.0, 3.0, "unipc", "soft", 1.0,
                                        camera=embeds)
    assert "sync mode soft" in text
    frames, side, sheet, views = CamGridDecode().decode(out, vae, 0, 0, 2)
    assert frames.shape == (15, 32, 48, 3) and side.shape == (5, 64, 96, 3)


def test_builtin_model_node_merges_the_few_step_student(builtin_assets, monkeypatch):
    """few_step_student merges the shipped 4-step LoRA and says how to sample; without the file it is refused
    before the run, naming the input."""
    from camgrid.nodes.builtin import CamGridBuiltinModel
    from camgrid.train import builtin

    problem = CamGridBuiltinModel.VALIDATE_INPUTS(use_sync_layers=True, few_step_student=True)
    assert isinstance(problem, str) and "few_step_student" in problem       # the fixture's folder has no student
    assert CamGridBuiltinModel.VALIDATE_INPUTS(use_sync_layers=True, few_step_student=False) is True
    monkeypatch.setattr(builtin, "ASSETS_DIR", Path(builtin.__file__).resolve().parent.parent / "assets")
    assert CamGridBuiltinModel.VALIDATE_INPUTS(use_sync_layers=True, few_step_student=True) is True
    teacher, _, _, info_teacher = CamGridBuiltinModel().load(True, False)
    student, _, _, info = CamGridBuiltinModel().load(True, True)
    assert "steps 4, cfg 1, scheduler euler, shift 3" in info and "student" not in info_teacher
    changed = [k for k, v in student.model.state_dict().items()
               if not torch.equal(v, teacher.model.state_dict()[k])]
    assert len(changed) > 10   # the LoRA's merged weights (every block's linears), the rest untouched


@pytest.mark.parametrize("in_comfy", [True, False])
def test_broken_nodes_fail_loudly_in_comfy_but_not_for_library_use(in_comfy):
    import subprocess
    import textwrap

    code = textwrap.dedent(f'''
        import builtins, sys, types
        if {in_comfy}:  # what ComfyUI has loaded before it imports a pack
            sys.modules["folder_paths"] = types.ModuleType("folder_paths")
            sys.modules["comfy.model_management"] = types.ModuleType("comfy.model_management")
        real = builtins.__import__
        def broken(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 1 and name == "nodes":
                raise ImportError("simulated broken node import")
            return real(name, globals, locals, fromlist, level)
        builtins.__import__ = broken
        try:
            import camgrid
            print("IMPORTED", camgrid.NODE_CLASS_MAPPINGS)
        except ImportError as exc:
            print("RAISED", exc)
    ''')
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    if in_comfy:
        assert "RAISED simulated broken node import" in out.stdout, out.stderr
    else:
        assert "IMPORTED {}" in out.stdout and "camgrid nodes not loaded" in out.stderr, out.stderr


# --- limits: every numeric input of the grid nodes is checked against model/checks.py -------------------

GRID_NODES = (CamGridSampler, CamGridEmptyLatent, CamGridSourceVideo, CamGridDecode, CamGridSelectView)


def _numeric_inputs(cls):
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, options) in spec.get(section, {}).items():
            if kind in ("INT", "FLOAT"):
                yield name, kind, options


@pytest.mark.parametrize("cls", GRID_NODES, ids=lambda c: c.__name__)
def test_inputs_named_in_validate_inputs_are_range_checked_there(cls):
    # ComfyUI skips its own min/max check for an input that VALIDATE_INPUTS names: the node must do it
    import inspect

    named = set(inspect.signature(cls.VALIDATE_INPUTS).parameters)
    for name, kind, options in _numeric_inputs(cls):
        assert "min" in options and "max" in options, f"{cls.__name__}.{name} has no widget limits"
        if name not in named:
            continue
        bad = [options["min"] - 1, options["max"] + 1] + ([float("nan")] if kind == "FLOAT" else [])
        for value in bad:
            message = cls.VALIDATE_INPUTS(**{name: value})
            assert isinstance(message, str) and name in message, f"{cls.__name__}.{name}={value}: {message!r}"


def test_sampler_widgets_carry_the_library_limits():
    from camgrid.model import checks

    spec = {**CamGridSampler.INPUT_TYPES()["required"], **CamGridSampler.INPUT_TYPES()["optional"]}
    for name, limit in checks.SAMPLING_LIMITS.items():
        assert (spec[name][1]["min"], spec[name][1]["max"]) == (limit.low, limit.high), name
    advanced = CamGridSamplerOptions.INPUT_TYPES()["required"]["cfg_max_sigma"][1]
    assert (advanced["min"], advanced["max"]) == (checks.CFG_MAX_SIGMA.low, checks.CFG_MAX_SIGMA.high)


def _decode(**kw):
    args = dict(rows=0, cols=0, sheet_frames=2, tiled=True, tile_size=64, overlap=16, temporal_size=8,
                temporal_overlap=4)
    args.update(kw)
    latent = latent_convert.grid_to_latent(torch.randn(1, 2, 16, 2, 4, 4))
    return CamGridDecode().decode(latent, StandInVAE(), **args)


def _source(**kw):
    args = dict(width=W, height=H, length=LENGTH, use="replace_view", view=0, start_frame=0)
    args.update(kw)
    return CamGridSourceVideo().encode(video_frames(), StandInVAE(), **args)


def _empty(**kw):
    args = dict(views=2, width=W, height=H, length=LENGTH, batch_size=1)
    args.update(kw)
    return CamGridEmptyLatent().generate(**args)


BAD_NODE_CALLS = {
    "empty views=0": (lambda: _empty(views=0), "views"),
    "empty views=65": (lambda: _empty(views=65), "views"),
    "empty batch_size=0": (lambda: _empty(batch_size=0), "batch_size"),
    "empty width=100 (no silent rounding)": (lambda: _empty(width=100), "width"),
    "empty length=80 (no silent rounding)": (lambda: _empty(length=80), "length"),
    "empty length=4000001": (lambda: _empty(length=4_000_001), "length"),
    "empty height=0": (lambda: _empty(height=0), "height"),
    "select views=0": (lambda: CamGridSelectView().select(torch.zeros(4, 2, 2, 3), 0, 0), "views"),
    "select view=-1": (lambda: CamGridSelectView().select(torch.zeros(4, 2, 2, 3), 2, -1), "view"),
    "select view=2 of 2": (lambda: CamGridSelectView().select(torch.zeros(4, 2, 2, 3), 2, 2), "view 2"),
    "decode rows=-1": (lambda: _decode(rows=-1), "rows"),
    "decode cols=65": (lambda: _decode(cols=65), "cols"),
    "decode sheet_frames=0": (lambda: _decode(sheet_frames=0), "sheet_frames"),
    "decode tile_size=8": (lambda: _decode(tile_size=8), "tile_size"),
    "decode overlap > tile/2": (lambda: _decode(tile_size=64, overlap=48), "overlap"),
    "decode temporal_overlap=0": (lambda: _decode(temporal_overlap=0), "temporal_overlap"),
    "source view=64": (lambda: _source(view=64), "view"),
    "source start_frame=-1": (lambda: _source(start_frame=-1), "start_frame"),
    "source length=80": (lambda: _source(length=80), "length"),
    "source use=sideways": (lambda: _source(use="sideways"), "use"),
    "source first_row view=1": (lambda: _source(use="first_row", view=1), "view"),
    "source too short": (lambda: _source(length=13), "length"),
    "source noise=1.5": (lambda: _source(noise=1.5), "noise"),
    "source noise=nan": (lambda: _source(noise=float("nan")), "noise"),
}


@pytest.mark.parametrize("case", list(BAD_NODE_CALLS))
def test_node_calls_with_bad_values_give_a_clear_error_naming_the_input(case):
    from camgrid.model.checks import CamGridError

    call, name = BAD_NODE_CALLS[case]
    with pytest.raises(CamGridError) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, ValueError) and name in message and "\n" not in message, message


BAD_SAMPLER_VALUES = {
    "denoise": [1e-9, 0.0, 1.5, float("nan")],   # 1e-9 with 1000 steps once built a 7 TiB schedule
    "steps": [0, 1001, float("nan")],
    "cfg": [1e6, -1.0, float("nan"), float("inf")],
    "shift": [0.0, float("nan"), 1e9],
    "video_cfg": [31.0, float("nan")],
    "seed": [-1, 2**64],
}


@pytest.mark.parametrize("name", list(BAD_SAMPLER_VALUES))
def test_sampler_refuses_out_of_range_numbers_before_any_work(models_dir, name, monkeypatch):
    from camgrid.model.checks import CamGridError

    model, _ = load("wan")
    moved = []
    monkeypatch.setattr(CamGridSampler, "_to_device", staticmethod(lambda *a: moved.append(a)))
    for value in BAD_SAMPLER_VALUES[name]:
        with pytest.raises(CamGridError, match=name):
            run_sampler(model, camera=False, **{"steps": 1000 if name == "denoise" else 2, name: value})
    assert not moved  # refused before the model went to the device


def test_sampler_refuses_empty_and_non_finite_inputs(models_dir):
    from camgrid.model.checks import CamGridError

    model, _ = load("wan")
    latent = CamGridEmptyLatent().generate(VIEWS, W, H, LENGTH)[0]
    args = dict(seed=0, steps=1, cfg=2.0, shift=5.0, scheduler="euler", sync_mode="hard", denoise=1.0)
    no_tokens = [[torch.zeros(1, 0, 32), {}]]
    with pytest.raises(CamGridError, match="positive.*at least one token"):
        CamGridSampler().sample(model, no_tokens, prompt(), latent, **args)
    nan_prompt = prompt()
    nan_prompt[0][0][0, 0, 0] = float("nan")
    with pytest.raises(CamGridError, match="negative.*NaN"):
        CamGridSampler().sample(model, prompt(), nan_prompt, latent, **args)
    no_views = {"samples": torch.zeros(0, 16, 2, 4, 4), "camgrid": {"views": 0, "batch": 1}}
    with pytest.raises(CamGridError, match="latent"):
        CamGridSampler().sample(model, prompt(), prompt(), no_views, **args)
    with pytest.raises(CamGridError, match="sync_mode|mode 'sideways'"):
        CamGridSampler().sample(model, prompt(), prompt(), latent, **{**args, "sync_mode": "sideways"})
