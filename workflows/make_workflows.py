"""Writes the example workflows (ComfyUI UI format) and their .jpg thumbnails.

    python workflows/make_workflows.py          # from the repository root

Widget values are filled in by input name and laid out in the order the editor expects (from the
node definitions: ours from the classes, core ones from tests/host/core_nodes.json), so a workflow
can never drift from the nodes' inputs. tests/test_workflows.py checks the written files.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CORE_NODES = REPO / "tests" / "host" / "core_nodes.json"
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}

# Model files under the names they are commonly distributed as (README "Models").
UMT5 = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN_T2V = "wan2.1_t2v_1.3B_fp16.safetensors"
SYNCAMMASTER = "SynCamMaster-Wan2.1-step20000.ckpt"
RECAMMASTER = "ReCamMaster-Wan2.1-step20000.ckpt"
SYNC_WEIGHTS = "camgrid-sync-wan2.1-1.3B.safetensors"
EXAMPLE_VIDEO = "recammaster_example_video_10.mp4"
NEGATIVE = ("Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, images, static, "
            "overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, "
            "poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still "
            "picture, messy background, three legs, many people in the background, walking backwards")


# ---------------------------------------------------------------------------------------------
# node definitions in /object_info form
# ---------------------------------------------------------------------------------------------

def _import_camgrid():
    try:
        import camgrid  # noqa: F401
    except ImportError:
        sys.path.insert(0, str(REPO.parent))
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


def socket_type(spec) -> str:
    kind = spec[0]
    return "COMBO" if isinstance(kind, list) else kind


def is_widget(spec) -> bool:
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    return not opts.get("forceInput") and (isinstance(spec[0], list) or spec[0] in WIDGET_TYPES)


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
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if "default" in opts:
        return opts["default"]
    options = spec[0] if isinstance(spec[0], list) else opts.get("options", [])
    return options[0] if options else ""


# ---------------------------------------------------------------------------------------------
# the graph builder
# ---------------------------------------------------------------------------------------------

class Workflow:
    def __init__(self, defs: dict):
        self.defs, self.nodes, self.links = defs, [], []

    def add(self, kind: str, pos, title: str | None = None, **widgets) -> dict:
        node_def = self.defs[kind]
        values = []
        unknown = set(widgets) - {n for n, _ in widget_specs(node_def)}
        if unknown:
            raise KeyError(f"{kind} has no widgets {sorted(unknown)}")
        for name, spec in widget_specs(node_def):
            values.append(widgets.get(name, widget_default(spec)))
            if (spec[1] if len(spec) > 1 else {}).get("control_after_generate"):
                values.append("fixed")
        sockets = socket_specs(node_def)
        node = {
            "id": len(self.nodes) + 1, "type": kind, "pos": list(pos),
            "size": [320, 46 + 24 * (len(values) + max(len(sockets), len(node_def["output"])))],
            "flags": {}, "order": len(self.nodes), "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in sockets],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i}
                        for i, (n, t) in enumerate(zip(node_def.get("output_name", node_def["output"]), node_def["output"]))],
            "properties": {"Node name for S&R": kind},
            "widgets_values": values,
        }
        if title:
            node["title"] = title
        self.nodes.append(node)
        return node

    def link(self, src: dict, output: str, dst: dict, input_name: str) -> None:
        slot = next(i for i, o in enumerate(src["outputs"]) if o["name"] == output)
        target = next(i for i, inp in enumerate(dst["inputs"]) if inp["name"] == input_name)
        link_id = len(self.links) + 1
        kind = src["outputs"][slot]["type"]
        self.links.append([link_id, src["id"], slot, dst["id"], target, kind])
        src["outputs"][slot]["links"].append(link_id)
        dst["inputs"][target]["link"] = link_id

    def to_json(self, title: str, description: str) -> dict:
        return {
            "last_node_id": len(self.nodes), "last_link_id": len(self.links),
            "nodes": self.nodes, "links": self.links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}, "camgrid": {"title": title, "description": description}},
            "version": 0.4,
        }


# ---------------------------------------------------------------------------------------------
# the shared tail and head of every workflow
# ---------------------------------------------------------------------------------------------

def text_nodes(wf, prompt: str, x=0, y=0, clip=None):
    if clip is None:
        clip = wf.add("CLIPLoader", (x, y), clip_name=UMT5, type="wan")
        clip_out = "CLIP"
    else:
        clip, clip_out = clip
    pos = wf.add("CLIPTextEncode", (x + 360, y), title="Prompt (all views)", text=prompt)
    neg = wf.add("CLIPTextEncode", (x + 360, y + 240), title="Negative prompt", text=NEGATIVE)
    wf.link(clip, clip_out, pos, "clip")
    wf.link(clip, clip_out, neg, "clip")
    return pos, neg


def outputs(wf, sampler, vae, vae_out, prefix: str, fps: float, x=1500, y=0):
    decode = wf.add("CamGridDecode", (x, y), rows=0, cols=0, sheet_frames=6)
    wf.link(sampler, "latent", decode, "latent")
    wf.link(vae, vae_out, decode, "vae")
    video = wf.add("CreateVideo", (x + 360, y), fps=fps)
    wf.link(decode, "side_by_side", video, "images")
    save = wf.add("SaveVideo", (x + 720, y), filename_prefix=f"camgrid/{prefix}_grid", format="auto", codec="auto")
    wf.link(video, "VIDEO", save, "video")
    sheet = wf.add("SaveImage", (x + 360, y + 200), filename_prefix=f"camgrid/{prefix}_sheet")
    wf.link(decode, "contact_sheet", sheet, "images")
    frames = wf.add("SaveAnimatedWEBP", (x + 720, y + 200), title="All views, one after another",
                    filename_prefix=f"camgrid/{prefix}_views", fps=fps, lossless=False, quality=85, method="default")
    wf.link(decode, "frames", frames, "images")
    info = wf.add("PreviewAny", (x, y + 420), title="What the sampler did")
    wf.link(sampler, "info", info, "source")
    return decode


def rig_nodes(wf, x, y, length, preview=True, **rig):
    node = wf.add("CamGridRig", (x, y), **rig)
    enc = wf.add("CamGridCameraEncode", (x + 360, y), length=length, convention="auto")
    wf.link(node, "rig", enc, "rig")
    if preview:
        prev = wf.add("CamGridRigPreview", (x, y + 330), size=384)
        wf.link(node, "rig", prev, "rig")
        show = wf.add("PreviewImage", (x + 360, y + 330), title="Camera rig")
        wf.link(prev, "image", show, "images")
    return node, enc


def sampler_node(wf, x, y, model, model_out, pos, neg, latent, camera, **settings):
    values = dict(seed=42, steps=50, cfg=5.0, shift=5.0, scheduler="unipc", sync_mode="auto", denoise=1.0)
    values.update(settings)
    s = wf.add("CamGridSampler", (x, y), **values)
    wf.link(model, model_out, s, "model")
    wf.link(pos, "CONDITIONING", s, "positive")
    wf.link(neg, "CONDITIONING", s, "negative")
    wf.link(latent, "latent", s, "latent")
    if camera is not None:
        wf.link(camera, "camera", s, "camera")
    return s


# ---------------------------------------------------------------------------------------------
# the workflows
# ---------------------------------------------------------------------------------------------

def text_to_multicamera(defs):
    wf = Workflow(defs)
    model = wf.add("CamGridModelLoader", (0, 520), dit_name=SYNCAMMASTER, dtype="auto", attention="auto")
    pos, neg = text_nodes(wf, "A golden retriever runs across a sunny park lawn, chasing a red ball, "
                              "trees in the background.")
    vae = wf.add("VAELoader", (0, 760), vae_name=WAN_VAE)
    _, enc = rig_nodes(wf, 0, 900, 81, preset="orbit_arc", views=4, azimuth_span=60.0, elevation=0.0, radius=3.0)
    latent = wf.add("CamGridEmptyLatent", (760, 520), views=4, width=832, height=480, length=81)
    s = sampler_node(wf, 1120, 0, model, "model", pos, neg, latent, enc)
    outputs(wf, s, vae, "VAE", "syncam", 16.0)
    return wf.to_json("Text -> multi-camera video (SynCamMaster)",
                      "Four cameras on a 60 degree arc film the same moment; SynCamMaster weights, sync mode auto "
                      "(= syncam).")


def video_to_new_camera(defs):
    wf = Workflow(defs)
    model = wf.add("CamGridModelLoader", (0, 520), dit_name=RECAMMASTER, dtype="auto", attention="auto")
    pos, neg = text_nodes(wf, "A man in a dark jacket walks along a city street at dusk, cars passing by.")
    vae = wf.add("VAELoader", (0, 760), vae_name=WAN_VAE)
    load = wf.add("LoadVideo", (0, 1400), file=EXAMPLE_VIDEO)
    parts = wf.add("GetVideoComponents", (360, 1400))
    wf.link(load, "VIDEO", parts, "video")
    source = wf.add("CamGridSourceVideo", (760, 1100), width=832, height=480, length=81, use="auto", view=0,
                    start_frame=0)
    wf.link(parts, "images", source, "images")
    wf.link(vae, "VAE", source, "vae")
    _, enc = rig_nodes(wf, 0, 900, 81, preset="recammaster_arc_left", views=1)
    latent = wf.add("CamGridEmptyLatent", (760, 520), views=1, width=832, height=480, length=81)
    s = sampler_node(wf, 1120, 0, model, "model", pos, neg, latent, enc)
    wf.link(source, "source", s, "source")
    outputs(wf, s, vae, "VAE", "recam", 16.0)
    return wf.to_json("Video -> new camera path (ReCamMaster)",
                      "Re-renders the input video as if filmed by a camera arcing left; ReCamMaster weights, sync "
                      "mode auto (= recam).")


def text_to_4d_hard(defs):
    wf = Workflow(defs)
    model = wf.add("CamGridModelLoader", (0, 520), dit_name=WAN_T2V, dtype="auto", attention="auto")
    pos, neg = text_nodes(wf, "A campfire on a beach at night, sparks rising, waves rolling in.")
    vae = wf.add("VAELoader", (0, 760), vae_name=WAN_VAE)
    _, enc = rig_nodes(wf, 0, 900, 81, preset="orbit_arc", views=4, azimuth_span=90.0, elevation=10.0, radius=3.0)
    latent = wf.add("CamGridEmptyLatent", (760, 520), views=4, width=832, height=480, length=81)
    s = sampler_node(wf, 1120, 0, model, "model", pos, neg, latent, enc, sync_mode="hard")
    outputs(wf, s, vae, "VAE", "hard", 16.0)
    return wf.to_json("Text -> 4D grid, hard sync (any Wan2.1 T2V)",
                      "4Real-Video two-stream sampling with hard sync: training-free, plain Wan2.1 weights. Plain Wan "
                      "has no camera encoder, so the rig only steers the views with SynCamMaster weights loaded.")


def text_to_4d_soft(defs):
    wf = Workflow(defs)
    model = wf.add("CamGridModelLoader", (0, 520), dit_name=WAN_T2V, dtype="auto", attention="auto",
                   sync_weights=SYNC_WEIGHTS)
    pos, neg = text_nodes(wf, "A campfire on a beach at night, sparks rising, waves rolling in.")
    vae = wf.add("VAELoader", (0, 760), vae_name=WAN_VAE)
    _, enc = rig_nodes(wf, 0, 900, 81, preset="orbit_arc", views=4, azimuth_span=90.0, elevation=10.0, radius=3.0)
    latent = wf.add("CamGridEmptyLatent", (760, 520), views=4, width=832, height=480, length=81)
    s = sampler_node(wf, 1120, 0, model, "model", pos, neg, latent, enc, sync_mode="soft")
    outputs(wf, s, vae, "VAE", "soft", 16.0)
    return wf.to_json("Text -> 4D grid, soft sync (sync-weights file)",
                      "4Real-Video two-stream sampling with learned soft sync layers from models/camgrid.")


def builtin_demo(defs):
    wf = Workflow(defs)
    builtin = wf.add("CamGridBuiltinModel", (0, 520), use_sync_layers=True)
    pos, neg = text_nodes(wf, "a red sphere and a blue box", clip=(builtin, "clip"))
    wf.nodes[-1]["widgets_values"][0] = ""  # the tiny model's unconditional branch is the empty caption
    _, enc = rig_nodes(wf, 0, 900, 17, preset="orbit_arc", views=4, azimuth_span=90.0, elevation=20.0, radius=3.0,
                       frames=17)
    latent = wf.add("CamGridEmptyLatent", (760, 520), views=4, width=80, height=48, length=17)
    wf.link(builtin, "vae", latent, "vae")
    s = sampler_node(wf, 1120, 0, builtin, "model", pos, neg, latent, enc)
    s["widgets_values"][2:5] = [20, 2.0, 3.0]  # steps, cfg, shift of the tiny model (cfg as in `camgrid demo`)
    outputs(wf, s, builtin, "vae", "tiny", 8.0)
    return wf.to_json("Built-in tiny model demo (CPU, no downloads)",
                      "The embedded tiny model: four synchronized 80x48 views of a synthetic scene in seconds.")


WORKFLOWS = {
    "text_to_multicamera_syncammaster": text_to_multicamera,
    "video_to_new_camera_recammaster": video_to_new_camera,
    "text_to_4d_hard_sync": text_to_4d_hard,
    "text_to_4d_soft_sync": text_to_4d_soft,
    "builtin_tiny_demo": builtin_demo,
}


# ---------------------------------------------------------------------------------------------
# thumbnails: the graph, drawn small, with the title
# ---------------------------------------------------------------------------------------------

TYPE_COLOURS = {"CAMGRID_MODEL": (214, 120, 60), "CONDITIONING": (255, 204, 51), "LATENT": (255, 100, 180),
                "VAE": (255, 99, 99), "CLIP": (255, 220, 100), "IMAGE": (100, 180, 255), "CAMERA_RIG": (110, 200, 120),
                "CAMERA_EMBEDS": (60, 170, 90), "CAMGRID_SOURCE": (180, 120, 240), "VIDEO": (120, 220, 220),
                "STRING": (180, 180, 180)}


def draw_thumbnail(workflow: dict, path: Path, size=(640, 360)) -> None:
    from PIL import Image, ImageDraw, ImageFont

    nodes = {n["id"]: n for n in workflow["nodes"]}
    x0 = min(n["pos"][0] for n in nodes.values())
    y0 = min(n["pos"][1] for n in nodes.values())
    x1 = max(n["pos"][0] + n["size"][0] for n in nodes.values())
    y1 = max(n["pos"][1] + n["size"][1] for n in nodes.values())
    banner = 56
    scale = min((size[0] - 20) / (x1 - x0), (size[1] - banner - 16) / (y1 - y0))
    img = Image.new("RGB", size, (32, 33, 38))
    draw = ImageDraw.Draw(img)

    def at(x, y):
        return 10 + (x - x0) * scale, banner + 6 + (y - y0) * scale

    try:
        title_font, node_font = ImageFont.load_default(size=20), ImageFont.load_default(size=10)
    except TypeError:
        title_font = node_font = ImageFont.load_default()
    for link_id, a, a_slot, b, b_slot, kind in workflow["links"]:
        na, nb = nodes[a], nodes[b]
        p = at(na["pos"][0] + na["size"][0], na["pos"][1] + 30 + 24 * a_slot)
        q = at(nb["pos"][0], nb["pos"][1] + 30 + 24 * b_slot)
        draw.line([p, q], fill=TYPE_COLOURS.get(kind, (200, 200, 200)), width=2)
    for n in nodes.values():
        (ax, ay), (bx, by) = at(*n["pos"]), at(n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1])
        camgrid = n["type"].startswith("CamGrid")
        draw.rounded_rectangle((ax, ay, bx, by), radius=4, fill=(58, 60, 70) if not camgrid else (48, 70, 88),
                               outline=(214, 120, 60) if camgrid else (110, 110, 120), width=2)
        label = n.get("title") or n["type"]
        draw.text((ax + 4, ay + 3), label[:int((bx - ax) / 6)], fill=(235, 235, 235), font=node_font)
    title = workflow["extra"]["camgrid"]["title"]
    draw.rectangle((0, 0, size[0], banner - 6), fill=(214, 120, 60))
    draw.text((12, 14), title, fill=(255, 255, 255), font=title_font)
    img.save(path, quality=88)


def main() -> None:
    defs = all_object_info()
    for name, build in WORKFLOWS.items():
        workflow = build(defs)
        with open(HERE / f"{name}.json", "w", encoding="utf-8") as f:
            json.dump(workflow, f, indent=1)
            f.write("\n")
        draw_thumbnail(workflow, HERE / f"{name}.jpg")
        print(f"wrote workflows/{name}.json and .jpg ({len(workflow['nodes'])} nodes, {len(workflow['links'])} links)")


if __name__ == "__main__":
    os.environ.setdefault("CAMGRID_MODELS_DIR", str(HERE / "_no_models"))  # list no local files in combos
    main()
