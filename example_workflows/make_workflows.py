"""Writes the example workflows (ComfyUI UI format) of this folder.

    python example_workflows/make_workflows.py          # from anywhere: it uses the nodes of its own checkout

ComfyUI's template browser lists every `*.json` of a pack's `example_workflows/` folder with the
`.jpg` of the same name as its thumbnail, and shows the *file name* as the card's title (the server
sends only names: `/workflow_templates` in ComfyUI's app/custom_node_manager.py), so the file names
here are the titles. The thumbnails are screenshots of the workflows in the real front end, the
built-in demo's after a run (`python tests/host/frontend_check.py --comfyui PATH --screens DIR --run
builtin_tiny_demo --thumbnails`, see tests/host/README.md).

Everything is derived from the node definitions (ours from the classes, core ones from
tests/host/core_nodes.json), so a workflow can never drift from the nodes' inputs:
- widget values are filled in by input name, in the order the editor expects;
- node sizes follow the front end's own rule (a row per socket, a row per widget), so the saved
  size is what the editor draws; nodes that show pictures after a run get room for them;
- nodes are laid out in columns, never overlapping (title bars included), and the workflow opens
  with its left edge beside the sidebar at a zoom where the editor still draws text;
- every model file a loader names carries `properties.models` (name, url, directory), which the
  front end's missing-models dialog lists, and a "Model links" note says where each file goes.
tests/test_workflows.py checks the written files.
"""
from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import NamedTuple, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORE_NODES = REPO / "tests" / "host" / "core_nodes.json"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NEGATIVE = ("Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
            "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
            "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
            "picture, messy background, three legs, many people in the background, walking backwards")


# ---------------------------------------------------------------------------------------------
# model files: what the workflows name, where each goes, where to get it
# ---------------------------------------------------------------------------------------------

class ModelFile(NamedTuple):
    name: str             # the file name the workflow's loader names
    directory: str        # ComfyUI model folder (models/<directory>/)
    url: Optional[str]    # a direct download; None when there is no public file
    source: str           # where it comes from, for the note (markdown)


WAN_REPACK = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/"
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN_T2V = "wan2.1_t2v_1.3B_fp16.safetensors"
SYNCAMMASTER = "SynCamMaster-Wan2.1-step20000.ckpt"
RECAMMASTER = "ReCamMaster-Wan2.1-step20000.ckpt"
SYNC_WEIGHTS = "camgrid-sync-wan2.1-1.3B.safetensors"
EXAMPLE_VIDEO = "recammaster_example_video_10.mp4"

MODEL_FILES = {m.name: m for m in (
    ModelFile(UMT5, "text_encoders", WAN_REPACK + f"text_encoders/{UMT5}",
              "Comfy-Org/Wan_2.1_ComfyUI_repackaged (umt5_xxl_fp16 works too)"),
    ModelFile(WAN_VAE, "vae", WAN_REPACK + f"vae/{WAN_VAE}", "Comfy-Org/Wan_2.1_ComfyUI_repackaged"),
    ModelFile(WAN_T2V, "diffusion_models", WAN_REPACK + f"diffusion_models/{WAN_T2V}",
              "Comfy-Org/Wan_2.1_ComfyUI_repackaged (the bf16 file and the 14B T2V work too)"),
    ModelFile(SYNCAMMASTER, "diffusion_models",
              "https://huggingface.co/KwaiVGI/SynCamMaster-Wan2.1/resolve/main/step20000.ckpt",
              "KwaiVGI/SynCamMaster-Wan2.1: `step20000.ckpt`, saved under this name (the dialog cannot fetch "
              "`.ckpt` files: download it yourself)"),
    ModelFile(RECAMMASTER, "diffusion_models",
              "https://huggingface.co/KwaiVGI/ReCamMaster-Wan2.1/resolve/main/step20000.ckpt",
              "KwaiVGI/ReCamMaster-Wan2.1: `step20000.ckpt`, saved under this name (the dialog cannot fetch "
              "`.ckpt` files: download it yourself)"),
    ModelFile(SYNC_WEIGHTS, "camgrid", None,
              "**no public download**: camgrid sync weights are made with `python -m camgrid train` (README, "
              "*Command line*); pick yours in the Model Loader's `sync_weights`, or use the hard-sync workflow, "
              "which needs none"),
)}


