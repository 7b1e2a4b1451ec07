"""Encodings of a rig for a model: the 12-d relative extrinsics of SynCamMaster / ReCamMaster, and Plücker rays.

Relative encoding: `P = inv(C_ref) @ C_i` with the translation times the model's scale, flattened as
`P[:3, :4]` row-major, for video frames 0, 4, 8, ... (one per latent frame of the Wan VAE, which compresses
4 frames into one) (docs/ARCHITECTURE.md §4 Cameras).
"""
from __future__ import annotations

import functools
import numbers
from typing import Union

import torch

from ..checks import FRAME_STRIDE
from .limits import RAY_GRID, RIG_FRAMES, TRANSLATION_SCALE_RANGE, CameraRigError
from .rig import CameraRig, check_poses, default_intrinsics
from .values import float_array

# Translation scale of each model's camera encoder, in embedding units per metre.
# SynCamMaster divided Unreal centimetres by 200 (0.5 / m); ReCamMaster by 100 (1.0 / m).
# Plain Wan has no camera encoder; hard-sync with SynCamMaster weights uses their scale.
TRANSLATION_SCALE = {"syncammaster": 0.5, "recammaster": 1.0, "wan": 0.5}

# Wan VAE: latent frame t covers video frame 4t (and the 3 before it); T_lat = (F - 1) // 4 + 1.
VAE_TEMPORAL_STRIDE = FRAME_STRIDE

Reference = Union[str, int, torch.Tensor]


def latent_frame_count(num_video_frames: int) -> int:
    """Wan VAE: 4k+1 video frames -> k+1 latent frames."""
    return (int(num_video_frames) - 1) // VAE_TEMPORAL_STRIDE + 1


MAX_LATENT_FRAMES = latent_frame_count(RIG_FRAMES.high)


def _latent_c2w(rig: CameraRig, num_latent_frames: int | None) -> torch.Tensor:
    """Poses at the video frames that start each latent frame (0, 4, 8, ...): [V, T, 4, 4].

    With `num_latent_frames` given, the rig is first resampled to 4*(T-1)+1 video frames, so a
    trajectory spans the whole clip whatever its own frame count (a static rig is repeated).
    """
    if num_latent_frames is None:
        t = latent_frame_count(rig.num_frames)
    else:
        if isinstance(num_latent_frames, bool) or not isinstance(num_latent_frames, numbers.Integral) or \
                not 1 <= num_latent_frames <= MAX_LATENT_FRAMES:
            raise CameraRigError(f"num_latent_frames must be a whole number between 1 and {MAX_LATENT_FRAMES}, "
                                 f"got {num_latent_frames!r}.")
        t = int(num_latent_frames)
        rig = rig.resample_frames(VAE_TEMPORAL_STRIDE * (t - 1) + 1)
    return rig.c2w[:, ::VAE_TEMPORAL_STRIDE][:, :t]


def resolve_scale(translation_scale: Union[float, str]) -> float:
    """Embedding units per metre: a number in TRANSLATION_SCALE_RANGE, or a model name of TRANSLATION_SCALE."""
    if isinstance(translation_scale, str):
        key = translation_scale.lower()
        if key not in TRANSLATION_SCALE:
            raise CameraRigError(f"unknown model for the translation scale; use one of {', '.join(TRANSLATION_SCALE)} "
                                 "or a number (embedding units per metre).")
        return TRANSLATION_SCALE[key]
    return TRANSLATION_SCALE_RANGE.check("translation_scale", translation_scale)


