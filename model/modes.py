"""The rules every request follows, whichever door it comes in by (node, CLI, pipeline, library):

- the grid modes, and which one `auto` means for each model variant (docs/ARCHITECTURE.md §3.3 Grid modes);
- what each mode needs from the loaded weights (`mode_problem`) and how a source video may be used in it
  (`source_problem`): the DiT, the sampler's source check and the CLI (before loading) ask these;
- how each variant's camera encoder wants the rig encoded: the reference camera and the translation scale
  (docs/ARCHITECTURE.md §4 Cameras);
- fitting a source video to the output (docs/ARCHITECTURE.md §6 Novel-view video conditioning), and turning a
  preset name, a rig file or a CameraRig into the rig of a request.

Each rule is stated once, here (the translation scales live beside the encoder in `camera.encoding`, whose
`relative_extrinsics(rig, "syncammaster")` reads them, and are re-exported here; the video size rules are
limits of `checks.py`). Nodes import this module, never the CLI module `pipeline.py`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
import torch.nn.functional as F

from .camera import RIG_PRESETS, TRANSLATION_SCALE, VAE_TEMPORAL_STRIDE, CameraRig, latent_frame_count, load_rig, \
    make_preset, relative_extrinsics
from .camera.values import plural
from .checks import InputError
from .config import VARIANTS

# The grid modes (docs/ARCHITECTURE.md §3.3 Grid modes); GridDiT.MODE_FORWARDS has one forward per name.
MODES = ("independent", "syncam", "recam", "hard", "soft", "fused")
# mode "auto": what each released model was trained for (plain Wan: training-free 4Real-Video hard sync).
# Never "fused" (4Real-Video-V2 masked attention over the whole grid, training-free, any variant): it is asked
# for by name (sync_mode / mode="fused"), so `auto` gives the grids it gave before fused existed.
AUTO_MODE = {"syncammaster": "syncam", "recammaster": "recam", "wan": "hard"}
# camera reference per variant (camera.relative_extrinsics): SynCamMaster encodes every view relative
# to view 0 at the same frame; ReCamMaster encodes each target path relative to its own first pose.
CAMERA_REFERENCE = {"syncammaster": "view0", "recammaster": "first_pose", "wan": "view0"}


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


def mode_problem(mode: str, variant: str, soft_sync: bool) -> Optional[str]:
    """None, or why `mode` cannot run on a `variant` model that has (or lacks) trained soft-sync weights."""
    if mode == "syncam" and variant != "syncammaster":
        return (f"mode 'syncam' needs SynCamMaster weights (multi-view attention 'mvs_attn'), but the model is a "
                f"{variant} DiT. Load a SynCamMaster-Wan2.1 checkpoint, or use mode 'hard' (training-free "
                "4Real-Video sync, works with any Wan2.1 model).")
    if mode == "recam" and variant != "recammaster":
        return (f"mode 'recam' needs ReCamMaster weights (a camera encoder trained on source videos), but the model "
                f"is a {variant} DiT. Load a ReCamMaster-Wan2.1 checkpoint.")
    if mode == "soft" and not soft_sync:
        return ("mode 'soft' needs trained soft-sync weights, and none are loaded. Load a camgrid sync-weights file "
                "(CamGrid Model Loader 'sync_weights', generate --sync-weights FILE, or load_sync_weights(model, "
                "path)), or use mode 'hard', which works without trained weights.")
    return None


def source_problem(mode: str, source_use: Optional[str]) -> Optional[str]:
    """None, or why a source video used as `source_use` (None: no source) does not fit grid mode `mode`."""
    if mode == "recam" and source_use is None:
        return ("mode 'recam' (ReCamMaster) re-renders an input video and needs one: give a source video "
                "(CamGrid Source Video, --source video.mp4, SourceVideo(latent, 'recam')), or choose another mode")
    if source_use == "recam" and mode != "recam":
        return (f"source use 'recam' needs grid mode 'recam' (a ReCamMaster model), got mode {mode!r}: use the "
                "source as replace_view / first_row, or mode recam")
    if source_use in ("replace_view", "first_row") and mode == "recam":
        return (f"grid mode 'recam' feeds the source through the model; got source use {source_use!r}: use the "
                "source as recam with mode recam, or another mode for replace_view / first_row")
    return None


def camera_rule(variant: str) -> tuple[str, float]:
    """(reference, translation scale per metre) of `variant`'s camera encoding."""
    _check_variant(variant)
    return CAMERA_REFERENCE[variant], TRANSLATION_SCALE[variant]


def camera_embedding(rig: CameraRig, variant: str, num_latent_frames: int) -> torch.Tensor:
    """[V, T_lat, 12] relative extrinsics with the variant's translation scale and reference rule."""
    reference, scale = camera_rule(variant)
    return relative_extrinsics(rig, scale, reference=reference, num_latent_frames=num_latent_frames)


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
           "pick_mode", "mode_problem", "source_problem", "camera_rule", "camera_embedding", "build_rig", "fit_frames",
           "latent_frame_count"]