# ---------------------------------------------------------------------------------------------
# node definitions in /object_info form
# ---------------------------------------------------------------------------------------------

def _import_camgrid():
    """The node classes of THIS checkout (not of whatever camgrid is installed): tools/camgrid_checkout.py."""
    sys.path.insert(0, str(REPO / "tools"))
    from camgrid_checkout import use_this_checkout

    use_this_checkout(REPO)
    from camgrid.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    return NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS


def _spec(entry):
    kind = entry[0]
    opts = dict(entry[1]) if len(entry) > 1 else {}
    return [list(kind) if isinstance(kind, (list, tuple)) else kind, opts]


def camgrid_object_info() -> dict:
    """Our node classes as /object_info entries (what ComfyUI derives from a V1 class)."""
    classes, names = _import_camgrid()
    info = {}
    for node_id, cls in classes.items():
        spec = cls.INPUT_TYPES()
        info[node_id] = {
            "input": {s: {k: _spec(v) for k, v in spec.get(s, {}).items()} for s in ("required", "optional") if s in spec},
            "input_order": {s: list(spec.get(s, {})) for s in ("required", "optional") if s in spec},
            "output": list(cls.RETURN_TYPES),
            "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
            "name": node_id, "display_name": names.get(node_id, node_id), "category": cls.CATEGORY,
            "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
        }
    return info


def core_object_info() -> dict:
    with open(CORE_NODES, encoding="utf-8") as f:
        return json.load(f)["nodes"]


def all_object_info() -> dict:
    return {**core_object_info(), **camgrid_object_info()}


def _options(spec) -> dict:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def is_widget(spec) -> bool:
    return not _options(spec).get("forceInput") and (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES)


def widget_specs(node_def: dict) -> list[tuple[str, list]]:
    out = []
    for section in ("required", "optional"):
        specs = node_def["input"].get(section, {})
        for name in node_def.get("input_order", {}).get(section, list(specs)):
            if name in specs and is_widget(specs[name]):
                out.append((name, specs[name]))
    return out


def socket_specs(node_def: dict) -> list[tuple[str, str]]:
    out = []
    for section in ("required", "optional"):
        specs = node_def["input"].get(section, {})
        for name in node_def.get("input_order", {}).get(section, list(specs)):
            if name in specs and not is_widget(specs[name]):
                out.append((name, specs[name][0]))
    return out


def widget_default(spec):
    opts = _options(spec)
    if "default" in opts:
        return opts["default"]
    options = spec[0] if isinstance(spec[0], list) else opts.get("options", [])
    return options[0] if options else ""


# ---------------------------------------------------------------------------------------------
# sizes and layout, in the front end's graph units
# ---------------------------------------------------------------------------------------------

TITLE_H = 30           # the title bar is drawn above a node's `pos`
SLOT_H = 20            # one row per socket (inputs and outputs side by side)
WIDGET_H = 24          # one row per widget
MULTILINE_H = 120      # a multi-line text box
NODE_PADDING = 14
COLUMN_GAP = 70
ROW_GAP = 40           # between one node's bottom and the next one's title bar
OPEN_SCALE = 0.6       # the editor stops drawing text below ~0.57 (8 px fonts); the official templates open at ~0.57
OPEN_AT = (90, 110)    # screen position of the graph's top-left corner: right of the sidebar, below the tabs


def body_height(node_def: dict, widget_values: int) -> int:
    """The height the front end computes for a node (LGraphNode.computeSize in ComfyUI's litegraph):
    a row per socket (inputs and outputs share rows), a row per widget (the seed's "control after
    generate" is one more), an upload button for upload combos, taller multi-line text boxes."""
    specs = widget_specs(node_def)
    uploads = sum(1 for _, s in specs if _options(s).get("video_upload") or _options(s).get("image_upload"))
    multiline = sum(1 for _, s in specs if s[0] == "STRING" and _options(s).get("multiline"))
    rows = max(len(socket_specs(node_def)), len(node_def["output"]))
    return SLOT_H * rows + WIDGET_H * (widget_values + uploads) + (MULTILINE_H - WIDGET_H) * multiline + NODE_PADDING


def note_height(markdown: str, chars_per_line: int = 66, line_height: int = 16) -> int:
    """Height of a markdown note: its lines wrapped at the note's width (link targets are not shown)."""
    shown = re.sub(r"\]\([^)]*\)", "]", markdown)
    rows = sum(max(1, math.ceil(len(line) / chars_per_line)) for line in shown.splitlines())
    return 60 + line_height * rows


