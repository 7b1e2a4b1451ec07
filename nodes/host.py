"""The one door between camgrid and its host, ComfyUI.

Nothing else in the pack imports ComfyUI. Every function here has a plain fallback so the same
node code runs in tests and the CLI, where ComfyUI is absent:

  model folders  ComfyUI's `folder_paths` (plus a registered `models/camgrid` folder) or
                 `$CAMGRID_MODELS_DIR` / `./models`
  devices        `comfy.model_management` or torch's own view of the machine
  progress       `comfy.utils.ProgressBar` with latent previews, or tqdm
  cancel         ComfyUI's interrupt flag, or `interrupt_event` that a CLI may set (cleared when a job
                 starts, as ComfyUI clears its flag when a prompt starts)

We only use ComfyUI when it is *already loaded* (its `folder_paths` and `comfy.model_management`
are in `sys.modules`, as they always are when it imports a custom node pack). Importing them
ourselves from a plain script would start ComfyUI's device setup and argument parsing as a side
effect. ComfyUI renamed things over versions, so optional pieces are looked up with getattr and
fall back when missing.
"""
from __future__ import annotations

import gc
import logging
import os
import sys
import threading

import torch

from . import preview

log = logging.getLogger("camgrid")

IN_COMFY: bool = "folder_paths" in sys.modules and "comfy.model_management" in sys.modules

if IN_COMFY:
    import comfy.model_management as _mm
    import comfy.utils as _comfy_utils
    import folder_paths as _folder_paths
else:
    _mm = _comfy_utils = _folder_paths = None


# ---------------------------------------------------------------------------------------------
# Model folders
# ---------------------------------------------------------------------------------------------

# Weight files ComfyUI lists in its own folders (same set as its `supported_pt_extensions`).
WEIGHT_EXTENSIONS = frozenset({".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"})
# Our own folder holds sync-layer weights and camera rig JSON files.
CAMGRID_EXTENSIONS = frozenset({".safetensors", ".pt", ".ckpt", ".json"})
CAMGRID_FOLDER = "camgrid"

MODEL_KINDS = ("diffusion_models", CAMGRID_FOLDER, "vae", "text_encoders", "loras")
# Older ComfyUI folder names that still hold the same files.
_LEGACY_SUBFOLDERS = {"diffusion_models": ("unet",), "text_encoders": ("clip",)}


def _check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise ValueError(f"model kind {kind!r} is unknown; use one of {', '.join(MODEL_KINDS)}")


def _register_camgrid_folder() -> None:
    """Make `models/camgrid` a ComfyUI model folder so loaders can list its files.

    A user may already have named a `camgrid` folder in extra_model_paths.yaml (ComfyUI then
    creates the entry with no extension filter); we keep their paths and add ours after them.
    """
    default_path = os.path.join(_folder_paths.models_dir, CAMGRID_FOLDER)
    table = _folder_paths.folder_names_and_paths
    if CAMGRID_FOLDER in table:
        paths, extensions = table[CAMGRID_FOLDER]
        if default_path not in paths:
            paths.append(default_path)
        table[CAMGRID_FOLDER] = (paths, set(extensions) | CAMGRID_EXTENSIONS)
    else:
        table[CAMGRID_FOLDER] = ([default_path], set(CAMGRID_EXTENSIONS))


if IN_COMFY:
    _register_camgrid_folder()


def models_root() -> str:
    """Root of the model folders outside ComfyUI: `$CAMGRID_MODELS_DIR`, else `./models`."""
    return os.path.abspath(os.environ.get("CAMGRID_MODELS_DIR") or "models")


def model_folders(kind: str) -> list[str]:
    """The folders searched for files of `kind`, in search order."""
    _check_kind(kind)
    if IN_COMFY:
        return list(_folder_paths.get_folder_paths(kind))
    root = models_root()
    return [os.path.join(root, sub) for sub in (kind, *_LEGACY_SUBFOLDERS.get(kind, ()))]


def _extensions(kind: str) -> frozenset:
    return CAMGRID_EXTENSIONS if kind == CAMGRID_FOLDER else WEIGHT_EXTENSIONS


def list_models(kind: str) -> list[str]:
    """Names (paths relative to their model folder, '/'-separated) of the files of `kind`."""
    _check_kind(kind)
    if IN_COMFY:
        return list(_folder_paths.get_filename_list(kind))
    extensions = _extensions(kind)
    names = set()
    for folder in model_folders(kind):
        for dirpath, _dirs, files in os.walk(folder, followlinks=True):
            for file in files:
                if os.path.splitext(file)[1].lower() in extensions:
                    rel = os.path.relpath(os.path.join(dirpath, file), folder)
                    names.add(rel.replace(os.sep, "/"))
    return sorted(names)


