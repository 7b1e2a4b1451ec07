"""camgrid: synchronized multi-camera and 4D video generation for ComfyUI.

ComfyUI imports this folder as a package under its folder name and reads the two mappings
below; everything heavy lives in `model/` and `kernels/`, which never import ComfyUI.
"""
NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

try:  # the nodes are optional for library use (`import camgrid`) and must never break it
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: F811
except ImportError as exc:  # pragma: no cover - reported, not hidden
    import logging

    logging.getLogger("camgrid").warning("camgrid nodes not loaded: %s", exc)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