def _reference_poses(c2w: torch.Tensor, reference: Reference) -> torch.Tensor:
    """The pose each of c2w [V, T, 4, 4] is made relative to, broadcast to its shape."""
    num_views = c2w.shape[0]
    if isinstance(reference, str):
        if reference == "view0":
            return c2w[:1].expand_as(c2w)                            # SynCamMaster: view 0, same frame
        if reference == "first_pose":
            return c2w[:, :1].expand_as(c2w)                         # ReCamMaster inference: own first pose
        if reference == "view0_first_pose":
            return c2w[:1, :1].expand_as(c2w)                        # ReCamMaster training: source's first pose
        raise CameraRigError("unknown reference; use 'view0' (SynCamMaster), 'first_pose' (ReCamMaster), "
                             "'view0_first_pose', a view index, or a 4x4 pose.")
    if isinstance(reference, numbers.Integral) and not isinstance(reference, bool):
        if not -num_views <= reference < num_views:
            raise CameraRigError(f"reference view {reference} is out of range for {num_views} views.")
        k = int(reference)
        return c2w[k:k + 1 if k != -1 else None].expand_as(c2w)      # that view at the same frame
    ref = float_array(reference, "reference", max_depth=2)
    if ref.shape != (4, 4):
        raise CameraRigError(f"reference matrix must be a 4x4 OpenCV camera-to-world pose, got shape {list(ref.shape)}.")
    check_poses(ref[None, None], ["reference"])
    return ref.expand_as(c2w)


def _relative_poses(c2w: torch.Tensor, reference: Reference, scale: float) -> torch.Tensor:
    """P = inv(C_ref) @ C for c2w [V, T, 4, 4], translation scaled. See `relative_extrinsics`."""
    # scale before the product, as the official code does (it divides the absolute centimetres)
    ref, cur = _reference_poses(c2w, reference).clone(), c2w.clone()
    ref[..., :3, 3] *= scale
    cur[..., :3, 3] *= scale
    rel = torch.linalg.inv(ref) @ cur
    # a pose relative to itself is exactly the identity (the official code writes it literally)
    same = (ref == cur).flatten(-2).all(-1)
    rel[same] = torch.eye(4, dtype=torch.float64)
    return rel


def relative_extrinsics(rig: CameraRig, translation_scale: Union[float, str] = "syncammaster",
                        reference: Reference = "view0", num_latent_frames: int | None = None) -> torch.Tensor:
    """12-d relative camera embedding per view and latent frame: float32 [V, T_lat, 12].

    `P = inv(C_ref) @ C_i` (float64, like the official numpy code), translation times
    `translation_scale` (a number per metre, or a model name from TRANSLATION_SCALE), flattened
    `P[:3, :4]` row-major, at video frames 0, 4, 8, ... (T_lat = (F-1)//4 + 1, or
    `num_latent_frames`, resampling the rig to 4*(T_lat-1)+1 frames).

    reference:
      "view0"            SynCamMaster: each frame relative to view 0 at the same frame (view 0 = identity).
      "first_pose"       ReCamMaster inference: each view relative to its own first pose.
      "view0_first_pose" every pose relative to view 0's first pose (ReCamMaster training, view 0 = source).
      int k              view k at the same frame.   4x4 tensor: a fixed OpenCV c2w pose (metres).
    """
    rel = _relative_poses(_latent_c2w(rig, num_latent_frames), reference, resolve_scale(translation_scale))
    return rel[..., :3, :4].reshape(*rel.shape[:2], 12).to(torch.float32)


