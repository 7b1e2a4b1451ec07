"""Pipeline + `python -m camgrid generate` end to end on tiny random components built offline:
a tiny GridDiT file, a tiny diffusers AutoencoderKLWan folder, a tiny umT5 encoder with a
sentencepiece tokenizer trained here on a few sentences."""
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from camgrid.__main__ import SUBCOMMANDS, main
from camgrid.model import save_grid_dit
from camgrid.model.pipeline import TEXT_LENGTH, Pipeline, build_rig, camera_embedding, check_video_size, fit_frames, \
    pick_mode
from camgrid.model.camera import relative_extrinsics
from camgrid.model.video_io import grid_layout, read_video, tile_views, write_video
from grid_helpers import tiny_model

SENTENCES = ["a cat walks on the beach", "two dogs run in a park", "a red car drives through the city at night",
             "the camera orbits around a statue", "waves crash on rocks under a blue sky"]


def build_tokenizer(folder):
    import sentencepiece as spm
    from transformers import T5Tokenizer

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(SENTENCES * 4), model_writer=buf, vocab_size=40,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = T5Tokenizer(vocab=vocab, extra_ids=0)
    tok.save_pretrained(str(folder))
    return len(tok)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    root = tmp_path_factory.mktemp("pipeline")
    torch.manual_seed(0)
    vocab = build_tokenizer(root / "tokenizer")
    text_config = UMT5Config(vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                     relative_attention_num_buckets=8, relative_attention_max_distance=16)
    UMT5EncoderModel(text_config).eval().save_pretrained(str(root / "text_encoder"))
    AutoencoderKLWan(base_dim=8, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1).save_pretrained(str(root / "vae"))
    save_grid_dit(tiny_model("syncammaster", seed=1), root / "syncam.safetensors")
    save_grid_dit(tiny_model("recammaster", seed=2), root / "recam.safetensors")
    return root


def pipeline(files, dit="syncam.safetensors"):
    logs = []
    pipe = Pipeline.from_files(files / dit, files / "vae", files / "text_encoder", log=logs.append)
    return pipe, logs


def test_generate_text_to_grid(files):
    pipe, logs = pipeline(files)
    frames = pipe.generate("a cat walks on the beach", rig="orbit_arc", views=2, width=32, height=32, frames=5,
                           steps=2, seed=1)
    assert frames.shape == (2, 5, 32, 32, 3)
    assert torch.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1
    assert pipe.last_mode == "syncam" and any("auto -> 'syncam'" in line for line in logs)
    assert pipe.last_latent.shape == (1, 2, 16, 2, 4, 4)


def test_prompt_features_are_padded_to_512_with_zeros(files):
    pipe, _ = pipeline(files)
    feats = pipe.encode_prompt(["a cat", "two dogs run in a park at night"])
    _, mask = pipe.tokenizer(["a cat", "two dogs run in a park at night"], TEXT_LENGTH)
    assert feats.shape == (2, TEXT_LENGTH, 32)
    for row, n in zip(feats, mask.sum(1).tolist()):
        assert row[:n].abs().amin(-1).max() > 0 and row[n:].abs().max() == 0


