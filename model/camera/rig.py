"""The `CameraRig`: V cameras over F video frames, and the checks every rig passes when it is made.

A rig is validated when it is constructed (and by `validate()`), so every function that takes a rig can rely
on it: shapes agree, poses are rigid with det +1, positions and intrinsics are finite and within the limits
of `limits.py` (docs/ARCHITECTURE.md §4 Cameras).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Sequence, Union

import torch

from .geometry import slerp_rotations
from .limits import (ASPECT, FOCAL, HFOV_DEG, MAX_FRAMES, MAX_POSES, MAX_POSITION_M, ORTHONORMAL_ATOL,
                     PRINCIPAL_POINT, RIG_FRAMES, CameraRigError)
from .values import float_array, name_list, plural, point3, shown


def default_intrinsics(num_views: int = 1, hfov_deg: float = 60.0, aspect: float = 832 / 480) -> torch.Tensor:
    """Pinhole intrinsics `[V, 4]` (fx, fy, cx, cy as fractions of width/height), square pixels at
    `aspect` = width / height (default: Wan's 832x480), principal point at the centre."""
    hfov_deg = HFOV_DEG.check("hfov_deg", hfov_deg)
    aspect = ASPECT.check("aspect", aspect)
    fx = 0.5 / math.tan(math.radians(hfov_deg) / 2)
    return torch.tensor([[fx, fx * aspect, 0.5, 0.5]], dtype=torch.float64).repeat(int(num_views), 1)


# ---------------------------------------------------------------------------------------------
# Checks (each raises CameraRigError naming the camera, frame and fix)
# ---------------------------------------------------------------------------------------------

def where(names: Sequence[str], view: int, frame: int | None = None, field: str | None = None) -> str:
    """'camera 'cam02' (view 1), frame 2, field 'w2c'' for messages."""
    text = f"camera {shown(names[view])} (view {view})" if view < len(names) else f"view {view}"
    if frame is not None:
        text += f", frame {frame}"
    return text + (f", field '{field}'" if field else "")


def check_pose_count(num_views: int, num_frames: int, what: str = "the rig") -> None:
    """Refuse a rig that would hold more than MAX_FRAMES frames or MAX_POSES poses, before allocating it."""
    if num_frames > MAX_FRAMES:
        raise CameraRigError(f"{what} has {num_frames} frames; at most {MAX_FRAMES} are supported: subsample the path")
    if num_views * num_frames > MAX_POSES:
        raise CameraRigError(f"{what} has {num_views} cameras x {num_frames} frames = {num_views * num_frames} poses; "
                             f"at most {MAX_POSES} are supported: use fewer cameras or frames")


def check_poses(mats: torch.Tensor, names: Sequence[str], field: str | None = None, units_per_metre: float = 1.0,
                atol: float = ORTHONORMAL_ATOL) -> None:
    """Poses [V, F, 4, 4] (c2w or w2c, any axis convention) are rigid transforms: finite, bottom row
    [0, 0, 0, 1], rotation orthonormal with det +1, translation within MAX_POSITION_M metres.

    The largest rig holds 34 MB of poses; each check makes at most one temporary of about half that (in place
    where it can, det by its 3x3 formula), so validating it does not triple its memory."""
    def first(bad: torch.Tensor) -> tuple[int, int]:
        return int(bad[0][0]), int(bad[0][1])

    bad = (~torch.isfinite(mats)).flatten(2).any(-1).nonzero()
    if len(bad):
        raise CameraRigError(f"{where(names, *first(bad), field)}: the pose contains NaN or infinite values; "
                             "check the source file or the preset parameters (e.g. a camera placed on its target).")
    bad = (mats[..., :3, 3].abs().amax(-1) > MAX_POSITION_M * units_per_metre).nonzero()
    if len(bad):
        raise CameraRigError(f"{where(names, *first(bad), field)}: the camera is more than {MAX_POSITION_M:g} m from "
                             "the origin; check the units (\"units\": \"m\", \"cm\" or \"mm\") or recentre the scene.")
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    bad = ((mats[..., 3, :] - bottom).abs() > atol).any(-1).nonzero()
    if len(bad):
        raise CameraRigError(f"{where(names, *first(bad), field)}: the bottom row is not [0, 0, 0, 1]; the matrix is "
                             "probably transposed (row-vector form): transpose it, or import Unreal-style strings "
                             "with rig_from_unreal_json.")
    rot = mats[..., :3, :3]
    err = (rot.transpose(-1, -2) @ rot).sub_(torch.eye(3, dtype=torch.float64)).abs_().amax((-1, -2))
    bad = (err > atol).nonzero()
    if len(bad):
        v, f = first(bad)
        raise CameraRigError(f"{where(names, v, f, field)}: the rotation is not orthonormal (|R^T R - I| = "
                             f"{float(err[v, f]):.3g}); remove scale/shear from the matrix, or check units and whether "
                             "it is a projection or intrinsics matrix rather than a camera pose.")
    # det R = (row 0 x row 1) . row 2; the rows are orthonormal here, so the sign is never in doubt
    det = (torch.linalg.cross(rot[..., 0, :], rot[..., 1, :]) * rot[..., 2, :]).sum(-1)
    bad = (det < 0).nonzero()
    if len(bad):
        raise CameraRigError(f"{where(names, *first(bad), field)}: the rotation has determinant -1 (a mirrored, "
                             "left-handed frame); the source convention is probably different: load it with the "
                             "right convention ('opencv', 'opengl', 'blender') or, for Unreal/SynCamVideo strings, "
                             "use rig_from_unreal_json.")


def check_intrinsics(k: torch.Tensor, names: Sequence[str]) -> None:
    """[V, 4] (fx, fy, cx, cy) as fractions of width/height: focal lengths in FOCAL, principal points in
    PRINCIPAL_POINT (finite values only)."""
    focal_ok = (k[:, :2] >= FOCAL.low) & (k[:, :2] <= FOCAL.high)
    centre_ok = (k[:, 2:] >= PRINCIPAL_POINT.low) & (k[:, 2:] <= PRINCIPAL_POINT.high)
    bad = (~torch.cat([focal_ok, centre_ok], 1)).any(-1).nonzero()
    if len(bad):
        v = int(bad[0][0])
        raise CameraRigError(f"{where(names, v)}: intrinsics need positive finite fx, fy between {FOCAL.low:g} "
                             f"and {FOCAL.high:g} and cx, cy between {PRINCIPAL_POINT.low:g} and "
                             f"{PRINCIPAL_POINT.high:g} (fractions of width/height, e.g. fx 0.87 for a 60° horizontal "
                             "field of view, cx 0.5 for a centred principal point).")


# ---------------------------------------------------------------------------------------------
# The rig
# ---------------------------------------------------------------------------------------------

@dataclass
class CameraRig:
    """V cameras over F video frames. `c2w[v, f]` is camera v's pose at frame f (OpenCV axes, metres).

    Constructing a rig validates it (see `validate`), so a CameraRig that exists is usable."""

    c2w: torch.Tensor                      # float64 [V, F, 4, 4]
    intrinsics: torch.Tensor | None = None  # float64 [V, 4]; None -> default_intrinsics
    names: list[str] | None = None          # None -> cam01, cam02, ...
    target: torch.Tensor | None = None      # float64 [3] look-at point (for previews) or None

    def __post_init__(self):
        c2w = float_array(self.c2w, "CameraRig.c2w", finite=False)   # validate() names the camera and frame
        if c2w.ndim == 2:   # a single 4x4: one static camera, one frame
            c2w = c2w[None, None]
        elif c2w.ndim == 3:  # [V, 4, 4]: static cameras, one frame
            c2w = c2w[:, None]
        if c2w.ndim != 4 or c2w.shape[-2:] != (4, 4):
            raise CameraRigError(f"CameraRig.c2w must have shape [views, frames, 4, 4], got {list(c2w.shape)}; "
                                 "stack one 4x4 camera-to-world matrix per camera and frame.")
        self.c2w = c2w
        num_views = c2w.shape[0]
        if self.intrinsics is None:
            self.intrinsics = default_intrinsics(num_views)
        else:
            k = float_array(self.intrinsics, "CameraRig.intrinsics", max_depth=2, finite=False)
            self.intrinsics = k.expand(num_views, 4).clone() if k.shape == (4,) else k
        if self.names is None:
            self.names = [f"cam{i + 1:02d}" for i in range(num_views)]
        else:
            self.names = name_list(self.names, num_views, "CameraRig.names")
        if self.target is not None:
            self.target = point3(self.target, "CameraRig.target")
        self.validate()

    # -- shape ---------------------------------------------------------------------------------
    @property
    def num_views(self) -> int:
        return int(self.c2w.shape[0])

    @property
    def num_frames(self) -> int:
        return int(self.c2w.shape[1])

    @property
    def is_static(self) -> bool:
        """True when no camera moves: every frame equals frame 0 (to 1e-9)."""
        # |c2w[:, f] - c2w[:, 0]| <= 1e-9 for every f, from two reductions over frames: no rig-sized temporary
        first = self.c2w[:, 0]
        spread = torch.maximum(self.c2w.amax(1) - first, first - self.c2w.amin(1))
        return bool((spread <= 1e-9).all())

    def __repr__(self) -> str:
        kind = "static" if self.is_static else "moving"
        return (f"CameraRig({plural(self.num_views, 'view')} x {plural(self.num_frames, 'frame')}, {kind}, "
                f"names={self.names})")

    # -- checks ----------------------------------------------------------------------------------
    def validate(self, atol: float = ORTHONORMAL_ATOL) -> "CameraRig":
        """Raise `CameraRigError` naming the camera, frame and fix for the first problem found.

        Checks: at least one camera and frame and at most MAX_POSES poses; one name and one intrinsics row
        per camera; names unique; the target is a point; every pose rigid (`check_poses`); intrinsics in
        range (`check_intrinsics`). Returns self so it chains.
        """
        c2w = self.c2w
        if c2w.ndim != 4 or c2w.shape[-2:] != (4, 4):
            raise CameraRigError(f"CameraRig.c2w must have shape [views, frames, 4, 4], got {list(c2w.shape)}.")
        if c2w.shape[0] == 0 or c2w.shape[1] == 0:
            raise CameraRigError(f"CameraRig has {c2w.shape[0]} views and {c2w.shape[1]} frames; "
                                 "a rig needs at least one camera with at least one frame.")
        check_pose_count(self.num_views, self.num_frames)
        k = float_array(self.intrinsics, "CameraRig.intrinsics", max_depth=2, finite=False)
        if k.shape != (self.num_views, 4):
            raise CameraRigError(f"CameraRig.intrinsics must have shape [{self.num_views}, 4] (fx, fy, cx, cy per "
                                 f"view), got {list(k.shape)}; give one row per camera or leave it None for the "
                                 "default.")
        names = name_list(self.names, self.num_views, "CameraRig.names")
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise CameraRigError(f"CameraRig view names must be unique; repeated: {', '.join(map(shown, dup[:5]))}. "
                                 "Rename the cameras.")
        if self.target is not None:
            point3(self.target, "CameraRig.target")
        check_poses(c2w, names, atol=atol)
        check_intrinsics(k, names)
        return self

    # -- editing ---------------------------------------------------------------------------------
    def select_views(self, indices: Sequence[Union[int, str]]) -> "CameraRig":
        """A new rig with the given views (indices or names), in the given order."""
        if isinstance(indices, (int, str)):
            indices = [indices]
        idx = [self._view_index(i) for i in indices]
        if not idx:
            raise CameraRigError("select_views: pick at least one view.")
        return CameraRig(self.c2w[idx].clone(), self.intrinsics[idx].clone(), [self.names[i] for i in idx],
                         None if self.target is None else self.target.clone())

    def _view_index(self, pick: Union[int, str]) -> int:
        if isinstance(pick, str):
            if pick not in self.names:
                raise CameraRigError(f"select_views: no camera named {shown(pick)}; available: "
                                     f"{', '.join(map(shown, self.names[:20]))}.")
            return self.names.index(pick)
        if isinstance(pick, bool) or not isinstance(pick, numbers.Integral):
            raise CameraRigError(f"select_views: a view is a name or an index, got {type(pick).__name__}.")
        if not -self.num_views <= pick < self.num_views:
            raise CameraRigError(f"select_views: view index {pick} is out of range for a rig of "
                                 f"{plural(self.num_views, 'view')} (0..{self.num_views - 1}).")
        return int(pick) % self.num_views

    def resample_frames(self, num_frames: int) -> "CameraRig":
        """A new rig with `num_frames` frames spanning the same path (first and last poses kept).

        Positions are interpolated linearly and rotations by quaternion slerp; where a new frame
        lands exactly on an old one (e.g. 81 -> 21, 21 -> 81) the old pose is copied bit-exactly.
        A one-frame rig is repeated.
        """
        n, f = RIG_FRAMES.check("resample_frames: num_frames", num_frames), self.num_frames
        check_pose_count(self.num_views, n, "the resampled rig")
        if n == f:
            return self._with_c2w(self.c2w.clone())
        if f == 1 or n == 1:
            return self._with_c2w(self.c2w[:, :1].expand(-1, n, -1, -1).clone())
        # new frame k sits at old time k*(f-1)/(n-1); integer arithmetic keeps exact hits exact
        k = torch.arange(n)
        num = k * (f - 1)
        i0 = torch.clamp(num // (n - 1), max=f - 2)
        w = (num - i0 * (n - 1)).to(torch.float64) / (n - 1)
        a, b = self.c2w[:, i0], self.c2w[:, i0 + 1]
        out = a.clone()
        out[..., :3, 3] = a[..., :3, 3] * (1 - w)[:, None] + b[..., :3, 3] * w[:, None]
        out[..., :3, :3] = slerp_rotations(a[..., :3, :3], b[..., :3, :3], w[None, :].expand(self.num_views, -1))
        out[:, w == 0] = a[:, w == 0]
        out[:, w == 1] = b[:, w == 1]  # the last frame (i0 is clamped to f - 2)
        return self._with_c2w(out)

    def _with_c2w(self, c2w: torch.Tensor) -> "CameraRig":
        return CameraRig(c2w, self.intrinsics.clone(), list(self.names),
                         None if self.target is None else self.target.clone())


__all__ = ["CameraRig", "CameraRigError", "default_intrinsics", "check_poses", "check_intrinsics",
           "check_pose_count"]
