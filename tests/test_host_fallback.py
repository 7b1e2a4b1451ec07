"""nodes/host.py without ComfyUI: the plain behaviour tests and the CLI rely on."""
import sys

import pytest
import torch

from camgrid.nodes import host


def test_comfy_is_not_loaded_here():
    # Guard for the tests below: they describe the fallback, which only runs without ComfyUI.
    assert "folder_paths" not in sys.modules
    assert host.IN_COMFY is False


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(tmp_path))
    return tmp_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_list_models_filters_by_kind_and_extension(models_dir):
    _touch(models_dir / "diffusion_models" / "wan2.1_t2v_1.3B.safetensors")
    _touch(models_dir / "diffusion_models" / "notes.txt")
    _touch(models_dir / "unet" / "sub" / "old.sft")  # legacy folder name, nested file
    _touch(models_dir / "camgrid" / "rig.json")
    _touch(models_dir / "camgrid" / "sync.safetensors")
    _touch(models_dir / "vae" / "rig.json")  # JSON is only a model in our own folder

    assert host.list_models("diffusion_models") == ["sub/old.sft", "wan2.1_t2v_1.3B.safetensors"]
    assert host.list_models("camgrid") == ["rig.json", "sync.safetensors"]
    assert host.list_models("vae") == []
    assert host.list_models("text_encoders") == []  # missing folder is not an error


def test_model_path_finds_files_and_explains_misses(models_dir):
    wanted = _touch(models_dir / "camgrid" / "rigs" / "ring.json")
    assert host.model_path("camgrid", "rigs/ring.json") == str(wanted)
    with pytest.raises(FileNotFoundError, match="CAMGRID_MODELS_DIR"):
        host.model_path("camgrid", "missing.json")
    with pytest.raises(FileNotFoundError):  # a name cannot climb out of its folder
        _touch(models_dir / "secret.safetensors")
        host.model_path("vae", "../secret.safetensors")
    with pytest.raises(ValueError, match="no vae file chosen"):
        host.model_path("vae", "")


def test_unknown_kind_names_the_allowed_ones(models_dir):
    with pytest.raises(ValueError, match="diffusion_models"):
        host.list_models("upscale_models")


def test_models_root_defaults_to_cwd_models(monkeypatch, tmp_path):
    monkeypatch.delenv("CAMGRID_MODELS_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert host.models_root() == str(tmp_path / "models")


def test_devices_and_memory_fallbacks():
    assert isinstance(host.torch_device(), torch.device)
    assert host.offload_device() == torch.device("cpu")
    free = host.free_bytes(torch.device("cpu"))
    assert free is None or free > 0
    host.free_memory_for(1 << 20)  # nothing to unload outside ComfyUI; must not fail
    host.free_memory_for(None)
    host.soft_empty_cache()


def test_low_vram_follows_env(monkeypatch):
    monkeypatch.delenv("CAMGRID_LOW_VRAM", raising=False)
    assert host.is_low_vram() is False
    monkeypatch.setenv("CAMGRID_LOW_VRAM", "1")
    assert host.is_low_vram() is True


def test_check_interrupted_is_a_noop_until_requested():
    host.interrupt_event.clear()
    host.check_interrupted()
    host.request_interrupt()
    with pytest.raises(host.Interrupted):
        host.check_interrupted()
    host.check_interrupted()  # one request cancels one run
    assert host.InterruptException is host.Interrupted


def test_progress_reporter_counts_absolute_steps_and_stops_on_cancel(capsys):
    host.interrupt_event.clear()
    with host.ProgressReporter(5) as bar:
        bar.update(2, latent=torch.zeros(1, 16, 1, 2, 2))  # previews are a ComfyUI-only nicety
        assert (bar.step, bar._bar.n) == (2, 2)
        bar.update(9)  # clamped to total
        assert (bar.step, bar._bar.n) == (5, 5)
        host.request_interrupt()
        with pytest.raises(host.Interrupted):
            bar.update(5)


def test_a_cancel_requested_while_idle_does_not_stop_the_next_run():
    host.interrupt_event.clear()
    host.request_interrupt()  # e.g. Ctrl-C pressed after the previous run had finished
    with host.ProgressReporter(3) as bar:  # a new run starts: the stale request is forgotten
        bar.update(1)
        host.request_interrupt()  # a request during the run stops it
        with pytest.raises(host.Interrupted):
            bar.update(2)
