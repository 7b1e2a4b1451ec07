"""The rules every request follows, whichever door it comes in by (node, CLI, pipeline, library):

- which grid mode `auto` means for each model variant (docs/ARCHITECTURE.md §3.3 Grid modes);
- how each variant's camera encoder wants the rig encoded: the reference camera and the translation scale
  (docs/ARCHITECTURE.md §4 Cameras);
- the video geometry the Wan VAE and the DiT accept (4k+1 frames, sizes in multiples of 16), and fitting a
  source video to it (docs/ARCHITECTURE.md §6 Novel-view video conditioning);
- turning a preset name, a rig file or a CameraRig into the rig of a request.

Each rule is stated once, here (the translation scales live beside the encoder in `camera.encoding`, whose
`relative_extrinsics(rig, "syncammaster")` reads them, and are re-exported here). Nodes import this module,
never the CLI module `pipeline.py`.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from .camera import RIG_PRESETS, TRANSLATION_SCALE, VAE_TEMPORAL_STRIDE, CameraRig, latent_frame_count, load_rig, \
    make_preset, relative_extrinsics
from .camera.limits import FRAMES
from .camera.values import plural
from .checks import InputError
from .dit import MODES

VARIANTS = tuple(TRANSLATION_SCALE)   # "syncammaster", "recammaster", "wan"

# mode "auto": what each released model was trained for (plain Wan: training-free 4Real-Video hard sync).
# Never "fused" (4Real-Video-V2 masked attention over the whole grid, training-free, any variant): it is asked
# for by name (sync_mode / mode="fused"), so `auto` gives the grids it gave before fused existed.
AUTO_MODE = {"syncammaster": "syncam", "recammaster": "recam", "wan": "hard"}
# camera reference per variant (camera.relative_extrinsics): SynCamMaster encodes every view relative
# to view 0 at the same frame; ReCamMaster encodes each target path relative to its own first pose.
CAMERA_REFERENCE = {"syncammaster": "view0", "recammaster": "first_pose", "wan": "view0"}

SPATIAL_STRIDE = 16       # 8x VAE times the DiT's 2x2 patch: width and height must be multiples of this


def _check_variant(variant: str) -> str:
    if variant not in AUTO_MODE:
        raise InputError(f"model variant {variant!r} is unknown; camgrid knows {', '.join(VARIANTS)}")
    return variant


def pick_mode(variant: str, mode: str = "auto") -> str:
    """The grid mode to run: `mode`, or for "auto" the one the variant was trained for."""
    if mode == "auto":
        return AUTO_MODE[_check_variant(variant)]
    if mode not in MODES:
        raise InputError(f"mode {mode!r} is not 'auto' or one of {MODES}")
    return mode


def camera_rule(variant: str) -> tuple[str, float]:
    """(reference, translation scale per metre) of `variant`'s camera encoding."""
    _check_variant(variant)
    return CAMERA_REFERENCE[variant], TRANSLATION_SCALE[variant]


def camera_embedding(rig: CameraRig, variant: str, num_latent_frames: int) -> torch.Tensor:
    """[V, T_lat, 12] relative extrinsics with the variant's translation scale and reference rule."""
    reference, scale = camera_rule(variant)
    return relative_extrinsics(rig, scale, reference=reference, num_latent_frames=num_latent_frames)


def check_frames(frames: int, name: str = "frames") -> int:
    """Video frames of a request: 4k+1 (the Wan VAE packs 4 frames per latent frame after the first), at most
    the camera limit FRAMES. Returns it as an int."""
    frames = FRAMES.check(frames, name, InputError)
    if (frames - 1) % VAE_TEMPORAL_STRIDE:
        lo = (frames - 1) // VAE_TEMPORAL_STRIDE * VAE_TEMPORAL_STRIDE + 1
        raise InputError(f"{name} must be 4k+1 (the Wan VAE packs 4 frames per latent frame after the first), got "
                         f"{frames}: use {lo} or {lo + VAE_TEMPORAL_STRIDE}")
    return frames


