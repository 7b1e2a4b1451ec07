"""Check the example workflows in ComfyUI's real front end (headless Chromium) and take screenshots.

    python tests/host/frontend_check.py --comfyui /path/to/ComfyUI --screens /tmp/screens \\
        [--run builtin_tiny_demo] [--thumbnails]

Starts a ComfyUI server (comfy_server.py: 127.0.0.1, throwaway base directory, the pack linked in, live
previews on) and drives its web page with frontend_check.cjs, which loads every workflow of
example_workflows/ the way a user's browser does. Prints what it found (missing nodes, missing models
as the front end's dialog lists them, overlapping nodes, the opening view, the template browser's
cards; with --run, live previews and the layout after the outputs are shown) and writes screenshots
to --screens. --thumbnails also rewrites the workflows' .jpg thumbnails from screenshots.

Needs, and downloads none of them: the system's Chromium (Debian: `apt-get install chromium`; or
CAMGRID_CHROMIUM=/path), Node.js, and playwright-core (`npm install -g playwright-core`, which fetches
no browser; found through NODE_PATH or npm's global folder). tests/host/test_frontend.py runs this.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
from comfy_server import PACK_DIR_NAME, ComfyServer  # noqa: E402

SCRIPT = HERE / "frontend_check.cjs"
# A model file put in place before the page loads: the front end must not list it as missing.
PRESENT_FILE = ("vae", "wan_2.1_vae.safetensors")
# What a thumbnail shows: the square around these nodes. The run demo shows its pictures (live preview,
# contact sheet, videos); the model workflows, which cannot run here, their prompt, rig and sampler.
THUMBNAIL_FOCUS = {
    "builtin_tiny_demo": ["CamGridSampler", "CamGridDecode", "CreateVideo", "SaveImage", "SaveVideo",
                          "SaveAnimatedWEBP"],
}
DEFAULT_FOCUS = ["CLIPTextEncode", "CamGridRig", "CamGridCameraEncode", "CamGridSampler"]


def make_workflows():
    spec = importlib.util.spec_from_file_location("make_workflows", REPO / "example_workflows" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_chromium() -> str | None:
    explicit = os.environ.get("CAMGRID_CHROMIUM")
    if explicit:
        return explicit if os.path.isfile(explicit) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def node_path() -> str | None:
    """Where `require('playwright-core')` can be found: NODE_PATH, else npm's global modules."""
    if os.environ.get("NODE_PATH"):
        return os.environ["NODE_PATH"]
    npm = shutil.which("npm")
    if npm is None:
        return None
    root = subprocess.run([npm, "root", "-g"], capture_output=True, text=True).stdout.strip()
    return root or None


def missing_tools() -> list[str]:
    """What this check needs and cannot find (empty: ready to run)."""
    missing = []
    if find_chromium() is None:
        missing.append("Chromium (apt-get install chromium, or set CAMGRID_CHROMIUM)")
    if shutil.which("node") is None:
        missing.append("Node.js")
    else:
        env = dict(os.environ, NODE_PATH=node_path() or "")
        probe = subprocess.run(["node", "-e", "require.resolve('playwright-core')"], capture_output=True, env=env)
        if probe.returncode != 0:
            missing.append("playwright-core (npm install -g playwright-core)")
    return missing


