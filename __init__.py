"""camgrid: synchronized multi-camera and 4D video generation for ComfyUI.

ComfyUI imports this folder as a package under its folder name and reads the two mappings
below; everything heavy lives in `model/` and `kernels/`, which never import ComfyUI.
"""
import sys

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
