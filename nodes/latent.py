"""Latent nodes: an empty grid latent, and an input video encoded as novel-view conditioning."""
from __future__ import annotations

import torch

from ..model.checks import (BATCH_SIZE, FRAMES, SOURCE_NOISE, VIDEO_SIDE, VIEW_INDEX, VIEWS, Limit, InputError,
                            raise_problem, range_problem, video_size_problem)
from ..model.conditioning import SOURCE_USES, SourceVideo
from ..model.modes import fit_frames
from . import latent_convert
from .sockets import SOURCE
from .vae_io import encode_video

LATENT_CHANNELS = 16  # Wan2.1 VAE
START_FRAME = Limit(0, 100000, integer=True, hint="input frames skipped first")
GRID_SIZE_NAMES = ("width", "height", "length")


def size_inputs(tooltip_what: str) -> dict:
    return {
        "width": ("INT", VIDEO_SIDE.widget(default=832, step=16, tooltip=f"Width of {tooltip_what} in pixels "
                  "(multiple of 16). 832x480 is what the 1.3B models were trained at.")),
        "height": ("INT", VIDEO_SIDE.widget(default=480, step=16, tooltip=f"Height of {tooltip_what} in pixels "
                   "(multiple of 16).")),
        "length": ("INT", FRAMES.widget(default=81, step=4, tooltip="Video frames (4k+1: the Wan VAE packs 4 "
                   "frames per latent frame after the first). 81 frames = 5 s at 16 fps.")),
    }


def empty_latent_problem(views=None, width=None, height=None, length=None, batch_size=None):
    """None, or why CamGrid Empty Latent cannot make this grid (None = not known yet)."""
    return (range_problem({"views": VIEWS, "batch_size": BATCH_SIZE}, {"views": views, "batch_size": batch_size})
            or video_size_problem(width, height, length, GRID_SIZE_NAMES))


def source_video_problem(width=None, height=None, length=None, use=None, view=None, start_frame=None, noise=None):
    """None, or why CamGrid Source Video cannot take these inputs (None = not known yet)."""
    problem = (video_size_problem(width, height, length, GRID_SIZE_NAMES)
               or range_problem({"view": VIEW_INDEX, "start_frame": START_FRAME, "noise": SOURCE_NOISE},
                                {"view": view, "start_frame": start_frame, "noise": noise}))
    if problem:
        return problem
    if use is not None and use not in ("auto",) + SOURCE_USES:
        return f"use {use!r} is not one of auto, {', '.join(SOURCE_USES)}"
    if use == "first_row" and view not in (None, 0):
        return (f"use first_row always makes the input video view 0 (the fixed camera), but view is {view}: "
                "set view to 0, or use replace_view")
    return None


class CamGridEmptyLatent:
    """An empty latent grid: V views x time, view-major so core VAE Decode still works on it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "views": ("INT", VIEWS.widget(default=4, tooltip="Number of cameras (views). Must match the rig's "
                      "camera count.")),
            **size_inputs("each view"),
            "batch_size": ("INT", BATCH_SIZE.widget(default=1, tooltip="Independent grids to generate at once "
                           "(each with all views).")),
        }, "optional": {
            "vae": ("VAE", {"tooltip": "Optional: size the latent for this VAE (channels, compression). Leave "
                    "empty for the Wan2.1 VAE (16 channels, 8x)."}),
        }}

    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    FUNCTION = "generate"
    CATEGORY = "CamGrid/latent"
    DESCRIPTION = "Creates an empty grid latent of views x frames for CamGrid Sampler."

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None, length=None):
        # named here for the multiple-of-16 and 4k+1 rules (ComfyUI then skips its min/max for them)
        return empty_latent_problem(width=width, height=height, length=length) or True

    def generate(self, views, width, height, length, batch_size=1, vae=None):
        raise_problem(empty_latent_problem(views, width, height, length, batch_size))
        channels, spatial, temporal = LATENT_CHANNELS, 8, 4
        if vae is not None:
            channels = int(getattr(vae, "latent_channels", channels))
            spatial = int(getattr(vae, "spacial_compression_decode", lambda: spatial)())
            temporal = int(getattr(vae, "temporal_compression_decode", lambda: temporal)() or temporal)
        t = (length - 1) // temporal + 1
        grid = torch.zeros(batch_size, views, channels, t, height // spatial, width // spatial)
        return (latent_convert.grid_to_latent(grid),)


class CamGridSourceVideo:
    """An input video, cut and resized to the output, encoded once by the VAE for novel-view generation."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The input video's frames (e.g. from Load Video -> Get Video "
                           "Components). Centre-cropped to the output's aspect ratio and resized."}),
                "vae": ("VAE", {"tooltip": "The Wan2.1 VAE (wan_2.1_vae.safetensors)."}),
                **size_inputs("the output video"),
                "use": (["auto"] + list(SOURCE_USES), {"default": "auto", "tooltip": "How the sampler uses the "
                        "video. recam: ReCamMaster re-renders it (needs ReCamMaster weights). replace_view: it "
                        "becomes view `view` of the grid (any model). first_row: it is view 0, the fixed camera "
                        "(4Real-Video). auto: recam for ReCamMaster models, else replace_view."}),
                "view": ("INT", VIEW_INDEX.widget(default=0, tooltip="replace_view: which view of the grid the "
                         "input video is.")),
                "start_frame": ("INT", START_FRAME.widget(default=0, tooltip="Skip this many frames of the input "
                                "first.")),
            },
            "optional": {
                "tiled": ("BOOLEAN", {"default": False, "tooltip": "Encode in tiles (less VRAM, a bit slower)."}),
                "noise": ("FLOAT", SOURCE_NOISE.widget(default=1.0, step=0.05, tooltip=
                          "replace_view / first_row: the input video's view is held at this share of the grid's "
                          "noise level at every step. 1: SynCamMaster's setting. Lower: the other views see it more "
                          "clearly (a model trained with camgrid train --given-view-share, like the built-in model, "
                          "follows it more closely below 1; measured at 0.5). recam ignores it (the model reads the "
                          "source clean).")),
            },
        }

    RETURN_TYPES = (SOURCE, "IMAGE")
    RETURN_NAMES = ("source", "frames")
    FUNCTION = "encode"
    CATEGORY = "CamGrid/latent"
    DESCRIPTION = "Encodes an input video as conditioning for CamGrid Sampler (video -> new camera paths)."

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None, length=None, use=None, view=None, noise=None):
        return source_video_problem(width, height, length, use, view, noise=noise) or True

    def encode(self, images, vae, width, height, length, use, view, start_frame, tiled=False, noise=1.0):
        raise_problem(source_video_problem(width, height, length, use, view, start_frame, noise))
        frames = images[start_frame:]
        if frames.shape[0] < length:
            raise InputError(f"the input video has {images.shape[0]} frames (after skipping {start_frame}) but "
                             f"length is {length}: lower length (4k+1, e.g. "
                             f"{max(1, (frames.shape[0] - 1) // 4 * 4 + 1)}) or start_frame, or load more frames")
        fitted = fit_frames(frames[..., :3], width, height, length)
        raw = encode_video(vae, fitted, tiled=tiled)
        expected = (length - 1) // 4 + 1
        if raw.shape[2] != expected:
            raise InputError(f"the VAE gave {raw.shape[2]} latent frames for {length} video frames (expected "
                             f"{expected}); use the Wan2.1 VAE")
        source = SourceVideo(latent_convert.normalize(raw), use, 0 if use == "first_row" else view, noise_scale=noise)
        return source, fitted
