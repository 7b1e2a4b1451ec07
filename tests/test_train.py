"""Trainer, built-in model, demo and rig preview (CPU, micro sizes)."""
import dataclasses
import json

import numpy as np
import pytest
import torch

from camgrid.model.camera import make_preset
from camgrid.model.checks import InputError
from camgrid.model.rig_preview import draw_rig
from camgrid.train.autoencoder import TinyVideoAE
from camgrid.train.builtin import BUILTIN_NAME, TEACHER_SAMPLING, builtin_available, load_builtin, save_builtin
from camgrid.train.text import TinyTextEncoder, tokenize
from camgrid.train.claims import VERDICTS, signed_rank_test
from camgrid.synth.dataset import reorder_views
from camgrid.train.config import TrainConfig, parse_budgets, parse_stages
from camgrid.train.objective import flow_matching_loss
from camgrid.train.stages import syncammaster_from
from camgrid.train.student import STUDENT_SAMPLING
from camgrid.train.trainer import Trainer
from grid_helpers import load_benchmark

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


def test_phrase_text_encoder_binds_each_colour_to_its_shape():
    """phrases=True: the colour words' features differ between "a red sphere and a blue box" and "a red box and a
    blue sphere" (without it they are all but equal: the encoder is close to a bag of words); a phrase's summary
    holds its colour and shape only; padding and the empty caption stay zero; only then is it in the config."""
    from camgrid.train.text import WORD_INDEX, phrase_sums
    captions = ["a red sphere and a blue box", "a red box and a blue sphere", ""]
    moved = {}
    for phrases in (False, True):
        torch.manual_seed(0)
        enc = TinyTextEncoder(text_dim=16, num_layers=1, num_heads=2, phrases=phrases).eval()
        with torch.no_grad():
            feats = enc.encode(captions)
        colours = feats[:, [1, 5]]
        moved[phrases] = float((colours[0] - colours[1]).norm() / colours[0].norm())
        assert feats[2].abs().sum() == 0 and feats[0, 8:].abs().sum() == 0
        assert ("phrases" in enc.config()) == phrases
    assert moved[False] < 0.02 and moved[True] > 0.1
    ids = tokenize(["a red sphere, a blue box"])
    onehot = torch.nn.functional.one_hot(ids, len(WORD_INDEX)).float()
    sums = phrase_sums(onehot, ids)[0]
    for position in range(3):
        assert sums[position].nonzero().flatten().tolist() == sorted([WORD_INDEX["red"], WORD_INDEX["sphere"]])
    for position in range(3, 6):
        assert sums[position].nonzero().flatten().tolist() == sorted([WORD_INDEX["blue"], WORD_INDEX["box"]])


def test_text_phrases_are_trained_recorded_and_refused_by_init_onto_files_without(tmp_path, micro_model):
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "ph"), "steps": 1, "stages": ("ae", "video"),
                         "text_phrases": True})
    Trainer(cfg, log=lambda *_: None).run()
    model = load_builtin(tmp_path / "ph")
    assert model.text.phrases and not load_builtin(micro_model).text.phrases
    again = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "again"), "init": str(tmp_path / "ph"),
                                   "steps": 1, "stages": ("video",)}), log=lambda *_: None)
    assert again.cfg.text_phrases                                   # --init takes the files' encoder
    import argparse
    from camgrid.train.cli import add_arguments, config_from_args
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--text-phrases"])).text_phrases
    assert not config_from_args(parser.parse_args([])).text_phrases
    with pytest.raises(InputError, match="text_phrases True .files: False"):
        Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "x"), "init": str(micro_model), "stages": ("hard",),
                               "text_phrases": True}), log=lambda *_: None)


def test_arc_span_is_parsed_checked_and_reaches_the_training_data(tmp_path):
    """--arc-span LOW,HIGH: parsed, refused by name when malformed or out of range, and the trainer's rigs are
    drawn with it (its data line says so, for the stage table of a release)."""
    import argparse
    from camgrid.train.cli import add_arguments, config_from_args
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--arc-span", "60,160"])).arc_span == (60.0, 160.0)
    assert config_from_args(parser.parse_args([])).arc_span == ()
    for bad, message in (("60;160", "--arc-span: expected LOW,HIGH"), ("160,60", "arc_span.*--arc-span")):
        with pytest.raises(InputError, match=message):
            config_from_args(parser.parse_args(["--arc-span", bad]))
    logs = []
    trainer = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "wide"), "steps": 1, "stages": ("ae",),
                                     "arc_span": (60, 160)}), log=logs.append)
    trainer.run()
    assert trainer.source.bank.dataset.arc_span == (60.0, 160.0)
    assert any(line.startswith("data:") and "orbit arcs span 60-160 degrees" in line for line in logs), logs


def test_view_order_is_parsed_checked_and_reaches_the_training_data(tmp_path):
    """--view-order shuffled: the training rigs' views in a random order per scene (the index then says nothing
    about where a camera is); parsed, refused by name when unknown, and the trainer's data line says so."""
    import argparse
    from camgrid.train.cli import add_arguments, config_from_args
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--view-order", "shuffled"])).view_order == "shuffled"
    assert config_from_args(parser.parse_args([])).view_order == "preset"
    with pytest.raises(InputError, match="--view-order"):
        TrainConfig(**{**MICRO, "view_order": "sideways"})
    logs = []
    trainer = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "shuffled"), "steps": 1, "stages": ("ae",),
                                     "view_order": "shuffled"}), log=logs.append)
    trainer.run()
    assert trainer.source.bank.dataset.view_order == "shuffled"
    assert any(line.startswith("data:") and "views in shuffled order" in line for line in logs), logs


def test_empty_scene_share_is_parsed_checked_and_reaches_the_training_data(tmp_path):
    """--empty-scene-share: that share of the training scenes is the floor alone (synth/dataset.py empty_share);
    parsed, refused by name outside [0, 1), refused for a real DiT's training, and the data line says so."""
    import argparse
    from camgrid.train.cli import add_arguments, config_from_args, run
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--empty-scene-share", "0.25"])).empty_scene_share == 0.25
    assert config_from_args(parser.parse_args([])).empty_scene_share == 0.0
    with pytest.raises(InputError, match="--empty-scene-share"):
        config_from_args(parser.parse_args(["--empty-scene-share", "1"]))
    with pytest.raises(InputError, match="--empty-scene-share: the built-in model's training only"):
        run(parser.parse_args(["--dit", str(tmp_path / "no.safetensors"), "--empty-scene-share", "0.25"]))
    logs = []
    trainer = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "empty"), "steps": 1, "stages": ("ae",),
                                     "empty_scene_share": 0.5}), log=logs.append)
    trainer.run()
    assert trainer.source.bank.dataset.empty_share == 0.5
    assert any(line.startswith("data:") and "0.5 of the scenes empty" in line for line in logs), logs


def test_image_weight_mixes_a_one_frame_loss_into_the_video_stage(tmp_path, monkeypatch):
    """--image-weight W: the video stage's loss is (1 - W) x the clips' + W x that of other clips' first latent frame
    alone (an image's latent, [B, 1, C, 1, h, w]); parsed, refused by name outside [0, 1) and for a real DiT's training
    (its own stages would ignore it)."""
    import argparse
    from camgrid.train import stages
    from camgrid.train.cli import add_arguments, config_from_args, run
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--image-weight", "0.25"])).image_weight == 0.25
    assert config_from_args(parser.parse_args([])).image_weight == 0.0
    for bad in ("1", "-0.1"):
        with pytest.raises(InputError, match="--image-weight"):
            config_from_args(parser.parse_args(["--image-weight", bad]))
    with pytest.raises(InputError, match="--image-weight: the built-in model's training only"):
        run(parser.parse_args(["--dit", str(tmp_path / "no.safetensors"), "--image-weight", "0.5"]))
    trainer = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "img"), "steps": 1, "stages": ("ae",)}),
                      log=lambda *a: None)
    trainer.run()    # renders the data and trains the autoencoder the video stage's latents come from
    shapes = []

    def recorded(dit, x0, context, shift, **kw):
        shapes.append(tuple(x0.shape))
        return torch.tensor(1.0 if len(shapes) == 1 else 5.0)
    monkeypatch.setattr(stages, "flow_matching_loss", recorded)
    cfg = dataclasses.replace(trainer.cfg, image_weight=0.25)
    plan = stages.plan_video(stages.StageInputs(trainer.models, trainer.source, cfg, log=lambda *a: None))
    assert float(plan.step(0)) == pytest.approx(0.75 * 1.0 + 0.25 * 5.0)
    clips, images = shapes
    assert clips[0] == images[0] == MICRO["batch"] * MICRO["views"] and clips[1] == images[1] == 1
    assert clips[3] == trainer.models.ae.latent_frames(MICRO["frames"]) > 1 and images[3] == 1
    assert clips[2:3] + clips[4:] == images[2:3] + images[4:]
    shapes.clear()
    plan = stages.plan_video(stages.StageInputs(trainer.models, trainer.source, trainer.cfg, log=lambda *a: None))
    assert float(plan.step(0)) == 1.0 and len(shapes) == 1         # W = 0: the clips alone, no second draw


