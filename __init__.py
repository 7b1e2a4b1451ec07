"""camgrid: synchronized multi-camera and 4D video generation for ComfyUI.

ComfyUI imports this folder as a package under its folder name and reads the two mappings
below; everything heavy lives in `model/` and `kernels/`, which never import ComfyUI.
"""
import os
import sys

# --- keep the pack's folders from shadowing installed distributions -----------------------------------
# The pack's sub-packages have common names (`kernels`, `model`, `nodes`, `train`, ...). Whenever this
# folder itself is on sys.path (a command started from the repository root puts '' there), `import kernels`
# inside diffusers or transformers would find our folder instead of the registry package `kernels`.
# The pack is only ever imported as a package (`camgrid`, or its folder name in ComfyUI), so its own folder
# never needs to be a path entry: drop it, and forget top-level modules that were already loaded from it.
_PACK_DIR = os.path.dirname(os.path.realpath(__file__))


def _is_pack_dir(entry: str) -> bool:
    try:
        return os.path.realpath(entry or os.curdir) == _PACK_DIR
    except (OSError, ValueError):
        return False


sys.path[:] = [entry for entry in sys.path if not _is_pack_dir(entry)]
for _name in os.listdir(_PACK_DIR):
    _module = sys.modules.get(_name)
    _file = getattr(_module, "__file__", None) or ""
    if _name != __name__ and _file and os.path.realpath(_file).startswith(_PACK_DIR + os.sep):
        del sys.modules[_name]   # a shadow import, e.g. our `kernels` loaded as the top-level `kernels`

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

# ComfyUI has these loaded before it imports any custom node pack (nodes/host.py relies on the same test).
_IN_COMFY = "folder_paths" in sys.modules and "comfy.model_management" in sys.modules

try:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F811
except ImportError as exc:
    if _IN_COMFY:
        # Inside ComfyUI a broken node pack must fail loudly: ComfyUI then lists it as IMPORT FAILED
        # with this traceback, instead of starting with our nodes silently missing.
        raise
    # Library use (`import camgrid`) must not depend on the node layer.
    import logging

    logging.getLogger("camgrid").warning("camgrid nodes not loaded: %s", exc)


__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
