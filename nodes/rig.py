"""Camera rig nodes: build or load a rig, draw it, encode it for the model.

Every numeric input's range is a `Limit` of `model/camera/limits.py` (or `model/checks.py` for the video
length): the widget shows it, VALIDATE_INPUTS checks it (naming an input there turns ComfyUI's own min/max
check off, and lets NaN through otherwise), and the library refuses the same values when a node is called
directly.
"""
from __future__ import annotations

import os
import re

import numpy as np
import torch

from ..model.camera import RIG_PRESETS, CameraRigError, load_rig, make_preset
from ..model.camera.limits import (AMPLITUDE, AZIMUTH_SPAN_DEG, DISTANCE_M, ELEVATION_DEG, HFOV_DEG, RIG_FRAMES,
                                   STEP_M, TRANSLATION_SCALE_RANGE, VIEWS, CameraLimit)
from ..model.camera.values import plural
from ..model.checks import FRAMES, CamGridError, InputError, frames_problem, raise_problem, range_problem
from ..model.config import VARIANTS
from ..model.rig_preview import PREVIEW_PIXELS, draw_rig
from . import host
from .sockets import EMBEDS, RIG, CameraEmbeds

RECAM_PREFIX = "recammaster_"
# The rig node's numeric inputs and their limits.
RIG_LIMITS = {"views": VIEWS, "frames": RIG_FRAMES, "azimuth_span": AZIMUTH_SPAN_DEG, "elevation": ELEVATION_DEG,
              "radius": DISTANCE_M, "spacing": STEP_M, "hfov": HFOV_DEG, "amplitude": AMPLITUDE}
RESAMPLE_FRAMES = CameraLimit(0, RIG_FRAMES.high, integer=True)   # Load Rig: 0 keeps the file's frame count
ENCODE_SCALE = CameraLimit(0, TRANSLATION_SCALE_RANGE.high)       # Camera Encode: 0 = the convention's own scale


def rig_files() -> list[str]:
    """Rig JSON files in the models/camgrid folder."""
    return [n for n in host.list_models(host.CAMGRID_FOLDER) if n.lower().endswith(".json")]


# node input -> the preset parameters it feeds
PRESET_PARAMS = {"views": ("num_views",), "frames": ("num_frames",), "azimuth_span": ("azimuth_span_deg",),
                 "elevation": ("elevation_deg", "max_elevation_deg"), "radius": ("radius",), "spacing": ("step",),
                 "hfov": ("hfov_deg",), "amplitude": ("amplitude",)}


def preset_inputs(preset: str, **inputs) -> dict:
    """The node inputs the chosen preset uses (the others are ignored)."""
    params = RIG_PRESETS[preset].params
    return {name: value for name, value in inputs.items() if any(p in params for p in PRESET_PARAMS[name])}


def preset_kwargs(preset: str, views: int, frames: int, azimuth_span: float, elevation: float, radius: float,
                  spacing: float, hfov: float, amplitude: float) -> dict:
    """The node's numbers mapped onto the parameters the chosen preset takes (others are ignored)."""
    params = RIG_PRESETS[preset].params
    offered = {
        "num_views": views, "num_frames": frames, "azimuth_span_deg": azimuth_span,
        "elevation_deg": elevation, "max_elevation_deg": elevation, "radius": radius, "step": spacing,
        "hfov_deg": hfov, "amplitude": amplitude if amplitude != 0 else None,
    }
    return {k: v for k, v in offered.items() if k in params}


def preset_views(preset: str, views: int) -> int:
    """How many cameras a preset gives for the `views` widget."""
    if "num_views" in RIG_PRESETS[preset].params:
        return int(views)
    return make_preset(preset, num_frames=1).num_views


def describe_rig(rig) -> str:
    kind = "static" if rig.is_static else "moving"
    return f"{plural(rig.num_views, 'camera')} x {plural(rig.num_frames, 'frame')} ({kind}): {', '.join(rig.names)}"


def pil_to_image(pil) -> torch.Tensor:
    """PIL picture -> ComfyUI IMAGE [1, H, W, 3] float 0..1."""
    return torch.from_numpy(np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0)[None]