def test_given_views_are_noised_less_and_left_out_of_the_loss(tmp_path):
    """--given-view-share: in that share of the samples one view is fed at u·σ (u < 1) and not scored. A model
    that recovers the noise from the grid's σ (x0 = 0: x = σ·noise, so it predicts x/σ) is exact on the views
    noised at σ and wrong on a quieter given one (u·noise for noise): its loss is still 0 when every sample has
    a given view, so that view is not scored; shares outside [0, 1] are refused by name."""
    import argparse
    from camgrid.train.cli import add_arguments, config_from_args
    from camgrid.train.objective import given_views
    torch.manual_seed(0)
    x0, ctx, seen = torch.zeros(64, 4, 2, 2, 8, 8), torch.zeros(64, 3, 8), []

    def noise_from_sigma(x, timestep, context, mode=None, camera=None):
        seen.append(x)
        return x / (timestep / 1000.0).view(-1, 1, 1, 1, 1, 1)

    assert float(flow_matching_loss(noise_from_sigma, x0, ctx, 3.0, given_view_share=1.0)) < 1e-10
    quiet = seen[0].flatten(2).std(dim=2) / seen[0].flatten(1).std(dim=1)[:, None]    # [B, V]
    assert int((quiet.min(dim=1).values < 0.6).sum()) >= 20     # one view noised less (u < 0.5 in half the samples)
    assert float(flow_matching_loss(noise_from_sigma, x0, ctx, 3.0, given_view_share=0.0)) < 1e-10
    quiet = seen[1].flatten(2).std(dim=2) / seen[1].flatten(1).std(dim=1)[:, None]
    assert float(quiet.min()) > 0.7                              # without given views all are noised alike
    chosen = given_views(4000, 4, 0.3, "cpu")
    assert chosen.sum(1).max() == 1 and 0.27 < float(chosen.any(1).float().mean()) < 0.33
    assert 0.2 < float(chosen[:, 3].sum() / chosen.sum()) < 0.3            # any view may be the given one
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert config_from_args(parser.parse_args(["--given-view-share", "0.5"])).given_view_share == 0.5
    with pytest.raises(InputError, match="--given-view-share"):
        config_from_args(parser.parse_args(["--given-view-share", "1.5"]))
    from camgrid.train.cli import run
    for flags in (["--given-view-share", "0.5"], ["--arc-span", "60,160"], ["--view-order", "shuffled"]):
        # a real DiT's training has none of them
        with pytest.raises(InputError, match=f"{flags[0]}: the built-in model's training only"):
            run(parser.parse_args(["--dit", str(tmp_path / "no.safetensors"), *flags]))
    logs = []
    Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "given"), "steps": 1, "stages": ("syncam",),
                           "given_view_share": 0.5}), log=logs.append).run()
    assert any("one view given" in line and "0.5" in line for line in logs), logs


def test_training_without_workers_still_sees_new_scenes(tmp_path):
    """--workers 0 renders in the training process: every draw renders new scenes too (half a batch, at most 8)
    until --samples are there, instead of training on the first two batches' scenes for the whole run."""
    from camgrid.train.data import SampleBank
    bank = SampleBank(5, 2, 16, 32, 5, workers=0)
    assert bank.poll(at_least=2) == 2 and bank.poll(at_least=1, fresh=2) == 4 and bank.poll(fresh=9) == 5
    logs = []
    trainer = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "w0"), "steps": 6, "samples": 40,
                                     "stages": ("syncam",)}), log=logs.append)
    trainer.run()
    assert len(trainer.source.bank) == 2 * MICRO["batch"] + 6          # 4 first, then one new scene per step
    assert any("more in this process" in line for line in logs), logs


def test_autoencoder_shapes_follow_wan_packing():
    ae = TinyVideoAE(latent_dim=4, width=8)
    z = ae.encode(torch.rand(2, 9, 16, 32, 3))
    assert z.shape == (2, 4, 3, 4, 8)                   # T = (F - 1) / 4 + 1, 4x spatial
    assert ae.decode(z).shape == (2, 9, 16, 32, 3)
    with pytest.raises(ValueError, match="4k\\+1"):
        ae.encode(torch.rand(1, 8, 16, 32, 3))


def test_channels_last_autoencoder_codes_the_same_frames_and_the_cpu_model_uses_it(micro_model):
    torch.manual_seed(0)
    ae = TinyVideoAE(latent_dim=4, width=8).eval()
    frames, z = torch.rand(2, 9, 16, 32, 3), torch.randn(2, 4, 3, 4, 8)
    with torch.no_grad():
        encoded, decoded = ae.encode(frames), ae.decode(z)
        assert not ae.channels_last and not ae.decoder[0].weight.is_contiguous(memory_format=torch.channels_last)
        ae.use_channels_last()
        assert ae.decoder[0].weight.is_contiguous(memory_format=torch.channels_last)
        assert torch.allclose(ae.encode(frames), encoded, atol=1e-5)   # another summation order only
        assert torch.allclose(ae.decode(z), decoded, atol=1e-5)
    assert load_builtin(micro_model).ae.channels_last   # the CPU's faster convolutions


def test_demo_writes_every_folders_clips_several_at_a_time(tmp_path, monkeypatch):
    from camgrid.train import demo

    monkeypatch.setattr(demo, "_save_clip", lambda path, clip, fps: (written.append((path, clip.shape)), path)[1])
    written = []
    folders = [(tmp_path / name, torch.rand(3, 5, 8, 12, 3)) for name in ("a", "b", "c")]
    paths = demo._write_videos(folders, 8.0)
    expected = [tmp_path / f / f"{n}.mp4" for f in "abc" for n in ("view_0", "view_1", "view_2", "side_by_side")]
    assert paths == expected and sorted(p for p, _ in written) == sorted(expected)   # in order, each once
    shapes = dict(written)
    assert shapes[tmp_path / "a" / "view_0.mp4"] == (5, 32, 48, 3)          # 4x larger pixels
    assert shapes[tmp_path / "c" / "side_by_side.mp4"] == (5, 32, 3 * 48, 3)


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
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "run"), "steps": 20, "stages": ("ae", "video")})
    trainer = Trainer(cfg, log=lambda *_: None)
    history = trainer.run()
    assert len(history["ae"]) > 3 and len(history["video"]) > 3
    # the autoencoder on a fixed batch: the reconstruction error falls
    frames, _ = trainer.source.pixel_batch(2)
    ae = trainer.models.ae.requires_grad_(True)
    ae_opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
    ae_first = float((ae.decode_raw(ae.encode_raw(frames)) - frames).pow(2).mean())
    for _ in range(15):
        ae_opt.zero_grad()
        (ae.decode_raw(ae.encode_raw(frames)) - frames).pow(2).mean().backward()
        ae_opt.step()
    assert float((ae.decode_raw(ae.encode_raw(frames)) - frames).pow(2).mean()) < ae_first
    # the video stage on a fixed batch and noise: the loss falls
    dit = trainer.models.dit.requires_grad_(True)
    batch = trainer.source.grid_batch(4, single_view=True)
    lat, ctx = batch.latents, batch.context.detach()
    opt = torch.optim.Adam(dit.parameters(), lr=1e-3)

    def fixed_loss():
        torch.manual_seed(1)
        return flow_matching_loss(dit, lat, ctx, 3.0)

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
    assert trainer.models.dit.variant == "syncammaster" and trainer.models.dit.has_sync_weights


