"""A small vectorised torch ray caster for `synth.scenes.Scene`, seen from any `CameraRig`.

One ray per pixel centre, from the same pinhole model as `model.camera.plucker_rays` (which
builds them): analytic ray-sphere, ray-box (boxes yawed about the vertical axis) and ray-plane
intersections, Lambert shading with one directional light plus ambient, and hard shadows.

Pixel coordinates (used by `project` and the metric): x right, y down, in pixels, with the
centre of pixel (row i, column j) at (j + 0.5, i + 0.5) -- the point the renderer's ray for that
pixel passes through. So the centroid of a mask, taken over pixel centres, is directly comparable
with `project`.
"""
from __future__ import annotations

import math

import torch

from ..model.camera import CameraRig, plucker_rays
from .scenes import GROUND_Y, Scene

__all__ = ["render", "project", "project_points", "rig_at_frames", "camera_rays"]

AMBIENT = 0.35                 # light that reaches every surface (keeps shaded sides clearly coloured)
GROUND_RGB = (0.56, 0.40)      # the two checker greys (no chroma: the metric ignores them)
SKY_HORIZON = (0.82, 0.84, 0.86)
SKY_ZENITH = (0.62, 0.68, 0.78)
FOG_DISTANCE = 14.0            # metres: the floor fades into the horizon colour (hides checker aliasing)
_EPS = 1e-4
_MAX_RAYS_PER_CHUNK = 1 << 21  # bounds memory for large renders (about 2M rays at once)


def rig_at_frames(rig: CameraRig, num_frames: int) -> CameraRig:
    """The rig with exactly `num_frames` frames: itself, or resampled along its path."""
    return rig if rig.num_frames == int(num_frames) else rig.resample_frames(int(num_frames))