# Nodes that draw pictures or text under their widgets (after a run, or while sampling): room for them,
# as (width, extra height) - the picture is drawn across the node's width, at its own aspect ratio.
PICTURE_ROOM = {
    "CamGridSampler": (400, 270),      # the live preview: the views tiled, ~1.7:1, plus its size caption
    "PreviewImage": (400, 230),        # the rig picture, 2:1
    "SaveImage": (440, 240),           # the view x time contact sheet
    "SaveAnimatedWEBP": (440, 300),    # the views one after another
    "SaveVideo": (480, 320),           # the video player
    "LoadVideo": (400, 260),           # the input video's player
    "PreviewAny": (400, 150),          # the sampler's report
}
DEFAULT_WIDTH = {"CamGridModelLoader": 400, "CLIPLoader": 400, "VAELoader": 400, "CLIPTextEncode": 440,
                 "CamGridBuiltinModel": 400}


class Workflow:
    """Nodes and links of one workflow; `add` puts a node in a layout column, `to_json` lays them out."""

    def __init__(self, defs: dict, key: str):
        self.defs, self.key = defs, key
        self.nodes, self.links, self.columns = [], [], {}

    def add(self, kind: str, column: int, title: str | None = None, **widgets) -> dict:
        node_def = self.defs[kind]
        values = []
        unknown = set(widgets) - {n for n, _ in widget_specs(node_def)}
        if unknown:
            raise KeyError(f"{kind} has no widgets {sorted(unknown)}")
        for name, spec in widget_specs(node_def):
            values.append(widgets.get(name, widget_default(spec)))
            if _options(spec).get("control_after_generate"):
                values.append("fixed")
        width, room = PICTURE_ROOM.get(kind, (DEFAULT_WIDTH.get(kind, 360), 0))
        node = {
            "id": len(self.nodes) + 1, "type": kind, "pos": [0, 0],
            "size": [width, body_height(node_def, len(values)) + room],
            "flags": {}, "order": len(self.nodes), "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in socket_specs(node_def)],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(node_def.get("output_name", node_def["output"]), node_def["output"]))],
            "properties": {"Node name for S&R": kind},
            "widgets_values": values,
        }
        models = [MODEL_FILES[v] for v in values if isinstance(v, str) and v in MODEL_FILES]
        if any(m.url for m in models):  # what the missing-models dialog reads (it skips entries without a url)
            node["properties"]["models"] = [{"name": m.name, "url": m.url, "directory": m.directory}
                                            for m in models if m.url]
        if title:
            node["title"] = title
        self._place(node, column)
        return node

    def note(self, column: int, title: str, text: str) -> dict:
        """A markdown note (a front-end-only node; not sent to the server), tall enough for its text."""
        node = {"id": len(self.nodes) + 1, "type": "MarkdownNote", "pos": [0, 0], "size": [440, note_height(text)],
                "flags": {}, "order": len(self.nodes), "mode": 0, "inputs": [], "outputs": [], "title": title,
                "properties": {}, "widgets_values": [text], "color": "#432", "bgcolor": "#653"}
        self._place(node, column)
        return node

    def _place(self, node: dict, column: int) -> None:
        self.nodes.append(node)
        self.columns.setdefault(column, []).append(node)

    def link(self, src: dict, output: str, dst: dict, input_name: str) -> None:
        slot = next(i for i, o in enumerate(src["outputs"]) if o["name"] == output)
        target = next(i for i, inp in enumerate(dst["inputs"]) if inp["name"] == input_name)
        link_id = len(self.links) + 1
        kind = src["outputs"][slot]["type"]
        self.links.append([link_id, src["id"], slot, dst["id"], target, kind])
        src["outputs"][slot]["links"].append(link_id)
        dst["inputs"][target]["link"] = link_id

    def layout(self) -> None:
        """Columns left to right, nodes top to bottom, title bars included in the spacing."""
        x = 0
        for column in sorted(self.columns):
            y = TITLE_H
            for node in self.columns[column]:
                node["pos"] = [x, y]
                y += node["size"][1] + ROW_GAP + TITLE_H
            x += max(n["size"][0] for n in self.columns[column]) + COLUMN_GAP

    def to_json(self, description: str) -> dict:
        self.layout()
        x0 = min(n["pos"][0] for n in self.nodes)
        y0 = min(n["pos"][1] for n in self.nodes) - TITLE_H
        offset = [round(OPEN_AT[0] / OPEN_SCALE - x0, 1), round(OPEN_AT[1] / OPEN_SCALE - y0, 1)]
        return {
            "last_node_id": len(self.nodes), "last_link_id": len(self.links),
            "nodes": self.nodes, "links": self.links, "groups": [], "config": {},
            "extra": {"ds": {"scale": OPEN_SCALE, "offset": offset},
                      "camgrid": {"id": self.key, "description": description}},
            "version": 0.4,
        }