def user_folders() -> list[str]:
    """The folders a node may read a typed-in path from: ComfyUI's models and input folders and every model
    folder of ours (extra_model_paths included), or `models_root()` and ./input outside ComfyUI."""
    if IN_COMFY:
        roots = [_folder_paths.models_dir, _folder_paths.get_input_directory()]
    else:
        roots = [models_root(), os.path.abspath("input")]
    for kind in MODEL_KINDS:
        roots += model_folders(kind)
    return list(dict.fromkeys(os.path.abspath(root) for root in roots))


def model_path(kind: str, name: str) -> str:
    """Absolute path of model file `name` (as listed by `list_models(kind)`)."""
    _check_kind(kind)
    if not name:
        raise ValueError(f"no {kind} file chosen; pick one of list_models({kind!r})")
    path = None
    if IN_COMFY:
        path = _folder_paths.get_full_path(kind, name)
    else:
        # Same normalisation as ComfyUI: a name can never climb out of its model folder.
        safe = os.path.relpath(os.path.join(os.sep, name), os.sep)
        for folder in model_folders(kind):
            candidate = os.path.join(folder, safe)
            if os.path.isfile(candidate):
                path = candidate
                break
    if path is None:
        folders = ", ".join(model_folders(kind))
        raise FileNotFoundError(
            f"{kind} file {name!r} not found in {folders}; put the file there"
            + ("" if IN_COMFY else " (or set CAMGRID_MODELS_DIR to your models folder)")
        )
    return os.path.abspath(path)


# ---------------------------------------------------------------------------------------------
# Devices and memory
# ---------------------------------------------------------------------------------------------

def torch_device() -> torch.device:
    """Where the heavy compute runs."""
    if IN_COMFY:
        return _mm.get_torch_device()
    if torch.cuda.is_available():
        return torch.device("cuda", torch.cuda.current_device())
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def offload_device() -> torch.device:
    """Where idle weights wait (block swap, unloaded models)."""
    if IN_COMFY:
        return _mm.unet_offload_device()
    return torch.device("cpu")


def free_bytes(device: torch.device | None = None) -> int | None:
    """Free memory on `device` in bytes, or None when it cannot be told."""
    device = torch.device(device) if device is not None else torch_device()
    if IN_COMFY and hasattr(_mm, "get_free_memory"):
        return int(_mm.get_free_memory(device))
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type == "cpu" and hasattr(os, "sysconf"):
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError):
            return None
    return None


def free_memory_for(bytes_needed: int | None, device: torch.device | None = None) -> None:
    """Ask the host to make `bytes_needed` free on `device` (None: unload every model).

    In ComfyUI this unloads other models (text encoders, VAE, other DiTs) that it manages;
    outside it there is nothing to unload, so we only return cached blocks to the driver.
    """
    device = torch.device(device) if device is not None else torch_device()
    if IN_COMFY:
        if bytes_needed is None:
            _mm.unload_all_models()
        else:
            _mm.free_memory(int(bytes_needed), device)
        return
    soft_empty_cache()


def is_low_vram() -> bool:
    """True when the user asked ComfyUI to save VRAM (--lowvram / --novram), or set
    CAMGRID_LOW_VRAM=1 outside ComfyUI; loaders then prefer block swap / offload."""
    if IN_COMFY:
        state_enum = getattr(_mm, "VRAMState", None)
        state = getattr(_mm, "vram_state", None)
        if state_enum is None or state is None:
            return False
        low = {getattr(state_enum, n) for n in ("LOW_VRAM", "NO_VRAM") if hasattr(state_enum, n)}
        return state in low
    return os.environ.get("CAMGRID_LOW_VRAM", "").strip().lower() in ("1", "true", "yes")


def soft_empty_cache() -> None:
    """Give cached, unused accelerator memory back (cheap; safe to call often)."""
    if IN_COMFY:
        _mm.soft_empty_cache()
        return
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        torch.mps.empty_cache()


# ---------------------------------------------------------------------------------------------
# Cancel
# ---------------------------------------------------------------------------------------------

class Interrupted(Exception):
    """Raised by `check_interrupted` outside ComfyUI after `request_interrupt()`."""


# The exception a cancelled run raises: ComfyUI's own one inside ComfyUI (its executor treats it
# as a user cancel, not an error), ours elsewhere.
InterruptException = getattr(_mm, "InterruptProcessingException", Interrupted) if IN_COMFY else Interrupted

# Set by a CLI (e.g. from a SIGINT handler) to stop a run at the next step boundary.
interrupt_event = threading.Event()


def request_interrupt() -> None:
    """Stop the running job at its next `check_interrupted()` (CLI / library use)."""
    interrupt_event.set()


def begin_run() -> None:
    """A job starts: forget a cancel requested while nothing was running, so it cannot stop this job.
    ComfyUI clears its own flag when a prompt starts; inside it this does nothing (clearing the flag here
    would swallow a cancel the user pressed during an earlier node of the same prompt)."""
    if not IN_COMFY:
        interrupt_event.clear()


