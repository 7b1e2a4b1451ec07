"""ui_to_api on the recorded core node definitions (no server needed)."""
import pytest

from ui_to_api import ui_to_api, widget_inputs


def _node(id_, type_, widgets=None, inputs=(), outputs=(), mode=0, title=None):
    node = {"id": id_, "type": type_, "mode": mode, "inputs": list(inputs), "outputs": list(outputs)}
    if widgets is not None:
        node["widgets_values"] = widgets
    if title:
        node["title"] = title
    return node


def _in(name, type_, link, widget=False):
    entry = {"name": name, "type": type_, "link": link}
    if widget:
        entry["widget"] = {"name": name}
    return entry


def test_widget_order_skips_sockets_and_hidden_inputs(core_object_info):
    assert [n for n, _ in widget_inputs(core_object_info["KSampler"])] == [
        "seed", "steps", "cfg", "sampler_name", "scheduler", "denoise"]
    assert [n for n, _ in widget_inputs(core_object_info["SaveVideo"])] == ["filename_prefix", "format", "codec"]
    assert [n for n, _ in widget_inputs(core_object_info["CreateVideo"])] == ["fps"]  # audio is a socket


def test_seed_control_value_is_skipped_and_links_followed(core_object_info):
    wf = {
        "nodes": [
            _node(1, "UNETLoader", ["wan.safetensors", "default"], outputs=[{"type": "MODEL"}]),
            _node(2, "Reroute", inputs=[_in("", "*", 1)], outputs=[{"type": "MODEL"}]),
            _node(3, "KSampler", [42, "randomize", 20, 6.0, "euler", "simple", 1.0],
                  inputs=[_in("model", "MODEL", 2)], title="Sampler"),
            _node(4, "Note", ["just text"]),
        ],
        "links": [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"]],
    }
    api = ui_to_api(wf, core_object_info)
    assert set(api) == {"1", "3"}  # Reroute and Note exist only in the editor
    assert api["3"]["inputs"] == {"seed": 42, "steps": 20, "cfg": 6.0, "sampler_name": "euler",
                                  "scheduler": "simple", "denoise": 1.0, "model": ["1", 0]}
    assert api["3"]["_meta"]["title"] == "Sampler"
    assert api["1"]["inputs"] == {"unet_name": "wan.safetensors", "weight_dtype": "default"}


def test_old_workflows_without_control_value_still_map(core_object_info):
    wf = {"nodes": [_node(1, "RandomNoise", [7])], "links": []}
    assert ui_to_api(wf, core_object_info)["1"]["inputs"] == {"noise_seed": 7}


def test_converted_widget_link_wins_and_primitive_value_stays(core_object_info):
    wf = {
        "nodes": [
            _node(1, "LoadImage", ["a.png", "image"], outputs=[{"type": "IMAGE"}, {"type": "MASK"}]),
            _node(2, "PrimitiveNode", [640], outputs=[{"type": "INT", "widget": {"name": "width"}}]),
            _node(5, "EmptyHunyuanLatentVideo", [33, 96, 9, 1], outputs=[{"type": "LATENT"}]),
            _node(3, "ImageScale", ["bilinear", 640, 360, "center"],
                  inputs=[_in("image", "IMAGE", 1), _in("width", "INT", 2, widget=True),
                          _in("height", "INT", 3, widget=True)]),
        ],
        # a real link overrides the widget value (whether types fit is the server's check)
        "links": [[1, 1, 0, 3, 0, "IMAGE"], [2, 2, 0, 3, 1, "INT"], [3, 5, 0, 3, 2, "INT"]],
    }
    inputs = ui_to_api(wf, core_object_info)["3"]["inputs"]
    assert inputs == {"image": ["1", 0], "upscale_method": "bilinear", "width": 640,
                      "height": ["5", 0], "crop": "center"}


def test_bypassed_node_passes_matching_input_through_and_muted_node_vanishes(core_object_info):
    wf = {
        "nodes": [
            _node(1, "LoadImage", ["a.png", "image"], outputs=[{"type": "IMAGE"}, {"type": "MASK"}]),
            _node(2, "ImageScale", ["bilinear", 8, 8, "disabled"], inputs=[_in("image", "IMAGE", 1)],
                  outputs=[{"type": "IMAGE"}], mode=4),
            _node(3, "SaveImage", ["out"], inputs=[_in("images", "IMAGE", 2)]),
            _node(4, "PreviewImage", [], inputs=[_in("images", "IMAGE", 3)], mode=2),
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"], [3, 1, 0, 4, 0, "IMAGE"]],
    }
    api = ui_to_api(wf, core_object_info)
    assert set(api) == {"1", "3"}
    assert api["3"]["inputs"] == {"filename_prefix": "out", "images": ["1", 0]}


def test_new_link_objects_are_understood(core_object_info):
    wf = {
        "nodes": [_node(1, "LoadImage", ["a.png", "image"]),
                  _node(2, "SaveImage", ["x"], inputs=[_in("images", "IMAGE", 9)])],
        "links": [{"id": 9, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "IMAGE"}],
    }
    assert ui_to_api(wf, core_object_info)["2"]["inputs"]["images"] == ["1", 0]


def test_unknown_node_and_subgraph_are_refused(core_object_info):
    with pytest.raises(ValueError, match="NotAThing.*not installed"):
        ui_to_api({"nodes": [_node(1, "NotAThing", [])], "links": []}, core_object_info)
    with pytest.raises(ValueError, match="subgraphs"):
        ui_to_api({"nodes": [], "links": [], "definitions": {"subgraphs": [{"id": "x"}]}}, core_object_info)
