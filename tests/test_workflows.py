"""Every shipped workflow checked against the node definitions (no ComfyUI needed).

Ours come from the node classes, core ones from tests/host/core_nodes.json (recorded from a real
server). Checked: node ids exist, links join sockets of the same type, widget counts and values
fit the inputs, our VALIDATE_INPUTS accept the values, the API conversion works, a thumbnail exists.
"""
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
sys.path.insert(0, str(REPO / "tests" / "host"))
from ui_to_api import ui_to_api  # noqa: E402

_spec = importlib.util.spec_from_file_location("make_workflows", REPO / "workflows" / "make_workflows.py")
make_workflows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_workflows)

# Combos whose options are the user's files: any file name is a valid value in a shared workflow.
FILE_INPUTS = {"dit_name", "sync_weights", "rig_file", "clip_name", "vae_name", "unet_name", "file"}
VIRTUAL = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
ANY = "*"


@pytest.fixture(scope="module")
def defs():
    return make_workflows.all_object_info()


def test_the_expected_workflows_ship_with_thumbnails():
    names = {p.stem for p in WORKFLOWS}
    assert {"text_to_multicamera_syncammaster", "video_to_new_camera_recammaster", "text_to_4d_hard_sync",
            "text_to_4d_soft_sync", "builtin_tiny_demo"} <= names
    for path in WORKFLOWS:
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file() and thumb.read_bytes()[:2] == b"\xff\xd8", f"{thumb.name} is missing or not a JPEG"


def test_workflows_are_up_to_date_with_the_nodes(defs, monkeypatch, tmp_path):
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(tmp_path))
    for path in WORKFLOWS:
        built = make_workflows.WORKFLOWS[path.stem](defs)
        assert json.loads(path.read_text()) == json.loads(json.dumps(built)), (
            f"{path.name} differs from what workflows/make_workflows.py builds: run it and commit the result")


def _check_value(where, spec, value):
    kind, opts = spec[0], (spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {})
    if isinstance(kind, list) or kind == "COMBO":
        options = kind if isinstance(kind, list) else opts.get("options", [])
        assert value in options, f"{where}: {value!r} is not one of {options}"
    elif kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not an INT"
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {value!r} is not a FLOAT"
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), f"{where}: {value!r} is not a BOOLEAN"
    elif kind == "STRING":
        assert isinstance(value, str), f"{where}: {value!r} is not a STRING"
    if kind in ("INT", "FLOAT"):
        assert opts.get("min", value) <= value <= opts.get("max", value), f"{where}: {value} outside its range"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_matches_node_definitions(path, defs):
    wf = json.loads(path.read_text())
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert wf["last_node_id"] >= max(nodes) and wf["last_link_id"] >= max(link[0] for link in wf["links"])
    for node in nodes.values():
        kind = node["type"]
        if kind in VIRTUAL:
            continue
        assert kind in defs, f"{path.name}: node {node['id']} uses unknown node id {kind!r}"
        node_def = defs[kind]
        # widgets: count and values
        widgets = make_workflows.widget_specs(node_def)
        values = list(node["widgets_values"])
        by_name = {}
        for name, spec in widgets:
            assert values, f"{path.name}: {kind} node {node['id']} has too few widget values"
            value = values.pop(0)
            where = f"{path.name}: {kind}.{name}"
            if name not in FILE_INPUTS:
                _check_value(where, spec, value)
            else:
                assert isinstance(value, str) and value, f"{where}: a file name is needed"
            by_name[name] = value
            if (spec[1] if len(spec) > 1 else {}).get("control_after_generate"):
                assert values.pop(0) in ("fixed", "increment", "decrement", "randomize")
        assert not values, f"{path.name}: {kind} node {node['id']} has extra widget values {values}"
        if kind.startswith("CamGrid") and kind != "CamGridBuiltinModel":  # that one checks the install
            validate = getattr(make_workflows._import_camgrid()[0][kind], "VALIDATE_INPUTS", None)
            if validate is not None:
                import inspect

                wanted = {k: v for k, v in by_name.items() if k in inspect.signature(validate).parameters
                          and k not in FILE_INPUTS}
                assert validate(**wanted) is True, f"{path.name}: {kind} rejects {wanted}: {validate(**wanted)}"
        # required sockets are all connected
        sockets = dict(make_workflows.socket_specs(node_def))
        required = node_def["input"].get("required", {})
        linked = {inp["name"] for inp in node["inputs"] if inp.get("link") is not None}
        for name in sockets:
            if name in required:
                assert name in linked, f"{path.name}: {kind} node {node['id']} input {name!r} is not connected"
    # links: both ends exist and carry the same type
    for link_id, a, a_slot, b, b_slot, kind in wf["links"]:
        src, dst = nodes[a], nodes[b]
        out_types = defs[src["type"]]["output"]
        assert a_slot < len(out_types) and out_types[a_slot] == kind, f"{path.name}: link {link_id} type {kind}"
        inp = dst["inputs"][b_slot]
        assert inp["link"] == link_id
        declared = dict(make_workflows.socket_specs(defs[dst["type"]]))[inp["name"]]
        assert declared in (kind, ANY), f"{path.name}: link {link_id} carries {kind} into {dst['type']}.{inp['name']} ({declared})"
        assert link_id in src["outputs"][a_slot]["links"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_workflow_converts_to_api_format(path, defs):
    api = ui_to_api(json.loads(path.read_text()), defs)
    sampler = next(n for n in api.values() if n["class_type"] == "CamGridSampler")
    assert {"model", "positive", "negative", "latent", "seed", "steps", "sync_mode"} <= set(sampler["inputs"])
    assert isinstance(sampler["inputs"]["model"], list)  # a link
    assert any(n["class_type"] == "SaveVideo" for n in api.values())


def test_defaults_in_the_real_model_workflows():
    for name in ("text_to_multicamera_syncammaster", "text_to_4d_hard_sync"):
        wf = json.loads((REPO / "workflows" / f"{name}.json").read_text())
        latent = next(n for n in wf["nodes"] if n["type"] == "CamGridEmptyLatent")
        assert latent["widgets_values"][:4] == [4, 832, 480, 81]
        sampler = next(n for n in wf["nodes"] if n["type"] == "CamGridSampler")
        assert sampler["widgets_values"][2:5] == [50, 5.0, 5.0]
