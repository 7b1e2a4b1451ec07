"""Trainer, built-in model, demo and rig preview (CPU, micro sizes)."""
import json

import numpy as np
import pytest
import torch

from camgrid.model.camera import make_preset
from camgrid.model.rig_preview import draw_rig
from camgrid.train.autoencoder import TinyVideoAE
from camgrid.train.builtin import BUILTIN_NAME, builtin_available, load_builtin, save_builtin
from camgrid.train.text import TinyTextEncoder, tokenize
from camgrid.train.trainer import (TrainConfig, Trainer, _budgets, _stages, flow_matching_loss,
                                   syncammaster_from)

MICRO = dict(device="cpu", height=16, width=32, frames=5, views=2, samples=6, workers=0, dim=32, ffn_dim=64,
             num_heads=2, num_layers=1, text_dim=32, latent_dim=4, ae_width=8, sync_rank=8, batch=2,
             time_budget=1e9, checkpoint_every=10 ** 9, progress_bar=False)


def test_text_encoder_zeroes_padding_and_empty_caption():
    enc = TinyTextEncoder(text_dim=16, num_layers=1, num_heads=2)
    ids = tokenize(["a red sphere, a blue box", ""])
    assert ids[0, :6].tolist() != [0] * 6 and ids[1].eq(0).all()
    feats = enc(ids)
    assert feats.shape == (2, 16, 16)
    assert feats[1].abs().sum() == 0 and feats[0, 6:].abs().sum() == 0 and feats[0, :6].abs().sum() > 0


def test_autoencoder_shapes_follow_wan_packing():
    ae = TinyVideoAE(latent_dim=4, width=8)
    z = ae.encode(torch.rand(2, 9, 16, 32, 3))
    assert z.shape == (2, 4, 3, 4, 8)                   # T = (F - 1) / 4 + 1, 4x spatial
    assert ae.decode(z).shape == (2, 9, 16, 32, 3)
    with pytest.raises(ValueError, match="4k\\+1"):
        ae.encode(torch.rand(1, 8, 16, 32, 3))


def test_syncammaster_init_equals_the_video_model():
    from camgrid.model.config import DiTConfig
    from camgrid.model.dit import GridDiT
    base = GridDiT(DiTConfig(dim=32, ffn_dim=64, num_heads=2, num_layers=1, in_dim=4, out_dim=4, text_dim=32,
                             freq_dim=64)).eval()
    mv = syncammaster_from(base).eval()
    x, ctx, cam = torch.randn(1, 2, 4, 2, 4, 8), torch.randn(1, 3, 32), torch.randn(1, 2, 2, 12)
    with torch.no_grad():
        ref = base(x, torch.tensor([500.0]), ctx)
        out = mv(x, torch.tensor([500.0]), ctx, mode="syncam", camera=cam)
    assert mv.variant == "syncammaster" and torch.allclose(out, ref, atol=1e-5)
    assert torch.equal(mv.blocks[0].mvs_attn.q.weight, base.blocks[0].self_attn.q.weight)


def test_trainer_reduces_the_loss_and_saves_a_loadable_model(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "run"), "steps": 30, "stages": ("ae", "video")})
    trainer = Trainer(cfg, log=lambda *_: None)
    history = trainer.run()
    assert len(history["ae"]) > 3 and len(history["video"]) > 3
    # the autoencoder on a fixed batch: the reconstruction error falls
    frames, _ = trainer._frames_batch(2)
    ae = trainer.ae.requires_grad_(True)
    ae_opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
    ae_first = float((ae.decode_raw(ae.encode_raw(frames)) - frames).pow(2).mean())
    for _ in range(15):
        ae_opt.zero_grad()
        (ae.decode_raw(ae.encode_raw(frames)) - frames).pow(2).mean().backward()
        ae_opt.step()
    assert float((ae.decode_raw(ae.encode_raw(frames)) - frames).pow(2).mean()) < ae_first
    # the video stage on a fixed batch and noise: the loss falls
    trainer.dit.attention_backend = "sdpa"
    lat, captions, _ = trainer._latent_batch(4, single_view=True)
    ctx = trainer._context(captions).detach()
    opt = torch.optim.Adam(trainer.dit.parameters(), lr=1e-3)

    def fixed_loss():
        torch.manual_seed(1)
        return flow_matching_loss(trainer.dit, lat, ctx, 3.0)

    first = float(fixed_loss().detach())
    for _ in range(15):
        opt.zero_grad()
        fixed_loss().backward()
        opt.step()
    assert float(fixed_loss().detach()) < first
    assert (tmp_path / "run" / "loss.csv").read_text().count("\n") > 10
    model = load_builtin(tmp_path / "run")
    assert model.dit.variant == "wan" and model.modes() == ["independent", "hard"]


@pytest.fixture(scope="module")
def micro_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("micro")
    cfg = TrainConfig(**{**MICRO, "out": str(out), "steps": 2})
    Trainer(cfg, log=lambda *_: None).run()
    return out