def camera_rays(rig: CameraRig, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins float32 [V, F, 1, 1, 3] and unit directions float32 [V, F, H, W, 3] of every pixel's ray.

    Reuses `plucker_rays` (its direction half) on a rig with one view per (view, frame) pair, so the
    pixel-centre convention and intrinsics handling are exactly the model's.
    """
    num_views, num_frames = rig.num_views, rig.num_frames
    flat = CameraRig(rig.c2w.reshape(num_views * num_frames, 1, 4, 4),
                     rig.intrinsics.repeat_interleave(num_frames, 0))
    rays = plucker_rays(flat, height, width)                       # [V*F, 6, 1, H, W]
    dirs = rays[:, 3:, 0].permute(0, 2, 3, 1).reshape(num_views, num_frames, height, width, 3)
    origins = rig.c2w[..., :3, 3].to(torch.float32)[:, :, None, None, :]
    return origins, dirs.contiguous()


def project_points(points: torch.Tensor, c2w: torch.Tensor, intrinsics: torch.Tensor,
                   height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection with broadcasting: points [..., 3] (world), c2w [..., 4, 4], intrinsics [..., 4].

    Returns pixel coordinates [..., 2] (x right, y down, pixel centres at +0.5) and camera depth
    [...] (z along the optical axis; <= 0 means behind the camera). float64.
    """
    points = torch.as_tensor(points, dtype=torch.float64)
    c2w = torch.as_tensor(c2w, dtype=torch.float64)
    k = torch.as_tensor(intrinsics, dtype=torch.float64)
    rot, t = c2w[..., :3, :3], c2w[..., :3, 3]
    cam = ((points - t)[..., None, :] @ rot).squeeze(-2)          # R^T (p - t), as a row vector
    z = cam[..., 2]
    safe_z = torch.where(z.abs() < 1e-12, torch.full_like(z, 1e-12), z)
    u = (k[..., 0] * cam[..., 0] / safe_z + k[..., 2]) * width
    v = (k[..., 1] * cam[..., 1] / safe_z + k[..., 3]) * height
    return torch.stack([u, v], -1), z


def project(points_world, rig: CameraRig, frame: int, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Project world points [N, 3] into every view of `rig` at `frame`.

    Returns pixel coordinates float64 [V, N, 2] (x right, y down; pixel (i, j)'s centre is
    (j + 0.5, i + 0.5)) and depth float64 [V, N].
    """
    pts = torch.as_tensor(points_world, dtype=torch.float64).reshape(-1, 3)
    if not -rig.num_frames <= int(frame) < rig.num_frames:
        raise IndexError(f"project: frame {frame} is out of range for a rig of {rig.num_frames} frames.")
    c2w = rig.c2w[:, int(frame)]                                   # [V, 4, 4]
    return project_points(pts[None], c2w[:, None], rig.intrinsics[:, None], height, width)


# ---------------------------------------------------------------------------------------------
# Intersections. Rays: origins o [..., 3] and directions d [..., 3] (broadcastable); each returns
# the hit distance t [...] (inf where missed) and the unit surface normal [..., 3].
# ---------------------------------------------------------------------------------------------

def _hit_sphere(o, d, centre, radius):
    oc = o - centre
    b = (d * oc).sum(-1)
    c = (oc * oc).sum(-1) - radius * radius
    disc = b * b - c
    t = -b - disc.clamp(min=0).sqrt()
    t = torch.where((disc > 0) & (t > _EPS), t, torch.full_like(t, math.inf))
    normal = (o + t.clamp(max=1e6)[..., None] * d - centre) / radius
    return t, normal


def _yaw_to_local(v, cos, sin):
    """World -> box frame for a box turned by yaw about the vertical (y) axis: R_y(yaw)^T v."""
    return torch.stack([cos * v[..., 0] - sin * v[..., 2], v[..., 1], sin * v[..., 0] + cos * v[..., 2]], -1)


def _yaw_to_world(v, cos, sin):
    return torch.stack([cos * v[..., 0] + sin * v[..., 2], v[..., 1], -sin * v[..., 0] + cos * v[..., 2]], -1)


def _hit_box(o, d, centre, half, cos, sin):
    ol = _yaw_to_local(o - centre, cos, sin)
    dl = _yaw_to_local(d, cos, sin)
    dl_safe = torch.where(dl.abs() < 1e-9, torch.full_like(dl, 1e-9), dl)
    t1 = (-half - ol) / dl_safe
    t2 = (half - ol) / dl_safe
    near, far = torch.minimum(t1, t2), torch.maximum(t1, t2)
    t_in, axis = near.max(-1)
    t_out = far.amin(-1)
    hit = (t_out >= t_in) & (t_in > _EPS)
    t = torch.where(hit, t_in, torch.full_like(t_in, math.inf))
    # the entry face: the slab entered last, facing against the ray
    normal_local = torch.nn.functional.one_hot(axis, 3).to(d.dtype) * -torch.sign(dl_safe)
    return t, _yaw_to_world(normal_local, cos, sin)


def _hit_ground(o, d):
    dy = d[..., 1]
    dy_safe = torch.where(dy.abs() < 1e-9, torch.full_like(dy, 1e-9), dy)
    t = (GROUND_Y - o[..., 1]) / dy_safe
    return torch.where(t > _EPS, t, torch.full_like(t, math.inf))


def _object_geometry(scene: Scene, num_frames: int):
    """Per object: centres float32 [1, F, 1, 1, 3], and (cos, sin) of the yaw [1, F, 1, 1]."""
    centres = scene.tracks(num_frames).to(torch.float32)[:, None, :, None, None, :]
    yaws = scene.yaws(num_frames).to(torch.float32)[:, None, :, None, None]
    return centres, torch.cos(yaws), torch.sin(yaws)


def _hit_objects(scene, o, d, centres, cos, sin):
    """Nearest object hit: t [...], object index [...] (-1 = none), normal [..., 3]."""
    shape = torch.broadcast_shapes(o.shape, d.shape)[:-1]
    t_best = torch.full(shape, math.inf)
    ids = torch.full(shape, -1, dtype=torch.long)
    normal = torch.zeros(*shape, 3)
    for k, obj in enumerate(scene.objects):
        if obj.shape == "sphere":
            t, n = _hit_sphere(o, d, centres[k], obj.size[0])
        else:
            half = torch.tensor(obj.size, dtype=torch.float32)
            t, n = _hit_box(o, d, centres[k], half, cos[k], sin[k])
        closer = t < t_best
        t_best = torch.where(closer, t, t_best)
        ids = torch.where(closer, torch.full_like(ids, k), ids)
        normal = torch.where(closer[..., None], n.expand_as(normal), normal)
    return t_best, ids, normal


def _render_chunk(scene: Scene, rig: CameraRig, height: int, width: int, frames: slice, shadows: bool):
    sub = CameraRig(rig.c2w[:, frames], rig.intrinsics)
    o, d = camera_rays(sub, height, width)
    centres, cos, sin = _object_geometry(scene, rig.num_frames)
    centres, cos, sin = centres[:, :, frames], cos[:, :, frames], sin[:, :, frames]

    t_obj, ids, normal = _hit_objects(scene, o, d, centres, cos, sin)
    t_ground = _hit_ground(o, d)
    on_ground = (t_ground < t_obj) & torch.isfinite(t_ground)
    ids = torch.where(on_ground, torch.full_like(ids, -1), ids)
    t = torch.where(on_ground, t_ground, t_obj)
    hit = torch.isfinite(t)
    normal = torch.where(on_ground[..., None], torch.tensor([0.0, -1.0, 0.0]).expand_as(normal), normal)
    point = o + t.clamp(max=1e6)[..., None] * d

    # albedo: palette colour of the object, checker grey on the floor
    palette = torch.tensor([obj.rgb for obj in scene.objects] + [(0.0, 0.0, 0.0)], dtype=torch.float32)
    albedo = palette[ids]                                           # ids == -1 -> the zero row (replaced)
    square = scene.checker_size
    parity = (torch.floor(point[..., 0] / square) + torch.floor(point[..., 2] / square)) % 2
    grey = torch.where(parity > 0.5, torch.tensor(GROUND_RGB[1]), torch.tensor(GROUND_RGB[0]))
    albedo = torch.where(on_ground[..., None], grey[..., None].expand_as(albedo), albedo)

    light = torch.tensor(scene.light_dir, dtype=torch.float32)
    light = light / light.norm()
    lambert = (normal * light).sum(-1).clamp(min=0)
    if shadows:
        t_block, _, _ = _hit_objects(scene, point + 1e-3 * normal, light.expand_as(point), centres, cos, sin)
        lambert = torch.where(hit & torch.isfinite(t_block), torch.zeros_like(lambert), lambert)
    colour = albedo * (AMBIENT + (1 - AMBIENT) * lambert)[..., None]

    # sky: a low-chroma vertical gradient; distant floor fades into the horizon colour
    up = (-d[..., 1]).clamp(0, 1)[..., None]
    sky = torch.tensor(SKY_HORIZON) * (1 - up) + torch.tensor(SKY_ZENITH) * up
    fog = (1 - torch.exp(-(t_ground.clamp(max=1e6) / FOG_DISTANCE) ** 2))[..., None]
    colour = torch.where(on_ground[..., None], colour * (1 - fog) + torch.tensor(SKY_HORIZON) * fog, colour)
    colour = torch.where(hit[..., None], colour, sky)
    return colour.clamp(0, 1), ids


def render(scene: Scene, rig: CameraRig, height: int, width: int, num_frames: int | None = None,
           return_ids: bool = False, shadows: bool = True):
    """Render `scene` from every camera of `rig`: float32 [V, F, H, W, 3] in 0..1.

    F = `num_frames`, or the scene's own frame count when None. The scene's motion spans the clip
    whatever F is; the rig is resampled along its path when its frame count differs. With
    `return_ids`, also returns per-pixel object indices int64 [V, F, H, W] (index into
    `scene.objects`; -1 = floor or sky).
    """
    height, width = int(height), int(width)
    if height < 1 or width < 1:
        raise ValueError(f"render: height and width must be >= 1, got {height}x{width}.")
    num_frames = scene.num_frames if num_frames is None else int(num_frames)
    rig = rig_at_frames(rig, num_frames)
    per_frame = rig.num_views * height * width
    step = max(1, _MAX_RAYS_PER_CHUNK // per_frame)
    images, ids = [], []
    for start in range(0, num_frames, step):
        img, idx = _render_chunk(scene, rig, height, width, slice(start, min(start + step, num_frames)), shadows)
        images.append(img)
        ids.append(idx)
    images, ids = torch.cat(images, 1), torch.cat(ids, 1)
    return (images, ids) if return_ids else images
