"""Per-token camera rays (DiTConfig.camera_rays): a Plücker ray encoder beside the camera encoder, its rays made
from the 12-d extrinsics (model/camera/encoding.py extrinsics_rays); zero-initialised it changes nothing; its
files load as what they are; training adds and trains it (--camera-rays)."""
import json

import pytest
import torch

from camgrid.model import attach_sync_layers
from camgrid.model.block import TokenGrid
from camgrid.model.checkpoint import load_grid_dit, save_grid_dit
from camgrid.model.checks import InputError
from camgrid.model.config import DiTConfig
from camgrid.train.builtin import load_builtin
from camgrid.train.config import TrainConfig
from camgrid.train.trainer import Trainer
from grid_helpers import randomize, tiny_model
from test_train import MICRO, micro_model  # noqa: F401  (micro_model: test_train's fixture)

CAMERA_MODES = [("syncammaster", "syncam"), ("syncammaster", "hard"), ("syncammaster", "soft"),
                ("syncammaster", "fused"), ("recammaster", "recam")]


def grid(v=3, t=2, h=4, w=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, v, 16, t, h, w, generator=g), torch.full((1,), 600.0), torch.randn(1, 5, 32, generator=g),
            torch.randn(1, v, t, 12, generator=g), torch.randn(1, 16, t, h, w, generator=g))


def forward(model, mode, inputs):
    x, ts, ctx, cam, src = inputs
    with torch.no_grad():
        return model(x, ts, ctx, mode=mode, camera=cam, source=src if mode == "recam" else None)


def with_sync(model):
    attach_sync_layers(model)
    return randomize(model, seed=5)


@pytest.mark.parametrize("variant,mode", CAMERA_MODES)
def test_zero_initialised_ray_encoders_change_no_output_and_trained_ones_do(variant, mode):
    plain = with_sync(tiny_model(variant, seed=4))
    rays = with_sync(tiny_model(variant, seed=4))
    rays.add_ray_encoders()
    assert rays.config.camera_rays and all(b.has_rays for b in rays.blocks) and not plain.blocks[0].has_rays
    inputs = grid()
    assert torch.equal(forward(plain, mode, inputs), forward(rays, mode, inputs))
    for block in rays.blocks:
        torch.nn.init.normal_(block.ray_encoder.weight, std=0.3)
    assert (forward(plain, mode, inputs) - forward(rays, mode, inputs)).abs().max() > 1e-4


def test_ray_features_vary_over_the_pixels_and_follow_the_camera():
    model = tiny_model("syncammaster", seed=6, camera_rays=True)
    block, g = model.blocks[0], TokenGrid(1, 2, 2, 3, 5)
    cam = torch.randn(2, 2, 12)
    feats = model.camera_features(block, cam, g).view(2, 2, g.hw, -1)
    assert (feats - feats[:, :, :1]).abs().max() > 1e-3          # per pixel, not one embedding per frame
    without = tiny_model("syncammaster", seed=6)                  # the same weights, no ray encoder
    flat = without.camera_features(without.blocks[0], cam, g).view(2, 2, g.hw, -1)
    assert torch.equal(flat, flat[:, :, :1].expand_as(flat))
    moved = cam.clone()
    moved[..., 3] += 1.0                                          # the camera moves along x: the moments change
    assert (model.camera_features(block, moved, g) - feats.flatten(1, 2)).abs().max() > 1e-3


def test_config_knows_camera_rays_from_the_keys_and_old_metadata_still_loads(tmp_path):
    model = randomize(tiny_model("syncammaster", seed=7, camera_rays=True), seed=7)
    path = tmp_path / "rays.safetensors"
    save_grid_dit(model, path)
    loaded = load_grid_dit(path)
    assert loaded.config.camera_rays and loaded.blocks[1].has_rays
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    old = json.loads(DiTConfig(dim=64, num_heads=2).to_json())
    del old["camera_rays"]                                        # files written before the field existed
    assert not DiTConfig.from_json(json.dumps(old)).camera_rays
    with pytest.raises(ValueError, match="camera_rays must be true or false"):
        DiTConfig(camera_rays="yes")


def test_camera_rays_are_added_by_init_trained_by_syncam_and_kept_in_the_files(tmp_path, micro_model):
    out = tmp_path / "rays"
    cfg = TrainConfig(**{**MICRO, "out": str(out), "steps": 2, "lr": 1e-2, "init": str(micro_model),
                         "stages": ("syncam",), "camera_rays": True})
    Trainer(cfg, log=lambda *_: None).run()
    trained = load_builtin(out)
    assert trained.dit.config.camera_rays and not load_builtin(micro_model).dit.config.camera_rays
    assert all(block.ray_encoder.weight.abs().max() > 0 for block in trained.dit.blocks)   # learnt from zero
    # a later --init keeps them without the flag, and the flag is the built-in model's only
    again = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "again"), "init": str(out), "steps": 1,
                                   "stages": ("soft",)}), log=lambda *_: None)
    assert again.cfg.camera_rays and again.models.dit.blocks[0].has_rays
    import argparse
    from camgrid.train.cli import add_arguments, run
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(InputError, match="--camera-rays: the built-in model's training only"):
        run(parser.parse_args(["--dit", str(tmp_path / "x.safetensors"), "--camera-rays"]))


def test_ray_lr_scale_speeds_only_the_ray_encoders(tmp_path, micro_model):
    """--ray-lr-scale: Adam's first step from zero is lr * scale per weight, so the ray encoders move `scale` times
    as far, while every other module of the syncam stage moves as it would at scale 1."""
    def one_step(scale):
        out = tmp_path / f"scale{scale}"
        Trainer(TrainConfig(**{**MICRO, "out": str(out), "steps": 1, "lr": 1e-3, "init": str(micro_model),
                               "stages": ("syncam",), "camera_rays": True, "ray_lr_scale": scale}),
                log=lambda *_: None).run()
        return load_builtin(out).dit.blocks[0]

    slow, fast = one_step(1.0), one_step(10.0)
    ratio = fast.ray_encoder.weight.abs().max() / slow.ray_encoder.weight.abs().max()
    assert abs(float(ratio) - 10.0) < 0.1
    assert torch.equal(slow.cam_encoder.weight, fast.cam_encoder.weight)
    with pytest.raises(InputError, match="--ray-lr-scale"):
        TrainConfig(**{**MICRO, "ray_lr_scale": 0.0})
