"""Cameras: the `CameraRig`, importers, relative encodings, presets and Plücker rays (DESIGN §4).

Conventions
-----------
Internally every camera pose is a **camera-to-world** 4x4 matrix in **OpenCV camera axes**
(x right, y down, z forward) with translations in **metres**, stored as float64 `[V, F, 4, 4]`
(V views, F video frames). Intrinsics are `[V, 4]` = (fx, fy, cx, cy) as fractions of the image
width (fx, cx) and height (fy, cy), so they do not depend on the resolution.

The presets use a right-handed world whose axes match a level camera at azimuth 0:
x right, y **down** (world up is -y), z forward; the look-at target sits at the origin.

Accepted files (`load_rig` detects the format)
----------------------------------------------
1. camgrid's own schema (what `save_rig` writes)::

       {
         "format": "camgrid.rig",           # required marker
         "version": 1,
         "convention": "opencv",            # camera axes: "opencv" | "opengl" | "blender"
         "matrix": "c2w",                   # "c2w" (camera-to-world) | "w2c" (world-to-camera)
         "units": "m",                      # translation units: "m" | "cm" | "mm"
         "target": [0.0, 0.0, 0.0],         # optional look-at point (world, in `units`) or null
         "views": [
           {
             "name": "cam01",
             "intrinsics": [fx, fy, cx, cy],   # optional; fractions of width/height
             "c2w": [ [[r, r, r, tx], [r, r, r, ty], [r, r, r, tz], [0, 0, 0, 1]],  # frame 0
                      ... ]                      # one 4x4 per frame, or one 4x4 = static
           }
         ]
       }

   The per-view matrix key is "c2w" or "w2c" (whichever "matrix" says; "matrices" also works).
   Views with a single matrix are static and repeated to the longest view's frame count.

2. SynCamVideo / MultiCamVideo / SynCamMaster / ReCamMaster camera files::

       {"frame0": {"cam01": "[r r r 0] [r r r 0] [r r r 0] [tx ty tz 1] ", ...}, "frame1": ...}

   Unreal Engine row-vector transforms (rows = camera forward, right, up axes, then location),
   left-handed Z-up world, centimetres. The official loaders do `C = M.T; C = C[:, [1, 2, 0, 3]];
   C[:3, 1] *= -1` which gives OpenCV camera axes but leaves the world left-handed (det -1). camgrid
   additionally re-expresses the world right-handed (x = Unreal Y, y = -Unreal Z, z = Unreal X):
   a change of world frame that cancels in every relative pose `inv(C_ref) @ C_i`, so the
   embeddings equal the official ones exactly while all rotations have det +1.

3. Plain lists of 4x4 matrices with a convention field::

       {"convention": "opengl", "matrix": "c2w", "units": "m",
        "matrices": [[4x4], [4x4], ...],         # one camera, one matrix per frame
        "layout": "frames"}                       # or "views": one static camera per matrix

   or `"cameras": {"name": [[4x4] per frame] or [4x4], ...}` instead of "matrices".
   OpenGL and Blender cameras look down -z with y up: camgrid flips their y and z axes.

Relative encoding (SynCamMaster / ReCamMaster)
----------------------------------------------
`relative_extrinsics` returns `P = inv(C_ref) @ C_i` with the translation times the model's scale,
flattened as `P[:3, :4]` row-major, for video frames 0, 4, 8, ... (one per latent frame of the
Wan VAE, which compresses 4 frames into one).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

import torch

__all__ = [
    "CameraRig", "CameraRigError", "TRANSLATION_SCALE", "SYNCAMMASTER_EXAMPLE_PAIRS",
    "RECAMMASTER_TRAJECTORIES", "default_intrinsics", "look_at", "to_opencv_c2w", "from_opencv_c2w",
    "parse_unreal_matrix", "unreal_to_opencv_c2w", "rig_from_unreal_json", "rig_from_matrices",
    "rig_from_dict", "load_rig", "rig_to_dict", "save_rig", "latent_frame_count", "relative_extrinsics",
    "plucker_rays", "orbit_arc", "elevation_sweep", "dolly", "syncammaster_example_rig",
    "recammaster_trajectory", "PresetSpec", "RIG_PRESETS", "PRESETS", "make_preset",
]

# Translation scale of each model's camera encoder, in embedding units per metre.
# SynCamMaster divided Unreal centimetres by 200 (0.5 / m); ReCamMaster by 100 (1.0 / m).
# Plain Wan has no camera encoder; hard-sync with SynCamMaster weights uses their scale.
TRANSLATION_SCALE = {"syncammaster": 0.5, "recammaster": 1.0, "wan": 0.5}

# Wan VAE: latent frame t covers video frame 4t (and the 3 before it); T_lat = (F - 1) // 4 + 1.
VAE_TEMPORAL_STRIDE = 4

# The three example pairs of SynCamMaster's inference script: (reference view, other view).
SYNCAMMASTER_EXAMPLE_PAIRS = {"az": ("cam01", "cam03"), "el": ("cam03", "cam07"), "dis": ("cam09", "cam10")}

# cam01..cam10 of ReCamMaster's example camera file, in that order.
RECAMMASTER_TRAJECTORIES = ("pan_right", "pan_left", "tilt_up", "tilt_down", "zoom_in", "zoom_out",
                            "translate_up", "translate_down", "arc_left", "arc_right")

CONVENTIONS = ("opencv", "opengl", "blender")
MATRIX_KINDS = ("c2w", "w2c")
UNITS_PER_METRE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}

# OpenGL / Blender camera axes (x right, y up, z backward) <-> OpenCV (x right, y down, z forward):
# flip the camera's y and z axes, i.e. right-multiply c2w by diag(1, -1, -1, 1). It is its own inverse.
_GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))

# Unreal world (left-handed: X forward, Y right, Z up) -> camgrid world (right-handed: x right,
# y down, z forward). A reflection (det -1) that cancels in relative poses.
_UNREAL_WORLD_TO_CV = torch.tensor([[0.0, 1.0, 0.0, 0.0],
                                    [0.0, 0.0, -1.0, 0.0],
                                    [1.0, 0.0, 0.0, 0.0],
                                    [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)


class CameraRigError(ValueError):
    """A camera rig or camera file that cannot be used; the message names the camera and the fix."""


def default_intrinsics(num_views: int = 1, hfov_deg: float = 60.0, aspect: float = 832 / 480) -> torch.Tensor:
    """Pinhole intrinsics `[V, 4]` (fx, fy, cx, cy as fractions of width/height), square pixels at
    `aspect` = width / height (default: Wan's 832x480), principal point at the centre."""
    fx = 0.5 / math.tan(math.radians(hfov_deg) / 2)
    return torch.tensor([[fx, fx * aspect, 0.5, 0.5]], dtype=torch.float64).repeat(num_views, 1)


# ---------------------------------------------------------------------------------------------
# The rig
# ---------------------------------------------------------------------------------------------

@dataclass
class CameraRig:
    """V cameras over F video frames. `c2w[v, f]` is camera v's pose at frame f (OpenCV axes, metres)."""

    c2w: torch.Tensor                      # float64 [V, F, 4, 4]
    intrinsics: torch.Tensor | None = None  # float64 [V, 4]; None -> default_intrinsics
    names: list[str] | None = None          # None -> cam01, cam02, ...
    target: torch.Tensor | None = None      # float64 [3] look-at point (for previews) or None

    def __post_init__(self):
        c2w = torch.as_tensor(self.c2w, dtype=torch.float64)
        if c2w.ndim == 2:   # a single 4x4: one static camera, one frame
            c2w = c2w[None, None]
        elif c2w.ndim == 3:  # [V, 4, 4]: static cameras, one frame
            c2w = c2w[:, None]
        self.c2w = c2w.detach().cpu()
        num_views = c2w.shape[0] if c2w.ndim == 4 else 0
        if self.intrinsics is None:
            self.intrinsics = default_intrinsics(num_views)
        else:
            k = torch.as_tensor(self.intrinsics, dtype=torch.float64).detach().cpu()
            self.intrinsics = k.expand(num_views, 4).clone() if k.ndim == 1 and k.shape[0] == 4 else k
        if self.names is None:
            self.names = [f"cam{i + 1:02d}" for i in range(num_views)]
        else:
            self.names = [str(n) for n in self.names]
        if self.target is not None:
            self.target = torch.as_tensor(self.target, dtype=torch.float64).detach().cpu().reshape(-1)

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
        return bool(torch.allclose(self.c2w, self.c2w[:, :1].expand_as(self.c2w), rtol=0.0, atol=1e-9))

    def __repr__(self) -> str:
        kind = "static" if self.is_static else "moving"
        return f"CameraRig({self.num_views} views x {self.num_frames} frames, {kind}, names={self.names})"

    # -- checks ----------------------------------------------------------------------------------
    def validate(self, atol: float = 1e-4) -> "CameraRig":
        """Raise `CameraRigError` naming the camera, frame and fix for the first problem found.

        Checks: shapes agree, values finite, bottom rows are [0, 0, 0, 1], rotations orthonormal
        (R^T R = I within `atol`) with det +1 (det -1 means a mirrored / wrong-convention matrix),
        positive focal lengths. Returns self so it chains.
        """
        c2w, k = self.c2w, self.intrinsics
        if c2w.ndim != 4 or c2w.shape[-2:] != (4, 4):
            raise CameraRigError(f"CameraRig.c2w must have shape [views, frames, 4, 4], got {list(c2w.shape)}; "
                                 "stack one 4x4 camera-to-world matrix per camera and frame.")
        if c2w.shape[0] == 0 or c2w.shape[1] == 0:
            raise CameraRigError(f"CameraRig has {c2w.shape[0]} views and {c2w.shape[1]} frames; "
                                 "a rig needs at least one camera with at least one frame.")
        if k.shape != (self.num_views, 4):
            raise CameraRigError(f"CameraRig.intrinsics must have shape [{self.num_views}, 4] (fx, fy, cx, cy per view), "
                                 f"got {list(k.shape)}; give one row per camera or leave it None for the default.")
        if len(self.names) != self.num_views:
            raise CameraRigError(f"CameraRig has {self.num_views} views but {len(self.names)} names ({self.names}); "
                                 "give exactly one name per camera.")
        if len(set(self.names)) != len(self.names):
            dup = sorted({n for n in self.names if self.names.count(n) > 1})
            raise CameraRigError(f"CameraRig view names must be unique; repeated: {dup}. Rename the cameras.")
        if self.target is not None and (self.target.shape != (3,) or not torch.isfinite(self.target).all()):
            raise CameraRigError(f"CameraRig.target must be 3 finite numbers (x, y, z) or None, got {self.target.tolist()}.")

        def where(idx) -> str:
            v, f = int(idx[0]), int(idx[1])
            return f"camera '{self.names[v]}' (view {v}), frame {f}"

        bad = (~torch.isfinite(c2w)).flatten(2).any(-1).nonzero()
        if len(bad):
            raise CameraRigError(f"{where(bad[0])}: the pose contains NaN or infinite values; "
                                 "check the source file or the preset parameters (e.g. a camera placed on its target).")
        bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
        bad = ((c2w[..., 3, :] - bottom).abs() > atol).any(-1).nonzero()
        if len(bad):
            raise CameraRigError(f"{where(bad[0])}: the bottom row is {c2w[bad[0][0], bad[0][1], 3].tolist()}, "
                                 "expected [0, 0, 0, 1]; the matrix is probably transposed (row-vector form): "
                                 "transpose it, or import Unreal-style strings with rig_from_unreal_json.")
        rot = c2w[..., :3, :3]
        err = (rot.transpose(-1, -2) @ rot - torch.eye(3, dtype=torch.float64)).abs().amax((-1, -2))
        bad = (err > atol).nonzero()
        if len(bad):
            e = float(err[bad[0][0], bad[0][1]])
            raise CameraRigError(f"{where(bad[0])}: the rotation is not orthonormal (|R^T R - I| = {e:.3g}); "
                                 "remove scale/shear from the matrix, or check units and whether it is a "
                                 "projection or intrinsics matrix rather than a camera pose.")
        det = torch.linalg.det(rot)
        bad = (det < 0).nonzero()
        if len(bad):
            raise CameraRigError(f"{where(bad[0])}: the rotation has determinant -1 (a mirrored, left-handed frame); "
                                 "the source convention is probably different: load it with the right "
                                 "convention ('opencv', 'opengl', 'blender') or, for Unreal/SynCamVideo strings, "
                                 "use rig_from_unreal_json.")
        bad = ((k[:, :2] <= 0) | ~torch.isfinite(k).all(-1, keepdim=True)).any(-1).nonzero()
        if len(bad):
            v = int(bad[0][0])
            raise CameraRigError(f"camera '{self.names[v]}' (view {v}): intrinsics {k[v].tolist()} need positive finite "
                                 "fx, fy (fractions of width/height, e.g. 0.87 for a 60° horizontal FOV).")
        return self

    # -- editing ---------------------------------------------------------------------------------
    def select_views(self, indices: Sequence[Union[int, str]]) -> "CameraRig":
        """A new rig with the given views (indices or names), in the given order."""
        if isinstance(indices, (int, str)):
            indices = [indices]
        idx = []
        for i in indices:
            if isinstance(i, str):
                if i not in self.names:
                    raise CameraRigError(f"select_views: no camera named '{i}'; available: {self.names}.")
                idx.append(self.names.index(i))
            else:
                i = int(i)
                if not -self.num_views <= i < self.num_views:
                    raise CameraRigError(f"select_views: view index {i} is out of range for a rig of "
                                         f"{self.num_views} views (0..{self.num_views - 1}).")
                idx.append(i % self.num_views)
        if not idx:
            raise CameraRigError("select_views: pick at least one view.")
        return CameraRig(self.c2w[idx].clone(), self.intrinsics[idx].clone(), [self.names[i] for i in idx],
                         None if self.target is None else self.target.clone())

    def resample_frames(self, num_frames: int) -> "CameraRig":
        """A new rig with `num_frames` frames spanning the same path (first and last poses kept).

        Positions are interpolated linearly and rotations by quaternion slerp; where a new frame
        lands exactly on an old one (e.g. 81 -> 21, 21 -> 81) the old pose is copied bit-exactly.
        A one-frame rig is repeated.
        """
        n, f = int(num_frames), self.num_frames
        if n < 1:
            raise CameraRigError(f"resample_frames: num_frames must be >= 1, got {num_frames}.")
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
        out[..., :3, :3] = _slerp_rotations(a[..., :3, :3], b[..., :3, :3], w[None, :].expand(self.num_views, -1))
        out[:, w == 0] = a[:, w == 0]
        out[:, w == 1] = b[:, w == 1]  # the last frame (i0 is clamped to f - 2)
        return self._with_c2w(out)

    def _with_c2w(self, c2w: torch.Tensor) -> "CameraRig":
        return CameraRig(c2w, self.intrinsics.clone(), list(self.names),
                         None if self.target is None else self.target.clone())


# ---------------------------------------------------------------------------------------------
# Rotation helpers (float64)
# ---------------------------------------------------------------------------------------------

def _matrix_to_quaternion(rot: torch.Tensor) -> torch.Tensor:
    """[..., 3, 3] rotations -> [..., 4] unit quaternions (w, x, y, z), branch-free (Shepperd)."""
    m = rot
    # four candidate formulas, each well conditioned when its own component is the largest
    tr = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    cand = torch.stack([
        torch.stack([1 + tr, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m[..., 0, 0] - m[..., 1, 1] - m[..., 2, 2],
                     m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                     1 - m[..., 0, 0] + m[..., 1, 1] - m[..., 2, 2], m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1],
                     1 - m[..., 0, 0] - m[..., 1, 1] + m[..., 2, 2]], -1),
    ], -2)  # [..., 4 candidates, 4]
    diag = torch.stack([tr, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1)
    best = diag.argmax(-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    return q / q.norm(dim=-1, keepdim=True)


def _quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _slerp_rotations(ra: torch.Tensor, rb: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rotation matrices ra -> rb at weights w (shape ra.shape[:-2])."""
    qa, qb = _matrix_to_quaternion(ra), _matrix_to_quaternion(rb)
    dot = (qa * qb).sum(-1)
    qb = torch.where(dot[..., None] < 0, -qb, qb)  # shortest arc
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin = torch.sin(theta)
    small = sin < 1e-9
    wa = torch.where(small, 1 - w, torch.sin((1 - w) * theta) / torch.where(small, 1.0, sin))
    wb = torch.where(small, w, torch.sin(w * theta) / torch.where(small, 1.0, sin))
    q = wa[..., None] * qa + wb[..., None] * qb
    return _quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> torch.Tensor:
    """Camera-to-world 4x4 (OpenCV axes) of a camera at `eye` looking at `target`, no roll.

    `up` is the world's up direction (camgrid presets: -y). Raises if the view direction is
    parallel to `up` (straight up/down: the roll is undefined).
    """
    eye = torch.as_tensor(eye, dtype=torch.float64)
    target = torch.as_tensor(target, dtype=torch.float64)
    down = -torch.as_tensor(up, dtype=torch.float64)
    z = target - eye
    if z.norm() < 1e-12:
        raise CameraRigError(f"look_at: the camera position {eye.tolist()} equals its target; move the camera away.")
    z = z / z.norm()
    x = torch.linalg.cross(down, z)  # OpenCV: x = y cross z with y pointing down
    if x.norm() < 1e-9:
        raise CameraRigError("look_at: the camera looks straight along the up axis, so its roll is undefined; "
                             "use an elevation strictly between -90 and 90 degrees.")
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


# ---------------------------------------------------------------------------------------------
# Conventions and importers
# ---------------------------------------------------------------------------------------------

def _check_convention(convention: str, matrix: str) -> tuple[str, str]:
    conv, kind = str(convention).lower(), str(matrix).lower()
    if conv not in CONVENTIONS:
        raise CameraRigError(f"unknown camera convention '{convention}'; use one of {CONVENTIONS} "
                             "(opengl/blender: y up, z backward; opencv: y down, z forward).")
    if kind not in MATRIX_KINDS:
        raise CameraRigError(f"unknown matrix kind '{matrix}'; use 'c2w' (camera-to-world) or 'w2c' (world-to-camera).")
    return conv, kind


def to_opencv_c2w(mats, convention: str = "opencv", matrix: str = "c2w") -> torch.Tensor:
    """[..., 4, 4] poses in `convention` / `matrix` kind -> OpenCV camera-to-world (float64)."""
    conv, kind = _check_convention(convention, matrix)
    m = torch.as_tensor(mats, dtype=torch.float64)
    if kind == "w2c":
        m = torch.linalg.inv(m)
    if conv in ("opengl", "blender"):
        m = m @ _GL_TO_CV
    return m


def from_opencv_c2w(c2w, convention: str = "opencv", matrix: str = "c2w") -> torch.Tensor:
    """Inverse of `to_opencv_c2w`: OpenCV camera-to-world -> poses in `convention` / `matrix` kind."""
    conv, kind = _check_convention(convention, matrix)
    m = torch.as_tensor(c2w, dtype=torch.float64)
    if conv in ("opengl", "blender"):
        m = m @ _GL_TO_CV
    if kind == "w2c":
        m = torch.linalg.inv(m)
    return m


_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def parse_unreal_matrix(text: str) -> torch.Tensor:
    """'[a b c 0] [d e f 0] [g h i 0] [tx ty tz 1]' -> float64 [4, 4] (rows as written)."""
    rows = _BRACKETS.findall(str(text))
    try:
        mat = [[float(v) for v in row.replace(",", " ").split()] for row in rows]
    except ValueError as e:
        raise CameraRigError(f"cannot read the camera matrix string {text!r}: {e}; expected four bracketed "
                             "rows of four numbers like '[1 0 0 0] [0 1 0 0] [0 0 1 0] [x y z 1]'.") from None
    if len(mat) != 4 or any(len(r) != 4 for r in mat):
        raise CameraRigError(f"cannot read the camera matrix string {text!r}: expected four bracketed rows "
                             "of four numbers like '[1 0 0 0] [0 1 0 0] [0 0 1 0] [x y z 1]'.")
    return torch.tensor(mat, dtype=torch.float64)


def unreal_to_opencv_c2w(m: torch.Tensor, units_per_metre: float = 100.0) -> torch.Tensor:
    """Unreal row-vector transform(s) [..., 4, 4] (left-handed Z-up, centimetres) -> OpenCV c2w, metres.

    The official SynCamMaster / ReCamMaster loaders: `C = M.T; C = C[:, [1, 2, 0, 3]];
    C[:3, 1] *= -1; C[:3, 3] /= scale` (camera axes forward/right/up -> right/down/forward).
    Then camgrid re-expresses the (left-handed) world right-handed; see the module docstring.
    """
    c = torch.as_tensor(m, dtype=torch.float64).transpose(-1, -2)
    c = c[..., [1, 2, 0, 3]].clone()
    c[..., :3, 1] *= -1.0
    c[..., :3, 3] /= units_per_metre
    return _UNREAL_WORLD_TO_CV @ c


_FRAME_KEY = re.compile(r"^frame(\d+)$")


def _is_unreal_json(data: Any) -> bool:
    return (isinstance(data, Mapping) and len(data) > 0
            and all(isinstance(k, str) and _FRAME_KEY.match(k) for k in data)
            and all(isinstance(v, Mapping) for v in data.values()))


def rig_from_unreal_json(data: Mapping[str, Mapping[str, str]], units_per_metre: float = 100.0,
                         intrinsics=None) -> CameraRig:
    """SynCamVideo / MultiCamVideo camera JSON (`{"frameK": {"camNN": "[..] [..] [..] [..]"}}`) -> rig.

    Frames are ordered by K, cameras by name. Every frame must list the same cameras.
    """
    if not _is_unreal_json(data):
        raise CameraRigError("not a SynCamVideo/MultiCamVideo camera file: expected keys 'frame0', 'frame1', ... "
                             "each mapping camera names to '[r r r 0] [r r r 0] [r r r 0] [x y z 1]' strings.")
    frames = sorted(data, key=lambda k: int(_FRAME_KEY.match(k).group(1)))
    indices = [int(_FRAME_KEY.match(k).group(1)) for k in frames]
    if indices != list(range(len(indices))):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))
        raise CameraRigError(f"camera file frames must be frame0..frame{len(indices) - 1} without gaps; "
                             f"missing: {['frame%d' % i for i in missing[:5]]}. Add the missing frames.")
    names = sorted(data[frames[0]])
    if not names:
        raise CameraRigError("camera file: 'frame0' lists no cameras.")
    mats = torch.empty(len(names), len(frames), 4, 4, dtype=torch.float64)
    for f, key in enumerate(frames):
        cams = data[key]
        if sorted(cams) != names:
            raise CameraRigError(f"camera file: '{key}' lists cameras {sorted(cams)} but 'frame0' lists {names}; "
                                 "every frame must list the same cameras.")
        for v, name in enumerate(names):
            try:
                mats[v, f] = parse_unreal_matrix(cams[name])
            except CameraRigError as e:
                raise CameraRigError(f"camera '{name}', {key}: {e}") from None
    # row-vector form keeps the translation in the last row and [0, 0, 0, 1] in the last column
    col = mats[..., :, 3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    bad = (col.abs() > 1e-6).any(-1).nonzero()
    if len(bad):
        v, f = int(bad[0][0]), int(bad[0][1])
        raise CameraRigError(f"camera '{names[v]}', frame{f}: the last column is {mats[v, f, :, 3].tolist()}, expected "
                             "[0, 0, 0, 1] for Unreal row-vector matrices; if the file stores column-vector "
                             "4x4s, save it as a plain matrix list with a 'convention' field instead.")
    return CameraRig(unreal_to_opencv_c2w(mats, units_per_metre), intrinsics, names).validate()


def _units_scale(units: str) -> float:
    u = str(units).lower()
    if u not in UNITS_PER_METRE:
        raise CameraRigError(f"unknown units '{units}'; use one of {list(UNITS_PER_METRE)}.")
    return UNITS_PER_METRE[u]


def rig_from_matrices(matrices, convention: str = "opencv", matrix: str = "c2w", units: str = "m",
                      names: Sequence[str] | None = None, intrinsics=None, target=None,
                      layout: str = "frames") -> CameraRig:
    """4x4 pose matrices -> rig. Shapes: [4, 4] (one static camera), [N, 4, 4] (one camera over N
    frames with layout="frames", or N static cameras with layout="views"), [V, F, 4, 4]."""
    m = torch.as_tensor(matrices, dtype=torch.float64)
    if m.ndim < 2 or m.shape[-2:] != (4, 4) or m.ndim > 4:
        raise CameraRigError(f"expected 4x4 matrices shaped [4, 4], [N, 4, 4] or [views, frames, 4, 4]; got {list(m.shape)}. "
                             "Write every pose as four rows of four numbers.")
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        if layout not in ("frames", "views"):
            raise CameraRigError(f"layout must be 'frames' (one camera over time) or 'views' (static cameras), got '{layout}'.")
        m = m[None] if layout == "frames" else m[:, None]
    c2w = to_opencv_c2w(m, convention, matrix)
    scale = _units_scale(units)
    c2w[..., :3, 3] /= scale
    if target is not None:
        target = torch.as_tensor(target, dtype=torch.float64) / scale
    return CameraRig(c2w, intrinsics, None if names is None else list(names), target).validate()


def _stack_views(per_view: list[torch.Tensor], names: list[str]) -> torch.Tensor:
    """Per-view [F_v, 4, 4] -> [V, F, 4, 4]; single-frame (static) views are repeated."""
    counts = {int(p.shape[0]) for p in per_view}
    frames = max(counts)
    if counts - {1, frames}:
        detail = ", ".join(f"{n}: {int(p.shape[0])}" for n, p in zip(names, per_view))
        raise CameraRigError(f"cameras have different frame counts ({detail}); give every camera the same number "
                             "of frames, or a single matrix for a static camera.")
    return torch.stack([p.expand(frames, 4, 4) for p in per_view])


def rig_from_dict(data: Mapping[str, Any]) -> CameraRig:
    """camgrid schema or plain-matrix dict -> rig (see the module docstring for both layouts)."""
    fmt = data.get("format")
    if fmt is not None and fmt != "camgrid.rig":
        raise CameraRigError(f"unknown rig format '{fmt}'; camgrid files have \"format\": \"camgrid.rig\".")
    if fmt == "camgrid.rig" and int(data.get("version", 1)) > 1:
        raise CameraRigError(f"rig file version {data['version']} is newer than this camgrid understands (1); update camgrid.")
    if "convention" not in data and fmt is None:
        raise CameraRigError("a matrix list needs a 'convention' field ('opencv', 'opengl' or 'blender') and a "
                             "'matrix' field ('c2w' or 'w2c'); add them so the axes are not guessed.")
    convention, kind = _check_convention(data.get("convention", "opencv"), data.get("matrix", "c2w"))
    scale = _units_scale(data.get("units", "m"))
    target = data.get("target")
    target = None if target is None else torch.as_tensor(target, dtype=torch.float64) / scale

    if "views" in data:
        names, per_view, intr = [], [], []
        for i, view in enumerate(data["views"]):
            name = str(view.get("name", f"cam{i + 1:02d}"))
            mats = view.get(kind, view.get("matrices"))
            if mats is None:
                raise CameraRigError(f"view '{name}' has no '{kind}' matrices; add one 4x4 per frame under '{kind}'.")
            m = torch.as_tensor(mats, dtype=torch.float64)
            if m.ndim == 2:
                m = m[None]
            if m.ndim != 3 or m.shape[-2:] != (4, 4):
                raise CameraRigError(f"view '{name}': '{kind}' must be a 4x4 matrix or a list of them, got shape {list(m.shape)}.")
            names.append(name)
            per_view.append(m)
            intr.append(view.get("intrinsics"))
        if not names:
            raise CameraRigError("the rig file has an empty 'views' list; add at least one camera.")
        c2w = to_opencv_c2w(_stack_views(per_view, names), convention, kind)
        c2w[..., :3, 3] /= scale
        defaults = default_intrinsics(len(names))
        intrinsics = torch.stack([defaults[i] if k is None else torch.as_tensor(k, dtype=torch.float64)
                                  for i, k in enumerate(intr)])
        return CameraRig(c2w, intrinsics, names, target).validate()

    if "cameras" in data:
        cams = data["cameras"]
        names = list(cams)
        per_view = []
        for n in names:
            m = torch.as_tensor(cams[n], dtype=torch.float64)
            per_view.append(m[None] if m.ndim == 2 else m)
        c2w = to_opencv_c2w(_stack_views(per_view, names), convention, kind)
        c2w[..., :3, 3] /= scale
        return CameraRig(c2w, data.get("intrinsics"), names, target).validate()

    if "matrices" in data:
        return rig_from_matrices(data["matrices"], convention, kind, data.get("units", "m"), data.get("names"),
                                 data.get("intrinsics"), data.get("target"), data.get("layout", "frames"))
    raise CameraRigError("the rig dict has no cameras: use 'views' (camgrid schema), 'cameras' "
                         "({name: [4x4 per frame]}) or 'matrices' (a list of 4x4).")


def load_rig(source: Union[str, Path, Mapping, list]) -> CameraRig:
    """Load a rig from a JSON path or an already parsed dict/list; the format is auto-detected:
    camgrid schema, SynCamVideo/MultiCamVideo ("frameK" -> "camNN" strings), or plain matrices."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise CameraRigError(f"camera file not found: {str(path)!r}; check the path.")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise CameraRigError(f"camera file {str(path)!r} is not valid JSON ({e}).") from None
    else:
        data = source
    if isinstance(data, CameraRig):
        return data
    if isinstance(data, list):
        raise CameraRigError("a bare list of matrices does not say its axes; wrap it as "
                             "{\"convention\": \"opencv\"|\"opengl\"|\"blender\", \"matrix\": \"c2w\"|\"w2c\", \"matrices\": [...]}.")
    if not isinstance(data, Mapping):
        raise CameraRigError(f"cannot read a camera rig from {type(data).__name__}; pass a JSON path or a dict.")
    if _is_unreal_json(data):
        return rig_from_unreal_json(data)
    return rig_from_dict(data)


def rig_to_dict(rig: CameraRig, convention: str = "opencv", matrix: str = "c2w") -> dict:
    """Rig -> camgrid schema dict (JSON-ready, full float precision)."""
    conv, kind = _check_convention(convention, matrix)
    mats = from_opencv_c2w(rig.c2w, conv, kind)
    return {
        "format": "camgrid.rig",
        "version": 1,
        "convention": conv,
        "matrix": kind,
        "units": "m",
        "target": None if rig.target is None else rig.target.tolist(),
        "views": [{"name": name, "intrinsics": rig.intrinsics[v].tolist(), kind: mats[v].tolist()}
                  for v, name in enumerate(rig.names)],
    }


def save_rig(rig: CameraRig, path: Union[str, Path], convention: str = "opencv", matrix: str = "c2w") -> Path:
    path = Path(path)
    path.write_text(json.dumps(rig_to_dict(rig, convention, matrix), indent=1))
    return path


# ---------------------------------------------------------------------------------------------
# Encodings
# ---------------------------------------------------------------------------------------------

def latent_frame_count(num_video_frames: int) -> int:
    """Wan VAE: 4k+1 video frames -> k+1 latent frames."""
    return (int(num_video_frames) - 1) // VAE_TEMPORAL_STRIDE + 1


def _latent_c2w(rig: CameraRig, num_latent_frames: int | None) -> torch.Tensor:
    """Poses at the video frames that start each latent frame (0, 4, 8, ...): [V, T, 4, 4].

    With `num_latent_frames` given, the rig is first resampled to 4*(T-1)+1 video frames, so a
    trajectory spans the whole clip whatever its own frame count (a static rig is repeated).
    """
    if num_latent_frames is None:
        t = latent_frame_count(rig.num_frames)
    else:
        t = int(num_latent_frames)
        if t < 1:
            raise CameraRigError(f"num_latent_frames must be >= 1, got {num_latent_frames}.")
        rig = rig.resample_frames(VAE_TEMPORAL_STRIDE * (t - 1) + 1)
    return rig.c2w[:, ::VAE_TEMPORAL_STRIDE][:, :t]


def _resolve_scale(translation_scale: Union[float, str]) -> float:
    if isinstance(translation_scale, str):
        key = translation_scale.lower()
        if key not in TRANSLATION_SCALE:
            raise CameraRigError(f"unknown model '{translation_scale}' for the translation scale; "
                                 f"use one of {list(TRANSLATION_SCALE)} or a number (embedding units per metre).")
        return TRANSLATION_SCALE[key]
    return float(translation_scale)


Reference = Union[str, int, torch.Tensor]


def _relative_poses(c2w: torch.Tensor, reference: Reference, scale: float) -> torch.Tensor:
    """P = inv(C_ref) @ C for c2w [V, T, 4, 4], translation scaled. See `relative_extrinsics`."""
    num_views = c2w.shape[0]
    if isinstance(reference, torch.Tensor) or (not isinstance(reference, (str, int)) and reference is not None):
        ref = torch.as_tensor(reference, dtype=torch.float64)
        if ref.shape != (4, 4):
            raise CameraRigError(f"reference matrix must be a 4x4 OpenCV camera-to-world pose, got shape {list(ref.shape)}.")
        ref = ref.expand_as(c2w)
    elif isinstance(reference, int) and not isinstance(reference, bool):
        if not -num_views <= reference < num_views:
            raise CameraRigError(f"reference view {reference} is out of range for {num_views} views.")
        ref = c2w[reference:reference + 1].expand_as(c2w)       # that view at the same frame
    elif reference == "view0":
        ref = c2w[:1].expand_as(c2w)                             # SynCamMaster: view 0, same frame
    elif reference == "first_pose":
        ref = c2w[:, :1].expand_as(c2w)                          # ReCamMaster inference: own first pose
    elif reference == "view0_first_pose":
        ref = c2w[:1, :1].expand_as(c2w)                         # ReCamMaster training: source's first pose
    else:
        raise CameraRigError(f"unknown reference {reference!r}; use 'view0' (SynCamMaster), 'first_pose' "
                             "(ReCamMaster), 'view0_first_pose', a view index, or a 4x4 pose.")
    # scale before the product, as the official code does (it divides the absolute centimetres)
    ref, cur = ref.clone(), c2w.clone()
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
    rel = _relative_poses(_latent_c2w(rig, num_latent_frames), reference, _resolve_scale(translation_scale))
    return rel[..., :3, :4].reshape(*rel.shape[:2], 12).to(torch.float32)


def plucker_rays(rig: CameraRig, height: int, width: int, num_latent_frames: int | None = None,
                 reference: Reference | None = None, translation_scale: Union[float, str] = 1.0) -> torch.Tensor:
    """Plücker rays (o x d, d) through every pixel centre: float32 [V, 6, T_lat, height, width].

    `height`/`width` are the grid the rays are sampled on (e.g. the latent H/8, W/8); intrinsics
    are fractions so any grid works. `d` is the unit world direction, `o` the camera centre.
    Frames as in `relative_extrinsics`. With `reference` set, poses are first made relative the
    same way (and translations scaled); otherwise rig world coordinates are used as they are.
    """
    c2w = _latent_c2w(rig, num_latent_frames)
    if reference is not None:
        c2w = _relative_poses(c2w, reference, _resolve_scale(translation_scale))
    k = rig.intrinsics
    u = (torch.arange(width, dtype=torch.float64) + 0.5) / width     # pixel centres, fraction of width
    v = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    x = (u[None, None, :] - k[:, 2, None, None]) / k[:, 0, None, None]  # [V, 1, w]
    y = (v[None, :, None] - k[:, 3, None, None]) / k[:, 1, None, None]  # [V, h, 1]
    x, y = torch.broadcast_tensors(x, y)
    d_cam = torch.stack([x, y, torch.ones_like(x)], -1)                  # [V, h, w, 3]
    d = torch.einsum("vtij,vhwj->vthwi", c2w[..., :3, :3], d_cam)
    d = d / d.norm(dim=-1, keepdim=True)
    o = c2w[..., :3, 3][:, :, None, None, :].expand_as(d)
    rays = torch.cat([torch.linalg.cross(o, d), d], -1)                  # [V, T, h, w, 6]
    return rays.permute(0, 4, 1, 2, 3).contiguous().to(torch.float32)


# ---------------------------------------------------------------------------------------------
# Presets (world: x right, y down, z forward; up = -y; target at the origin unless given)
# ---------------------------------------------------------------------------------------------

_UP = (0.0, -1.0, 0.0)


def _orbit_eye(target: torch.Tensor, radius: float, azimuth_deg: float, elevation_deg: float) -> torch.Tensor:
    """Point on a sphere around target. Azimuth 0 = in front (-z side of the target), positive
    azimuth moves the camera to +x (its right); positive elevation raises it (-y)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    offset = torch.tensor([math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)],
                          dtype=torch.float64)
    return target + radius * offset


def _static_rig(poses: list[torch.Tensor], names: list[str], num_frames: int, target, hfov_deg: float) -> CameraRig:
    if int(num_frames) < 1:
        raise CameraRigError(f"num_frames must be >= 1, got {num_frames}.")
    c2w = torch.stack(poses)[:, None].expand(-1, int(num_frames), -1, -1).clone()
    return CameraRig(c2w, default_intrinsics(len(poses), hfov_deg), names, target).validate()


def _check_views(num_views: int) -> int:
    if int(num_views) < 1:
        raise CameraRigError(f"num_views must be >= 1, got {num_views}.")
    return int(num_views)


def _spread(num_views: int, start: float, stop: float) -> list[float]:
    if num_views == 1:
        return [(start + stop) / 2]
    return [start + (stop - start) * i / (num_views - 1) for i in range(num_views)]


def orbit_arc(num_views: int = 4, azimuth_span_deg: float = 60.0, elevation_deg: float = 0.0, radius: float = 3.0,
              target=(0.0, 0.0, 0.0), num_frames: int = 81, hfov_deg: float = 60.0) -> CameraRig:
    """Static cameras on a horizontal arc around `target`, all looking at it. Azimuths are spread
    evenly from -span/2 (left) to +span/2 (right); view 0 is the leftmost."""
    num_views = _check_views(num_views)
    target = torch.as_tensor(target, dtype=torch.float64)
    azimuths = _spread(num_views, -azimuth_span_deg / 2, azimuth_span_deg / 2)
    poses = [look_at(_orbit_eye(target, radius, az, elevation_deg), target, _UP) for az in azimuths]
    names = [f"az{a:+g}" for a in azimuths]
    return _static_rig(poses, _unique(names), num_frames, target, hfov_deg)


def elevation_sweep(num_views: int = 4, max_elevation_deg: float = 30.0, min_elevation_deg: float = 0.0,
                    radius: float = 3.0, azimuth_deg: float = 0.0, target=(0.0, 0.0, 0.0),
                    keep_ground_distance: bool = True, num_frames: int = 81, hfov_deg: float = 60.0) -> CameraRig:
    """Static cameras at elevations min..max, all looking at `target`.

    keep_ground_distance=True (SynCamMaster's example): every camera stays `radius` away in the
    horizontal plane and rises radius*tan(elevation); False: cameras lie on a sphere of `radius`.
    """
    num_views = _check_views(num_views)
    target = torch.as_tensor(target, dtype=torch.float64)
    elevations = _spread(num_views, min_elevation_deg, max_elevation_deg)
    poses = []
    for el in elevations:
        if not -90.0 < el < 90.0:
            raise CameraRigError(f"elevation_sweep: elevation {el}° must lie strictly between -90° and 90°.")
        r = radius / math.cos(math.radians(el)) if keep_ground_distance else radius
        poses.append(look_at(_orbit_eye(target, r, azimuth_deg, el), target, _UP))
    return _static_rig(poses, _unique([f"el{e:+g}" for e in elevations]), num_frames, target, hfov_deg)


def dolly(num_views: int = 3, step: float = 1.0, radius: float = 3.0, azimuth_deg: float = 0.0,
          elevation_deg: float = 0.0, target=(0.0, 0.0, 0.0), num_frames: int = 81, hfov_deg: float = 60.0) -> CameraRig:
    """Static cameras on one line of sight: view i is `radius + i*step` metres from `target`
    (positive step = dolly back, as SynCamMaster's 'dis' cameras)."""
    num_views = _check_views(num_views)
    target = torch.as_tensor(target, dtype=torch.float64)
    poses, names = [], []
    for i in range(num_views):
        dist = radius + i * step
        if dist <= 0:
            raise CameraRigError(f"dolly: view {i} would be {dist:g} m from the target (radius {radius} + {i} x step {step}); "
                                 "use a larger radius or a smaller negative step.")
        poses.append(look_at(_orbit_eye(target, dist, azimuth_deg, elevation_deg), target, _UP))
        names.append(f"d{i * step:+g}m")
    return _static_rig(poses, _unique(names), num_frames, target, hfov_deg)


def syncammaster_example_rig(num_frames: int = 81, hfov_deg: float = 60.0) -> CameraRig:
    """The 10 cameras of SynCamMaster's example file (cam01..cam10), target at the origin:
    cam01..cam05 azimuth +30, +15, 0, -15, -30° on a 3 m circle; cam06..cam08 raised to elevation
    10/20/30° keeping 3 m ground distance; cam09/cam10 = cam03 dollied back 1 m / 2 m."""
    target = torch.zeros(3, dtype=torch.float64)
    poses = [look_at(_orbit_eye(target, 3.0, az, 0.0), target, _UP) for az in (30.0, 15.0, 0.0, -15.0, -30.0)]
    poses += [look_at(_orbit_eye(target, 3.0 / math.cos(math.radians(el)), 0.0, el), target, _UP)
              for el in (10.0, 20.0, 30.0)]
    poses += [look_at(_orbit_eye(target, 3.0 + back, 0.0, 0.0), target, _UP) for back in (1.0, 2.0)]
    return _static_rig(poses, [f"cam{i:02d}" for i in range(1, 11)], num_frames, target, hfov_deg)


# Nominal amplitude of each ReCamMaster trajectory (degrees or metres) and its motion.
_RECAM_AMPLITUDE = {"pan_right": 20.0, "pan_left": 20.0, "tilt_up": 10.0, "tilt_down": 10.0, "zoom_in": 2.0,
                    "zoom_out": 2.0, "translate_up": 1.0, "translate_down": 1.0, "arc_left": 30.0, "arc_right": 30.0}


def recammaster_trajectory(name: str, num_frames: int = 81, amplitude: float | None = None,
                           target_distance: float = 4.0, hfov_deg: float = 60.0) -> CameraRig:
    """One of ReCamMaster's ten camera paths as a moving one-view rig, starting at the identity pose.

    Geometry read off the official file: progress s = k / (F - 0.5) at frame k (the nominal
    amplitude is reached half a frame after the last frame, as there). pan: yaw +-20°; tilt:
    pitch +-10°; zoom: move 2 m along the view axis; translate up/down: move 1 m vertically while
    turning to keep a point `target_distance` (4 m) ahead in view; arc: slide along the chord to the
    point 30° around that point, looking at it. `amplitude` overrides the nominal value.
    """
    key = str(name).lower().replace(" ", "_").replace("-", "_")
    if key not in _RECAM_AMPLITUDE:
        raise CameraRigError(f"unknown ReCamMaster trajectory '{name}'; use one of {list(RECAMMASTER_TRAJECTORIES)}.")
    num_frames = int(num_frames)
    if num_frames < 1:
        raise CameraRigError(f"num_frames must be >= 1, got {num_frames}.")
    amp = _RECAM_AMPLITUDE[key] if amplitude is None else float(amplitude)
    target = torch.tensor([0.0, 0.0, target_distance], dtype=torch.float64)
    origin = torch.zeros(3, dtype=torch.float64)
    poses = []
    for k in range(num_frames):
        s = k / (num_frames - 0.5)
        if key in ("pan_right", "pan_left"):       # turn right (+x) or left in place
            a = math.radians(amp * s) * (1 if key == "pan_right" else -1)
            pose = look_at(origin, torch.tensor([math.sin(a), 0.0, math.cos(a)], dtype=torch.float64), _UP)
        elif key in ("tilt_up", "tilt_down"):      # pitch up (-y) or down in place
            a = math.radians(amp * s) * (1 if key == "tilt_up" else -1)
            pose = look_at(origin, torch.tensor([0.0, -math.sin(a), math.cos(a)], dtype=torch.float64), _UP)
        elif key in ("zoom_in", "zoom_out"):        # dolly along the optical axis
            dz = amp * s * (1 if key == "zoom_in" else -1)
            eye = torch.tensor([0.0, 0.0, dz], dtype=torch.float64)
            pose = look_at(eye, eye + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), _UP)
        elif key in ("translate_up", "translate_down"):  # pedestal, keeping the target in view
            dy = -amp * s if key == "translate_up" else amp * s
            pose = look_at(torch.tensor([0.0, dy, 0.0], dtype=torch.float64), target, _UP)
        else:                                        # arc: chord towards the point `amp` degrees around target
            side = -1.0 if key == "arc_left" else 1.0
            a = math.radians(amp)
            end = target + target_distance * torch.tensor([side * math.sin(a), 0.0, -math.cos(a)], dtype=torch.float64)
            pose = look_at(s * end, target, _UP)
        poses.append(pose)
    c2w = torch.stack(poses)[None]
    tgt = None if key.startswith(("pan", "tilt", "zoom")) else target
    return CameraRig(c2w, default_intrinsics(1, hfov_deg), [key], tgt).validate()


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


# ---------------------------------------------------------------------------------------------
# Registry (for node dropdowns)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PresetSpec:
    name: str
    build: Callable[..., CameraRig]
    params: dict = field(default_factory=dict)   # parameter name -> default value
    description: str = ""
    model: str = "any"                            # the model whose convention it mirrors, if any


def _spec(key: str, fn: Callable[..., CameraRig], description: str, model: str = "any",
          fixed: Mapping[str, Any] | None = None) -> PresetSpec:
    """Registry entry; `fixed` arguments are bound and hidden from the parameter list."""
    import inspect
    fixed = dict(fixed or {})
    params = {p.name: p.default for p in inspect.signature(fn).parameters.values()
              if p.default is not inspect.Parameter.empty and p.name not in fixed}
    build = (lambda **kw: fn(**fixed, **kw)) if fixed else fn
    return PresetSpec(key, build, params, description, model)


RIG_PRESETS: dict[str, PresetSpec] = {
    "orbit_arc": _spec("orbit_arc", orbit_arc, "static cameras on a horizontal arc around a target"),
    "elevation_sweep": _spec("elevation_sweep", elevation_sweep, "static cameras at increasing elevation"),
    "dolly": _spec("dolly", dolly, "static cameras on one line of sight at increasing distance"),
    "syncammaster_example": _spec("syncammaster_example", syncammaster_example_rig,
                                  "SynCamMaster's 10 example cameras (azimuth, elevation, distance)", "syncammaster"),
    **{f"recammaster_{t}": _spec(f"recammaster_{t}", recammaster_trajectory,
                                 f"ReCamMaster trajectory: {t.replace('_', ' ')}", "recammaster", {"name": t})
       for t in RECAMMASTER_TRAJECTORIES},
}
PRESETS = RIG_PRESETS  # the name the brief uses; prefer RIG_PRESETS next to model.config.PRESETS


def make_preset(name: str, **kwargs) -> CameraRig:
    """Build a preset rig by registry name; unknown names or parameters raise with the valid choices."""
    if name not in RIG_PRESETS:
        raise CameraRigError(f"unknown camera preset '{name}'; choose one of {list(RIG_PRESETS)}.")
    spec = RIG_PRESETS[name]
    unknown = sorted(set(kwargs) - set(spec.params))
    if unknown:
        raise CameraRigError(f"preset '{name}' has no parameter(s) {unknown}; its parameters are {spec.params}.")
    return spec.build(**kwargs)
