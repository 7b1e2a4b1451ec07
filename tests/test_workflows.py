"""Every shipped workflow checked against the node definitions and the front end's conventions (no ComfyUI needed).

Ours come from the node classes, core ones from tests/host/core_nodes.json (recorded from a real
server). Checked: node ids exist, links join sockets of the same type, widget counts and values
fit the inputs, our VALIDATE_INPUTS accept the values, the API conversion works; the templates sit
where ComfyUI's template browser looks (`example_workflows/`, a .jpg beside each); every model file a
workflow names carries the metadata the missing-models dialog lists (or the note says there is no
download); no two nodes overlap; the workflow opens beside the sidebar at a zoom that draws text.
tests/host/test_frontend.py checks the same in the real front end.
"""
import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "example_workflows"
WORKFLOWS = sorted(FOLDER.glob("*.json"))
sys.path.insert(0, str(REPO / "tests" / "host"))
from ui_to_api import ui_to_api  # noqa: E402

_spec = importlib.util.spec_from_file_location("make_workflows", FOLDER / "make_workflows.py")
make_workflows = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_workflows)

# Combos whose options are the user's files: any file name is a valid value in a shared workflow.
FILE_INPUTS = {"dit_name", "sync_weights", "rig_file", "clip_name", "vae_name", "unet_name", "file"}
# The ComfyUI model folder each model-file input reads (what the missing-models dialog must name).
MODEL_FOLDERS = {"dit_name": "diffusion_models", "sync_weights": "camgrid", "clip_name": "text_encoders",
                 "vae_name": "vae", "unet_name": "diffusion_models"}
WEIGHT_SUFFIXES = (".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin")
VIRTUAL = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
NOTES = {"Note", "MarkdownNote"}
ANY = "*"
TITLE_HEIGHT = 30          # the front end draws a node's title bar above its `pos`
MIN_TEXT_SCALE = 8 / 14    # below this zoom the front end draws nodes without text (8 px minimum font, 14 px text)


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


def by_key():
    return {load(p)["extra"]["camgrid"]["id"]: p for p in WORKFLOWS}


@pytest.fixture(scope="module")
def defs():
    return make_workflows.all_object_info()


def test_templates_sit_where_comfys_template_browser_looks():
    # ComfyUI serves `<pack>/example_workflows/*.json` with `<name>.jpg` as the thumbnail and shows the
    # file name as the card's title (app/custom_node_manager.py); a second folder it also scans
    # (workflows/, examples/, ...) would list every workflow twice.
    for other in ("example", "examples", "workflow", "workflows"):
        assert not (REPO / other).exists(), f"{other}/ would make ComfyUI list templates twice; use example_workflows/"
    assert set(by_key()) == set(make_workflows.WORKFLOWS)
    for key, (title, _build) in make_workflows.WORKFLOWS.items():
        path = FOLDER / f"{title}.json"
        assert path.is_file(), f"{path.name} is missing: run example_workflows/make_workflows.py"
        thumb = path.with_suffix(".jpg")
        assert thumb.is_file() and thumb.read_bytes()[:2] == b"\xff\xd8", f"{thumb.name} is missing or not a JPEG"
        assert not re.search(r'[<>:"/\\|?*]', title), f"{title!r} is not a valid file name on Windows"
        assert len(title) <= 28, f"{title!r} is cut short on the template card (about 28 characters fit)"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert '"example_workflows/*.json"' in pyproject and '"example_workflows/*.jpg"' in pyproject


def test_workflows_are_up_to_date_with_the_nodes(defs, monkeypatch, tmp_path):
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(tmp_path))
    for key in make_workflows.WORKFLOWS:
        path = make_workflows.workflow_path(key)
        built = make_workflows.build(key, defs)
        assert load(path) == json.loads(json.dumps(built)), (
            f"{path.name} differs from what example_workflows/make_workflows.py builds: run it and commit the result")


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
    paths = by_key()
    for key in ("text_to_multicamera_syncammaster", "text_to_4d_hard_sync"):
        wf = load(paths[key])
        latent = next(n for n in wf["nodes"] if n["type"] == "CamGridEmptyLatent")
        assert latent["widgets_values"][:4] == [4, 832, 480, 81]
        sampler = next(n for n in wf["nodes"] if n["type"] == "CamGridSampler")
        assert sampler["widgets_values"][2:5] == [50, 5.0, 5.0]


