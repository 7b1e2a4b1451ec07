"""Regenerate core_nodes.json: the socket definitions of the ComfyUI core nodes our workflows use.

The file lets workflow checks and `ui_to_api` run without a server. Entries are copied verbatim
from the server's `/object_info` (inputs with types, defaults and ranges; outputs), minus the
node descriptions.

    python tests/host/record_core_nodes.py --url http://127.0.0.1:8188     # a running server
    COMFYUI_PATH=/path/to/ComfyUI python tests/host/record_core_nodes.py   # starts one itself
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from comfy_server import ComfyServer  # noqa: E402

OUT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "core_nodes.json")

# Nodes the camgrid workflows wire to (text encoder, VAE, image/video in and out) ...
WANTED = [
    "CLIPLoader", "CLIPTextEncode", "VAELoader", "VAEDecode", "VAEEncode", "UNETLoader",
    "LoadImage", "SaveImage", "PreviewImage", "ImageScale", "ImageFromBatch",
    "SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveWEBM", "CreateVideo", "SaveVideo", "LoadVideo",
    "GetVideoComponents", "EmptyHunyuanLatentVideo", "PreviewAny",
    # ... and two with a seed widget, to test the extra "control_after_generate" widget.
    "KSampler", "RandomNoise",
]
# ... plus every core node that loads or saves video, whatever this ComfyUI version calls them.
VIDEO_IO_WORDS = ("Video", "WEBM", "WEBP", "Animated")
VIDEO_IO_VERBS = ("Load", "Save", "Create", "Get")

KEPT_FIELDS = ("input", "input_order", "output", "output_is_list", "output_name", "output_node",
               "name", "display_name", "category", "python_module")


def _video_io(name: str, entry: dict) -> bool:
    return (entry.get("python_module", "").startswith(("nodes", "comfy_extras"))
            and name.startswith(VIDEO_IO_VERBS) and any(w in name for w in VIDEO_IO_WORDS))


def record(object_info: dict, system_stats: dict) -> dict:
    missing = [n for n in WANTED if n not in object_info]
    if missing:
        raise SystemExit(f"this ComfyUI has no {', '.join(missing)}; update WANTED in {__file__}")
    names = sorted(set(WANTED) | {n for n, e in object_info.items() if _video_io(n, e)})
    nodes = {n: {k: object_info[n][k] for k in KEPT_FIELDS if k in object_info[n]} for n in names}
    return {
        "comfyui_version": system_stats.get("system", {}).get("comfyui_version"),
        "note": "recorded by tests/host/record_core_nodes.py from a live /object_info; "
                "file-list combos (model names, input files) depend on that server's folders",
        "nodes": nodes,
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="a running ComfyUI, e.g. http://127.0.0.1:8188 (default: start one from COMFYUI_PATH)")
    ap.add_argument("--out", default=OUT_PATH)
    args = ap.parse_args(argv)

    if args.url:
        server = ComfyServer.__new__(ComfyServer)  # only the HTTP helpers are used
        server.url, server.proc, server._object_info = args.url.rstrip("/"), None, None
        data = record(server.object_info(), server.get_json("/system_stats"))
    else:
        comfyui_path = os.environ.get("COMFYUI_PATH")
        if not comfyui_path:
            raise SystemExit("give --url of a running ComfyUI or set COMFYUI_PATH to a ComfyUI checkout")
        with tempfile.TemporaryDirectory() as base, ComfyServer(comfyui_path, base, link_pack=False) as server:
            data = record(server.object_info(), server.get_json("/system_stats"))

    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=False)
        f.write("\n")
    print(f"wrote {len(data['nodes'])} nodes from ComfyUI {data['comfyui_version']} to {args.out}")


if __name__ == "__main__":
    main()