def test_init_trains_shipped_files_further_and_keeps_their_autoencoder(micro_model, tmp_path):
    """--init: a second run starts from a finished run's files (no checkpoint.pt needed), trains every DiT stage
    from them, and leaves the autoencoder and its latent statistics bit for bit as they were."""
    from camgrid.train.cli import add_arguments, config_from_args
    import argparse
    before = load_builtin(micro_model)
    out = tmp_path / "more"
    # the model's shape comes from the files, whatever the config says
    cfg = TrainConfig(**{**MICRO, "dim": 999, "out": str(out), "steps": 2, "lr": 1e-2, "init": str(micro_model),
                         "stages": ("video", "syncam", "hard", "soft")})
    history = Trainer(cfg, log=lambda *_: None).run()
    assert list(history) == ["video", "syncam", "hard", "soft"]
    after = load_builtin(out)
    assert json.loads((out / "progress.json").read_text())["config"]["dim"] == before.dit.config.dim
    for name, a in before.ae.state_dict().items():
        assert torch.equal(a, after.ae.state_dict()[name]), name
    changed = [k for k, v in before.dit.state_dict().items() if not torch.equal(v, after.dit.state_dict()[k])]
    assert any(".self_attn." in k for k in changed) and any(".sync." in k for k in changed)
    assert after.modes() == before.modes()
    # the command line: --init alone leaves ae out; ae asked for, or another resolution, is refused by name
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    stages = config_from_args(parser.parse_args(["--init", str(micro_model)])).stages
    assert stages == ("video", "syncam", "hard", "soft")
    with pytest.raises(InputError, match="include ae"):
        config_from_args(parser.parse_args(["--init", str(micro_model), "--stages", "ae,video"]))
    with pytest.raises(InputError, match="frames 9 .files: 5"):
        Trainer(TrainConfig(**{**MICRO, "frames": 9, "out": str(tmp_path / "x"), "init": str(micro_model),
                               "stages": ("hard",)}), log=lambda *_: None)
    with pytest.raises(InputError, match="--init .*not a folder with the built-in model"):
        Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "y"), "init": str(tmp_path / "nothing"),
                               "stages": ("hard",)}), log=lambda *_: None)


def test_patch_option_gives_a_token_per_latent_pixel_and_the_model_still_generates(tmp_path):
    """--patch 1: the built-in DiT with 1x1 patches (4x the tokens) trains, saves, loads and generates."""
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "p1"), "steps": 2, "patch": 1, "stages": ("ae", "video")})
    Trainer(cfg, log=lambda *_: None).run()
    model = load_builtin(tmp_path / "p1")
    assert tuple(model.dit.config.patch_size) == (1, 1, 1)
    frames = model.generate("a red sphere", make_preset("orbit_arc", num_views=2, num_frames=model.frames),
                            mode="independent", steps=2)
    assert frames.shape == (2, model.frames, model.height, model.width, 3) and torch.isfinite(frames).all()
    with pytest.raises(InputError, match="patch"):
        TrainConfig(**{**MICRO, "patch": 0})


def test_train_shift_sets_the_noise_levels_trained_and_the_files_keep_the_samplers_shift(tmp_path, monkeypatch):
    """--train-shift 1: every DiT stage draws its sigmas with shift 1; the model files still say shift 3 (the
    sampler's), so generation is unchanged by how the model was trained."""
    import camgrid.train.objective as objective
    seen = []
    real = objective.shift_sigmas
    monkeypatch.setattr(objective, "shift_sigmas", lambda u, shift: seen.append(shift) or real(u, shift))
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "ts"), "steps": 1, "train_shift": 1.0})
    assert cfg.training_shift == 1.0 and TrainConfig(**MICRO).training_shift == MICRO.get("shift", 3.0)
    Trainer(cfg, log=lambda *_: None).run()
    assert len(seen) >= 4 and set(seen) == {1.0}                   # video, syncam, hard (two modes), soft
    assert load_builtin(tmp_path / "ts").shift == 3.0
    with pytest.raises(InputError, match="train_shift"):
        TrainConfig(**{**MICRO, "train_shift": float("nan")})


def test_ae_scale_reg_adds_the_half_size_decoding_loss():
    """stage ae with ae_scale_reg: the loss gains the half-size term (pooled latents decoded against pooled
    frames), and nothing else changes; sizes the 2x pooling cannot halve are refused by name."""
    from camgrid.train.sources import SyntheticSource
    from camgrid.train.stages import StageInputs, half_size, half_size_frames, plan_ae
    from camgrid.train.trainer import new_models

    assert half_size(torch.ones(2, 4, 3, 4, 8)).shape == (2, 4, 3, 2, 4)
    frames = torch.arange(2 * 16 * 32 * 3, dtype=torch.float32).reshape(1, 2, 16, 32, 3)
    assert torch.equal(half_size_frames(frames)[0, 0, 0, 0], frames[0, 0, :2, :2].mean(dim=(0, 1)))
    losses = []
    for reg in (0.0, 1.0):
        cfg = TrainConfig(**{**MICRO, "ae_scale_reg": reg})
        torch.manual_seed(0)
        models = new_models(cfg, torch.device("cpu"))
        source = SyntheticSource(cfg, "cpu", models.ae.encode, models.text.encode)
        source.start(2, log=lambda *_: None)
        torch.manual_seed(1)
        losses.append(float(plan_ae(StageInputs(models, source, cfg, log=lambda *_: None)).step(0).detach()))
    assert losses[1] > losses[0] > 0
    with pytest.raises(InputError, match="ae_scale_reg.*multiples of 8"):
        TrainConfig(**{**MICRO, "height": 20, "ae_scale_reg": 1.0})


