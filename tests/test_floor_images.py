"""The video stage's floor images (--image-source floor, train/floor_images.py) and their caption's word."""
import argparse
import dataclasses

import pytest
import torch

from camgrid.model.checks import InputError
from camgrid.train import floor_images, stages
from camgrid.train.cli import add_arguments, config_from_args, run
from camgrid.train.config import TrainConfig
from camgrid.train.floor_images import FloorImages, floor_only_frames
from camgrid.train.text import FLOOR_WORD, UNK, WORDS, TinyTextEncoder, tokenize
from camgrid.train.trainer import Trainer

MICRO = dict(device="cpu", height=16, width=32, frames=5, views=2, samples=6, workers=0, dim=32, ffn_dim=64,
             num_heads=2, num_layers=1, text_dim=16, patch=2, batch=2, ae_width=8, latent_dim=4)


def test_the_floor_word_is_appended_and_older_encoders_read_it_as_unknown():
    """"floor" has its own id after every scene word (the ids of older files stay), and an encoder saved with one
    word fewer loads with the new row equal to <unk>'s: it reads "floor" exactly as an unknown word, as it did."""
    assert WORDS[-1] == FLOOR_WORD and tokenize(FLOOR_WORD)[0, 0] == len(WORDS) - 1
    torch.manual_seed(0)
    old = TinyTextEncoder(text_dim=16, num_layers=1, num_heads=2).eval()
    state = old.state_dict()
    state["words.weight"] = state["words.weight"][:-1].clone()
    loaded = TinyTextEncoder(text_dim=16, num_layers=1, num_heads=2).eval()
    loaded.load_state_dict(state)
    assert torch.equal(loaded.words.weight[-1], state["words.weight"][UNK])
    assert torch.equal(loaded.words.weight[:-1], state["words.weight"])
    with torch.no_grad():
        features = loaded.encode(["a red sphere on the floor", "a red sphere on the zebra"])
    assert torch.equal(features[0], features[1])
    bad = dict(state, **{"words.weight": state["words.weight"][:1]})   # no <unk> row to copy: refused as before
    with pytest.raises(RuntimeError, match="words.weight"):
        TinyTextEncoder(text_dim=16, num_layers=1, num_heads=2).load_state_dict(bad)


def test_floor_frames_are_the_checkered_floor_alone():
    """No object's colour anywhere (every palette colour spreads its channels by 0.78; floor and sky by under 0.1),
    and the checkers' many edges."""
    frames = floor_only_frames(8, seed=3, style="standard", height=48, width=80)
    assert frames.shape == (8, 1, 48, 80, 3) and 0.0 <= float(frames.min()) and float(frames.max()) <= 1.0
    assert float((frames.max(-1).values - frames.min(-1).values).max()) < 0.1
    near = frames[:, 0, -12:].mean(-1)   # the floor nearest the camera, crossed by the squares' edges
    edges = ((near[:, :, 1:] - near[:, :, :-1]).abs() > 0.05).flatten(1).sum(1)
    assert int(edges.min()) > 40   # 0.5 m squares: 63-109 edge pixels here; squares of 100 m, 11-19 (two lines)
    assert torch.equal(frames, floor_only_frames(8, seed=3, style="standard", height=48, width=80))


def test_image_source_floor_trains_the_image_part_on_floor_latents_under_the_floor_caption(tmp_path, monkeypatch):
    """--image-weight W --image-source floor: W of the video stage's loss from single latent frames [B, 1, C, 1, h, w]
    drawn from the floor frames' latents, with the features of the caption "floor" (never the empty caption,
    guidance's negative); parsed, refused without --image-weight and for a real DiT's training."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = config_from_args(parser.parse_args(["--image-weight", "0.5", "--image-source", "floor"]))
    assert (cfg.image_weight, cfg.image_source) == (0.5, "floor")
    assert config_from_args(parser.parse_args([])).image_source == "clips"
    with pytest.raises(InputError, match="--image-source floor .*--image-weight"):
        config_from_args(parser.parse_args(["--image-source", "floor"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--image-source", "sky"])
    with pytest.raises(InputError, match="--image-source: the built-in model's training only"):
        run(parser.parse_args(["--dit", str(tmp_path / "no.safetensors"), "--image-source", "floor",
                               "--image-weight", "0.5"]))

    monkeypatch.setattr(floor_images, "FLOOR_IMAGES", 12)
    trainer = Trainer(TrainConfig(**{**MICRO, "out": str(tmp_path / "img"), "steps": 1, "stages": ("ae",)}),
                      log=lambda *a: None)
    trainer.run()    # the autoencoder the floor frames are encoded with
    calls = []

    def recorded(dit, x0, context, shift, **kw):
        calls.append((x0.detach(), context.detach()))
        return torch.tensor(1.0 if len(calls) == 1 else 5.0)
    monkeypatch.setattr(stages, "flow_matching_loss", recorded)
    cfg = dataclasses.replace(trainer.cfg, image_weight=0.25, image_source="floor")
    plan = stages.plan_video(stages.StageInputs(trainer.models, trainer.source, cfg, log=lambda *a: None))
    assert float(plan.step(0)) == pytest.approx(0.75 * 1.0 + 0.25 * 5.0)
    (clips, _), (images, context) = calls
    n = MICRO["batch"] * MICRO["views"]
    assert clips.shape[0] == images.shape[0] == n and images.shape[1] == images.shape[3] == 1 and clips.shape[3] > 1
    floor = FloorImages(trainer.models.ae.encode, cfg.data_style, cfg.height, cfg.width, cfg.seed, "cpu", count=12)
    assert floor.latents.shape == (12,) + images.shape[2:]
    assert all(any(torch.allclose(image[0], f, atol=1e-6) for f in floor.latents) for image in images)
    with torch.no_grad():
        expected = trainer.models.text.encode([FLOOR_WORD])[0]
    assert all(torch.allclose(c, expected, atol=1e-6) for c in context) and float(expected.abs().sum()) > 0