# ---------------------------------------------------------------------------------------------
# the shared pieces of every workflow
# ---------------------------------------------------------------------------------------------

LIVE_PREVIEW = ("Live previews while sampling: start ComfyUI with `--preview-method auto`, or set *Settings -> "
                "Execution -> Live preview method* to `auto`.")


def model_note(wf, title: str, description: str, files: list[str], extra: str = "") -> dict:
    """The "Model links" note: what the workflow does, each model file with its folder and source."""
    lines = [f"## {title}", "", description, "", "**Model files** (ComfyUI/models/...):", ""]
    for name in files:
        m = MODEL_FILES[name]
        link = f"[{m.name}]({m.url})" if m.url else f"`{m.name}`"
        lines.append(f"- `{m.directory}/` {link}: {m.source}")
    if extra:
        lines += ["", extra]
    lines += ["", LIVE_PREVIEW, "", "Outputs go to `ComfyUI/output/camgrid/`."]
    return wf.note(0, "Model links", "\n".join(lines))


def text_nodes(wf, prompt: str, column: int, clip=None):
    """Prompt and negative prompt (and the umT5 loader unless `clip` = (node, output) is given)."""
    if clip is None:
        clip = (wf.add("CLIPLoader", column - 1, clip_name=UMT5, type="wan"), "CLIP")
    pos = wf.add("CLIPTextEncode", column, title="Prompt (all views)", text=prompt)
    neg = wf.add("CLIPTextEncode", column, title="Negative prompt", text=NEGATIVE)
    wf.link(*clip, pos, "clip")
    wf.link(*clip, neg, "clip")
    return pos, neg


def rig_nodes(wf, column: int, length: int, **rig):
    node = wf.add("CamGridRig", column, **rig)
    enc = wf.add("CamGridCameraEncode", column, length=length, convention="auto")
    wf.link(node, "rig", enc, "rig")
    prev = wf.add("CamGridRigPreview", column, size=384)
    wf.link(node, "rig", prev, "rig")
    show = wf.add("PreviewImage", column, title="Camera rig")
    wf.link(prev, "image", show, "images")
    return node, enc


def sampler_node(wf, column, model, model_out, pos, neg, latent, camera, **settings):
    values = dict(seed=42, steps=50, cfg=5.0, shift=5.0, scheduler="unipc", sync_mode="auto", denoise=1.0)
    values.update(settings)
    s = wf.add("CamGridSampler", column, **values)
    wf.link(model, model_out, s, "model")
    wf.link(pos, "CONDITIONING", s, "positive")
    wf.link(neg, "CONDITIONING", s, "negative")
    wf.link(latent, "latent", s, "latent")
    if camera is not None:
        wf.link(camera, "camera", s, "camera")
    info = wf.add("PreviewAny", column, title="What the sampler did")
    wf.link(s, "info", info, "source")
    return s


def outputs(wf, sampler, vae, vae_out, prefix: str, fps: float, column: int):
    decode = wf.add("CamGridDecode", column, rows=0, cols=0, sheet_frames=6)
    wf.link(sampler, "latent", decode, "latent")
    wf.link(vae, vae_out, decode, "vae")
    video = wf.add("CreateVideo", column, fps=fps)
    wf.link(decode, "side_by_side", video, "images")
    sheet = wf.add("SaveImage", column, title="Views x time", filename_prefix=f"camgrid/{prefix}_sheet")
    wf.link(decode, "contact_sheet", sheet, "images")
    save = wf.add("SaveVideo", column + 1, title="All views, side by side", filename_prefix=f"camgrid/{prefix}_grid",
                  format="auto", codec="auto")
    wf.link(video, "VIDEO", save, "video")
    frames = wf.add("SaveAnimatedWEBP", column + 1, title="All views, one after another",
                    filename_prefix=f"camgrid/{prefix}_views", fps=fps, lossless=False, quality=85, method="default")
    wf.link(decode, "frames", frames, "images")
    return decode


