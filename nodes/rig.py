"""Camera rig nodes: build or load a rig, draw it, encode it for the model."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from ..model.camera import RIG_PRESETS, CameraRigError, load_rig, make_preset
from . import host
from .optional import rig_drawer
from .sockets import EMBEDS, RIG, VARIANTS, CameraEmbeds

RECAM_PREFIX = "recammaster_"


def rig_files() -> list[str]:
    """Rig JSON files in the models/camgrid folder."""
    return [n for n in host.list_models(host.CAMGRID_FOLDER) if n.lower().endswith(".json")]


def preset_kwargs(preset: str, views: int, frames: int, azimuth_span: float, elevation: float, radius: float,
                  spacing: float, hfov: float, amplitude: float) -> dict:
    """The node's numbers mapped onto the parameters the chosen preset takes (others are ignored)."""
    params = RIG_PRESETS[preset].params
    offered = {
        "num_views": int(views), "num_frames": int(frames), "azimuth_span_deg": azimuth_span,
        "elevation_deg": elevation, "max_elevation_deg": elevation, "radius": radius, "step": spacing,
        "hfov_deg": hfov, "amplitude": amplitude if amplitude > 0 else None,
    }
    return {k: v for k, v in offered.items() if k in params}


def preset_views(preset: str, views: int) -> int:
    """How many cameras a preset gives for the `views` widget."""
    if "num_views" in RIG_PRESETS[preset].params:
        return int(views)
    return make_preset(preset, num_frames=1).num_views


def describe_rig(rig) -> str:
    kind = "static" if rig.is_static else "moving"
    return f"{rig.num_views} cameras x {rig.num_frames} frames ({kind}): {', '.join(rig.names)}"


def pil_to_image(pil) -> torch.Tensor:
    """PIL picture -> ComfyUI IMAGE [1, H, W, 3] float 0..1."""
    return torch.from_numpy(np.asarray(pil.convert("RGB"), dtype=np.float32) / 255.0)[None]


class CamGridRig:
    """A camera rig from a preset and a few numbers."""

    @classmethod
    def INPUT_TYPES(cls):
        presets = list(RIG_PRESETS)
        return {"required": {
            "preset": (presets, {"default": "orbit_arc", "tooltip": "Camera layout. orbit_arc / elevation_sweep / "
                                 "dolly: static cameras around a target; syncammaster_example: SynCamMaster's 10 "
                                 "cameras; recammaster_*: one moving camera path (ReCamMaster)."}),
            "views": ("INT", {"default": 4, "min": 1, "max": 16, "tooltip": "Number of cameras (orbit_arc, "
                              "elevation_sweep, dolly). syncammaster_example keeps its first N of 10; "
                              "recammaster_* paths are one camera."}),
            "frames": ("INT", {"default": 81, "min": 1, "max": 1025, "step": 4, "tooltip": "Video frames the "
                               "path spans (use the video length, 4k+1). Static rigs ignore it."}),
            "azimuth_span": ("FLOAT", {"default": 60.0, "min": 0.0, "max": 360.0, "step": 1.0, "tooltip":
                                       "orbit_arc: degrees between the leftmost and rightmost camera."}),
            "elevation": ("FLOAT", {"default": 0.0, "min": -80.0, "max": 80.0, "step": 1.0, "tooltip":
                                    "Degrees above the target (orbit_arc, dolly); elevation_sweep: the highest "
                                    "camera's elevation."}),
            "radius": ("FLOAT", {"default": 3.0, "min": 0.1, "max": 100.0, "step": 0.1, "tooltip":
                                 "Metres from the cameras to the look-at target."}),
            "spacing": ("FLOAT", {"default": 1.0, "min": -10.0, "max": 10.0, "step": 0.1, "tooltip":
                                  "dolly: metres between consecutive cameras (positive = further back)."}),
            "hfov": ("FLOAT", {"default": 60.0, "min": 5.0, "max": 150.0, "step": 1.0, "tooltip":
                               "Horizontal field of view in degrees (used by previews and Plücker rays)."}),
            "amplitude": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 360.0, "step": 0.5, "tooltip":
                                    "recammaster_*: size of the move (degrees or metres); 0 = the path's "
                                    "nominal amount."}),
        }}

    RETURN_TYPES = (RIG, "STRING")
    RETURN_NAMES = ("rig", "summary")
    FUNCTION = "build"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Builds a camera rig (cameras over time) from a preset."

    @classmethod
    def VALIDATE_INPUTS(cls, preset=None, views=None, radius=None, spacing=None):
        # Inputs named here skip ComfyUI's own range/list checks, so they are checked here; an input fed
        # by a link is not known yet (None) and is checked when the node runs.
        if preset is None or views is None:
            return True
        if preset not in RIG_PRESETS:
            return f"preset {preset!r} is unknown; choose one of {', '.join(RIG_PRESETS)}"
        if not 1 <= views <= 16:
            return f"views must be between 1 and 16, got {views}"
        params = RIG_PRESETS[preset].params
        if "num_views" not in params:
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
        rig = make_preset(preset, **preset_kwargs(preset, views, frames, azimuth_span, elevation, radius, spacing,
                                                  hfov, amplitude))
        if rig.num_views > views:
            rig = rig.select_views(list(range(views)))
        return rig, describe_rig(rig)


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
                "frames": ("INT", {"default": 0, "min": 0, "max": 1025, "tooltip": "Resample the paths to this "
                           "many video frames; 0 keeps the file's frame count."}),
            },
            "optional": {
                "path": ("STRING", {"default": "", "tooltip": "A rig JSON file anywhere on disk; overrides "
                         "rig_file when set."}),
            },
        }

    RETURN_TYPES = (RIG, "STRING")
    RETURN_NAMES = ("rig", "summary")
    FUNCTION = "load"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Loads a camera rig from a JSON file."

    @classmethod
    def VALIDATE_INPUTS(cls, rig_file=None, path=None):
        if rig_file is None:
            return True
        if path:
            return True if os.path.isfile(path) else f"path {path!r} is not a file; give a rig JSON file"
        if rig_file not in rig_files():
            return (f"rig file {rig_file!r} is not in models/camgrid; put your rig .json there (or set path) and "
                    "refresh the page")
        return True

    @classmethod
    def IS_CHANGED(cls, rig_file, path="", **_):
        file = path or host.model_path(host.CAMGRID_FOLDER, rig_file)
        return os.path.getmtime(file) if os.path.isfile(file) else ""

    def load(self, rig_file, cameras, frames, path=""):
        file = path or host.model_path(host.CAMGRID_FOLDER, rig_file)
        try:
            with open(file, encoding="utf-8") as f:
                rig = load_rig(json.load(f))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{os.path.basename(file)} is not valid JSON ({exc}); fix or re-export the file") from None
        picks = [c.strip() for c in cameras.split(",") if c.strip()]
        if picks:
            rig = rig.select_views([int(c) if c.lstrip("-").isdigit() else c for c in picks])
        if frames:
            rig = rig.resample_frames(frames)
        return rig.validate(), describe_rig(rig)


