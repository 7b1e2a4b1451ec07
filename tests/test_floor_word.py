"""The floor word learned by textual inversion and composed into the teacher's guidance (train/floor_word.py)."""
import json

import pytest
import torch

import camgrid.train.builtin as builtin_module
from camgrid.model.checks import InputError
from camgrid.train.builtin import builtin_available, load_builtin
from camgrid.train.distill import composed_settings
from camgrid.train.floor_word import REPORT_FILE, floor_word
from camgrid.train.text import FLOOR_WORD, WORD_INDEX

pytestmark = pytest.mark.skipif(not builtin_available(), reason="needs the shipped built-in model (assets/)")
CAPTIONS = ["a red sphere and a blue box", "a green sphere", ""]


def test_only_the_floor_words_row_learns_and_the_teacher_composes_it(tmp_path):
    """A few steps change the word's row and nothing else: the DiT, the autoencoder and every other caption's
    features are the shipped ones. The files name the caption and its weight, the teacher samples with it, and the
    student (whose guidance is baked in) does not."""
    before = load_builtin()
    report = floor_word(None, tmp_path, seconds=60, compose_cfg=0.6, frames=8, batch=2, max_steps=3,
                        compose_min_sigma=0.8, log=lambda *_: None)
    assert report["steps"] == 3 and json.loads((tmp_path / REPORT_FILE).read_text())["compose"] == \
        {"caption": FLOOR_WORD, "cfg": 0.6, "min_sigma": 0.8, "max_sigma": 1.0, "background_sigma": 0.0,
         "background_tau": 2.0}
    after = load_builtin(tmp_path)
    row = WORD_INDEX[FLOOR_WORD]
    changed = (after.text.words.weight != before.text.words.weight).any(1)
    assert changed.nonzero().flatten().tolist() == [row]
    assert torch.equal(after.encode_prompt(CAPTIONS), before.encode_prompt(CAPTIONS))
    assert all(torch.equal(a, b) for a, b in zip(after.dit.state_dict().values(), before.dit.state_dict().values()))
    assert all(torch.equal(a, b) for a, b in zip(after.ae.state_dict().values(), before.ae.state_dict().values()))
    assert after.sampling["compose_cfg"] == 0.6 and after.sampling["compose_min_sigma"] == 0.8
    assert after.composed_caption == FLOOR_WORD
    assert not (tmp_path / "camgrid-tiny-4step-lora.safetensors").exists()   # the old student was not copied
    student = load_builtin(tmp_path, student=builtin_module.ASSETS_DIR / "camgrid-tiny-4step-lora.safetensors")
    assert "compose_cfg" not in student.sampling


def test_zero_seconds_keeps_the_word_and_writes_only_the_composing(tmp_path):
    """--seconds 0 (a model whose "floor" already means the floor): every weight is the model's own, the meta
    composes it; a negative budget is refused, naming the flag."""
    before = load_builtin()
    report = floor_word(None, tmp_path, seconds=0, compose_cfg=1.0, compose_max_sigma=0.6,
                        compose_background_sigma=0.5, compose_background_tau=3.0, log=lambda *_: None)
    assert report["steps"] == 0
    after = load_builtin(tmp_path)
    assert torch.equal(after.text.words.weight, before.text.words.weight)
    assert after.sampling["compose_cfg"] == 1.0 and after.sampling["compose_min_sigma"] == 0.0
    assert after.sampling["compose_max_sigma"] == 0.6
    assert composed_settings(after, None) == {"compose_cfg": 1.0, "compose_min_sigma": 0.0, "compose_max_sigma": 0.6,
                                              "compose_background_sigma": 0.5, "compose_background_tau": 3.0}
    with pytest.raises(InputError, match="--seconds"):
        floor_word(None, tmp_path / "x", seconds=-1, log=lambda *_: None)
    with pytest.raises(InputError, match="--compose-min-sigma 0.8 is above --compose-max-sigma 0.6"):
        floor_word(None, tmp_path / "y", seconds=0, compose_min_sigma=0.8, compose_max_sigma=0.6, log=lambda *_: None)
    assert not (tmp_path / "y").exists()   # refused before anything is written


def test_the_teacher_passes_its_composed_caption_to_the_sampler(tmp_path, monkeypatch):
    floor_word(None, tmp_path, seconds=60, compose_cfg=0.6, frames=8, batch=2, max_steps=1, log=lambda *_: None)
    model = load_builtin(tmp_path)
    seen = {}

    def fake_sample_grid(dit, shape, ctx, neg, **kw):
        seen.update(kw, neg=neg)
        return torch.zeros(shape)
    monkeypatch.setattr(builtin_module, "sample_grid", fake_sample_grid)
    cameras = torch.zeros(2, 4, model.latent_frames, 12)
    model.generate_latents(["a red sphere", "a blue box"], cameras, cfg=1.0)
    assert seen["compose_cfg"] == 0.6 and seen["compose_min_sigma"] == 0.0 and seen["neg"] is not None  # cfg 1 too
    assert torch.equal(seen["compose_context"], model.encode_prompt([FLOOR_WORD] * 2))
    model.generate_latents("a red sphere", cameras[0], compose_cfg=0.0)
    assert seen["compose_context"] is None
    assert composed_settings(model, None) == {"compose_cfg": 0.6, "compose_min_sigma": 0.0, "compose_max_sigma": 1.0,
                                              "compose_background_sigma": 0.0, "compose_background_tau": 2.0}
    negative, composed = model.guidance_contexts(3, {"cfg": 1.0, "compose_cfg": 0.6})
    assert composed.shape[0] == 3 and torch.equal(negative, model.encode_prompt([""] * 3))
    assert model.guidance_contexts(3, {"cfg": 1.0, "compose_cfg": 0.0}) == (None, None)
    assert model.guidance_contexts(3, {"cfg": 3.0})[1] is None
    model.meta.pop("compose")   # files that name no caption to compose
    with pytest.raises(InputError, match="compose"):
        model.guidance_contexts(1, {"cfg": 3.0, "compose_cfg": 0.6})


def test_a_non_finite_loss_stops_the_word_at_once():
    """Broken weights give a NaN loss: refused at the first step, naming the files, before any row is updated."""
    from camgrid.train.floor_word import learn_floor_word
    model = load_builtin()
    row = model.text.words.weight[WORD_INDEX[FLOOR_WORD]].clone()
    with torch.no_grad():
        next(model.dit.parameters()).fill_(float("nan"))
    with pytest.raises(InputError, match="not finite at step 1"):
        learn_floor_word(model, 60, frames=4, batch=2, max_steps=5, log=lambda *_: None)
    assert torch.equal(model.text.words.weight[WORD_INDEX[FLOOR_WORD]], row)
