"""Library pieces that other parts of camgrid add over time; nodes offer them only when present.

Each lookup returns None when the piece is missing, so the node pack loads on any version of the
library and says what is missing when a user asks for it.
"""
from __future__ import annotations

import importlib
import logging

log = logging.getLogger("camgrid")

BUILTIN_MODEL_NAME = "camgrid-tiny (built-in)"
_PACKAGE = __name__.rsplit(".", 2)[0]  # the pack's own name: "camgrid" or ComfyUI's folder name


def _module(name: str):
    try:
        return importlib.import_module(f"{_PACKAGE}.{name}")
    except ImportError as exc:
        # a missing optional module is normal; a module that exists but fails to import is a bug to report
        if getattr(exc, "name", None) and not exc.name.endswith(name.split(".")[-1]):
            log.warning("camgrid: %s is present but failed to import: %s", name, exc)
        return None


def _function(module_names, function_names):
    for module_name in module_names:
        module = _module(module_name)
        if module is None:
            continue
        for fn in function_names:
            if callable(getattr(module, fn, None)):
                return getattr(module, fn)
    return None


def builtin_loader():
    """`load_builtin(device=...) -> TinyGridModel` (DiT + tiny text encoder + tiny video autoencoder)
    when the built-in model and its asset files are installed, else None."""
    load = _function(("train",), ("load_builtin",))
    available = _function(("train",), ("builtin_available",))
    return load if load is not None and available is not None and available() else None


def builtin_weight_files():
    """(DiT file, sync-weights file or None) of the built-in model when its asset files are installed, else
    None: the Model Loader loads them like any other DiT file."""
    if builtin_loader() is None:
        return None
    builtin = _module("train.builtin")
    sync = builtin.ASSETS_DIR / builtin.SYNC_FILE
    return builtin.ASSETS_DIR / builtin.DIT_FILE, (sync if sync.is_file() else None)


def block_swap_functions():
    """(enable_block_swap(model, num_blocks, device), disable_block_swap(model, device)) from
    model/offload.py, or None."""
    enable = _function(("model.offload",), ("enable_block_swap",))
    disable = _function(("model.offload",), ("disable_block_swap",))
    return (enable, disable) if enable and disable else None


def rig_drawer():
    """`draw_rig(rig, size=(width, height)) -> PIL.Image` from model/rig_preview.py, or None."""
    return _function(("model.rig_preview",), ("draw_rig",))