def check_interrupted() -> None:
    """Raise `InterruptException` if the user cancelled; call it between steps and blocks."""
    if IN_COMFY:
        throw = getattr(_mm, "throw_exception_if_processing_interrupted", None)
        if throw is not None:
            throw()
        elif getattr(_mm, "processing_interrupted", lambda: False)():
            _mm.interrupt_current_processing(False)
            raise InterruptException()
        return
    if interrupt_event.is_set():
        interrupt_event.clear()  # one request cancels one run, like ComfyUI's flag
        raise Interrupted("camgrid run interrupted")


# ---------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------

def _preview_method() -> str:
    """ComfyUI's preview method now ('auto', 'latent2rgb', 'taesd', 'none'; a run may override it)."""
    from comfy.cli_args import args

    method = getattr(args, "preview_method", None)
    return str(getattr(method, "value", method) or "auto")


def _previews_off() -> bool:
    return _preview_method() == "none"


class ProgressReporter:
    """Step progress for long loops: ComfyUI's progress bar (with a latent preview) or tqdm.

    `update(step, latent)` takes the absolute number of finished steps. `latent` is the current
    x0 estimate, `[B, C, T, H, W]` or a grid `[B, V, C, T, H, W]`; in ComfyUI it becomes the live
    preview (the views tiled into one picture, nodes/preview.py). `preview_fn(latent) -> PIL.Image |
    None` replaces the default latent->RGB preview.
    Every update also checks for a cancel, so a loop that reports progress stops promptly.
    """

    def __init__(self, total: int, preview_fn=None, desc: str = "camgrid"):
        begin_run()  # a reporter is made when a node's long work starts
        self.total = int(total)
        self.step = 0
        self._preview_fn = preview_fn
        self._previewers = {}  # latent channels -> ComfyUI previewer (or None: no preview)
        self._preview_broken = False
        if IN_COMFY:
            self._bar = _comfy_utils.ProgressBar(self.total)
        else:
            from tqdm.auto import tqdm

            disable = os.environ.get("CAMGRID_NO_PROGRESS", "") not in ("", "0")
            self._bar = tqdm(total=self.total, desc=desc, disable=disable)

    def update(self, step: int, latent: torch.Tensor | None = None) -> None:
        check_interrupted()
        previous, self.step = self.step, min(int(step), self.total)
        if IN_COMFY:
            preview = self._comfy_preview(latent) if latent is not None else None
            self._bar.update_absolute(self.step, self.total, preview)
        else:
            self._bar.update(self.step - previous)

    def close(self) -> None:
        if not IN_COMFY:
            self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    # A preview is a nicety: any failure turns previews off for this run instead of failing it.
    def _comfy_preview(self, latent: torch.Tensor):
        if self._preview_broken:
            return None
        try:
            import latent_preview

            size = getattr(latent_preview, "MAX_PREVIEW_RESOLUTION", 512)
            preview_fn = self._preview_fn
            if preview_fn is None and _preview_method() != "latent2rgb":  # our own latents: our preview decoder
                preview_fn = preview.decoder_preview_fn(latent.shape[-4])
            if preview_fn is not None:
                if _previews_off():  # the user's --preview-method none applies to ours too
                    return None
                image = preview_fn(latent)
                return None if image is None else ("JPEG", image, size)
            x0 = preview.tile_views(latent.detach())
            previewer = self._previewer_for(x0.shape[1])
            if previewer is None:
                return None
            return previewer.decode_latent_to_preview_image("JPEG", x0)
        except Exception as exc:  # noqa: BLE001 - see comment above
            log.warning("camgrid: latent preview disabled for this run: %s", exc)
            self._preview_broken = True
            return None

    def _previewer_for(self, channels: int):
        if channels not in self._previewers:
            import comfy.latent_formats as formats
            import latent_preview

            # Wan2.1 VAE latents have 16 channels, Wan2.2's have 48; the built-in model's its own projection.
            fmt_class = {16: getattr(formats, "Wan21", None), 48: getattr(formats, "Wan22", None)}.get(channels)
            own = preview.latent_rgb_factors(channels)
            if fmt_class is not None:
                self._previewers[channels] = latent_preview.get_previewer(torch_device(), fmt_class())
            elif own is not None and not _previews_off():
                self._previewers[channels] = latent_preview.Latent2RGBPreviewer(*own)
            else:
                self._previewers[channels] = None
        return self._previewers[channels]


__all__ = [
    "IN_COMFY", "MODEL_KINDS", "CAMGRID_FOLDER", "CAMGRID_EXTENSIONS", "WEIGHT_EXTENSIONS",
    "models_root", "model_folders", "list_models", "model_path", "user_folders",
    "torch_device", "offload_device", "free_bytes", "free_memory_for", "is_low_vram", "soft_empty_cache",
    "Interrupted", "InterruptException", "interrupt_event", "request_interrupt", "begin_run", "check_interrupted",
    "ProgressReporter",
]