def test_resume_skips_finished_stages(micro_model):
    progress = json.loads((micro_model / "progress.json").read_text())
    assert progress["done"] == ["ae", "video", "syncam", "hard", "soft"]
    trainer = Trainer(TrainConfig(**{**MICRO, "out": str(micro_model), "steps": 2, "resume": True}), log=lambda *_: None)
    assert trainer.run() == {}                      # nothing left to train
    assert trainer.dit.variant == "syncammaster" and trainer.dit.has_sync_weights


def test_micro_model_loads_and_generates_every_mode(micro_model):
    model = load_builtin(micro_model)
    assert model.modes() == ["independent", "syncam", "hard", "soft"]
    rig = make_preset("orbit_arc", num_views=2, num_frames=5)
    for mode in model.modes():
        frames = model.generate("a red sphere and a blue box", rig, mode=mode, steps=2)
        assert frames.shape == (2, 5, 16, 32, 3) and torch.isfinite(frames).all()
        assert 0 <= float(frames.min()) and float(frames.max()) <= 1


def test_demo_writes_metrics_for_all_modes(micro_model, tmp_path):
    from camgrid.train.demo import run_demo

    model = load_builtin(micro_model)
    run_demo(tmp_path / "demo", model, steps=2, log=lambda *_: None)
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(metrics["modes"]) == {"independent", "syncam", "hard", "soft"}
    for entry in [*metrics["modes"].values(), metrics["ground_truth"]]:
        assert "reproj_px" in entry and 0.0 <= entry["found"] <= 1.0 and entry["scenes"] == 3
        # a number only where something was scored; never NaN (invalid JSON), None says "not scorable"
        assert (entry["reproj_px"] is None) == (not entry["scored"]) == (entry["observations"] == 0)
    assert "NaN" not in (tmp_path / "demo" / "metrics.json").read_text()
    assert metrics["ground_truth"]["found"] > 0.5    # the renderer's own frames: objects are there
    assert (tmp_path / "demo" / "rig.png").is_file() and (tmp_path / "demo" / "comparison.png").is_file()
    assert any((tmp_path / "demo" / "syncam").iterdir())


def test_rig_preview_size_and_content():
    img = draw_rig(make_preset("orbit_arc", num_views=4, radius=3.0, num_frames=5), size=(400, 200))
    assert img.size == (400, 200)
    pixels = torch.from_numpy(np.asarray(img, dtype=np.float32).reshape(-1, 3))
    background = torch.tensor([250.0, 250.0, 248.0])
    assert ((pixels - background).abs().sum(1) > 30).float().mean() > 0.01   # drawn lines, not a blank canvas
    coloured = (pixels.max(1).values - pixels.min(1).values) > 80
    assert coloured.sum() > 20                                                # the per-view frustum colours


@pytest.mark.skipif(not builtin_available(), reason="assets/ has no built-in model files")
def test_shipped_model_loads_and_generates():
    model = load_builtin()
    assert BUILTIN_NAME == "camgrid-tiny (built-in)"
    assert model.modes() == ["independent", "syncam", "hard", "soft"]
    rig = make_preset("orbit_arc", num_views=2, num_frames=model.frames)
    frames = model.generate("a red sphere and a blue box", rig, mode="syncam", steps=2)
    assert frames.shape == (2, model.frames, model.height, model.width, 3) and torch.isfinite(frames).all()


def test_stage_names_and_legacy_sync_budget():
    assert _stages("ae,sync") == ("ae", "hard", "soft")
    assert _budgets("video=100,sync=60,soft=10") == {"video": 100.0, "hard": 30.0, "soft": 10.0}
    with pytest.raises(ValueError, match="STAGE"):
        _budgets("bogus=3")
    with pytest.raises(ValueError, match="unknown"):
        _stages("ae,bogus")


def test_hard_stage_finetunes_the_dit_and_soft_stage_only_soft_layers(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "run"), "steps": 3, "lr": 1e-2,
                         "stages": ("ae", "video", "syncam"), "two_stream_modes": ("hard",)})
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.run()
    trainer.start_data()
    before = {k: v.clone() for k, v in trainer.dit.state_dict().items()}
    trainer.stage_hard()
    after = trainer.dit.state_dict()
    changed = lambda key: not torch.equal(before[key], after[key]) if key in before else True
    assert changed("blocks.0.self_attn.q.weight") and changed("blocks.0.mvs_attn.q.weight")
    assert changed("blocks.0.cam_encoder.weight")
    assert after["blocks.0.sync.gate.proj.weight"].abs().sum() > 0           # the gates moved off zero
    assert after["blocks.0.sync.soft.up.weight"].abs().sum() == 0            # soft untouched (still a no-op)
    before = {k: v.clone() for k, v in after.items()}
    trainer.stage_soft()
    after = trainer.dit.state_dict()
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(".sync.soft." in k for k in moved)
    trainer.bank.close()


