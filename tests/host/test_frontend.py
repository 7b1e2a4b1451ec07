"""The example workflows in ComfyUI's real front end (headless Chromium driven by frontend_check.py).

    COMFYUI_PATH=/path/to/ComfyUI python -m pytest tests/host/test_frontend.py -q

Skipped without COMFYUI_PATH, Chromium, Node.js or playwright-core (nothing is downloaded; see
frontend_check.py). Loads every workflow as a user's browser does and checks: no missing-node
dialog; the missing-models dialog lists exactly the model files that are absent (one is put in place
to show present files are not listed), in their folders; no two nodes overlap as drawn, and the
editor did not have to enlarge any node; the view opens as saved, with the graph's corner visible
beside the sidebar; the template browser shows the pack's templates by title with thumbnails. The
built-in demo is queued from the page: live previews arrive while it samples and the nodes still do
not overlap once its pictures and videos are shown. Screenshots go to $CAMGRID_SCREENS (default: a
temporary folder).
"""
import os

import pytest

import frontend_check


@pytest.fixture(scope="module")
def report(comfyui_path, tmp_path_factory):
    missing = frontend_check.missing_tools()
    if missing:
        pytest.skip("front-end check needs " + "; ".join(missing))
    screens = os.environ.get("CAMGRID_SCREENS") or str(tmp_path_factory.mktemp("screens"))
    result = frontend_check.check(comfyui_path, screens, run="builtin_tiny_demo")
    print(frontend_check.summary(result))
    return result


def workflows(report):
    return sorted(report["workflows"].items())


def test_no_missing_node_types(report):
    for key, wf in workflows(report):
        assert wf["missingNodes"] == [], f"{key}: the front end does not know {wf['missingNodes']}"
        assert not any("Missing Node" in text for text in wf["dialogs"]), f"{key}: {wf['dialogs']}"


def test_missing_models_dialog_lists_exactly_the_absent_files(report):
    present_folder, present_name = report["present_file"]
    for key, wf in workflows(report):
        named = [(m["directory"], m["name"]) for node in wf["json"]["nodes"]
                 for m in node.get("properties", {}).get("models", [])]
        expected = sorted({m for m in named if m != (present_folder, present_name)})
        found = sorted((m["directory"], m["name"]) for m in wf["missingModels"])
        assert found == expected, f"{key}: the front end found {found} missing, expected {expected}"
        dialog = "\n".join(wf["dialogs"])
        for directory, name in expected:
            assert f"{directory} / {name}" in dialog, f"{key}: the dialog does not list {directory} / {name}"
        if key != "builtin_tiny_demo":
            assert expected, f"{key}: a model workflow must name its model files"


def test_nodes_do_not_overlap_as_drawn_and_keep_their_saved_size(report):
    for key, wf in workflows(report):
        layout = wf["layout"]
        assert layout["overlaps"] == [], f"{key}: overlapping nodes {layout['overlaps']}"
        saved = {n["id"]: n["size"] for n in wf["json"]["nodes"]}
        for node in layout["nodes"]:
            drawn = [node["box"][2], node["box"][3] - 30]
            assert drawn == pytest.approx(saved[node["id"]], abs=1), (
                f"{key}: the editor resized node {node['id']} {node['title']} to {drawn} (saved {saved[node['id']]})")


def test_workflows_open_at_their_saved_view_beside_the_sidebar(report):
    for key, wf in workflows(report):
        ds = wf["json"]["extra"]["ds"]
        view = wf["layout"]["view"]
        assert view["scale"] == pytest.approx(ds["scale"]) and view["offset"] == pytest.approx(ds["offset"])
        assert wf["layout"]["cornerVisible"], f"{key}: the graph's top-left corner is under {wf['layout']['cornerCoveredBy']}"


def test_template_browser_shows_titles_and_thumbnails(report):
    text = report["templates"]["text"]
    for key, wf in workflows(report):
        assert wf["title"] in text, f"the template browser does not show {wf['title']!r}"
    images = report["templates"]["images"]
    assert not [img for img in images if "/assets/images/default" in img["src"]], f"cards without a thumbnail: {images}"
    ours = [img for img in images if img["loaded"] and img["size"] == [512, 512]]
    assert len(ours) == len(report["workflows"]), f"expected {len(report['workflows'])} 512x512 thumbnails: {images}"


def test_builtin_demo_runs_with_live_previews_and_no_overlaps_after(report):
    run = report["workflows"]["builtin_tiny_demo"]["run"]
    assert [s["status"] for s in run["status"]] == ["success"], run["status"]
    steps = report["workflows"]["builtin_tiny_demo"]["json"]["nodes"]
    sampler = next(n for n in steps if n["type"] == "CamGridSampler")
    assert run["previews"] >= sampler["widgets_values"][2] // 2, "too few live previews while sampling"
    assert run["layout"]["overlaps"] == [], f"nodes overlap once the outputs are shown: {run['layout']['overlaps']}"
