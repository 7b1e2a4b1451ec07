"""A real ComfyUI starts with camgrid installed, lists its nodes and runs a core workflow."""
import os

import pytest

from comfy_server import PACK_DIR_NAME, ComfyError

pytestmark = pytest.mark.usefixtures("comfy_server")


def test_object_info_lists_core_nodes(object_info, core_object_info):
    missing = sorted(set(core_object_info) - set(object_info))
    assert not missing, f"core nodes our workflows use are gone from this ComfyUI: {missing}"


def test_recorded_core_sockets_match_the_server(object_info, core_object_info):
    # A changed socket in a newer ComfyUI breaks shipped workflows: re-record and review.
    for name, recorded in core_object_info.items():
        live = object_info[name]
        assert live["output"] == recorded["output"], name
        assert live.get("input_order") == recorded.get("input_order"), name


def test_pack_was_found_and_imported_cleanly(comfy_server):
    log = comfy_server.log_text()
    assert os.path.realpath(comfy_server.pack_dir) == os.path.realpath(
        os.path.join(os.path.dirname(__file__), "..", "..")
    )
    errors = comfy_server.pack_import_errors()
    assert not errors, "camgrid failed to import in ComfyUI:\n" + "\n\n".join(errors)
    # ComfyUI lists every custom node folder it tried, with its import time.
    assert any(PACK_DIR_NAME in line and "seconds" in line for line in log.splitlines()), comfy_server.log_tail()


def test_camgrid_node_ids_are_prefixed(object_info):
    # ComfyUI silently drops a pack node whose id equals a core one, hence the prefix rule.
    ours = [n for n, e in object_info.items() if PACK_DIR_NAME in str(e.get("python_module", ""))]
    assert all(n.startswith("CamGrid") for n in ours), ours


def test_camgrid_model_folder_is_registered(comfy_server, object_info):
    # host.py adds models/camgrid when the node modules import it; ComfyUI answers
    # /models/<folder> for every registered folder.
    if not any(n.startswith("CamGrid") for n in object_info):
        pytest.skip("no CamGrid nodes registered yet, so nothing imports nodes/host.py")
    with open(os.path.join(comfy_server.models_dir, "camgrid", "ring.json"), "w") as f:
        f.write("{}")
    assert "camgrid" in comfy_server.get_json("/models")
    assert comfy_server.get_json("/models/camgrid") == ["ring.json"]


def test_core_workflow_runs_through_prompt(comfy_server, post_prompt, wait_for_history, ui_to_api):
    # The smallest real run: an image made by core nodes, scaled, saved. Proves /prompt, history
    # and the UI->API conversion work end to end before camgrid nodes are tried the same way.
    from PIL import Image

    Image.new("RGB", (8, 6), (255, 0, 0)).save(os.path.join(comfy_server.input_dir, "red.png"))
    workflow = {
        "nodes": [
            {"id": 1, "type": "LoadImage", "mode": 0, "inputs": [], "widgets_values": ["red.png", "image"],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1]}]},
            {"id": 2, "type": "ImageScale", "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
             "widgets_values": ["nearest-exact", 4, 2, "disabled"],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2]}]},
            {"id": 3, "type": "SaveImage", "mode": 0, "inputs": [{"name": "images", "type": "IMAGE", "link": 2}],
             "widgets_values": ["camgrid_host_test"]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
    }
    entry = wait_for_history(post_prompt(ui_to_api(workflow)), timeout=120)
    saved = entry["outputs"]["3"]["images"][0]
    with Image.open(os.path.join(comfy_server.output_dir, saved["subfolder"], saved["filename"])) as img:
        assert img.size == (4, 2)
        assert img.convert("RGB").getpixel((0, 0)) == (255, 0, 0)


def test_refused_prompt_names_the_problem(post_prompt):
    with pytest.raises(ComfyError, match="Required input is missing.*images"):
        post_prompt({"1": {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}})
