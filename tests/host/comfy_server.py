"""Start a real ComfyUI server for tests, with camgrid linked in as a custom node pack.

Everything the server writes (models, input, output, user data, database) goes to a throwaway
base directory: ComfyUI's `--base-directory` moves all of them there and `--database-url
sqlite:///:memory:` keeps its database out of the checkout. The server listens on 127.0.0.1
only, never auto-opens a browser, loads no API (cloud) nodes and needs no network: the web
frontend comes from the installed `comfyui-frontend-package`.

Used by `conftest.py` (fixtures) and `record_core_nodes.py` (regenerates core_nodes.json).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STUBS_DIR = os.path.join(os.path.dirname(__file__), "stubs")
# The folder name users typically clone the pack as; a name that is not a Python identifier
# also proves every import inside the pack is relative.
PACK_DIR_NAME = "ComfyUI-CamGrid"
MODEL_SUBFOLDERS = ("diffusion_models", "camgrid", "vae", "text_encoders")
PACK_WARNING = "camgrid nodes not loaded"  # logged by the pack's __init__.py


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchvision_importable(python: str = sys.executable) -> bool:
    # A CUDA-linked torchvision next to a CPU torch raises RuntimeError on import, so ask a
    # separate interpreter instead of trying it here.
    return subprocess.run([python, "-c", "import torchvision"], capture_output=True).returncode == 0


def child_env() -> dict:
    """This process's environment for a ComfyUI process, with the torchvision stand-in when the real one is broken."""
    env = dict(os.environ)
    if not torchvision_importable():
        env["PYTHONPATH"] = os.pathsep.join(p for p in (STUBS_DIR, env.get("PYTHONPATH")) if p)
    return env


def run_child(code: str, comfyui_path: str, base: str) -> dict:
    """Run `code` (python -c, argv: comfyui_path base) in `base`; the JSON it printed after "RESULT"."""
    proc = subprocess.run([sys.executable, "-c", code, comfyui_path, base], capture_output=True, text=True,
                          env=child_env(), cwd=base, timeout=300)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert proc.returncode == 0 and line, f"child failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return json.loads(line[len("RESULT"):])


class ComfyError(RuntimeError):
    """The server refused or failed a request; the message carries its answer and log tail."""


