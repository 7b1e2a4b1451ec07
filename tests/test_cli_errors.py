"""The command line answers bad input with one line on stderr and exit status 2, before loading anything."""
import json

import numpy as np
import pytest
import torch

from grid_helpers import tiny_model

from camgrid.__main__ import main
from camgrid.model import save_grid_dit
from camgrid.model.checks import CamGridError
from camgrid.model.pipeline import Pipeline, save_video
from camgrid.model.video_io import read_video, write_video


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_demo_on_cuda_without_a_gpu_is_one_line(capsys, tmp_path):
    err = _one_line_error(capsys, ["demo", "--device", "cuda", "--out", str(tmp_path / "demo")])
    assert "--device 'cuda'" in err and "--device cpu" in err
    assert not (tmp_path / "demo").exists()


def test_demo_into_an_existing_file_is_one_line(capsys, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    err = _one_line_error(capsys, ["demo", "--out", str(target)])
    assert "existing file" in err and str(target) in err
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("flag, value, words", [("--steps", "0", "1 and 1000"), ("--cfg", "nan", "0 and 30"),
                                                 ("--seed", "-5", "0 and 18446744073709551615"),
                                                 ("--grids", "65", "1..64")])
def test_demo_settings_out_of_range_are_one_line_before_the_model_loads(capsys, tmp_path, monkeypatch, flag, value,
                                                                        words):
    import camgrid.train.demo as demo

    monkeypatch.setattr(demo, "load_demo_model", lambda *a, **k: pytest.fail("the model loaded before the check"))
    err = _one_line_error(capsys, ["demo", "--out", str(tmp_path / "demo"), flag, value])
    assert flag in err and words in err and value in err
    assert not any((tmp_path / "demo").iterdir())   # nothing written


def test_bad_device_name_is_one_line(capsys, tmp_path):
    err = _one_line_error(capsys, ["eval", "--device", "gpu0"])
    assert "gpu0" in err and "cpu" in err


def test_a_bug_is_not_disguised_as_a_user_error(monkeypatch):
    import camgrid.train.evaluate as evaluate

    def buggy(args):
        raise ValueError("an internal shape bug")

    monkeypatch.setattr(evaluate, "run", buggy)
    with pytest.raises(ValueError, match="internal shape bug"):
        main(["eval", "--device", "cpu"])


# --- generate: everything is checked before the DiT, VAE and umT5 load -------------------------------

@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Just enough on disk for generate's checks: the weights are never loaded."""
    root = tmp_path_factory.mktemp("generate_files")
    save_grid_dit(tiny_model("wan", seed=1), root / "wan.safetensors")   # text_dim 32, in_dim 16
    for folder, config in (("vae", {"z_dim": 16}), ("text_encoder", {"d_model": 32})):
        (root / folder).mkdir()
        (root / folder / "config.json").write_text(json.dumps(config))
    (root / "text_encoder" / "spiece.model").write_bytes(b"stand-in")
    (root / "vae_bad").mkdir()
    (root / "not_a_video.mp4").write_text("API_KEY=secret")
    write_video(root / "short.mp4", np.zeros((5, 32, 32, 3), dtype=np.uint8))
    return root


@pytest.fixture
def no_loading(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("generate loaded the models before finishing its checks")

    monkeypatch.setattr(Pipeline, "from_files", classmethod(refuse))


def generate_args(files, out, *extra):
    return ["generate", "--dit", str(files / "wan.safetensors"), "--vae", str(files / "vae"), "--text-encoder",
            str(files / "text_encoder"), "--prompt", "a cat", "--width", "32", "--height", "32", "--frames", "5",
            "--views", "2", "--device", "cpu", "--out", str(out), *extra]


GENERATE_REPRODUCERS = {
    "frames 6": (["--frames", "6"], "4k+1"),
    "frames 4000001": (["--frames", "4000001"], "--frames"),
    "width 100": (["--width", "100"], "--width"),
    "height 0": (["--height", "0"], "--height"),
    "steps 0": (["--steps", "0"], "--steps"),
    "steps 10**9": (["--steps", "1000000000"], "--steps"),
    "cfg 1e6": (["--cfg", "1e6"], "--cfg"),
    "cfg nan": (["--cfg", "nan"], "--cfg"),
    "shift nan": (["--shift", "nan"], "--shift"),
    "video-cfg inf": (["--video-cfg", "inf"], "--video-cfg"),
    "cfg-max-sigma 2": (["--cfg-max-sigma", "2"], "--cfg-max-sigma"),
    "seed -1": (["--seed", "-1"], "--seed"),
    "fps 0": (["--fps", "0"], "--fps"),
    "views 0": (["--views", "0"], "--views"),
    "views beyond the rig": (["--rig", "syncammaster_example", "--views", "12"], "fewer views"),
    "unknown rig": (["--rig", "no_such_rig"], "neither a camera preset"),
    "syncam with a plain Wan DiT": (["--mode", "syncam"], "SynCamMaster"),
    "recam with a plain Wan DiT": (["--mode", "recam"], "ReCamMaster"),
    "soft without sync weights": (["--mode", "soft"], "--sync-weights"),
    "two_scale without a source": (["--guidance", "two_scale"], "--source"),
    "missing sync weights file": (["--sync-weights", "nope.safetensors"], "--sync-weights"),
    "missing tokenizer folder": (["--tokenizer", "nope"], "--tokenizer"),
    "source view out of range": (["--source", "{files}/short.mp4", "--source-view", "2"], "--source-view"),
    "source noise above 1": (["--source", "{files}/short.mp4", "--source-noise", "1.5"], "--source-noise"),
    "source noise nan": (["--source", "{files}/short.mp4", "--source-noise", "nan"], "--source-noise"),
    "missing source": (["--source", "{files}/nope.mp4"], "--source"),
    "source not a video": (["--source", "{files}/not_a_video.mp4"], "not a readable video"),
    "source too short": (["--source", "{files}/short.mp4", "--frames", "9"], "has 5 frames"),
}


@pytest.mark.parametrize("case", list(GENERATE_REPRODUCERS))
def test_generate_reproducers_are_one_line_before_loading(case, files, tmp_path, capsys, no_loading):
    extra, expected = GENERATE_REPRODUCERS[case]
    err = _one_line_error(capsys, generate_args(files, tmp_path / "out", *[a.format(files=files) for a in extra]))
    assert expected in err and err.startswith("camgrid generate: error: "), err
    assert "API_KEY" not in err and "secret" not in err


@pytest.mark.parametrize("flag, folder", [("--dit", "missing.safetensors"), ("--vae", "missing"),
                                          ("--vae", "vae_bad"), ("--text-encoder", "missing")])
def test_generate_missing_model_files_are_one_line(flag, folder, files, tmp_path, capsys, no_loading):
    argv = generate_args(files, tmp_path / "out")
    argv[argv.index(flag) + 1] = str(files / folder)
    err = _one_line_error(capsys, argv)
    assert flag in err and folder in err


def test_generate_with_valid_input_gets_to_loading(files, tmp_path, capsys, monkeypatch):
    def reached(*args, **kwargs):
        raise CamGridError("reached loading")

    monkeypatch.setattr(Pipeline, "from_files", classmethod(reached))
    err = _one_line_error(capsys, generate_args(files, tmp_path / "out", "--source", str(files / "short.mp4"),
                                                "--source-view", "1", "--mode", "hard"))
    assert err.endswith("reached loading")


# --- outputs are written atomically -------------------------------------------------------------------

def test_save_video_replaces_the_file_only_when_complete(tmp_path, monkeypatch):
    import camgrid.model.pipeline as pipeline

    target = tmp_path / "view00.mp4"
    frames = np.full((5, 32, 32, 3), 100, dtype=np.uint8)
    save_video(target, frames, fps=16)
    written, fps = read_video(target)
    assert written.shape == (5, 32, 32, 3) and fps == 16
    before = target.read_bytes()

    def dies_half_way(path, frames, fps):
        path.write_bytes(b"half an mp4")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "write_video", dies_half_way)
    with pytest.raises(OSError):
        save_video(target, frames, fps=16)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["view00.mp4"]  # no temporary file left behind
