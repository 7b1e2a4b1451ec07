"""Live previews of grids inside a real ComfyUI process with `--preview-method taesd`:
  - a Wan (16-channel) grid goes through ComfyUI's own TAEHV previewer when `lighttaew2_1*` is in
    models/vae_approx (here a randomly initialised one of ComfyUI's TAEHV class): the preview is the tiled grid
    decoded at 8x, not the latent-resolution projection;
  - the built-in model's (8-channel) grid goes through camgrid's preview decoder: every view's first frame at
    full resolution (4x), laid out as CamGrid Decode lays the views out.
"""

import pytest

from comfy_server import run_child

CHILD = r"""
import json, os, sys
comfyui_path, base = sys.argv[1], sys.argv[2]
sys.path.insert(0, comfyui_path)
import comfy.options
comfy.options.enable_args_parsing()
sys.argv = ["main.py", "--cpu", "--base-directory", base, "--preview-method", "taesd"]
import folder_paths, comfy.model_management, comfy.utils

calls = []
comfy.utils.set_progress_bar_global_hook(
    lambda value, total, preview, node_id=None, **kw: calls.append(preview))

import torch
from safetensors.torch import save_file
from comfy.taesd.taehv import TAEHV

os.makedirs(os.path.join(base, "models", "vae_approx"), exist_ok=True)
torch.manual_seed(0)
save_file(TAEHV(latent_channels=16).state_dict(), os.path.join(base, "models", "vae_approx", "lighttaew2_1.safetensors"))

from camgrid.nodes import host

out = {}
for name, channels in (("wan", 16), ("builtin", 8)):
    calls.clear()
    grid = torch.randn(1, 3, channels, 2, 6, 10, generator=torch.Generator().manual_seed(1))   # B V C T h w
    host.ProgressReporter(2).update(1, latent=grid)
    fmt, image, _size = calls[0]
    out[name] = [fmt, list(image.size)]
print("RESULT" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def report(comfyui_path, tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy_previews")
    return run_child(CHILD, comfyui_path, str(base))


def test_wan_grid_previews_go_through_comfys_taehv(report):
    fmt, size = report["wan"]
    assert fmt == "JPEG" and size == [2 * 10 * 8, 2 * 6 * 8]    # 3 views tiled 2 x 2, decoded at 8x


def test_builtin_grid_previews_go_through_camgrids_preview_decoder(report):
    fmt, size = report["builtin"]
    assert fmt == "JPEG" and size == [2 * 10 * 4, 2 * 6 * 4]    # 3 views laid out 2 x 2, at full resolution (4x)