def check_video_size(width: int, height: int, frames: int) -> None:
    """Frames 4k+1; width and height positive multiples of SPATIAL_STRIDE."""
    check_frames(frames)
    for name, size in (("width", width), ("height", height)):
        if isinstance(size, bool) or not isinstance(size, numbers.Integral):
            raise InputError(f"{name} must be a whole number of pixels, got {type(size).__name__}")
        if size < SPATIAL_STRIDE or size % SPATIAL_STRIDE:
            near = max(SPATIAL_STRIDE, (size + SPATIAL_STRIDE // 2) // SPATIAL_STRIDE * SPATIAL_STRIDE)
            raise InputError(f"{name} must be a positive multiple of {SPATIAL_STRIDE} (8x VAE, 2x2 patches), "
                             f"got {size}: use {near}")


def build_rig(rig: Union[str, Path, CameraRig], views: Optional[int] = None, frames: int = 81) -> CameraRig:
    """A rig from a CameraRig, a preset name (camera.RIG_PRESETS) or a rig JSON file, cut to `views` views."""
    if isinstance(rig, CameraRig):
        out = rig
    elif str(rig) in RIG_PRESETS:
        params = RIG_PRESETS[str(rig)].params
        kwargs = {}
        if "num_views" in params and views is not None:
            kwargs["num_views"] = int(views)
        if "num_frames" in params:
            kwargs["num_frames"] = int(frames)
        out = make_preset(str(rig), **kwargs)
    elif Path(rig).is_file():
        out = load_rig(Path(rig))
    else:
        raise InputError(f"rig {str(rig)!r} is neither a camera preset nor an existing JSON file; presets: "
                         f"{', '.join(RIG_PRESETS)}")
    if views is not None:
        if out.num_views < views:
            raise InputError(f"the rig has {plural(out.num_views, 'camera')} ({', '.join(out.names[:10])}) but {views} "
                             "views were asked for: ask for fewer views or use a rig with more cameras")
        if out.num_views > views:
            out = out.select_views(list(range(int(views))))
    return out.validate()


def fit_frames(frames, width: int, height: int, num_frames: int) -> torch.Tensor:
    """Video frames [F, H, W, 3] (uint8 or float 0..1) -> float [num_frames, height, width, 3]:
    the first `num_frames` frames, centre-cropped to the aspect ratio and resized."""
    x = torch.as_tensor(np.asarray(frames) if not isinstance(frames, torch.Tensor) else frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise InputError(f"source video frames must be [F, H, W, 3], got shape {tuple(x.shape)}")
    if x.shape[0] < num_frames:
        raise InputError(f"the source video has {x.shape[0]} frames but {num_frames} are needed: use a longer video "
                         f"or fewer frames (4k+1, e.g. {max(1, (x.shape[0] - 1) // 4 * 4 + 1)})")
    x = x[:num_frames]
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    x = x.permute(0, 3, 1, 2)  # [F, 3, H, W]
    h, w = x.shape[-2:]
    if h * width != w * height:  # centre crop to the target aspect ratio
        if w * height > h * width:
            cw = round(h * width / height)
            x = x[..., (w - cw) // 2:(w - cw) // 2 + cw]
        else:
            ch = round(w * height / width)
            x = x[..., (h - ch) // 2:(h - ch) // 2 + ch, :]
    if tuple(x.shape[-2:]) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0, 1).permute(0, 2, 3, 1)


__all__ = ["VARIANTS", "MODES", "AUTO_MODE", "CAMERA_REFERENCE", "TRANSLATION_SCALE", "VAE_TEMPORAL_STRIDE",
           "SPATIAL_STRIDE", "pick_mode", "camera_rule", "camera_embedding", "check_frames", "check_video_size",
           "build_rig", "fit_frames", "latent_frame_count"]
