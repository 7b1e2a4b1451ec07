"""Fixtures for tests against a real ComfyUI (run only when COMFYUI_PATH names a checkout).

    COMFYUI_PATH=/path/to/ComfyUI python -m pytest tests/host -q

One server per test session (starting one takes seconds): `comfy_server` starts it on a free
loopback port with this repo symlinked into a temporary custom_nodes folder and empty temporary
model folders (`comfy_server.models_dir/<kind>`), and stops it afterwards. Tests that only need
the recorded node definitions (`core_object_info`) run without a server.
"""
from __future__ import annotations

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # helpers below live beside this file, not in the package

from comfy_server import ComfyServer  # noqa: E402
from ui_to_api import ui_to_api as _ui_to_api  # noqa: E402


@pytest.fixture(scope="session")
def comfyui_path() -> str:
    path = os.environ.get("COMFYUI_PATH")
    if not path:
        pytest.skip("COMFYUI_PATH is not set: point it at a ComfyUI checkout to run the host tests")
    if not os.path.isfile(os.path.join(path, "main.py")):
        pytest.fail(f"COMFYUI_PATH={path!r} has no main.py; point it at a ComfyUI checkout")
    return path


# Test-only loaders for the umT5 text encoder and the Wan VAE, whose real weights tests cannot have
# (see standin_pack/__init__.py); workflows swap only those two nodes for them.
STANDIN_PACK = {"camgrid_test_standins": os.path.join(HERE, "standin_pack")}


@pytest.fixture(scope="session")
def comfy_server(comfyui_path, tmp_path_factory):
    server = ComfyServer(comfyui_path, str(tmp_path_factory.mktemp("comfy_base")), extra_packs=STANDIN_PACK)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def object_info(comfy_server) -> dict:
    return comfy_server.object_info()


@pytest.fixture
def post_prompt(comfy_server):
    """post_prompt(api_json) -> prompt_id; raises ComfyError with node_errors if refused."""
    return comfy_server.post_prompt


@pytest.fixture
def wait_for_history(comfy_server):
    """wait_for_history(prompt_id, timeout=300) -> history entry; raises if the run failed."""
    return comfy_server.wait_for_history


@pytest.fixture
def ui_to_api(object_info):
    """ui_to_api(ui_workflow) -> API-format prompt, using the live server's node definitions."""
    return lambda workflow: _ui_to_api(workflow, object_info)


@pytest.fixture(scope="session")
def core_object_info() -> dict:
    """Core node definitions recorded from a real server (see record_core_nodes.py)."""
    with open(os.path.join(HERE, "core_nodes.json"), encoding="utf-8") as f:
        return json.load(f)["nodes"]
