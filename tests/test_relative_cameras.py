"""Relative camera poses in the multi-view attention (DiTConfig.relative_cameras, model/relative_pose_attention.py):
the attention sees the cameras only through each pair's relative pose, so moving the whole rig changes nothing
while moving one camera does; the view index is no longer read; the files and `camgrid train` keep the setting."""
import json
import math

import pytest
import torch

from camgrid.model import attach_sync_layers
from camgrid.model.checkpoint import load_grid_dit, save_grid_dit
from camgrid.model.config import DiTConfig
from camgrid.model.relative_pose_attention import pose_matrices, posed_dims, transform
from camgrid.train.builtin import load_builtin
from camgrid.train.config import TrainConfig
from camgrid.train.trainer import Trainer
from grid_helpers import randomize, tiny_model
from test_train import MICRO, micro_model  # noqa: F401  (micro_model: test_train's fixture)

V, T = 3, 2
MULTIVIEW_MODES = ("syncam", "hard", "soft", "fused")


def rotation(axis: int, angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    r = torch.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    r[i, i], r[j, j], r[i, j], r[j, i] = c, c, -s, s
    return r


def rig() -> torch.Tensor:
    """Camera-to-world poses [V, T, 4, 4] of a small arc that moves over time."""
    c2w = torch.eye(4).repeat(V, T, 1, 1)
    for v in range(V):
        for t in range(T):
            c2w[v, t, :3, :3] = rotation(1, 0.3 * v + 0.05 * t) @ rotation(0, 0.1 * v)
            c2w[v, t, :3, 3] = torch.tensor([0.7 * v, 0.1 * t, -0.2 * v])
    return c2w


def rows(c2w: torch.Tensor) -> torch.Tensor:
    return c2w[..., :3, :].reshape(1, V, T, 12)


def generate(model, camera, mode="syncam", seed=0):
    g = torch.Generator().manual_seed(seed)
    x, ctx = torch.randn(1, V, 16, T, 4, 6, generator=g), torch.randn(1, 5, 32, generator=g)
    with torch.no_grad():
        return model(x, torch.full((1,), 600.0), ctx, mode=mode, camera=camera)


def relative_model(**overrides):
    model = tiny_model("syncammaster", seed=3, relative_cameras=True, **overrides)
    attach_sync_layers(model)
    randomize(model, seed=3)
    for block in model.blocks:   # the camera embedding reads absolute numbers: only the attention is tested
        torch.nn.init.zeros_(block.cam_encoder.weight)
    return model


def test_the_pose_matrices_pair_into_the_relative_pose():
    c2w = rig()
    query, key = pose_matrices(rows(c2w).flatten(0, 1), batch=1, views=V)     # view stream: [T, V, 4, 4]
    grid_query, grid_key = pose_matrices(rows(c2w).flatten(0, 1), batch=1, views=V, layout="grid")  # [1, V*T, ...]
    for t in range(T):
        for i in range(V):
            for j in range(V):
                relative = torch.linalg.inv(c2w[i, t]) @ c2w[j, t]
                assert torch.allclose(query[t, i].T @ key[t, j], relative, atol=1e-5)
            assert torch.equal(grid_query[0, i * T + t], query[t, i]) and torch.equal(grid_key[0, i * T + t], key[t, i])
    q = torch.randn(2, V * 5, 2, 56)
    assert torch.equal(transform(q, torch.eye(4).expand(2, V, 4, 4)), q)       # the identity pose changes nothing
    moved = transform(q, query[:1].expand(2, V, 4, 4))
    assert torch.equal(moved[..., posed_dims(56):], q[..., posed_dims(56):]) and posed_dims(56) == 20
    assert not torch.allclose(moved[..., :20], q[..., :20])


@pytest.mark.parametrize("mode", MULTIVIEW_MODES)
def test_moving_the_whole_rig_changes_nothing_and_moving_one_camera_does(mode):
    model = relative_model()
    c2w = rig()
    base = generate(model, rows(c2w), mode)
    world = torch.eye(4)
    world[:3, :3], world[:3, 3] = rotation(2, 0.7) @ rotation(1, -0.4), torch.tensor([0.3, -1.0, 2.0])
    assert (generate(model, rows(world @ c2w), mode) - base).abs().max() < 1e-5
    moved = c2w.clone()
    moved[1, :, :3, 3] += 0.5
    assert (generate(model, rows(moved), mode) - base).abs().max() > 1e-3


@pytest.mark.parametrize("mode", MULTIVIEW_MODES)
def test_the_view_index_is_not_read_any_more(mode):
    """Swapping two views (their latents and their cameras) swaps the output: with RoPE over the view index a
    model's output depends on which slot a view takes; with relative poses it does not."""
    def swapped_views_agree(model):
        g = torch.Generator().manual_seed(1)
        x, ctx = torch.randn(1, V, 16, T, 4, 6, generator=g), torch.randn(1, 5, 32, generator=g)
        cam, order = rows(rig()), [0, 2, 1]
        with torch.no_grad():
            a = model(x, torch.full((1,), 600.0), ctx, mode=mode, camera=cam)
            b = model(x[:, order], torch.full((1,), 600.0), ctx, mode=mode, camera=cam[:, order])
        return (a[:, order] - b).abs().max() < 1e-5

    assert swapped_views_agree(relative_model())
    index_model = tiny_model("syncammaster", seed=3)
    attach_sync_layers(index_model)
    assert not swapped_views_agree(randomize(index_model, seed=3))


@pytest.mark.parametrize("mode", MULTIVIEW_MODES)
def test_row_chunks_give_the_same_output(mode):
    model, cam = relative_model(), rows(rig())
    whole = generate(model, cam, mode)
    model.set_row_chunks(1)
    assert (generate(model, cam, mode) - whole).abs().max() < 1e-5


def test_the_files_keep_relative_cameras_and_old_files_read_without(tmp_path):
    model = relative_model()
    path = tmp_path / "relative.safetensors"
    save_grid_dit(model, path)
    loaded = load_grid_dit(path)
    assert loaded.config.relative_cameras
    assert torch.equal(generate(loaded, rows(rig())), generate(model, rows(rig())))
    old = json.loads(DiTConfig(dim=64, num_heads=2).to_json())
    del old["relative_cameras"]                                   # files written before the field existed
    assert not DiTConfig.from_json(json.dumps(old)).relative_cameras
    with pytest.raises(ValueError, match="relative_cameras must be true or false"):
        DiTConfig(relative_cameras=1)


def test_train_switches_an_init_model_to_relative_cameras(tmp_path, micro_model):
    out = tmp_path / "relative"
    Trainer(TrainConfig(**{**MICRO, "out": str(out), "steps": 1, "init": str(micro_model), "stages": ("syncam",),
                           "relative_cameras": True}), log=lambda *_: None).run()
    assert load_builtin(out).dit.config.relative_cameras and not load_builtin(micro_model).dit.config.relative_cameras
    again = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "again"), "init": str(out), "steps": 1,
                                   "stages": ("soft",)}), log=lambda *_: None)
    assert again.cfg.relative_cameras