def pixel_directions(intrinsics: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Camera-frame directions (x, y, 1) through the pixel centres of a height x width grid: [..., h, w, 3].

    intrinsics [..., 4]: (fx, fy, cx, cy) as fractions of the image width / height (`CameraRig.intrinsics`)."""
    k = intrinsics[..., None, None, :]
    u = (torch.arange(width, dtype=k.dtype, device=k.device) + 0.5) / width      # pixel centres, fraction of width
    v = (torch.arange(height, dtype=k.dtype, device=k.device) + 0.5) / height
    x = (u[None, :] - k[..., 2]) / k[..., 0]                                     # [..., 1, w]
    y = (v[:, None] - k[..., 3]) / k[..., 1]                                     # [..., h, 1]
    x, y = torch.broadcast_tensors(x, y)
    return torch.stack([x, y, torch.ones_like(x)], -1)


def plucker(rotation: torch.Tensor, origin: torch.Tensor, d_cam: torch.Tensor) -> torch.Tensor:
    """Plücker rays (o x d, d) [..., h, w, 6] of camera-frame directions d_cam [..., h, w, 3] for cameras with
    camera-to-world rotation [..., 3, 3] and centre [..., 3] (leading dims broadcast); d is made unit length."""
    d = torch.einsum("...ij,...hwj->...hwi", rotation, d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    o = origin[..., None, None, :].expand_as(d)
    return torch.cat([torch.linalg.cross(o, d), d], -1)


# The built-in model's rays (`extrinsics_rays`) assume this horizontal field of view and a centred principal point:
# the 12-d encoding carries no intrinsics, and its training rigs span 50-70 degrees (synth/dataset.py).
NOMINAL_HFOV_DEGREES = 60.0


def extrinsics_rays(extrinsics: torch.Tensor, height: int, width: int,
                    hfov_degrees: float = NOMINAL_HFOV_DEGREES) -> torch.Tensor:
    """Plücker rays [..., height * width, 6] (float32) through the pixel centres of a height x width grid, from
    12-d relative extrinsics [..., 12] (`relative_extrinsics`: the camera's c2w [R | t] in the reference's frame,
    translation scaled), for a pinhole camera with square pixels and a horizontal field of view of hfov_degrees.

    What a model with a ray encoder adds per token: two rays meet exactly when their Plücker vectors'
    reciprocal product is zero, a bilinear form that attention's q.k can learn, so the views' geometry is
    readable pixel by pixel rather than from one embedding per frame."""
    pose = extrinsics.float().unflatten(-1, (3, 4))
    d_cam = nominal_pixel_directions(height, width, float(hfov_degrees), extrinsics.device)
    return plucker(pose[..., :3], pose[..., 3], d_cam).flatten(-3, -2)


@functools.lru_cache(maxsize=32)
def nominal_pixel_directions(height: int, width: int, hfov_degrees: float, device: torch.device) -> torch.Tensor:
    """`pixel_directions` of the nominal camera (float32 [h, w, 3] on `device`), made once per grid: every block of
    every step asks for the same one, and building it copies the intrinsics from the host. Callers do not modify
    it. Like kernels/rope.py's tables it outlives the call that made it, so it is never an inference tensor."""
    with torch.inference_mode(False):
        k = default_intrinsics(1, hfov_degrees, aspect=width / height)[0].to(torch.float32)
        return pixel_directions(k, height, width).to(device)


def plucker_rays(rig: CameraRig, height: int, width: int, num_latent_frames: int | None = None,
                 reference: Reference | None = None, translation_scale: Union[float, str] = 1.0) -> torch.Tensor:
    """Plücker rays (o x d, d) through every pixel centre: float32 [V, 6, T_lat, height, width].

    `height`/`width` are the grid the rays are sampled on (e.g. the latent H/8, W/8); intrinsics
    are fractions so any grid works. `d` is the unit world direction, `o` the camera centre.
    Frames as in `relative_extrinsics`. With `reference` set, poses are first made relative the
    same way (and translations scaled); otherwise rig world coordinates are used as they are.
    """
    height, width = RAY_GRID.check("plucker_rays: height", height), RAY_GRID.check("plucker_rays: width", width)
    c2w = _latent_c2w(rig, num_latent_frames)
    if reference is not None:
        c2w = _relative_poses(c2w, reference, resolve_scale(translation_scale))
    d_cam = pixel_directions(rig.intrinsics, height, width)             # [V, h, w, 3]
    rays = plucker(c2w[..., :3, :3], c2w[..., :3, 3], d_cam[:, None])     # [V, T, h, w, 6]
    return rays.permute(0, 4, 1, 2, 3).contiguous().to(torch.float32)