def wan_loaders(wf, dit: str, **loader):
    """Column 1: the DiT, umT5 and VAE loaders (umT5 is added by `text_nodes`, between the two)."""
    model = wf.add("CamGridModelLoader", 1, dit_name=dit, dtype="auto", attention="auto", **loader)
    return model


# ---------------------------------------------------------------------------------------------
# the workflows (key -> file name = the title the template browser shows)
# ---------------------------------------------------------------------------------------------

def text_to_multicamera(defs, title):
    wf = Workflow(defs, "text_to_multicamera_syncammaster")
    description = "Four cameras on a 60 degree arc film the same moment (SynCamMaster weights; sync mode auto = syncam)."
    model_note(wf, title, description, [SYNCAMMASTER, UMT5, WAN_VAE])
    model = wan_loaders(wf, SYNCAMMASTER)
    pos, neg = text_nodes(wf, "A golden retriever runs across a sunny park lawn, chasing a red ball, "
                              "trees in the background.", column=2)
    vae = wf.add("VAELoader", 1, vae_name=WAN_VAE)
    latent = wf.add("CamGridEmptyLatent", 2, views=4, width=832, height=480, length=81)
    _, enc = rig_nodes(wf, 3, 81, preset="orbit_arc", views=4, azimuth_span=60.0, elevation=0.0, radius=3.0)
    s = sampler_node(wf, 4, model, "model", pos, neg, latent, enc)
    outputs(wf, s, vae, "VAE", "syncam", 16.0, column=5)
    return wf.to_json(description)


def video_to_new_camera(defs, title):
    wf = Workflow(defs, "video_to_new_camera_recammaster")
    description = ("Re-renders the input video as if filmed by a camera arcing left (ReCamMaster weights; sync mode "
                   "auto = recam). Swap the rig preset for pan / tilt / zoom / translate / arc paths.")
    model_note(wf, title, description, [RECAMMASTER, UMT5, WAN_VAE],
               extra=f"**Input video**: `{EXAMPLE_VIDEO}` is `example_test_data/videos/10.mp4` of "
                     "github.com/KwaiVGI/ReCamMaster, copied into `ComfyUI/input/` under that name; or pick a video "
                     "of your own in Load Video.")
    model = wan_loaders(wf, RECAMMASTER)
    pos, neg = text_nodes(wf, "A man in a dark jacket walks along a city street at dusk, cars passing by.", column=2)
    vae = wf.add("VAELoader", 1, vae_name=WAN_VAE)
    latent = wf.add("CamGridEmptyLatent", 2, views=1, width=832, height=480, length=81)
    load = wf.add("LoadVideo", 3, file=EXAMPLE_VIDEO)
    parts = wf.add("GetVideoComponents", 3)
    wf.link(load, "VIDEO", parts, "video")
    source = wf.add("CamGridSourceVideo", 3, width=832, height=480, length=81, use="auto", view=0, start_frame=0)
    wf.link(parts, "images", source, "images")
    wf.link(vae, "VAE", source, "vae")
    _, enc = rig_nodes(wf, 4, 81, preset="recammaster_arc_left", views=1)
    s = sampler_node(wf, 5, model, "model", pos, neg, latent, enc)
    wf.link(source, "source", s, "source")
    outputs(wf, s, vae, "VAE", "recam", 16.0, column=6)
    return wf.to_json(description)


def text_to_4d(defs, title, key, sync_mode, description, dit_files, **loader):
    wf = Workflow(defs, key)
    model_note(wf, title, description, dit_files + [UMT5, WAN_VAE])
    model = wan_loaders(wf, WAN_T2V, **loader)
    pos, neg = text_nodes(wf, "A campfire on a beach at night, sparks rising, waves rolling in.", column=2)
    vae = wf.add("VAELoader", 1, vae_name=WAN_VAE)
    latent = wf.add("CamGridEmptyLatent", 2, views=4, width=832, height=480, length=81)
    _, enc = rig_nodes(wf, 3, 81, preset="orbit_arc", views=4, azimuth_span=90.0, elevation=10.0, radius=3.0)
    s = sampler_node(wf, 4, model, "model", pos, neg, latent, enc, sync_mode=sync_mode)
    outputs(wf, s, vae, "VAE", sync_mode, 16.0, column=5)
    return wf.to_json(description)