def test_scene_style_is_trained_recorded_and_kept_by_init(tmp_path, micro_model):
    """--scene-style close: the data bank renders that style, the model files record it, load_builtin reports it
    and the held-out scenes and demo rig follow it; --init refuses a style other than the files'; files of the
    standard style do not record one (byte-identical to the releases before styles)."""
    from camgrid.synth.scenes import SCENE_STYLES
    from camgrid.train.demo import demo_rig
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "close"), "steps": 1, "stages": ("ae", "video"),
                         "scene_style": "close"})
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.run()
    assert trainer.source.bank.dataset.style == SCENE_STYLES["close"]
    model = load_builtin(tmp_path / "close")
    assert model.scene_style == "close" and load_builtin(micro_model).scene_style == "standard"
    from safetensors import safe_open
    from camgrid.train.builtin import TEXT_AE_FILE
    for folder, recorded in ((micro_model, None), (tmp_path / "close", "close")):
        with safe_open(str(folder / TEXT_AE_FILE), "pt") as f:
            assert json.loads(f.metadata()["meta"]).get("scene_style") == recorded
    rig = demo_rig(model)
    assert float((rig.c2w[0, 0, :3, 3] - rig.target).norm()) == pytest.approx(SCENE_STYLES["close"].demo_radius)
    again = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "again"), "init": str(tmp_path / "close"),
                                   "steps": 1, "stages": ("video",)}), log=lambda *_: None)
    again.run()
    assert again.cfg.scene_style == "close"                         # --init without a style: the files'
    assert again.source.bank.dataset.style == SCENE_STYLES["close"]
    # a style that differs only in the rigs' turn may train files further: they record the new one, and the demo's
    # rig turns with it
    turned = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "aligned"), "init": str(tmp_path / "close"),
                                    "steps": 1, "stages": ("video",), "scene_style": "close_aligned"}),
                     log=lambda *_: None)
    turned.run()
    assert turned.source.bank.dataset.style == SCENE_STYLES["close_aligned"]
    aligned = load_builtin(tmp_path / "aligned")
    assert aligned.scene_style == "close_aligned" and aligned.scenes(2, 0).style == SCENE_STYLES["close_aligned"]
    forward = demo_rig(aligned).c2w[0, 0, :3, 2]
    assert min(abs(float(forward[0])), abs(float(forward[2]))) < 1e-9
    with pytest.raises(InputError, match="scene_style close .files: standard"):
        Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "x"), "init": str(micro_model), "stages": ("hard",),
                               "scene_style": "close"}), log=lambda *_: None)
    resumed = Trainer(TrainConfig(**{**cfg.__dict__, "stages": ("ae", "video", "syncam"), "resume": True,
                                     "scene_style": ""}), log=lambda *_: None)
    resumed.run()                                                   # --resume without a style: the files'
    assert resumed.cfg.scene_style == "close" and load_builtin(tmp_path / "close").scene_style == "close"
    with pytest.raises(InputError, match="scene style close.*--scene-style close"):
        Trainer(TrainConfig(**{**cfg.__dict__, "resume": True, "scene_style": "standard"}), log=lambda *_: None).run()
    with pytest.raises(InputError, match="scene_style"):
        TrainConfig(**{**MICRO, "scene_style": "huge"})


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
    lines = []
    run_demo(tmp_path / "demo", model, steps=2, grids=2, log=lines.append)
    metrics = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert set(metrics["modes"]) == {"independent", "syncam", "hard", "soft"}
    assert metrics["model"] == "teacher" and metrics["sampling"]["steps"] == 2 and metrics["grids"] == 2
    for entry in metrics["modes"].values():
        assert entry["scenes"] == 2 and len(entry["per_scene_errors"]) == 2
    assert metrics["ground_truth"]["scenes"] == 3
    # two grids cannot carry a claim: the rule says so instead of printing a percentage
    assert {c["verdict"] for c in metrics["claims"].values()} == {"not enough observations"}
    claim_lines = [line for line in lines if "independent" in line and "observations" in line]
    assert len(claim_lines) == 3 and not any("%" in line for line in claim_lines)
    for entry in [*metrics["modes"].values(), metrics["ground_truth"]]:
        assert "reproj_px" in entry and 0.0 <= entry["found"] <= 1.0
        # a number only where something was scored; never NaN (invalid JSON), None says "not scorable"
        assert (entry["reproj_px"] is None) == (not entry["scored"]) == (entry["observations"] == 0)
    assert "NaN" not in (tmp_path / "demo" / "metrics.json").read_text()
    assert metrics["ground_truth"]["found"] > 0.5    # the renderer's own frames: objects are there
    assert (tmp_path / "demo" / "rig.png").is_file() and (tmp_path / "demo" / "comparison.png").is_file()
    assert any((tmp_path / "demo" / "syncam").iterdir())
    # the novel-view check: every scene scored on the same observations for the model and for the copy
    nvs = metrics["novel_views"]
    assert nvs["scenes"] == 8 and len(nvs["per_scene_place"]) == len(nvs["per_scene_copy"]) == 8
    assert [len(p) for p in nvs["per_scene_place"]] == [len(c) for c in nvs["per_scene_copy"]]
    assert nvs["verdict"] in VERDICTS and any(line.endswith(nvs["line"]) for line in lines)
    assert any((tmp_path / "demo" / "view0_given").iterdir()) and any((tmp_path / "demo" / "two_passes").iterdir())


def test_two_pass_grid_keeps_the_first_pass_view_0_and_draws_the_others(micro_model):
    """The demo's text-to-grid in two passes: view 0 of the first pass is given to syncam, so the grid's view 0
    is that view (through the autoencoder: the sampler ends on the given latent) and the other views are drawn."""
    from camgrid.train.demo import DEMO_CAPTION, demo_rig
    from camgrid.train.demo_novel_views import NOVEL_VIEW_NOISE, two_pass_grid
    model = load_builtin(micro_model)
    rig = demo_rig(model)
    first = model.generate(DEMO_CAPTION, rig, mode="independent", steps=2, seed=5)
    asked, generate_latents = [], model.generate_latents
    model.generate_latents = lambda *a, **k: asked.append(k) or generate_latents(*a, **k)
    grid = two_pass_grid(model, rig, DEMO_CAPTION, first, seed=3, steps=2)
    assert grid.shape == first.shape
    (call,) = asked
    assert call["mode"] == "syncam" and call["seed"] == 3 and call["source"].how == "replace_view"
    assert call["source"].view == 0 and call["source"].noise_scale == NOVEL_VIEW_NOISE
    round_trip = model.ae.decode(model.ae.encode(first[None, 0]))[0]
    torch.testing.assert_close(grid[0], round_trip, atol=1e-5, rtol=0)


def test_novel_view_check_scores_the_truth_as_placed_and_a_copy_as_the_copy(micro_model):
    """train/nvs.py placement_errors on the true views puts every object where it is (about 0 px) and on four
    copies of view 0 where copying puts it; the novel-view claim (the same rule as the demo's others) then says
    'lower' for the truth against the copy."""
    from camgrid.train.demo import _truth, demo_rig, novel_view_scene_seeds, DEMO_COLOURS, DEMO_SCENE_SEEDS
    from camgrid.train.demo_novel_views import novel_view_claim
    from camgrid.train.nvs import placement_errors
    model = load_builtin(micro_model)
    rig = demo_rig(model)
    seeds = novel_view_scene_seeds(model.scene_style)
    assert seeds[:3] == list(DEMO_SCENE_SEEDS[model.scene_style]) and len(set(seeds)) == len(seeds) == 8
    place, copy = [], []
    for seed in seeds[:6]:
        truth, ids = _truth(model, rig, seed, return_ids=True)
        error, copied, expected = placement_errors(truth, ids, DEMO_COLOURS)
        assert 0 < error.numel() <= expected and float(error.max()) < 1.0 and float(copied.median()) > 2.0
        as_copy, copied_again, _ = placement_errors(truth[:1].expand_as(truth), ids, DEMO_COLOURS)
        assert torch.allclose(as_copy, copied_again, atol=1.0)
        place.append(error.tolist()), copy.append(copied.tolist())
    assert novel_view_claim(place, copy).verdict == "lower"
    assert "than copying view 0" in novel_view_claim(place, copy).line()


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
    assert parse_stages("ae,sync") == ("ae", "hard", "soft")
    assert parse_budgets("video=100,sync=60,soft=10") == {"video": 100.0, "hard": 30.0, "soft": 10.0}
    with pytest.raises(ValueError, match="STAGE"):
        parse_budgets("bogus=3")
    with pytest.raises(ValueError, match="unknown"):
        parse_stages("ae,bogus")
    for bad in ({"time_budget": float("nan")}, {"stage_budgets": {"ae": float("inf")}}, {"lr": -1.0}, {"batch": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TrainConfig(**{**MICRO, **bad})


def test_hard_stage_finetunes_the_dit_and_soft_stage_only_soft_layers(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "run"), "steps": 3, "lr": 1e-2,
                         "stages": ("ae", "video", "syncam"), "two_stream_modes": ("hard",)})
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.run()
    trainer.start_data()
    before = {k: v.clone() for k, v in trainer.models.dit.state_dict().items()}
    trainer.run_stage("hard")
    after = trainer.models.dit.state_dict()
    changed = lambda key: not torch.equal(before[key], after[key]) if key in before else True
    assert changed("blocks.0.self_attn.q.weight") and changed("blocks.0.mvs_attn.q.weight")
    assert changed("blocks.0.cam_encoder.weight")
    assert after["blocks.0.sync.gate.proj.weight"].abs().sum() > 0           # the gates moved off zero
    assert after["blocks.0.sync.soft.up.weight"].abs().sum() == 0            # soft untouched (still a no-op)
    before = {k: v.clone() for k, v in after.items()}
    trainer.run_stage("soft")
    after = trainer.models.dit.state_dict()
    moved = {k for k in after if not torch.equal(before[k], after[k])}
    assert moved and all(".sync.soft." in k for k in moved)
    trainer.source.close()