def _model_files(wf, defs):
    """(node, input name, file name) for every model file a loader of the workflow names."""
    for node in wf["nodes"]:
        if node["type"] in VIRTUAL:
            continue
        values = iter(node["widgets_values"])
        for name, spec in make_workflows.widget_specs(defs[node["type"]]):
            value = next(values)
            if make_workflows._options(spec).get("control_after_generate"):
                next(values)
            if name in MODEL_FOLDERS and isinstance(value, str) and value.lower().endswith(WEIGHT_SUFFIXES):
                yield node, name, value


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_every_model_file_has_download_metadata_or_a_note(path, defs):
    wf = load(path)
    notes = "\n".join(n["widgets_values"][0] for n in wf["nodes"] if n["type"] in NOTES)
    files = list(_model_files(wf, defs))
    if wf["extra"]["camgrid"]["id"] != "builtin_tiny_demo":
        assert {name for _, name, _ in files} >= {"dit_name", "clip_name", "vae_name"}
    for node, name, file in files:
        folder = MODEL_FOLDERS[name]
        # the front end lists `properties.models` entries whose name is one of the node's widget values
        # and which have a url (getSelectedModelsMetadata / the missing-models check in its app.ts)
        entries = [m for m in node["properties"].get("models", []) if m["name"] == file]
        assert file in notes and f"`{folder}/`" in notes, f"{path.name}: the note does not say where {file} goes"
        if entries:
            (entry,) = entries
            assert entry["directory"] == folder, f"{path.name}: {file} belongs in {folder}, not {entry['directory']}"
            assert entry["url"].startswith("https://huggingface.co/") and "/resolve/" in entry["url"], entry["url"]
            assert f"({entry['url']})" in notes, f"{path.name}: the note has no link for {file}"
        else:
            line = next(ln for ln in notes.splitlines() if file in ln)
            assert "no public download" in line, f"{path.name}: {file} has no url and the note does not say why"


def _boxes(wf):
    return {n["id"]: (n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["size"][0], n["size"][1] + TITLE_HEIGHT)
            for n in wf["nodes"]}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_no_two_nodes_overlap_and_no_node_is_smaller_than_the_editor_draws_it(path, defs):
    wf = load(path)
    boxes = _boxes(wf)
    ids = sorted(boxes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = boxes[a], boxes[b]
            overlap = min(ax + aw, bx + bw) - max(ax, bx) > 0 and min(ay + ah, by + bh) - max(ay, by) > 0
            assert not overlap, f"{path.name}: nodes {a} and {b} overlap (title bars included)"
    # the editor enlarges a node to what its sockets and widgets need (a row each); a saved size below
    # that would grow on load and could reach into the next node
    for node in wf["nodes"]:
        if node["type"] in VIRTUAL:
            continue
        node_def = defs[node["type"]]
        rows = max(len(make_workflows.socket_specs(node_def)), len(node_def["output"]))
        assert node["size"][1] >= 20 * rows + 24 * len(node["widgets_values"]), f"{path.name}: node {node['id']} too small"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_the_workflow_opens_beside_the_sidebar_at_a_zoom_that_draws_text(path):
    wf = load(path)
    ds = wf["extra"]["ds"]
    assert MIN_TEXT_SCALE <= ds["scale"] <= 1.0
    left = min(x for x, _, _, _ in _boxes(wf).values())
    top = min(y for _, y, _, _ in _boxes(wf).values())
    screen_x, screen_y = (left + ds["offset"][0]) * ds["scale"], (top + ds["offset"][1]) * ds["scale"]
    # the sidebar is ~56 px wide, the tabs and the workflow menu ~80 px tall; not far beyond either
    assert 60 <= screen_x <= 200 and 90 <= screen_y <= 200, (screen_x, screen_y)
    assert not math.isclose(ds["offset"][0], 0) or not math.isclose(ds["offset"][1], 0)