class CamGridRig:
    """A camera rig from a preset and a few numbers."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "preset": (list(RIG_PRESETS), {"default": "orbit_arc", "tooltip": "Camera layout. orbit_arc / "
                       "elevation_sweep / dolly: static cameras around a target; syncammaster_example: SynCamMaster's "
                       "10 cameras; recammaster_*: one moving camera path (ReCamMaster)."}),
            "views": ("INT", VIEWS.widget(default=4, tooltip="Number of cameras (orbit_arc, elevation_sweep, "
                      "dolly). syncammaster_example keeps its first N of 10; recammaster_* paths are one camera.")),
            "frames": ("INT", RIG_FRAMES.widget(default=81, step=4, tooltip="Video frames the path spans (use the "
                       "video length, 4k+1). Static rigs ignore it.")),
            "azimuth_span": ("FLOAT", AZIMUTH_SPAN_DEG.widget(default=60.0, step=1.0, tooltip="orbit_arc: degrees "
                             "between the leftmost and rightmost camera.")),
            "elevation": ("FLOAT", ELEVATION_DEG.widget(default=0.0, step=1.0, tooltip="Degrees above the target "
                          "(orbit_arc, dolly); elevation_sweep: the highest camera's elevation.")),
            "radius": ("FLOAT", DISTANCE_M.widget(default=3.0, step=0.1, tooltip="Metres from the cameras to the "
                       "look-at target.")),
            "spacing": ("FLOAT", STEP_M.widget(default=1.0, step=0.1, tooltip="dolly: metres between consecutive "
                        "cameras (positive = further back).")),
            "hfov": ("FLOAT", HFOV_DEG.widget(default=60.0, step=1.0, tooltip="Horizontal field of view in degrees "
                     "(used by previews and Plücker rays).")),
            "amplitude": ("FLOAT", AMPLITUDE.widget(default=0.0, step=0.5, tooltip="recammaster_*: size of the move "
                          "(degrees or metres); 0 = the path's nominal amount.")),
        }}

    RETURN_TYPES = (RIG, "STRING")
    RETURN_NAMES = ("rig", "summary")
    FUNCTION = "build"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Builds a camera rig (cameras over time) from a preset."

    @classmethod
    def VALIDATE_INPUTS(cls, preset=None, views=None, frames=None, azimuth_span=None, elevation=None, radius=None,
                        spacing=None, hfov=None, amplitude=None):
        # Inputs named here skip ComfyUI's own range/list checks, so they are all checked here; an input fed
        # by a link is not known yet (None) and is checked by the library when the node runs.
        problem = range_problem(RIG_LIMITS, dict(views=views, frames=frames, azimuth_span=azimuth_span,
                                                 elevation=elevation, radius=radius, spacing=spacing, hfov=hfov,
                                                 amplitude=amplitude))
        if problem is not None:
            return problem
        if preset is None or views is None:
            return True
        if preset not in RIG_PRESETS:
            return f"preset {preset!r} is unknown; choose one of {', '.join(RIG_PRESETS)}"
        if "num_views" not in RIG_PRESETS[preset].params:
            available = preset_views(preset, views)
            if preset.startswith(RECAM_PREFIX) and views != 1:
                return (f"preset {preset} is one moving camera (ReCamMaster re-renders one new path); set views "
                        "to 1, or pick orbit_arc / elevation_sweep / dolly for several cameras")
            if views > available:
                return f"preset {preset} has {available} cameras but views is {views}: use at most {available}"
        if preset == "dolly" and None not in (radius, spacing) and radius + (views - 1) * spacing <= 0:
            return (f"dolly: camera {views - 1} would sit at {radius + (views - 1) * spacing:g} m from the target; "
                    "raise radius or use a smaller negative spacing")
        return True

    def build(self, preset, views, frames, azimuth_span, elevation, radius, spacing, hfov, amplitude):
        # VALIDATE_INPUTS' checks again, for linked inputs and direct calls, on the inputs this preset uses
        if preset not in RIG_PRESETS:
            raise CameraRigError(f"preset {preset!r} is unknown; choose one of {', '.join(RIG_PRESETS)}")
        used = preset_inputs(preset, frames=frames, azimuth_span=azimuth_span, elevation=elevation, radius=radius,
                             spacing=spacing, hfov=hfov, amplitude=amplitude)
        problem = self.VALIDATE_INPUTS(preset, views, **used)
        if problem is not True:
            raise CameraRigError(problem)
        views = VIEWS.check("views", views)
        rig = make_preset(preset, **preset_kwargs(preset, views, frames, azimuth_span, elevation, radius, spacing,
                                                  hfov, amplitude))
        if rig.num_views > views:
            rig = rig.select_views(list(range(views)))
        return rig, describe_rig(rig)


def rig_file_path(rig_file: str, path: str | None, allow_any_path: bool | None) -> str:
    """The file Load Rig reads: `path` when set (inside ComfyUI's models or input folders unless the user
    allowed any path), else `rig_file` from models/camgrid."""
    if not path:
        try:
            return host.model_path(host.CAMGRID_FOLDER, rig_file)
        except (FileNotFoundError, ValueError) as exc:
            raise InputError(str(exc)) from None
    full = os.path.abspath(os.path.expanduser(path))
    if not allow_any_path and not any(_inside(full, root) for root in host.user_folders()):
        raise InputError(f"path {path!r} is outside ComfyUI's models and input folders; put the rig file there, "
                         "or turn on allow_any_path to read a file from anywhere")
    return full


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:   # different drives (Windows)
        return False


def camera_picks(cameras: str) -> list:
    """'cam01, 2, -1' -> ['cam01', 2, -1]: names, or indices when a pick is a (short) integer."""
    picks = [c.strip() for c in str(cameras).split(",") if c.strip()]
    return [int(c) if re.fullmatch(r"-?[0-9]{1,9}", c) else c for c in picks]


class CamGridLoadRig:
    """A camera rig from a JSON file (camgrid schema, SynCamVideo/MultiCamVideo, 4x4 matrix lists)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "rig_file": (rig_files() or ["(put rig .json files in models/camgrid)"], {"tooltip":
                             "A rig JSON file from models/camgrid: camgrid's own schema, SynCamMaster/ReCamMaster/"
                             "MultiCamVideo camera files, or plain lists of 4x4 matrices."}),
                "cameras": ("STRING", {"default": "", "tooltip": "Which cameras to use, in order: names or "
                            "indices separated by commas (e.g. 'cam01, cam03'); empty = all."}),
                "frames": ("INT", RESAMPLE_FRAMES.widget(default=0, tooltip="Resample the paths to this many video "
                           "frames; 0 keeps the file's frame count.")),
            },
            "optional": {
                "path": ("STRING", {"default": "", "tooltip": "A rig JSON file in ComfyUI's models or input folder "
                         "(or anywhere with allow_any_path); overrides rig_file when set."}),
                "allow_any_path": ("BOOLEAN", {"default": False, "tooltip": "Let path name a file outside ComfyUI's "
                                   "models and input folders. Leave off on a shared ComfyUI."}),
            },
        }

    RETURN_TYPES = (RIG, "STRING")
    RETURN_NAMES = ("rig", "summary")
    FUNCTION = "load"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Loads a camera rig from a JSON file."

    @classmethod
    def VALIDATE_INPUTS(cls, rig_file=None, frames=None, path=None, allow_any_path=None):
        problem = RESAMPLE_FRAMES.problem("frames", frames) if frames is not None else None
        if problem is not None:
            return problem
        if rig_file is None:
            return True
        if path:
            try:
                file = rig_file_path(rig_file, path, allow_any_path)
            except CamGridError as exc:
                return str(exc)
            return True if os.path.isfile(file) else f"path {path!r} is not a file; give a rig JSON file"
        if rig_file not in rig_files():
            return (f"rig file {rig_file!r} is not in models/camgrid; put your rig .json there (or set path) and "
                    "refresh the page")
        return True

    @classmethod
    def IS_CHANGED(cls, rig_file, path="", allow_any_path=False, **_):
        try:
            file = rig_file_path(rig_file, path, allow_any_path)
        except CamGridError:
            return ""
        return os.path.getmtime(file) if os.path.isfile(file) else ""

    def load(self, rig_file, cameras, frames, path="", allow_any_path=False):
        frames = RESAMPLE_FRAMES.check("frames", frames)
        file = rig_file_path(rig_file, path, allow_any_path)
        # messages name the file as the user chose it, never show its contents
        rig = load_rig(file, name=path or rig_file)
        picks = camera_picks(cameras)
        try:
            if picks:
                rig = rig.select_views(picks)
            if frames:
                rig = rig.resample_frames(frames)
        except CameraRigError as exc:
            raise CameraRigError(f"{path or rig_file}: {exc}") from None
        return rig, describe_rig(rig)