class ComfyServer:
    """One ComfyUI process on 127.0.0.1:`port` with its own base directory."""

    def __init__(self, comfyui_path: str, base_dir: str, port: int | None = None, link_pack: bool = True,
                 extra_args: tuple = (), extra_packs: dict | None = None):
        self.comfyui_path = os.path.abspath(comfyui_path)
        if not os.path.isfile(os.path.join(self.comfyui_path, "main.py")):
            raise FileNotFoundError(f"COMFYUI_PATH={comfyui_path!r} has no main.py; point it at a ComfyUI checkout")
        self.base_dir = os.path.abspath(base_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.link_pack = link_pack
        self.extra_args = tuple(extra_args)
        self.extra_packs = dict(extra_packs or {})  # custom_nodes folder name -> source folder (test-only packs)
        self.log_path = os.path.join(self.base_dir, "server.log")
        self.custom_nodes_dir = os.path.join(self.base_dir, "custom_nodes")
        self.pack_dir = os.path.join(self.custom_nodes_dir, PACK_DIR_NAME)
        self.models_dir = os.path.join(self.base_dir, "models")
        self.input_dir = os.path.join(self.base_dir, "input")
        self.output_dir = os.path.join(self.base_dir, "output")
        self.client_id = uuid.uuid4().hex
        self.proc: subprocess.Popen | None = None
        self._object_info = None

    # -- lifecycle ------------------------------------------------------------------------------

    def command(self) -> list[str]:
        return [
            sys.executable, os.path.join(self.comfyui_path, "main.py"),
            "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", self.base_dir,
            "--database-url", "sqlite:///:memory:",
            "--disable-auto-launch", "--disable-api-nodes",
            *self.extra_args,
        ]

    def start(self, timeout: float = 240.0) -> "ComfyServer":
        for folder in (self.custom_nodes_dir, self.input_dir, self.output_dir,
                       *(os.path.join(self.models_dir, m) for m in MODEL_SUBFOLDERS)):
            os.makedirs(folder, exist_ok=True)
        if self.link_pack and not os.path.lexists(self.pack_dir):
            os.symlink(REPO_ROOT, self.pack_dir, target_is_directory=True)
        for name, source in self.extra_packs.items():
            link = os.path.join(self.custom_nodes_dir, name)
            if not os.path.lexists(link):
                os.symlink(os.path.abspath(source), link, target_is_directory=True)
        env = child_env()
        env.pop("COMFYUI_PATH", None)
        env["PYTHONUNBUFFERED"] = "1"
        log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.command(), cwd=self.base_dir, env=env, stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ComfyError(f"ComfyUI exited with code {self.proc.returncode} while starting:\n{self.log_tail()}")
            try:
                self.get_json("/system_stats", timeout=5)
                return self
            except (OSError, ComfyError):
                time.sleep(0.5)
        self.stop()
        raise ComfyError(f"ComfyUI did not answer within {timeout:.0f}s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=20)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- logs -----------------------------------------------------------------------------------

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_text()[-chars:]
        except OSError:
            return "(no server log)"

    def pack_import_errors(self) -> list[str]:
        """Log lines that report our pack failed to import (ComfyUI keeps running when it does)."""
        lines = self.log_text().splitlines()
        bad = []
        for i, line in enumerate(lines):
            failed = PACK_DIR_NAME in line and ("IMPORT FAILED" in line or "Cannot import" in line)
            # The pack's __init__ catches an ImportError of its nodes (so `import camgrid` works as
            # a library) and only warns; for ComfyUI that is a failure all the same.
            if failed or PACK_WARNING in line:
                bad.append("\n".join(lines[max(0, i - 30):i + 1]))  # the traceback comes first
        return bad

    # -- HTTP -----------------------------------------------------------------------------------

    def request(self, path: str, data=None, timeout: float = 30.0):
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "application/json"} if body else {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise ComfyError(f"{path} answered HTTP {err.code}: {err.read().decode(errors='replace')}") from None
        return json.loads(raw) if raw else None

    def get_json(self, path: str, timeout: float = 30.0):
        return self.request(path, timeout=timeout)

    def object_info(self, refresh: bool = False) -> dict:
        if self._object_info is None or refresh:
            self._object_info = self.get_json("/object_info", timeout=120)
        return self._object_info

    def post_prompt(self, api_json: dict) -> str:
        """Queue an API-format workflow; returns its prompt id. A refused graph raises with the
        server's node_errors (which name the node and input at fault)."""
        answer = self.request("/prompt", {"prompt": api_json, "client_id": self.client_id})
        if answer.get("node_errors"):
            raise ComfyError(f"prompt refused: {json.dumps(answer['node_errors'], indent=1)}")
        return answer["prompt_id"]

    def wait_for_history(self, prompt_id: str, timeout: float = 300.0) -> dict:
        """Wait until the prompt finished; returns its history entry (`outputs`, `status`).
        Raises with the server's error messages if it failed, or the log tail if it timed out."""
        quoted = urllib.parse.quote(prompt_id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ComfyError(f"ComfyUI died while running {prompt_id}:\n{self.log_tail()}")
            entry = (self.get_json(f"/history/{quoted}") or {}).get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") == "error":
                    errors = [m for m in status.get("messages", [])
                              if m[0] in ("execution_error", "execution_interrupted")]
                    raise ComfyError(f"prompt {prompt_id} failed: {json.dumps(errors, indent=1)}")
                return entry
            time.sleep(0.25)
        raise ComfyError(f"prompt {prompt_id} not done after {timeout:.0f}s; queue: "
                         f"{self.get_json('/queue')}\n{self.log_tail()}")

    def run_prompt(self, api_json: dict, timeout: float = 300.0) -> dict:
        return self.wait_for_history(self.post_prompt(api_json), timeout)

    def interrupt(self) -> None:
        self.request("/interrupt", {})