def test_two_stream_finetune_can_train_soft_layers_with_the_dit(tmp_path):
    torch.manual_seed(0)
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "run"), "steps": 4, "lr": 1e-2,
                         "stages": ("ae", "video", "syncam"), "two_stream_modes": ("hard", "soft")})
    trainer = Trainer(cfg, log=lambda *_: None)
    trainer.run()
    trainer.start_data()
    before = {k: v.clone() for k, v in trainer.models.dit.state_dict().items() if ".sync." not in k}
    trainer.run_stage("hard")
    after = trainer.models.dit.state_dict()
    assert not torch.equal(before["blocks.0.self_attn.q.weight"], after["blocks.0.self_attn.q.weight"])
    assert after["blocks.0.sync.gate.proj.weight"].abs().sum() > 0
    assert after["blocks.0.sync.soft.up.weight"].abs().sum() > 0             # soft trained alongside the DiT
    trainer.source.close()
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
    assert "n/a" in table
    # one grid per mode: no direction and no percentage, whatever the numbers (train/claims.py)
    assert "syncam: not enough observations to compare with independent" in table
    assert "hard: not enough observations" in table and "%" not in table


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


@pytest.mark.parametrize("style", ["standard", "close", "close_aligned"])
def test_demo_scene_seeds_are_fully_usable_at_the_builtin_resolution(style):
    from types import SimpleNamespace

    from camgrid.synth.scenes import SCENE_STYLES
    from camgrid.train.builtin import DEFAULT_META
    from camgrid.train.demo import DEMO_COLOURS, DEMO_SCENE_SEEDS, _truth, demo_rig
    from camgrid.train.evaluate import safe_metrics

    assert set(DEMO_SCENE_SEEDS) == set(SCENE_STYLES)                 # a style without demo scenes breaks the demo
    model = SimpleNamespace(**DEFAULT_META, scene_style=style)
    rig = demo_rig(model)
    for seed in DEMO_SCENE_SEEDS[style]:
        m = safe_metrics(_truth(model, rig, seed), rig, list(DEMO_COLOURS))
        assert m["usable"] == 1.0 and m["reproj_px"] < 0.5, seed


# --- resuming, damaged files, interrupted writes (issue 12) ------------------------------------------------

class SimulatedCrash(Exception):
    pass


def _loss_rows(folder, stage):
    import csv
    with open(folder / "loss.csv", newline="") as f:
        return [int(r[1]) for r in list(csv.reader(f))[1:] if r[0] == stage]


def test_resume_at_every_stage_boundary_and_inside_every_stage(tmp_path, monkeypatch):
    """Each stage runs in a fresh process-like Trainer that starts from the previous stages' files (the
    trainability of a stage must not depend on what ran before it in the same process), is killed after a
    checkpoint at step 1, and is resumed from that checkpoint."""
    import camgrid.train.trainer as trainer_module
    from camgrid.train.config import STAGES
    from safetensors.torch import load_file

    out = tmp_path / "run"
    base = {**MICRO, "out": str(out), "lr": 1e-2, "checkpoint_every": 1}
    owner = {"ae": "ae.encoder.0.weight", "video": "blocks.0.self_attn.q.weight",
             "syncam": "blocks.0.projector.weight", "hard": "blocks.0.sync.gate.proj.weight",
             "soft": "blocks.0.sync.soft.up.weight"}     # a weight each stage trains
    real_save = trainer_module.save_builtin

    def weights(key):
        files = ["camgrid-tiny-text-ae.safetensors", "camgrid-tiny.safetensors", "camgrid-tiny-sync.safetensors"]
        for name in files:
            if (out / name).exists():
                sd = load_file(str(out / name))
                if key in sd:
                    return sd[key].float()
        return None

    for k, stage in enumerate(STAGES):
        before = weights(owner[stage])
        cfg = dict(base, stages=STAGES[:k + 1], resume=k > 0)

        def crash(*args, **kwargs):
            raise SimulatedCrash()
        monkeypatch.setattr(trainer_module, "save_builtin", crash)       # killed when the stage ends
        with pytest.raises(SimulatedCrash):
            Trainer(TrainConfig(**{**cfg, "steps": 1}), log=lambda *_: None).run()
        assert (out / "checkpoint.pt").exists()
        monkeypatch.setattr(trainer_module, "save_builtin", real_save)
        messages = []
        history = Trainer(TrainConfig(**{**cfg, "steps": 2, "resume": True}), log=messages.append).run()
        assert f"resumed stage {stage} at step 1" in messages
        assert list(history) == [stage] and [s for s, _ in history[stage]] == [2]
        assert _loss_rows(out, stage) == [1, 2]                           # no step logged twice
        assert not (out / "checkpoint.pt").exists()
        after = weights(owner[stage])
        assert before is None or not torch.equal(before, after), stage   # the stage trained its own weights
    assert json.loads((out / "progress.json").read_text())["done"] == list(STAGES)
    assert load_builtin(out).modes() == ["independent", "syncam", "hard", "soft"]


def _finished_ae_run(out):
    Trainer(TrainConfig(**{**MICRO, "out": str(out), "steps": 2, "stages": ("ae",)}), log=lambda *_: None).run()