class CamGridRigPreview:
    """Draws a rig: numbered camera frusta from above and from the side, the target, a scale bar."""

    @classmethod
    def INPUT_TYPES(cls):
        # the picture is twice as wide as high (top and side view), so the height goes to half the pixel limit
        return {"required": {
            "rig": (RIG, {"tooltip": "The camera rig to draw."}),
            "size": ("INT", {"default": 384, "min": PREVIEW_PIXELS.low, "max": PREVIEW_PIXELS.high // 2, "step": 64,
                             "tooltip": "Height of the picture in pixels (it is twice as wide: top and side "
                             "views)."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "draw"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Draws the cameras of a rig (top and side view) as an image; connect it to Preview Image."

    def draw(self, rig, size):
        return (pil_to_image(draw_rig(rig, size=(2 * size, size))),)


def encode_problem(length=None, translation_scale=None) -> str | None:
    """None, or why Camera Encode cannot take this length / translation_scale (None = not known yet)."""
    problem = frames_problem(length, "length") if length is not None else None
    if problem is None and translation_scale is not None:
        problem = ENCODE_SCALE.problem("translation_scale", translation_scale)
        if problem is None and translation_scale != 0:   # 0: the convention's own scale
            problem = TRANSLATION_SCALE_RANGE.problem("translation_scale", translation_scale)
    return problem


class CamGridCameraEncode:
    """Rig -> camera embedding for the sampler (the 12-d relative extrinsics the supported models take)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "rig": (RIG, {"tooltip": "The cameras. For ReCamMaster: the new camera path(s) of the output."}),
            "length": ("INT", FRAMES.widget(default=81, step=4, tooltip="Video frames of the output (4k+1); the "
                       "rig is resampled to span them.")),
            "convention": (["auto"] + list(VARIANTS), {"default": "auto", "tooltip": "Whose camera encoding "
                           "to use. auto: the loaded model's (SynCamMaster: relative to view 0, 0.5 units per "
                           "metre; ReCamMaster: relative to each path's first pose, 1 unit per metre)."}),
            "translation_scale": ("FLOAT", ENCODE_SCALE.widget(default=0.0, step=0.05, tooltip="Embedding units "
                                  "per metre; 0 = the convention's own. Raise it to exaggerate camera baselines.")),
            # one choice: kept so saved workflows (which store it) load; no supported model takes Plücker rays
            "encoding": (["relative"], {"default": "relative", "tooltip": "relative: the 12-d extrinsics "
                         "SynCamMaster / ReCamMaster were trained on."}),
        }}

    RETURN_TYPES = (EMBEDS, "STRING")
    RETURN_NAMES = ("camera", "summary")
    FUNCTION = "encode"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Encodes a rig for the sampler; the model-specific rule is applied when convention is auto."

    @classmethod
    def VALIDATE_INPUTS(cls, length=None, translation_scale=None):
        return encode_problem(length, translation_scale) or True

    def encode(self, rig, length, convention, translation_scale, encoding="relative"):
        raise_problem(encode_problem(length, translation_scale))
        length, scale = int(length), float(translation_scale)
        if convention not in ("auto",) + tuple(VARIANTS):
            raise InputError(f"convention {convention!r} is unknown; use auto or one of {', '.join(VARIANTS)}")
        if encoding != "relative":
            raise InputError("encoding must be relative: the supported models take the 12-d relative extrinsics")
        embeds = CameraEmbeds(rig.validate(), length, convention, "auto", scale)
        cameras = plural(rig.num_views, "camera")
        if convention == "auto":
            summary = f"{cameras}, {embeds.num_latent_frames} latent frames; rule from the model"
        else:
            conv, reference, scale = embeds.rule_for(convention)
            summary = (f"{cameras}, {embeds.num_latent_frames} latent frames; {conv} rule: reference "
                       f"{reference}, {scale:g} units per metre")
        return embeds, summary


__all__ = ["CamGridRig", "CamGridLoadRig", "CamGridRigPreview", "CamGridCameraEncode", "CameraRigError"]
