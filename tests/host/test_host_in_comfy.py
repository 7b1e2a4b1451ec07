"""nodes/host.py inside a real ComfyUI process: folders, devices, progress hook, previews, cancel.

Runs ComfyUI's own modules (no server) in a child interpreter, as ComfyUI has them loaded when it
imports a pack, then reports what host.py did there as JSON.
"""
import os

import pytest

from comfy_server import run_child

CHILD = r"""
import json, os, sys
comfyui_path, base = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfyui_path)
import comfy.options
comfy.options.enable_args_parsing()
sys.argv = ["main.py", "--cpu", "--base-directory", base, "--preview-method", "latent2rgb"]
import folder_paths, comfy.model_management, comfy.utils  # what ComfyUI has loaded before any pack

calls = []
comfy.utils.set_progress_bar_global_hook(
    lambda value, total, preview, node_id=None, **kw: calls.append((value, total, preview)))

for kind, name in (("camgrid", "rigs/ring.json"), ("camgrid", "notes.txt"), ("diffusion_models", "dit.safetensors")):
    path = os.path.join(base, "models", kind, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "w").close()

import torch
from camgrid.nodes import host

out = {"in_comfy": host.IN_COMFY}
paths, exts = folder_paths.folder_names_and_paths["camgrid"]
out["camgrid_paths"], out["camgrid_exts"] = paths, sorted(exts)
out["camgrid_files"] = host.list_models("camgrid")
out["dit_files"] = host.list_models("diffusion_models")
out["dit_path"] = host.model_path("diffusion_models", "dit.safetensors")
try:
    host.model_path("vae", "nope.safetensors")
except FileNotFoundError as exc:
    out["missing"] = str(exc)
out["device"] = str(host.torch_device())
out["offload"] = str(host.offload_device())
out["low_vram"] = host.is_low_vram()
host.free_memory_for(1 << 20)
host.free_memory_for(None)
host.soft_empty_cache()

bar = host.ProgressReporter(3)
bar.update(1, latent=torch.randn(1, 2, 16, 1, 4, 5))  # grid: B V C T H W
bar.update(2)
out["hook"] = [(v, t, None if p is None else [p[0], list(p[1].size), p[2]]) for v, t, p in calls]

# the built-in model's 8-channel latent: our projection through ComfyUI's Latent2RGB previewer
from camgrid.nodes import preview
calls.clear()
tiny = torch.randn(1, 4, 8, 2, 3, 5, generator=torch.Generator().manual_seed(0))
host.ProgressReporter(2).update(1, latent=tiny)
fmt, image, _ = calls[0][2]
expected = preview.latent_to_rgb(preview.tile_views(tiny), *preview.latent_rgb_factors(8))
got = torch.tensor(list(image.getdata()), dtype=torch.float32).reshape(image.size[1], image.size[0], 3) / 255
out["tiny"] = [fmt, list(image.size), float((got - expected).abs().max())]

comfy.model_management.interrupt_current_processing(True)
try:
    bar.update(3)
except host.InterruptException as exc:
    out["interrupt"] = type(exc).__name__
host.check_interrupted()  # the flag is consumed by the first check
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def report(comfyui_path, tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_inproc")
    return run_child(CHILD, comfyui_path, str(base)), str(base)


def test_host_sees_comfy(report):
    assert report[0]["in_comfy"] is True


def test_camgrid_folder_registered_with_our_extensions(report):
    out, base = report
    assert out["camgrid_paths"] == [os.path.join(base, "models", "camgrid")]
    assert out["camgrid_exts"] == [".ckpt", ".json", ".pt", ".safetensors"]
    assert out["camgrid_files"] == ["rigs/ring.json"]


def test_model_lookup_goes_through_folder_paths(report):
    out, base = report
    assert out["dit_files"] == ["dit.safetensors"]
    assert out["dit_path"] == os.path.join(base, "models", "diffusion_models", "dit.safetensors")
    assert "nope.safetensors" in out["missing"] and os.path.join(base, "models", "vae") in out["missing"]


def test_devices_follow_comfy(report):
    out, _ = report
    assert (out["device"], out["offload"], out["low_vram"]) == ("cpu", "cpu", False)


def test_progress_drives_comfy_bar_with_grid_preview(report):
    out, _ = report
    first, second = out["hook"]
    assert first[:2] == [1, 3] and second == [2, 3, None]
    fmt, size, _max = first[2]
    assert fmt == "JPEG" and size == [2 * 5, 4]  # two views side by side: width V*W, height H


def test_builtin_model_latent_gets_a_preview_of_all_views(report):
    fmt, size, error = report[0]["tiny"]
    assert fmt == "JPEG" and size == [2 * 5, 2 * 3]  # four views tiled 2 x 2
    assert error <= 1 / 255 + 1e-6  # ComfyUI's Latent2RGB with our factors = preview.latent_to_rgb, to rounding


def test_cancel_raises_comfy_interrupt(report):
    assert report[0]["interrupt"] == "InterruptProcessingException"
