"""benchmarks/tiny_floor_probe.py: its floor measure tells two sharp levels from blur and noise, and its
pixel-square latent space is an exact round trip."""
import json
import math

import torch

from grid_helpers import load_benchmark

probe = load_benchmark("tiny_floor_probe")


def test_otsu_eta_is_one_for_two_levels_and_two_over_pi_for_a_gaussian():
    g = torch.Generator().manual_seed(0)
    two_levels = torch.where(torch.rand(4000, generator=g) < 0.5, 0.4, 0.6)
    assert probe.otsu_eta(two_levels) > 0.999
    assert abs(probe.otsu_eta(torch.randn(20000, generator=g)) - 2 / math.pi) < 0.02
    assert math.isnan(probe.otsu_eta(torch.rand(49, generator=g)))
    assert math.isnan(probe.otsu_eta(torch.full((100,), 0.5)))


def test_the_rendered_floor_scores_near_one_and_the_same_floor_as_noise_does_not():
    frames = probe.floor_frames(4)[:, 0]                     # [4, 48, 80, 3]
    assert frames.shape == (4, probe.HEIGHT, probe.WIDTH, 3)
    assert probe.near_floor_eta(frames) > 0.95
    near = frames[:, probe.NEAR_FLOOR_TOP:]
    g = torch.Generator().manual_seed(1)
    gravel = near.mean() + near.std() * torch.randn(near.shape[:-1] + (1,), generator=g).expand_as(near)
    noisy = frames.clone()
    noisy[:, probe.NEAR_FLOOR_TOP:] = gravel.clamp(0, 1)
    assert probe.near_floor_eta(noisy) < 0.72
    close = probe.floor_frames(4, style="close")[:, 0]           # the shipped model's style: other checkers, sharp
    assert not torch.equal(close, frames) and probe.near_floor_eta(close) > 0.95


def test_pixel_squares_round_trip_exactly_on_the_token_grid():
    frames = probe.floor_frames(3)                           # [3, 1, 48, 80, 3]
    space = probe.PixelSquares(frames)
    z = space.encode(frames)
    assert z.shape == (3, 48, 1, probe.HEIGHT // 4, probe.WIDTH // 4)
    assert torch.allclose(space.decode(z), frames, atol=1e-5)


def test_shipped_floor_on_empty_rigs_measures_bare_floors_and_saves_its_pictures(tmp_path):
    """--shipped --empty: the held-out rigs with their objects taken out, whose truth is bare floor (near 1, where
    whole scenes' shadows keep it near 0.83), and --pictures writes truth, round trip and grids as rows."""
    png = tmp_path / "floor.png"
    empty = probe.shipped_floor(1, empty=True, pictures=png, bank=64)
    assert empty["truth_eta"] > 0.95 and 0.6 < empty["student_syncam_empty_eta"] <= 1.0
    assert 0.45 < empty["lattice"]["student_syncam_empty"] <= 1.0 and empty["lattice"]["truth"] > 0.7
    assert empty["object_share"]["truth"] == 0.0 and 0.0 <= empty["object_share"]["generated"] < 1.0
    assert empty["cfg"] == 1.0                                           # the student's own guidance
    with probe.Image.open(png) as image:
        assert image.size == (4 * probe.WIDTH, 3 * probe.HEIGHT)          # 4 views of 1 scene; 3 rows
    assert not list(tmp_path.glob(".*.tmp"))


def test_object_share_counts_the_coloured_pixels_only():
    frames = torch.full((2, 10, 10, 3), 0.5)                     # grey: floor, sky, shadow
    frames[0, :5, :, 0] = 0.9                                    # half of one frame red
    assert probe.object_share(frames) == 0.25
    assert probe.object_share(probe.floor_frames(2)) == 0.0


def test_the_probe_keeps_a_picture_of_its_samples_beside_them(tmp_path):
    """--out: samples.png holds the first 8 frames of the truth, the round trip and every evaluation, a row each."""
    fp = probe.FloorProbe("ae", "assets", samples=8, lr=4e-4, out=tmp_path, style="close", bank=64)
    fp.step(2)
    for step in (1, 2):
        scores = fp.evaluate(step)
        assert 0.5 < scores["eta"] <= 1.0 and 0.45 < scores["lattice"] <= 1.0
    assert (tmp_path / "samples_2.pt").exists()
    with probe.Image.open(tmp_path / "samples.png") as image:
        assert image.size == (8 * probe.WIDTH, 4 * probe.HEIGHT)


def test_save_model_writes_the_shipped_model_with_the_trained_dit_as_its_base(tmp_path):
    """--save-model: the probe's DiT (its moving average) becomes the base of a model folder the trainer can --init
    from; the camera, ray and sync parts stay the shipped ones."""
    fp = probe.FloorProbe("ae", "assets", samples=8, lr=1e-2, out=None, style="close", bank=8)
    fp.step(2)
    fp.ema.load_state_dict(fp.dit.state_dict())               # one step moved the EMA by 0.5 %: take the weights
    paths = fp.save_model(tmp_path / "floor")
    assert sorted(p.name for p in paths.values()) == sorted(
        ["camgrid-tiny.safetensors", "camgrid-tiny-sync.safetensors", "camgrid-tiny-text-ae.safetensors"])
    saved, shipped = probe.load_builtin(tmp_path / "floor").dit.state_dict(), probe.load_builtin(None).dit.state_dict()
    trained = fp.dit.state_dict()
    assert set(saved) == set(shipped)
    moved = [k for k in trained if not torch.equal(shipped[k], saved[k])]
    assert moved and all(torch.allclose(saved[k], trained[k].half().float(), atol=1e-3) for k in trained)
    assert all(torch.equal(saved[k], shipped[k]) for k in saved if k not in trained)   # camera, rays, sync
    assert any(k not in trained for k in saved)


def test_the_command_line_measures_the_mode_it_is_given(monkeypatch, capsys):
    """--shipped --mode independent: the base DiT's floors (its grids named by the mode)."""
    monkeypatch.setattr(probe.sys, "argv", ["tiny_floor_probe.py", "--shipped", "1", "--mode", "independent",
                                            "--bank", "16", "--device", "cpu"])
    probe.main()
    scores = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "independent" in " ".join(scores["lattice"]) and "syncam" not in " ".join(scores["lattice"])


def test_shipped_floor_on_aligned_scenes_matches_view_0_against_aligned_floors():
    """--scenes-style close_aligned: held-out scenes of that style whatever the model's; view 0's true floor is found
    in a bank of aligned floors better than in an equal bank of floors turned every way (the bank the other views
    and `lattice` use), and `lattice_by_view` has a match per view."""
    scores = probe.shipped_floor(1, mode="independent", style="close_aligned", bank=256)
    assert scores["style"] == "close_aligned"
    aligned, by_view = scores["lattice_aligned_view0"], scores["lattice_by_view"]
    assert len(by_view["truth"]) == 4 and all(0.45 < v <= 1.0 for row in by_view.values() for v in row)
    assert aligned["truth"] > by_view["truth"][0] and aligned["truth"] > 0.9