class CamGridRigPreview:
    """Draws a rig: numbered camera frusta from above and from the side, the target, a scale bar."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "rig": (RIG, {"tooltip": "The camera rig to draw."}),
            "size": ("INT", {"default": 384, "min": 128, "max": 2048, "step": 64, "tooltip":
                             "Height of the picture in pixels (it is twice as wide: top and side views)."}),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "draw"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Draws the cameras of a rig (top and side view) as an image; connect it to Preview Image."

    def draw(self, rig, size):
        draw_rig = rig_drawer()
        if draw_rig is None:
            raise RuntimeError("camgrid's model/rig_preview.py is missing; reinstall the node pack")
        return (pil_to_image(draw_rig(rig, size=(2 * size, size))),)


class CamGridCameraEncode:
    """Rig -> camera embedding for the sampler (the 12-d relative extrinsics the released models take)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "rig": (RIG, {"tooltip": "The cameras. For ReCamMaster: the new camera path(s) of the output."}),
            "length": ("INT", {"default": 81, "min": 1, "max": 1025, "step": 4, "tooltip": "Video frames of the "
                               "output (4k+1); the rig is resampled to span them."}),
            "convention": (["auto"] + list(VARIANTS), {"default": "auto", "tooltip": "Whose camera encoding "
                           "to use. auto: the loaded model's (SynCamMaster: relative to view 0, 0.5 units per "
                           "metre; ReCamMaster: relative to each path's first pose, 1 unit per metre)."}),
            "translation_scale": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 100.0, "step": 0.05, "tooltip":
                                            "Embedding units per metre; 0 = the convention's own. Raise it to "
                                            "exaggerate camera baselines."}),
        }}

    RETURN_TYPES = (EMBEDS, "STRING")
    RETURN_NAMES = ("camera", "summary")
    FUNCTION = "encode"
    CATEGORY = "CamGrid/camera"
    DESCRIPTION = "Encodes a rig for the sampler; the model-specific rule is applied when convention is auto."

    @classmethod
    def VALIDATE_INPUTS(cls, length=None):
        if length is None:
            return True
        if length < 1 or (length - 1) % 4:
            lo = max(1, (length - 1) // 4 * 4 + 1)
            return f"length must be 4k+1 video frames (Wan packs 4 frames per latent frame): use {lo} or {lo + 4}"
        return True

    def encode(self, rig, length, convention, translation_scale):
        embeds = CameraEmbeds(rig.validate(), int(length), convention, "auto", float(translation_scale))
        if convention == "auto":
            summary = f"{rig.num_views} cameras, {embeds.num_latent_frames} latent frames; rule from the model"
        else:
            conv, reference, scale = embeds.rule_for(convention)
            summary = (f"{rig.num_views} cameras, {embeds.num_latent_frames} latent frames; {conv} rule: reference "
                       f"{reference}, {scale:g} units per metre")
        return embeds, summary


__all__ = ["CamGridRig", "CamGridLoadRig", "CamGridRigPreview", "CamGridCameraEncode", "CameraRigError"]
