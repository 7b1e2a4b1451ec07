"""CamGridContextWindows: how CamGrid Sampler splits each step into overlapping windows over time and views, for
videos longer than 81 frames and rigs larger than one pass (model/context_windows.py).

A node of its own that feeds the sampler's optional `context_windows` input, as ComfyUI core's
`WanContextWindowsManual` does: the sampler's widget list stays short, the windows stay off unless the node is
connected (so existing workflows sample exactly as before), and one setting can serve several samplers.
"""
from __future__ import annotations

from ..model.checks import VIEW_INDEX, Limit, raise_problem
from ..model.context_windows import (FUSE_METHODS, VIEW_OVERLAP, VIEW_WINDOW, WINDOW_FRAMES, WINDOW_OVERLAP,
                                     ContextWindows, windows_problem)
from .sockets import WINDOWS


def _or_off(limit: Limit) -> Limit:
    """A window size's widget range: 0 turns that kind of window off."""
    return Limit(0, limit.high, integer=True, hint=f"{limit.hint}; 0 = off")


NODE_LIMITS = {"window_frames": _or_off(WINDOW_FRAMES), "window_overlap": WINDOW_OVERLAP,
               "view_window": _or_off(VIEW_WINDOW), "view_overlap": VIEW_OVERLAP, "anchor_view": VIEW_INDEX}


def context_windows_problem(window_frames=None, window_overlap=None, fuse=None, view_window=None, view_overlap=None,
                            anchor_view=None):
    """None, or why these inputs make no context windows (None = not known yet; 0 = that kind of window off)."""
    for name, value in (("window_frames", window_frames), ("view_window", view_window)):
        if value is not None:
            problem = NODE_LIMITS[name].problem(name, value)
            if problem:
                return problem
    return windows_problem(window_frames=window_frames or None, window_overlap=window_overlap, fuse=fuse,
                           view_window=view_window or None, view_overlap=view_overlap, anchor_view=anchor_view)


class CamGridContextWindows:
    """Context windows for CamGrid Sampler: each step runs the model on overlapping windows and fuses them."""

    @classmethod
    def INPUT_TYPES(cls):
        lim = NODE_LIMITS
        return {"required": {
            "window_frames": ("INT", lim["window_frames"].widget(default=21, tooltip="Latent frames per time window "
                              "(21 = 81 video frames, what Wan2.1, SynCamMaster and ReCamMaster were trained on). "
                              "Longer videos are sampled in overlapping windows of this length with the memory of "
                              "one window. 0 = one pass over all frames.")),
            "window_overlap": ("INT", lim["window_overlap"].widget(default=5, tooltip="Latent frames shared by "
                               "neighbouring windows (at least; windows are spread evenly). About a quarter of the "
                               "window; more overlap = smoother joins, more model calls.")),
            "fuse": (list(FUSE_METHODS), {"default": "linear", "tooltip": "How overlapping predictions are "
                     "weighted. linear: ramps across each overlap (WanVideoWrapper's default). pyramid: highest in "
                     "each window's centre. flat: a plain average."}),
            "view_window": ("INT", lim["view_window"].widget(default=0, tooltip="Views per model call, the anchor "
                            "included, for rigs larger than one pass (e.g. 4 of 16 cameras). 0 = all views in every "
                            "call.")),
            "view_overlap": ("INT", lim["view_overlap"].widget(default=1, tooltip="Views shared by neighbouring "
                             "view subsets, besides the anchor.")),
            "anchor_view": ("INT", lim["anchor_view"].widget(default=0, tooltip="The view every subset holds, so "
                            "the subsets agree (0: SynCamMaster's reference camera).")),
        }, "optional": {
            "stagger": ("BOOLEAN", {"default": False, "tooltip": "Move the time windows every step, so their "
                        "borders never stay in one place (softer joins, about one more model call per step)."}),
        }}

    RETURN_TYPES = (WINDOWS,)
    RETURN_NAMES = ("context_windows",)
    FUNCTION = "build"
    CATEGORY = "CamGrid/sampling"
    DESCRIPTION = ("Longer videos and larger rigs: CamGrid Sampler runs each step on overlapping windows of frames "
                   "(and views) and fuses them. Connect to the sampler's context_windows input.")

    @classmethod
    def VALIDATE_INPUTS(cls, window_frames=None, window_overlap=None, fuse=None, view_window=None, view_overlap=None,
                        anchor_view=None):
        # every input is named: ComfyUI then skips its own min/max checks and these make them
        return context_windows_problem(window_frames, window_overlap, fuse, view_window, view_overlap,
                                       anchor_view) or True

    def build(self, window_frames, window_overlap, fuse, view_window, view_overlap, anchor_view, stagger=False):
        raise_problem(context_windows_problem(window_frames, window_overlap, fuse, view_window, view_overlap,
                                              anchor_view))
        return (ContextWindows.from_inputs(window_frames, window_overlap, fuse, view_window, view_overlap,
                                           anchor_view, stagger),)
