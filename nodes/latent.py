"""Latent nodes: an empty grid latent, and an input video encoded as novel-view conditioning."""
from __future__ import annotations

import torch

from ..model.conditioning import SOURCE_USES, SourceVideo
from ..model.modes import fit_frames
from . import latent_convert
from .rig import check_grid_size
from .sockets import SOURCE
from .vae_io import encode_video

LATENT_CHANNELS = 16  # Wan2.1 VAE
MAX_SIZE = 4096


def size_inputs(tooltip_what: str) -> dict:
    return {
        "width": ("INT", {"default": 832, "min": 16, "max": MAX_SIZE, "step": 16, "tooltip": f"Width of {tooltip_what} "
                          "in pixels (multiple of 16). 832x480 is what the 1.3B models were trained at."}),
        "height": ("INT", {"default": 480, "min": 16, "max": MAX_SIZE, "step": 16, "tooltip": f"Height of "
                           f"{tooltip_what} in pixels (multiple of 16)."}),
        "length": ("INT", {"default": 81, "min": 1, "max": 1025, "step": 4, "tooltip": "Video frames (4k+1: the "
                           "Wan VAE packs 4 frames per latent frame after the first). 81 frames = 5 s at 16 fps."}),
    }


class CamGridEmptyLatent:
    """An empty latent grid: V views x time, view-major so core VAE Decode still works on it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "views": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": "Number of cameras (views). Must "
                              "match the rig's camera count."}),
            **size_inputs("each view"),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 16, "tooltip": "Independent grids to generate "
                                   "at once (each with all views)."}),
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
        if None in (width, height, length):
            return True
        return check_grid_size(width, height, length)

    def generate(self, views, width, height, length, batch_size=1, vae=None):
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
                "view": ("INT", {"default": 0, "min": 0, "max": 63, "tooltip": "replace_view: which view of the "
                         "grid the input video is."}),
                "start_frame": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip": "Skip this many frames "
                                "of the input first."}),
            },
            "optional": {
                "tiled": ("BOOLEAN", {"default": False, "tooltip": "Encode in tiles (less VRAM, a bit slower)."}),
            },
        }

    RETURN_TYPES = (SOURCE, "IMAGE")
    RETURN_NAMES = ("source", "frames")
    FUNCTION = "encode"
    CATEGORY = "CamGrid/latent"
    DESCRIPTION = "Encodes an input video as conditioning for CamGrid Sampler (video -> new camera paths)."

    @classmethod
    def VALIDATE_INPUTS(cls, width=None, height=None, length=None, use=None, view=None):
        if None in (width, height, length):
            return True
        size = check_grid_size(width, height, length)
        if size is not True:
            return size
        if use == "first_row" and view not in (None, 0):
            return (f"use first_row always makes the input video view 0 (the fixed camera), but view is {view}: "
                    "set view to 0, or use replace_view")
        if use is not None and use not in ("auto",) + SOURCE_USES:
            return f"use {use!r} is not one of auto, {', '.join(SOURCE_USES)}"
        return True

    def encode(self, images, vae, width, height, length, use, view, start_frame, tiled=False):
        frames = images[start_frame:]
        if frames.shape[0] < length:
            raise ValueError(f"the input video has {images.shape[0]} frames (after skipping {start_frame}) but "
                             f"length is {length}: lower length (4k+1, e.g. "
                             f"{max(1, (frames.shape[0] - 1) // 4 * 4 + 1)}) or start_frame, or load more frames")
        fitted = fit_frames(frames[..., :3], width, height, length)
        raw = encode_video(vae, fitted, tiled=tiled)
        expected = (length - 1) // 4 + 1
        if raw.shape[2] != expected:
            raise ValueError(f"the VAE gave {raw.shape[2]} latent frames for {length} video frames (expected "
                             f"{expected}); use the Wan2.1 VAE")
        source = SourceVideo(latent_convert.normalize(raw), use, 0 if use == "first_row" else view)
        return source, fitted