def test_video_latents_are_normalised_like_diffusers_wan(files):
    pipe, _ = pipeline(files)
    video = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    latent = pipe.encode_video(video)
    assert latent.shape == (1, 16, 2, 4, 4)
    raw = pipe.vae.encode(video.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist.mode()
    mean = torch.tensor(pipe.vae.config.latents_mean).view(1, 16, 1, 1, 1)
    std = torch.tensor(pipe.vae.config.latents_std).view(1, 16, 1, 1, 1)
    torch.testing.assert_close(latent, (raw - mean) / std)
    assert pipe.decode(latent[:, None]).shape == (1, 5, 32, 32, 3)


def test_recam_from_a_source_video_file(files, tmp_path):
    pipe, logs = pipeline(files, "recam.safetensors")
    src = tmp_path / "source.mp4"
    write_video(src, np.random.default_rng(0).integers(0, 255, (9, 40, 48, 3), dtype=np.uint8))
    frames = pipe.generate("a red car", rig="recammaster_pan_left", width=32, height=32, frames=5, steps=2, source=src)
    assert frames.shape == (1, 5, 32, 32, 3) and pipe.last_mode == "recam"
    with pytest.raises(ValueError, match="source video"):
        pipe.generate("a red car", rig="recammaster_pan_left", width=32, height=32, frames=5, steps=1)


def test_cli_generate_writes_the_videos(files, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "camgrid", "generate", "--dit", str(files / "syncam.safetensors"),
           "--vae", str(files / "vae"), "--text-encoder", str(files / "text_encoder"),
           "--tokenizer", str(files / "tokenizer"), "--prompt", "a cat walks on the beach", "--rig", "orbit_arc",
           "--views", "2", "--width", "32", "--height", "32", "--frames", "5", "--steps", "2", "--device", "cpu",
           "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "mode auto -> 'syncam'" in res.stdout
    views = sorted(out.glob("view*.mp4"))
    assert len(views) == 2
    for path in views:
        frames, fps = read_video(path)
        assert frames.shape == (5, 32, 32, 3) and fps == 16
    grid, _ = read_video(out / "grid.mp4")
    assert grid.shape == (5, 32, 64, 3)
    assert (out / "settings.json").is_file()


def test_cli_with_source_replace_view_in_process(files, tmp_path):
    src = tmp_path / "source.mp4"
    write_video(src, np.full((5, 32, 32, 3), 200, dtype=np.uint8))
    out = tmp_path / "out"
    rc = main(["generate", "--dit", str(files / "syncam.safetensors"), "--vae", str(files / "vae"),
               "--text-encoder", str(files / "text_encoder"), "--prompt", "a statue", "--views", "2",
               "--width", "32", "--height", "32", "--frames", "5", "--steps", "2", "--device", "cpu",
               "--source", str(src), "--source-mode", "replace_view", "--source-view", "1", "--scheduler", "euler",
               "--source-noise", "0.5", "--out", str(out)])
    assert rc == 0
    assert len(list(out.glob("view*.mp4"))) == 2 and (out / "grid.mp4").is_file()
    assert json.loads((out / "settings.json").read_text())["source_noise"] == 0.5


def test_cli_bad_frame_count_is_a_clear_error(files, tmp_path, capsys):
    rc = main(["generate", "--dit", str(files / "syncam.safetensors"), "--vae", str(files / "vae"),
               "--text-encoder", str(files / "text_encoder"), "--prompt", "x", "--frames", "6",
               "--width", "32", "--height", "32", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "4k+1" in err and "use 5 or 9" in err


def test_cli_registry_has_generate():
    assert "generate" in SUBCOMMANDS
    assert main(["--help"]) == 0


# --- helpers ----------------------------------------------------------------------------------------

def test_size_and_frame_checks():
    check_video_size(32, 48, 81)
    with pytest.raises(ValueError, match="4k\\+1"):
        check_video_size(32, 32, 80)
    with pytest.raises(ValueError, match="multiple of 16"):
        check_video_size(40, 32, 5)


def test_auto_mode_per_variant():
    assert [pick_mode(v) for v in ("syncammaster", "recammaster", "wan")] == ["syncam", "recam", "hard"]
    assert pick_mode("wan", "independent") == "independent"
    with pytest.raises(ValueError):
        pick_mode("wan", "sideways")


def test_camera_reference_rule_per_variant():
    rig = build_rig("orbit_arc", views=3, frames=9)
    syn = camera_embedding(rig, "syncammaster", 3)
    torch.testing.assert_close(syn[0], torch.eye(4)[:3].reshape(1, 12).expand(3, 12))  # view 0 is the reference
    assert torch.equal(syn, relative_extrinsics(rig, 0.5, reference="view0", num_latent_frames=3))
    path = build_rig("recammaster_arc_left", frames=9)
    rec = camera_embedding(path, "recammaster", 3)
    torch.testing.assert_close(rec[0, 0], torch.eye(4)[:3].reshape(12))  # its own first pose
    assert torch.equal(rec, relative_extrinsics(path, 1.0, reference="first_pose", num_latent_frames=3))


def test_build_rig_views_and_errors():
    assert build_rig("syncammaster_example", views=3).num_views == 3
    assert build_rig("dolly", views=4).num_views == 4
    with pytest.raises(ValueError, match="neither a camera preset"):
        build_rig("no_such_rig")
    with pytest.raises(ValueError, match="fewer views"):
        build_rig("recammaster_pan_left", views=2)


def test_fit_frames_crops_and_resizes():
    video = np.zeros((9, 40, 80, 3), dtype=np.uint8)
    video[:, :, 20:60] = 255  # the centre half is white
    out = fit_frames(video, 32, 32, 5)
    assert out.shape == (5, 32, 32, 3) and out.min() > 0.99  # the centre square crop is all white
    with pytest.raises(ValueError, match="frames"):
        fit_frames(video, 32, 32, 13)


def test_tiling_layout():
    assert [grid_layout(v) for v in (1, 2, 3, 4, 5, 10)] == [(1, 1), (1, 2), (2, 2), (2, 2), (2, 3), (3, 4)]
    views = np.stack([np.full((2, 4, 6, 3), i * 50, dtype=np.uint8) for i in range(3)])
    tiled = tile_views(views)
    assert tiled.shape == (2, 8, 12, 3)
    assert tiled[0, 0, 0, 0] == 0 and tiled[0, 0, 6, 0] == 50 and tiled[0, 4, 0, 0] == 100 and tiled[0, 4, 6, 0] == 0