def test_two_stream_finetune_can_train_soft_layers_with_the_dit(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "run"), "steps": 4, "lr": 1e-2,
                         "stages": ("ae", "video", "syncam"), "two_stream_modes": ("hard", "soft")})
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.run()
    trainer.start_data()
    before = {k: v.clone() for k, v in trainer.dit.state_dict().items() if ".sync." not in k}
    trainer.stage_hard()
    after = trainer.dit.state_dict()
    assert not torch.equal(before["blocks.0.self_attn.q.weight"], after["blocks.0.self_attn.q.weight"])
    assert after["blocks.0.sync.gate.proj.weight"].abs().sum() > 0
    assert after["blocks.0.sync.soft.up.weight"].abs().sum() > 0             # soft trained alongside the DiT
    trainer.bank.close()
    with pytest.raises(ValueError, match="two_stream_modes"):       # refused before any stage runs
        TrainConfig(**{**MICRO, "two_stream_modes": ("soft", "fused")})
    with pytest.raises(ValueError, match="two_stream_modes"):
        TrainConfig(**{**MICRO, "two_stream_modes": ()})


def test_metric_pooling_and_unscorable_modes():
    from camgrid.train.evaluate import format_table, summarise

    a = {"found": 1.0, "usable": 1.0, "triangulated": 1.0, "observations": 2, "errors": [1.0, 3.0], "failed": 0,
         "reproj_px": 2.0}
    b = {"found": 0.5, "usable": 0.5, "triangulated": 0.5, "observations": 1, "errors": [8.0], "failed": 0,
         "reproj_px": 8.0}
    none = {"found": 0.9, "usable": 0.0, "triangulated": 0.0, "observations": 0, "errors": [], "failed": 0,
            "reproj_px": None}
    pooled = summarise([a, b, none])
    assert pooled["reproj_px"] == pytest.approx(4.0)           # (1 + 3 + 8) / 3, not the mean of 2 and 8
    assert pooled["reproj_px_median"] == pytest.approx(3.0)
    assert pooled["scenes_scored"] == 2 and pooled["observations"] == 3 and pooled["scored"]
    empty = summarise([none])
    assert empty["reproj_px"] is None and not empty["scored"]
    results = {"ground_truth": pooled, "modes": {"independent": summarise([b]), "syncam": summarise([a]),
                                                 "hard": empty}}
    table = format_table(results)
    assert "n/a" in table and "hard: not scorable" in table
    assert "syncam: 75% lower mean" in table                    # 2 px vs 8 px
    assert "lower in 1 of the 1 grids scored in both" in table


def test_paired_wins_only_count_grids_scored_in_both():
    from camgrid.train.evaluate import paired_wins

    assert paired_wins([1.0, 5.0, None, 2.0], [2.0, 4.0, 3.0, None]) == (1, 2)
    assert paired_wins([None], [1.0]) == (0, 0)


def test_observation_errors_match_the_metric_and_triangulation_survives_degenerate_input():
    from camgrid.synth.dataset import SyntheticMultiViewDataset
    from camgrid.synth.metric import consistency_metrics, triangulate
    from camgrid.train.evaluate import safe_metrics

    s = SyntheticMultiViewDataset(length=1, height=32, width=48, num_frames=5, min_views=3, max_views=3)[0]
    ours = safe_metrics(s["videos"], s["rig"], s["colours"])
    ref = consistency_metrics(s["videos"], s["rig"], s["colours"])
    assert ours["observations"] == ref["num_observations"] > 0
    assert ours["reproj_px"] == pytest.approx(ref["reproj_px"]) and ours["usable"] == pytest.approx(ref["usable"])
    # NaN / infinite centroids where "found": no exception, such points are simply not valid
    rig = make_preset("orbit_arc", num_views=2, num_frames=1)
    cents = torch.full((1, 2, 1, 2), float("nan"), dtype=torch.float64)
    points, valid = triangulate(cents, torch.ones(1, 2, 1, dtype=torch.bool), rig, 16, 32)
    assert not valid.any()
    cents = torch.tensor([[[[1e30, 5.0]], [[-1e30, 5.0]]]], dtype=torch.float64)
    points, valid = triangulate(cents, torch.ones(1, 2, 1, dtype=torch.bool), rig, 16, 32)
    assert torch.isfinite(points[valid]).all()


def test_demo_scene_seeds_are_fully_usable_at_the_builtin_resolution():
    from types import SimpleNamespace

    from camgrid.train.builtin import DEFAULT_META
    from camgrid.train.demo import DEMO_COLOURS, DEMO_SCENE_SEEDS, _truth, demo_rig
    from camgrid.train.evaluate import safe_metrics

    model = SimpleNamespace(**DEFAULT_META)
    rig = demo_rig(model)
    for seed in DEMO_SCENE_SEEDS:
        m = safe_metrics(_truth(model, rig, seed), rig, list(DEMO_COLOURS))
        assert m["usable"] == 1.0 and m["reproj_px"] < 0.5, seed
