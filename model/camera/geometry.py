"""Pose math in float64: camera axis conventions, Unreal's row-vector transforms, quaternions, look-at.

camgrid's internal pose is a camera-to-world 4x4 in OpenCV camera axes (x right, y down, z forward), metres
(docs/ARCHITECTURE.md §4 Cameras).
"""
from __future__ import annotations

import torch

from .limits import CameraRigError
from .values import choice, point3

CONVENTIONS = ("opencv", "opengl", "blender")
MATRIX_KINDS = ("c2w", "w2c")

# OpenGL / Blender camera axes (x right, y up, z backward) <-> OpenCV (x right, y down, z forward):
# flip the camera's y and z axes, i.e. right-multiply c2w by diag(1, -1, -1, 1). It is its own inverse.
GL_TO_CV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))

# Unreal world (left-handed: X forward, Y right, Z up) -> camgrid world (right-handed: x right,
# y down, z forward). A reflection (det -1) that cancels in relative poses.
UNREAL_WORLD_TO_CV = torch.tensor([[0.0, 1.0, 0.0, 0.0],
                                   [0.0, 0.0, -1.0, 0.0],
                                   [1.0, 0.0, 0.0, 0.0],
                                   [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)


# ---------------------------------------------------------------------------------------------
# Conventions
# ---------------------------------------------------------------------------------------------

def check_convention(convention, matrix) -> tuple[str, str]:
    """(convention, matrix kind), lower-cased, or CameraRigError listing the valid ones."""
    conv = choice(convention, CONVENTIONS, "camera convention (field 'convention')",
                  " (opengl/blender: y up, z backward; opencv: y down, z forward)")
    kind = choice(matrix, MATRIX_KINDS, "matrix kind (field 'matrix')", " (camera-to-world or world-to-camera)")
    return conv, kind


def to_opencv_c2w(mats, convention: str = "opencv", matrix: str = "c2w") -> torch.Tensor:
    """[..., 4, 4] poses in `convention` / `matrix` kind -> OpenCV camera-to-world (float64).

    A w2c matrix is inverted, so it must be a rigid transform (the importers check that first)."""
    conv, kind = check_convention(convention, matrix)
    m = torch.as_tensor(mats, dtype=torch.float64)
    if kind == "w2c":
        m = torch.linalg.inv(m)
    if conv in ("opengl", "blender"):
        m = m @ GL_TO_CV
    return m


def from_opencv_c2w(c2w, convention: str = "opencv", matrix: str = "c2w") -> torch.Tensor:
    """Inverse of `to_opencv_c2w`: OpenCV camera-to-world -> poses in `convention` / `matrix` kind."""
    conv, kind = check_convention(convention, matrix)
    m = torch.as_tensor(c2w, dtype=torch.float64)
    if conv in ("opengl", "blender"):
        m = m @ GL_TO_CV
    if kind == "w2c":
        m = torch.linalg.inv(m)
    return m


def unreal_to_opencv_c2w(m: torch.Tensor, units_per_metre: float = 100.0) -> torch.Tensor:
    """Unreal row-vector transform(s) [..., 4, 4] (left-handed Z-up, centimetres) -> OpenCV c2w, metres.

    The official SynCamMaster / ReCamMaster loaders: `C = M.T; C = C[:, [1, 2, 0, 3]];
    C[:3, 1] *= -1; C[:3, 3] /= scale` (camera axes forward/right/up -> right/down/forward).
    Then camgrid re-expresses the (left-handed) world right-handed; see the package docstring.
    """
    c = torch.as_tensor(m, dtype=torch.float64).transpose(-1, -2)
    c = c[..., [1, 2, 0, 3]].clone()
    c[..., :3, 1] *= -1.0
    c[..., :3, 3] /= units_per_metre
    return UNREAL_WORLD_TO_CV @ c


# ---------------------------------------------------------------------------------------------
# Rotations
# ---------------------------------------------------------------------------------------------

def matrix_to_quaternion(rot: torch.Tensor) -> torch.Tensor:
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


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """[..., 4] unit quaternions (w, x, y, z) -> [..., 3, 3] rotations."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def slerp_rotations(ra: torch.Tensor, rb: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between rotation matrices ra -> rb at weights w (shape ra.shape[:-2])."""
    qa, qb = matrix_to_quaternion(ra), matrix_to_quaternion(rb)
    dot = (qa * qb).sum(-1)
    qb = torch.where(dot[..., None] < 0, -qb, qb)  # shortest arc
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    sin = torch.sin(theta)
    small = sin < 1e-9
    wa = torch.where(small, 1 - w, torch.sin((1 - w) * theta) / torch.where(small, 1.0, sin))
    wb = torch.where(small, w, torch.sin(w * theta) / torch.where(small, 1.0, sin))
    q = wa[..., None] * qa + wb[..., None] * qb
    return quaternion_to_matrix(q / q.norm(dim=-1, keepdim=True))


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> torch.Tensor:
    """Camera-to-world 4x4 (OpenCV axes) of a camera at `eye` looking at `target`, no roll.

    `up` is the world's up direction (camgrid presets: -y). Raises if the view direction is
    parallel to `up` (straight up/down: the roll is undefined).
    """
    eye, target = point3(eye, "look_at: eye"), point3(target, "look_at: target")
    down = -point3(up, "look_at: up")
    if down.norm() < 1e-12:
        raise CameraRigError("look_at: the up direction is zero; use e.g. (0, -1, 0)")
    z = target - eye
    if z.norm() < 1e-12 * max(1.0, float(eye.abs().max())):
        raise CameraRigError(f"look_at: the camera position {eye.tolist()} equals its target; move the camera away.")
    z = z / z.norm()
    x = torch.linalg.cross(down, z)  # OpenCV: x = y cross z with y pointing down
    if x.norm() < 1e-9 * down.norm():
        raise CameraRigError("look_at: the camera looks straight along the up axis, so its roll is undefined; "
                             "use an elevation strictly between -90 and 90 degrees.")
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w