def check(comfyui_path: str, screens: str, run: str | None = None, thumbnails: bool = False,
          timeout: float = 1800.0) -> dict:
    """Start a server, drive the page, return the report (see frontend_check.cjs) with the workflows'
    own JSON under report["workflows"][key]["json"]."""
    mw = make_workflows()
    workflows = [{"key": key, "title": title, "file": str(mw.workflow_path(key)),
                  "thumbnailFocus": THUMBNAIL_FOCUS.get(key, DEFAULT_FOCUS)}
                 for key, (title, _build) in mw.WORKFLOWS.items()]
    os.makedirs(screens, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="camgrid-frontend-") as base:
        server = ComfyServer(comfyui_path, base, extra_args=("--preview-method", "auto"))
        folder, name = PRESENT_FILE
        os.makedirs(os.path.join(server.models_dir, folder), exist_ok=True)
        open(os.path.join(server.models_dir, folder, name), "wb").close()
        with server:
            server.request("/settings/Comfy.TutorialCompleted", True)  # no first-run template browser
            config = {"url": server.url, "chromium": find_chromium(), "screens": os.path.abspath(screens),
                      "workflows": workflows, "run": run, "thumbnails": thumbnails, "packName": PACK_DIR_NAME}
            config_path = os.path.join(base, "frontend_check.json")
            with open(config_path, "w", encoding="utf-8") as f:
                json.dump(config, f)
            env = dict(os.environ, NODE_PATH=node_path() or "")
            proc = subprocess.run(["node", str(SCRIPT), config_path], capture_output=True, text=True, env=env,
                                  timeout=timeout)
            line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("REPORT")), None)
            if proc.returncode != 0 or line is None:
                raise RuntimeError(f"frontend_check.cjs failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                                   f"{proc.stderr[-3000:]}\nserver log:\n{server.log_tail()}")
    report = json.loads(line[len("REPORT"):])
    for wf in workflows:
        report["workflows"][wf["key"]]["json"] = json.loads(Path(wf["file"]).read_text(encoding="utf-8"))
        report["workflows"][wf["key"]]["title"] = wf["title"]
    report["present_file"] = list(PRESENT_FILE)
    return report


THUMBNAIL_SIZE = 512


def write_thumbnails(screens: str) -> list[Path]:
    """example_workflows/<title>.jpg from the square screenshots, 512 x 512 (the template cards are square)."""
    from PIL import Image

    mw = make_workflows()
    written = []
    for key in mw.WORKFLOWS:
        with Image.open(Path(screens) / f"{key}_thumbnail.png") as shot:
            square = shot.convert("RGB").resize((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.LANCZOS)
        target = mw.workflow_path(key).with_suffix(".jpg")
        square.save(target, quality=90)
        written.append(target)
    return written


def summary(report: dict) -> str:
    lines = []
    for key, wf in report["workflows"].items():
        models = ", ".join(f"{m['directory']}/{m['name']}" for m in wf["missingModels"]) or "none"
        lines.append(f"{key}: missing nodes {wf['missingNodes'] or 'none'}; missing models {models}; "
                     f"overlaps {wf['layout']['overlaps'] or 'none'}; view {wf['layout']['view']}, top-left corner "
                     f"at {wf['layout']['corner']} {'visible' if wf['layout']['cornerVisible'] else 'covered by ' + str(wf['layout']['cornerCoveredBy'])}")
        if "run" in wf:
            run = wf["run"]
            lines.append(f"  run: {run['status']}, {run['previews']} live previews, overlaps after "
                         f"the run {run['layout']['overlaps'] or 'none'}")
    lines.append("template browser: " + " | ".join(t for t in report["templates"]["text"].splitlines() if t.strip())[-600:])
    if report.get("pageErrors"):
        lines.append(f"page errors: {report['pageErrors']}")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_PATH"), help="ComfyUI checkout (default $COMFYUI_PATH)")
    parser.add_argument("--screens", required=True, help="folder for the screenshots and report.json")
    parser.add_argument("--run", default=None, help="also queue this workflow (a key, e.g. builtin_tiny_demo)")
    parser.add_argument("--thumbnails", action="store_true", help="rewrite example_workflows/*.jpg from screenshots")
    args = parser.parse_args(argv)
    if not args.comfyui:
        parser.error("--comfyui (or COMFYUI_PATH) is needed")
    missing = missing_tools()
    if missing:
        parser.error("missing: " + "; ".join(missing))
    report = check(args.comfyui, args.screens, run=args.run, thumbnails=args.thumbnails)
    with open(os.path.join(args.screens, "report.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    print(summary(report))
    if args.thumbnails:
        for path in write_thumbnails(args.screens):
            print(f"wrote {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