def test_damaged_checkpoint_is_one_line_and_restart_stage_recovers(tmp_path, capsys):
    from camgrid.__main__ import main
    from camgrid.train.state import RunFolder, StageCheckpoint, TrainStateError

    out = tmp_path / "run"
    _finished_ae_run(out)
    folder = RunFolder(out)
    folder.save_checkpoint(StageCheckpoint("video", 2, 1.0, {"text": {"w": torch.ones(4096)}}, {"state": {}}))
    good = (out / "checkpoint.pt").read_bytes()
    damages = {"truncated": good[:len(good) // 2], "not a torch archive": bytes(range(256)) * 8, "empty": b"",
               "camgrid train": b"not a checkpoint\n", "lacks": None}
    cfg = TrainConfig(**{**MICRO, "out": str(out), "steps": 2, "stages": ("ae", "video"), "resume": True})
    for expected, data in damages.items():
        if data is None:
            torch.save({"weights": torch.ones(3)}, out / "checkpoint.pt")   # a torch file, not ours
        else:
            (out / "checkpoint.pt").write_bytes(data)
        with pytest.raises(TrainStateError) as err:
            Trainer(cfg, log=lambda *_: None).run()
        message = str(err.value)
        assert "\n" not in message and "checkpoint.pt" in message and "--restart-stage" in message, expected
        assert "stage video" in message and expected in message, message
    folder.save_checkpoint(StageCheckpoint("video", 2, 1.0, {"dit": {"w": torch.ones(3)}, "text": {}}, {}))
    with pytest.raises(TrainStateError, match="does not fit this run's model .*--restart-stage"):
        Trainer(cfg, log=lambda *_: None).run()                      # a checkpoint of another config
    (out / "checkpoint.pt").write_bytes(good[:len(good) // 2])
    argv = ["train", "--out", str(out), "--stages", "ae,video", "--resume", "--steps", "2", "--samples", "6",
            "--batch", "2", "--height", "16", "--width", "32", "--frames", "5", "--views", "2", "--dim", "32",
            "--layers", "1", "--heads", "2", "--ffn-dim", "64", "--no-progress", "--device", "cpu"]
    capsys.readouterr()
    assert main(argv) == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and "truncated" in err_lines[0] and "--restart-stage" in err_lines[0]
    # TrainConfig(restart_stage) and the CLI flag: the stage in progress starts again from the model files
    history = Trainer(TrainConfig(**{**MICRO, "out": str(out), "steps": 2, "stages": ("ae", "video"),
                                     "restart_stage": True}), log=lambda *_: None).run()
    assert list(history) == ["video"] and [s for s, _ in history["video"]] == [1, 2]
    assert _loss_rows(out, "video") == [1, 2]


def test_a_failed_write_keeps_the_previous_checkpoint_and_model_files(tmp_path, monkeypatch):
    import camgrid.train.builtin as builtin_module
    from camgrid.train.state import RunFolder, StageCheckpoint

    folder = RunFolder(tmp_path)
    folder.save_checkpoint(StageCheckpoint("video", 10, 5.0, {"dit": {"w": torch.full((8,), 1.0)}}, {"o": 1}))

    def half_written(payload, path, *args, **kwargs):   # a writer killed in the middle of its file
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a zip")
        raise SimulatedCrash()

    with monkeypatch.context() as m:
        m.setattr(torch, "save", half_written)
        with pytest.raises(SimulatedCrash):
            folder.save_checkpoint(StageCheckpoint("video", 20, 9.0, {"dit": {"w": torch.full((8,), 2.0)}}, {"o": 2}))
    ckpt = folder.load_checkpoint("cpu")
    assert ckpt.step == 10 and ckpt.elapsed == 5.0 and torch.equal(ckpt.modules["dit"]["w"], torch.full((8,), 1.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]        # no temporary file left

    model = load_builtin() if builtin_available() else None
    if model is None:   # no shipped assets: a micro model stands in
        _finished_ae_run(tmp_path / "micro")
        model = load_builtin(tmp_path / "micro")
    save_builtin(model, tmp_path / "model")
    text_ae = tmp_path / "model" / builtin_module.TEXT_AE_FILE
    before = text_ae.read_bytes()
    with monkeypatch.context() as m:
        m.setattr(builtin_module, "save_file", half_written)      # the text + AE file's writer fails
        with pytest.raises(SimulatedCrash):
            save_builtin(model, tmp_path / "model")
    assert text_ae.read_bytes() == before
    assert len(list((tmp_path / "model").iterdir())) == 3                    # no temporary file left
    reloaded = load_builtin(tmp_path / "model")
    assert torch.equal(reloaded.ae.latent_std, model.ae.latent_std.half().float())


def test_loss_log_drops_a_torn_line_and_the_steps_a_resume_trains_again(tmp_path):
    from camgrid.train.losslog import LossLog

    path = tmp_path / "loss.csv"
    path.write_text("stage,step,loss,lr,seconds\r\nae,1,0.5,0.001,0.1\r\nae,10,0.4,0.001,1.0\r\n"
                    "video,1,0.9,0.0005,0.1\r\nvideo,10,0.8,0.0005,1.0\r\nvideo,20,0.7,0.0005,2.0\r\nvideo,3", newline="")
    log = LossLog(path, keep=lambda stage, step: stage == "ae" or step <= 10)   # resumed at video step 10
    log.write("video", 20, 0.65, 5e-4, 2.5)
    log.close()
    lines = path.read_text().splitlines()
    assert lines == ["stage,step,loss,lr,seconds", "ae,1,0.5,0.001,0.1", "ae,10,0.4,0.001,1.0",
                     "video,1,0.9,0.0005,0.1", "video,10,0.8,0.0005,1.0", "video,20,0.650000,0.0005,2.5"]
    LossLog(path).close()                                                         # a new run: a new log
    assert path.read_text().splitlines() == ["stage,step,loss,lr,seconds"]


# --- the data-source interface ------------------------------------------------------------------------------

def test_dit_stages_train_from_any_grid_source(tmp_path):
    """The syncam, hard and soft stages draw (latents, text features, cameras) batches from a GridSource:
    here a TensorGridSource, what a latent cache of a real dataset would serve."""
    from camgrid.train.sources import TensorGridSource

    g = torch.Generator().manual_seed(0)
    n, v, t = 4, 2, 2
    source = TensorGridSource(torch.randn(n, v, 4, t, 4, 8, generator=g), torch.randn(n, 16, 32, generator=g),
                              torch.randn(n, v, t, 12, generator=g), caption_dropout=0.5)
    batch = source.grid_batch(3, single_view=True)
    assert batch.latents.shape == (3, 1, 4, t, 4, 8) and batch.cameras.shape == (3, 1, t, 12)
    assert batch.context.shape == (3, 16, 32)
    cfg = TrainConfig(**{**MICRO, "out": str(tmp_path / "run"), "steps": 2, "stages": ("syncam", "hard", "soft")})
    history = Trainer(cfg, log=lambda *_: None, source=source).run()
    assert list(history) == ["syncam", "hard", "soft"] and all(len(h) == 2 for h in history.values())
    assert load_builtin(tmp_path / "run").modes() == ["independent", "syncam", "hard", "soft"]
    with pytest.raises(ValueError, match="same N samples"):
        TensorGridSource(torch.zeros(2, v, 4, t, 4, 8), torch.zeros(3, 16, 32), torch.zeros(2, v, t, 12))
    with pytest.raises(ValueError, match="NaN"):
        TensorGridSource(torch.full((2, v, 4, t, 4, 8), float("nan")), torch.zeros(2, 16, 32), torch.zeros(2, v, t, 12))


def test_loop_stops_on_a_non_finite_loss_before_logging_or_saving_it(tmp_path):
    from camgrid.train.loop import LoopSettings, StagePlan, TrainingDiverged, run_stage
    from camgrid.train.losslog import LossLog
    from camgrid.train.state import RunFolder

    layer = torch.nn.Linear(2, 1)
    poisoned = {3}
    plan = StagePlan("video", lambda i: layer(torch.ones(2)).sum() * (float("nan") if i + 1 in poisoned else 1.0),
                     [{"params": list(layer.parameters())}], {"dit": layer}, lr=1e-3, budget=1e9)
    log = LossLog(tmp_path / "loss.csv")
    with pytest.raises(TrainingDiverged, match="step 3"):
        run_stage(plan, LoopSettings(max_steps=10, checkpoint_every=2, progress_bar=False), RunFolder(tmp_path),
                  log, log=lambda *_: None)
    log.close()
    assert _loss_rows(tmp_path, "video") == [1, 2]
    assert RunFolder(tmp_path).load_checkpoint("cpu").step == 2     # the last good state


def test_weight_ema_and_a_stage_that_ends_on_its_moving_average(tmp_path):
    from camgrid.train.loop import LoopSettings, StagePlan, WeightEMA, run_stage
    from camgrid.train.losslog import LossLog
    from camgrid.train.state import RunFolder

    p = torch.nn.Parameter(torch.zeros(2))
    ema = WeightEMA([p], decay=0.5)
    p.data.fill_(1.0)
    ema.update()                                         # step 0: decay min(0.5, 1/10) = 0.1
    assert torch.allclose(ema.p0, torch.full((2,), 0.9))
    p.data.fill_(2.0)
    ema.update()                                         # step 1: decay min(0.5, 2/11)
    expected = 0.9 * 2 / 11 + 2.0 * (1 - 2 / 11)
    assert torch.allclose(ema.p0, torch.full((2,), expected))
    ema.copy_to_params()
    assert torch.equal(p.data, ema.p0)

    def make():
        torch.manual_seed(0)
        layer = torch.nn.Linear(3, 2)
        step = lambda i: (layer(torch.ones(3) * (1 + i)) - torch.tensor([1.0, -2.0])).pow(2).sum()
        return layer, StagePlan("video", step, [{"params": list(layer.parameters())}], {"dit": layer}, lr=1e-2,
                                budget=1e9, ema_decay=0.9)

    layer, plan = make()
    folder = RunFolder(tmp_path)
    log = LossLog(tmp_path / "loss.csv")
    run_stage(plan, LoopSettings(max_steps=4, checkpoint_every=4, progress_bar=False), folder, log, log=lambda *_: None)
    ckpt = folder.load_checkpoint("cpu")                 # written at step 4, before the average replaced the weights
    assert set(ckpt.modules) == {"dit", "ema"} and int(ckpt.modules["ema"]["updates"]) == 4
    assert torch.equal(layer.weight, ckpt.modules["ema"]["p0"]) and torch.equal(layer.bias, ckpt.modules["ema"]["p1"])
    assert not torch.equal(layer.weight, ckpt.modules["dit"]["weight"])
    layer2, plan2 = make()                               # a resumed stage keeps averaging from the checkpoint
    run_stage(plan2, LoopSettings(max_steps=6, checkpoint_every=2, progress_bar=False), folder, log, resume=ckpt,
              log=lambda *_: None)
    log.close()
    assert int(folder.load_checkpoint("cpu").modules["ema"]["updates"]) == 6


def test_noise_left_diagnosis_measures_the_share_of_noise_a_clean_estimate_keeps(micro_model):
    """benchmarks/tiny_noise_left.py: 0 when the estimate is the clean latent, a when it keeps a of the noise,
    about 1 for no denoising at all; and it runs on a built-in model's files."""
    bench = load_benchmark("tiny_noise_left")
    g = torch.Generator().manual_seed(0)
    x0, noise, sigma = torch.randn(2, 4, 8, 3, 6, 10, generator=g), torch.randn(2, 4, 8, 3, 6, 10, generator=g), 0.3
    assert bench.noise_left(x0, x0, noise, sigma) == pytest.approx(0.0, abs=1e-6)
    assert bench.noise_left(x0 + 0.4 * sigma * noise, x0, noise, sigma) == pytest.approx(0.4, abs=1e-5)
    x = (1 - sigma) * x0 + sigma * noise
    assert bench.noise_left(x, x0, noise, sigma) == pytest.approx(1.0, abs=0.05)
    rows = bench.measure(load_builtin(micro_model), scenes=1, sigmas=[0.5], mode="syncam")
    assert len(rows) == 1 and len(rows[0]["channels"]) == 4
    assert all(np.isfinite(rows[0][k]) for k in ("all", "sky", "rms"))


def test_ae_latents_benchmark_tells_white_noise_from_smooth_latents():
    """benchmarks/tiny_ae_latents.py: white noise has 1 - (7/12)(11/20) = 0.68 of its energy above half Nyquist
    on a 12x20 grid (the share of those frequencies) and no neighbour
    correlation; a smooth ramp pattern has neither; and it measures an autoencoder end to end."""
    bench = load_benchmark("tiny_ae_latents")
    white = torch.randn(64, 12, 20, generator=torch.Generator().manual_seed(0))
    assert bench.high_freq_share(white) == pytest.approx(1 - 7 / 12 * 11 / 20, abs=0.02)
    assert abs(bench.neighbour_corr(white)) < 0.05
    y, x = torch.meshgrid(torch.linspace(0, 1, 12), torch.linspace(0, 1, 20), indexing="ij")
    smooth = torch.sin(2 * torch.pi * x)[None] * torch.randn(64, 1, 1) + y[None] * torch.randn(64, 1, 1)
    assert bench.high_freq_share(smooth) < 0.05 and bench.neighbour_corr(smooth) > 0.9
    r = bench.measure(TinyVideoAE(latent_dim=4, width=8).eval(), scenes=1)
    assert all(np.isfinite(v) for v in r.values()) and 0 <= r["high_freq_share"] <= 1


def test_caption_response_benchmark_swaps_shapes_and_changes_one_colour(micro_model):
    """benchmarks/tiny_caption_response.py: each triple is a two-object caption, the same with the shapes swapped
    and with the second colour changed to one not in it; the latents' change is 0 for the same caption and
    measured end to end on a built-in model."""
    bench = load_benchmark("tiny_caption_response")
    for base, swapped, recoloured in bench.caption_triples(20):
        b, s, r = base.split(), swapped.split(), recoloured.split()
        assert (s[1], s[2], s[5], s[6]) == (b[1], b[6], b[5], b[2]) and b[2] != b[6]
        assert (r[1], r[2], r[6]) == (b[1], b[2], b[6]) and r[5] not in (b[1], b[5])
    x = torch.randn(3, 2, 5)
    assert torch.equal(bench.relative_change(x, x), torch.zeros(3))
    assert bench.relative_change(x, 2 * x) == pytest.approx(torch.ones(3))
    r = bench.measure(load_builtin(micro_model), captions=2, steps=2)
    assert all(v.shape == (2,) and torch.isfinite(v).all() for v in r.values())
    assert (r["colour_change"] > 0).all()


def test_binding_probe_reads_the_shape_of_a_colour_only_from_the_phrase_encoder():
    """benchmarks/tiny_text_binding_probe.py: a cross-attention reader queried with a colour learns that object's
    shape from the phrase encoder (held-out two-object captions of two shapes); from the plain encoder, whose
    colour words are the same for swapped shapes, it stays at chance (0.50-0.52 in 3 seeds up to 3000 steps)."""
    import random
    bench = load_benchmark("tiny_text_binding_probe")
    captions, colours, shapes = bench.sample_queries(random.Random(0), 50, objects=2, mixed_shapes=True)
    for caption, colour, shape in zip(captions, colours, shapes):
        words = caption.split()
        assert words[2] != words[6] and words[words.index(bench.COLOURS[colour]) + 1] == bench.SHAPES[shape]
    assert bench.run(phrases=True, steps=200, seed=0) > 0.95
    assert bench.run(phrases=False, steps=200, seed=0) < 0.6


def test_shape_judge_tells_spheres_from_boxes_in_renders(micro_model):
    """benchmarks/tiny_shape_accuracy.py: crops come one per usable object, centred, labelled by colour; the judge
    trained on 16 scenes' renders names held-out objects' shapes (0.98 on 207 crops at seed 0; chance 0.5); a
    model too small to show objects is refused by name instead of judged on nothing."""
    from camgrid.synth.dataset import SyntheticMultiViewDataset
    from camgrid.synth.render import render
    bench = load_benchmark("tiny_shape_accuracy")
    frame = torch.full((1, 1, 48, 80, 3), 0.5)
    frame[0, 0, 10:22, 10:22] = torch.tensor([0.9, 0.12, 0.12])                  # a red square
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(80), indexing="ij")
    frame[0, 0][(yy - 30) ** 2 + (xx - 55) ** 2 <= 49] = torch.tensor([0.12, 0.12, 0.9])   # a blue disc
    c, which = bench.crops(frame, ["red", "blue"])
    assert which.tolist() == [0, 1] and c.shape == (2, 2, bench.CROP, bench.CROP)
    fill = c[:, 0].mean((1, 2))
    assert fill[0] > fill[1] > 0.4                    # the square fills its window more than the disc does

    def renders(seed, count):
        data = SyntheticMultiViewDataset(length=count, min_views=4, max_views=4, seed=seed)
        scenes = [data.scene_and_rig(i)[0] for i in range(count)]
        return scenes, [render(*data.scene_and_rig(i), 48, 80).clamp(0, 1) for i in range(count)]
    x, y, _ = bench.labelled_crops(*reversed(renders(1, 16)))
    net = bench.train_judge(x, y, steps=300)
    hx, hy, mixed = bench.labelled_crops(*reversed(renders(2, 8)))
    acc, n = bench.accuracy(net, hx, hy)
    assert n > 100 and acc > 0.9 and 0 < mixed.sum() < n
    with pytest.raises(ValueError, match="too few to train the judge"):
        bench.measure(load_builtin(micro_model), scenes=1, train_scenes=2)


def test_camera_use_probe_sees_the_rig_only_through_the_camera_encoder(micro_model):
    """benchmarks/tiny_camera_use.py: with every cam_encoder zeroed the wrong rigs cost exactly nothing (the probe
    reports no camera use where there is none); with the encoder (and syncam's projector) set they cost something
    in every mode that reads cameras; independent is measured once (it reads no camera)."""
    bench = load_benchmark("tiny_camera_use")
    model = load_builtin(micro_model)
    _, _, cameras = bench.held_out(model, 3, 0)
    variants = bench.camera_variants(cameras)
    assert torch.equal(variants["at view 0"][:, 0], cameras[:, 0])     # view 0 is the identity in every rig
    assert torch.equal(variants["other rig"][1], cameras[0])
    with torch.no_grad():
        for block in model.dit.blocks:
            block.cam_encoder.weight.zero_()
    blind = bench.camera_use(model, count=3, sigmas=(0.5, 0.9))
    assert list(blind["independent"]) == ["true"] and set(blind) == set(model.modes())
    for mode in ("syncam", "hard", "soft"):
        assert torch.equal(blind[mode]["other rig"], blind[mode]["true"])
        assert bench.gap(blind[mode]["other rig"].mean(1), blind[mode]["true"].mean(1))["p"] == 1.0
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():   # the micro model's camera path barely trained: the encoder and syncam's projector set
        for block in model.dit.blocks:
            for layer in (block.cam_encoder, block.projector):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=g))
    seeing = bench.camera_use(model, count=3, sigmas=(0.5, 0.9))
    for mode in ("syncam", "hard", "soft"):
        assert not torch.allclose(seeing[mode]["other rig"], seeing[mode]["true"]), mode
    assert torch.equal(seeing["independent"]["true"], blind["independent"]["true"])
    table = bench.format_table(seeing, (0.5, 0.9))
    assert "| syncam | 0.9 |" in table and "| soft | all |" in table
    assert set(bench.camera_use(model, count=2, sigmas=(0.9,), modes=["soft"])) == {"independent", "soft"}
    with pytest.raises(ValueError, match="--modes: recam is not"):
        bench.camera_use(model, count=2, modes=["recam"])


def test_novel_views_picture_draws_the_scenes_whose_objects_move_most(micro_model, tmp_path):
    """benchmarks/tiny_novel_views.py: the drawn scenes are chosen from the ground truth alone (largest copy px
    first), each gives a truth row and a generated row with the true view 0 given, and the picture is written."""
    bench = load_benchmark("tiny_novel_views")
    model = load_builtin(micro_model)
    rows, report = bench.novel_views(model, scenes=2, pool=4, source_noise=0.5)
    assert [label for label, _ in rows] == ["truth 1", "view 0 given 1", "truth 2", "view 0 given 2"]
    assert rows[0][1].shape == rows[1][1].shape and rows[0][1].shape[0] == 4
    copies = [r["copy_px"] for r in report]
    assert len(report) == 2 and len({r["scene"] for r in report}) == 2
    if None not in copies:
        assert copies[0] >= copies[1]
    held = bench.HeldOut(model, 4, 4, 0)
    widest = bench.widest_scenes(held, 4)
    assert sorted(widest) == [0, 1, 2, 3] and widest[:2] == [r["scene"] for r in report]
    part = held.subset([2, 0])   # the narrowed held-out set: those scenes, in that order, the whole left alone
    assert part.captions == [held.captions[2], held.captions[0]] and len(held.captions) == 4
    for name in ("cameras", "videos", "ids"):
        assert torch.equal(getattr(part, name), getattr(held, name)[[2, 0]])
    out = tmp_path / "nvs.png"
    bench.save_image(bench.comparison_image(rows), out)
    assert out.stat().st_size > 0


def test_wide_rig_consistency_scores_every_row_on_the_same_scenes(micro_model):
    """benchmarks/tiny_wide_rig_consistency.py: the true views score about 0 px where anything is scored, every
    row is a summary of the same held-out scenes, and the table has one line per row."""
    bench = load_benchmark("tiny_wide_rig_consistency")
    model = load_builtin(micro_model)
    model.sampling = {**model.sampling, "steps": 2}
    frames = torch.rand(2, 4, 3, 8, 8, 3)
    assert torch.equal(bench.view0_copied(frames)[:, 3], frames[:, 0])
    rows, pairs = bench.consistency(model, scenes=2, arc_span=(150.0, 160.0))
    assert list(rows)[:3] == ["true views", "true view 0 copied", "syncam"] and len(rows) == 6
    truth = rows["true views"]
    assert truth["reproj_px_median"] is None or truth["reproj_px_median"] < 1.0
    assert bench.format_table(rows).count("\n") == 7
    # the paired comparisons: scene by scene, over the scenes both rows score
    assert list(pairs) == list(bench.PAIRS) and bench.format_pairs(pairs).count("\n") == 1 + len(pairs)
    for r in pairs.values():
        assert r["n"] <= 2 and (r["closer"] is None) == (r["n"] == 0)
    same = bench.paired(truth, truth)
    assert same["closer"] in (None, 0.0) and same["p"] in (None, 1.0)
    # another folder's syncam grids come from the same noise on the same scenes: the model against itself scores
    # every scene alike, so its pair is lower on none; and it is paired with the copy as the first model's is
    rows, pairs = bench.consistency(model, scenes=2, arc_span=(150.0, 160.0), others=[("again", model)])
    assert len(rows) == 7 and rows["syncam, again"]["per_scene_errors"] == rows["syncam"]["per_scene_errors"]
    assert pairs[("syncam", "syncam, again")]["closer"] in (None, 0.0)
    assert pairs[("syncam, again", "true view 0 copied")] == pairs[("syncam", "true view 0 copied")]


def test_follow_cameras_benchmark_pairs_folders_on_the_same_held_out_scenes(micro_model):
    """benchmarks/tiny_follow_cameras.py: held-out scenes drawn with --arc-span are the same scenes on wider rigs;
    every folder is scored on the same scenes and noise, so a folder against itself is closer on no scene and
    the signed-rank test finds nothing (p = 1); the table carries place, copy and their ratio."""
    bench = load_benchmark("tiny_follow_cameras")
    model = load_builtin(micro_model)
    default, wide = model.scenes(6, 5, 4), model.scenes(6, 5, 4, (150.0, 160.0))
    assert [default.scene_and_rig(i)[0].caption for i in range(6)] == [wide.scene_and_rig(i)[0].caption
                                                                       for i in range(6)]
    assert any(not torch.equal(model.camera_embedding(default.scene_and_rig(i)[1]),
                               model.camera_embedding(wide.scene_and_rig(i)[1])) for i in range(6))
    flipped = model.scenes(6, 5, 4, view_order="reversed")   # --view-order reversed: the same cameras last to first
    assert all(torch.equal(model.camera_embedding(flipped.scene_and_rig(i)[1]),
                           model.camera_embedding(reorder_views(default.scene_and_rig(i)[1], "reversed")))
               for i in range(6))
    assert len(bench.measure([micro_model], ["syncam"], scenes=2, steps=2, view_order="reversed")) == 1
    rows = bench.measure([micro_model, micro_model], ["independent", "syncam"], scenes=3, steps=2)
    assert [(r[1], r[3] is None) for r in rows] == [("independent", True), ("syncam", True),
                                                    ("independent", False), ("syncam", False)]
    for (_, mode, first, _), (_, again_mode, again, versus) in zip(rows[:2], rows[2:]):
        assert mode == again_mode and first == again
        assert versus["n"] == 0 or (versus["closer"] == 0.0 and versus["p"] == 1.0)
        if first["place_px"] is not None and first["copy_px"]:
            assert first["ratio"] == pytest.approx(first["place_px"] / first["copy_px"])
    table = bench.format_table(rows)
    assert table.count("\n") == 5 and "| syncam |" in table and "place / copy" in table
    scores = [{"place_px": p, "copy_px": 6.0, "iou": 0.5, "psnr": 20.0, "placed": 3} for p in (1.0, 2.0, None)]
    baseline = [{"place_px": p} for p in (3.0, 1.0, 2.0)]
    assert bench.paired(scores, baseline)["closer"] == 0.5 and bench.paired(scores, baseline)["n"] == 2
    assert bench.summarise(scores)["ratio"] == pytest.approx(1.5 / 6.0) and bench.summarise(scores)["placed"] == 9
    assert bench.against_copy(scores) == {"closer": 1.0, "p": pytest.approx(signed_rank_test([-5.0, -4.0])),
                                          "n": 2}
    assert all("vs_copy" in r[2] for r in rows) and "closer than the copy" in table
    # --student samples as the student was distilled (4 euler steps, no guidance) unless --steps says otherwise
    assert bench.sampling_settings(True) == STUDENT_SAMPLING and bench.sampling_settings(False) == TEACHER_SAMPLING
    assert bench.sampling_settings(True, 8) == {**STUDENT_SAMPLING, "steps": 8}