def text_to_4d_hard(defs, title):
    return text_to_4d(defs, title, "text_to_4d_hard_sync", "hard",
                      "4Real-Video two-stream sampling with hard sync: training-free, plain Wan2.1 weights. Plain Wan "
                      "has no camera encoder, so the rig steers the views only with SynCamMaster weights loaded.",
                      [WAN_T2V])


def text_to_4d_soft(defs, title):
    return text_to_4d(defs, title, "text_to_4d_soft_sync", "soft",
                      "4Real-Video two-stream sampling with learned soft sync layers (a sync-weights file in "
                      "models/camgrid).", [WAN_T2V, SYNC_WEIGHTS], sync_weights=SYNC_WEIGHTS)


def builtin_demo(defs, title):
    wf = Workflow(defs, "builtin_tiny_demo")
    description = ("The embedded tiny model: four synchronized 80x48 views of a synthetic scene (\"a red sphere and a "
                   "blue box\") in seconds on a CPU. Nothing to download. It runs the 4-step student "
                   "(few_step_student on: steps 4, cfg 1, euler); for the 20-step teacher turn it off and set "
                   "steps 20, cfg 3, unipc.")
    text = "\n".join([f"## {title}", "", description, "", LIVE_PREVIEW, "", "Outputs go to `ComfyUI/output/camgrid/`."])
    wf.note(0, "About", text)
    builtin = wf.add("CamGridBuiltinModel", 1, use_sync_layers=True, few_step_student=True)
    pos, neg = text_nodes(wf, "a red sphere and a blue box", column=2, clip=(builtin, "clip"))
    neg["widgets_values"][0] = ""  # the tiny model's unconditional branch is the empty caption
    latent = wf.add("CamGridEmptyLatent", 2, views=4, width=80, height=48, length=17)
    wf.link(builtin, "vae", latent, "vae")
    _, enc = rig_nodes(wf, 3, 17, preset="orbit_arc", views=4, azimuth_span=90.0, elevation=20.0, radius=3.0,
                       frames=17)
    # the student's schedule (train/student.py STUDENT_SAMPLING; shift 3 is the tiny model's): 4 euler steps, no CFG
    s = sampler_node(wf, 4, builtin, "model", pos, neg, latent, enc, steps=4, cfg=1.0, shift=3.0, scheduler="euler")
    outputs(wf, s, builtin, "vae", "tiny", 8.0, column=5)
    return wf.to_json(description)


# key -> (file name = the title the template browser shows, builder). Titles fit the cards (about 28
# characters before the front end cuts them) and avoid characters Windows forbids in file names.
WORKFLOWS = {
    "builtin_tiny_demo": ("Built-in tiny demo (CPU)", builtin_demo),
    "text_to_multicamera_syncammaster": ("SynCamMaster multi-camera", text_to_multicamera),
    "video_to_new_camera_recammaster": ("ReCamMaster new camera path", video_to_new_camera),
    "text_to_4d_hard_sync": ("4D grid, hard sync (Wan2.1)", text_to_4d_hard),
    "text_to_4d_soft_sync": ("4D grid, soft sync (Wan2.1)", text_to_4d_soft),
}


def workflow_path(key: str) -> Path:
    return HERE / f"{WORKFLOWS[key][0]}.json"


def build(key: str, defs: dict) -> dict:
    title, builder = WORKFLOWS[key]
    return builder(defs, title)


def main() -> None:
    _import_camgrid()   # this checkout's camgrid, before anything imports another one
    from camgrid.model.files import atomic_write

    defs = all_object_info()
    for key in WORKFLOWS:
        workflow = build(key, defs)
        path = workflow_path(key)
        atomic_write(path, json.dumps(workflow, indent=1) + "\n")
        print(f"wrote {path.relative_to(REPO)} ({len(workflow['nodes'])} nodes, {len(workflow['links'])} links)")


if __name__ == "__main__":
    os.environ.setdefault("CAMGRID_MODELS_DIR", str(HERE / "_no_models"))  # list no local files in combos
    main()
