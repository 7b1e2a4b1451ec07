"""Multi-view consistency metric for generated grids of the synthetic scenes.

For frames [V, F, H, W, 3], the rig they were generated for and the colours of the objects the
caption asked for:

1. segment each object by colour: pixels with enough chroma/saturation are given the nearest
   palette hue (shading scales all channels alike, so hue survives it); keep the largest
   4-connected component per object, view and frame, and take its centroid (pixel centres);
   a component that borders another object or the image edge may be partly hidden, so it
   counts as found but is not used;
2. triangulate each object at each frame from every view where it is usable (DLT, then a few
   Gauss-Newton steps on the pixel reprojection error, with the rig's known cameras);
3. reproject and report the mean distance between reprojection and centroid, in pixels.

A grid whose views show one consistent 3D scene reprojects within the segmentation noise (the
"floor", well under a pixel on ground-truth renders); views that disagree about where the objects
are cannot be explained by one 3D point per object and give a clearly larger error.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch
import torch.nn.functional as F

from ..model.camera import CameraRig
from .render import project_points, rig_at_frames
from .scenes import PALETTE

__all__ = ["rgb_to_hue", "segment_colours", "Detections", "object_centroids", "triangulate", "reprojection_errors",
           "consistency_metrics"]

Colour = Union[str, Sequence[float]]

MIN_SATURATION = 0.4    # (max - min) / max: the floor, sky and shadows stay below this
MIN_VALUE = 0.08        # very dark pixels have unreliable hue
MAX_HUE_DISTANCE = 30.0  # degrees: half the spacing of the palette hues


def rgb_to_hue(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """HSV hue in degrees [0, 360), saturation and value of rgb [..., 3] (0..1)."""
    r, g, b = rgb.unbind(-1)
    value, _ = rgb.max(-1)
    chroma = value - rgb.min(-1).values
    safe = chroma.clamp(min=1e-8)
    hue = torch.where(value == r, ((g - b) / safe) % 6,
                      torch.where(value == g, (b - r) / safe + 2, (r - g) / safe + 4)) * 60.0
    saturation = chroma / value.clamp(min=1e-8)
    return hue % 360.0, saturation, value


def _colour_rgb(colour: Colour) -> tuple[float, float, float]:
    if isinstance(colour, str):
        if colour.lower() not in PALETTE:
            raise ValueError(f"unknown colour '{colour}'; use a palette name from {list(PALETTE)} or an (r, g, b) triple in 0..1.")
        return PALETTE[colour.lower()]
    rgb = tuple(float(c) for c in colour)
    if len(rgb) != 3:
        raise ValueError(f"colour {colour!r} must be a palette name or an (r, g, b) triple in 0..1.")
    return rgb


def _as_frames(frames) -> torch.Tensor:
    frames = torch.as_tensor(frames)
    if frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape [views, frames, height, width, 3] (RGB last), got {list(frames.shape)}; "
                         "permute channels-first grids with .permute(0, 1, 3, 4, 2).")
    if frames.dtype == torch.uint8:
        return frames.to(torch.float32) / 255.0
    return frames.to(torch.float32)


def _classify(frames: torch.Tensor, colours: Sequence[Colour], min_saturation: float, min_value: float,
              max_hue_distance: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(index into `colours` or -1, and whether the pixel has any palette hue at all) per pixel."""
    wanted = [_colour_rgb(c) for c in colours]
    refs = list(dict.fromkeys(wanted + list(PALETTE.values())))
    ref_hue, _, _ = rgb_to_hue(torch.tensor(refs, dtype=torch.float32))
    hue, sat, val = rgb_to_hue(frames.to(torch.float32))
    diff = (hue[..., None] - ref_hue).abs()
    diff = torch.minimum(diff, 360.0 - diff)
    dist, nearest = diff.min(-1)
    # reference index -> index into `colours` (or -1 for palette colours that were not asked for)
    ref_to_obj = torch.full((len(refs),), -1, dtype=torch.long)
    for k, rgb in enumerate(wanted):
        ref_to_obj[refs.index(rgb)] = k
    coloured = (sat >= min_saturation) & (val >= min_value) & (dist <= max_hue_distance)
    labels = torch.where(coloured, ref_to_obj[nearest], torch.full_like(nearest, -1))
    return labels, coloured


def segment_colours(frames: torch.Tensor, colours: Sequence[Colour], min_saturation: float = MIN_SATURATION,
                    min_value: float = MIN_VALUE, max_hue_distance: float = MAX_HUE_DISTANCE) -> torch.Tensor:
    """Per-pixel index into `colours` (int64 [..., H, W]; -1 = none) by nearest hue.

    Hues are matched against the whole palette plus the given colours, so a pixel of a palette
    colour that was not asked for is not mistaken for its neighbour.
    """
    return _classify(frames, colours, min_saturation, min_value, max_hue_distance)[0]


def _neighbours(mask: torch.Tensor) -> torch.Tensor:
    """Pixels 4-adjacent to `mask` [B, H, W] (mask itself excluded)."""
    grown = mask.clone()
    grown[:, 1:] |= mask[:, :-1]
    grown[:, :-1] |= mask[:, 1:]
    grown[:, :, 1:] |= mask[:, :, :-1]
    grown[:, :, :-1] |= mask[:, :, 1:]
    return grown & ~mask


def largest_components(mask: torch.Tensor) -> torch.Tensor:
    """Largest 4-connected component of each image in mask [B, H, W] (bool), by label propagation."""
    b, h, w = mask.shape
    if not mask.any():
        return mask
    ids = (torch.arange(h * w, dtype=torch.float32) + 1).reshape(1, h, w)   # unique within an image, exact in fp32
    labels = torch.where(mask, ids, torch.zeros(()))[:, None]
    m = mask[:, None].to(torch.float32)
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.0, 1.0, 0.0]])
    for step in range(h * w):
        # max over the 4-neighbourhood: max-pool over a 3x3 window restricted to the cross
        padded = F.pad(labels, (1, 1, 1, 1))
        shifted = torch.stack([padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if cross[dy + 1, dx + 1] > 0])
        new = shifted.amax(0) * m
        if torch.equal(new, labels):
            break
        labels = new
    labels = labels[:, 0].to(torch.long)                                     # 0 = background
    offset = (torch.arange(b) * (h * w + 1))[:, None, None]
    flat = (labels + offset).flatten()
    sizes = torch.bincount(flat, minlength=b * (h * w + 1)).reshape(b, h * w + 1)
    sizes[:, 0] = 0
    best = sizes.argmax(-1)                                                  # per image
    return (labels == best[:, None, None]) & mask


@dataclass
class Detections:
    """Per object, view and frame ([N, V, F] each; centroids [N, V, F, 2] float64 in pixels,
    x right / y down, pixel centres at +0.5)."""

    centroids: torch.Tensor
    found: torch.Tensor      # segmented with at least min_pixels pixels
    counts: torch.Tensor     # pixels in the kept component
    touching: torch.Tensor   # the component borders another coloured object: maybe partly hidden
    clipped: torch.Tensor    # the component touches the image border: maybe cut off

    @property
    def usable(self) -> torch.Tensor:
        """Found, whole and unoccluded: the centroid is the projection of the object's centre
        up to perspective, so it may be triangulated."""
        return self.found & ~self.touching & ~self.clipped


def mask_centroids(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """mask [..., H, W] -> the centroid of its pixels [..., 2] (float64, x right / y down, pixel centres at +0.5;
    0 where the mask is empty) and their count [...]."""
    h, w = mask.shape[-2:]
    xs = torch.arange(w, dtype=torch.float64) + 0.5
    ys = torch.arange(h, dtype=torch.float64) + 0.5
    m = mask.to(torch.float64)
    count = m.sum((-1, -2))
    cx = (m.sum(-2) * xs).sum(-1) / count.clamp(min=1)
    cy = (m.sum(-1) * ys).sum(-1) / count.clamp(min=1)
    return torch.stack([cx, cy], -1), count


def object_centroids(frames, colours: Sequence[Colour], min_pixels: int | None = None,
                     largest_component: bool = True, min_saturation: float = MIN_SATURATION,
                     min_value: float = MIN_VALUE, max_hue_distance: float = MAX_HUE_DISTANCE) -> Detections:
    """Find each object (by colour) in every view and frame of frames [V, F, H, W, 3].

    The kept pixels are the object's largest 4-connected component (or all its pixels with
    largest_component=False); `found` needs at least `min_pixels` of them (default: max(4, 0.05%
    of the image)).
    """
    frames = _as_frames(frames)
    v, f, h, w, _ = frames.shape
    if min_pixels is None:
        min_pixels = max(4, round(5e-4 * h * w))
    labels, coloured = _classify(frames.reshape(v * f, h, w, 3), colours, min_saturation, min_value, max_hue_distance)
    out = {key: [] for key in ("centroids", "found", "counts", "touching", "clipped")}
    for k in range(len(colours)):
        mask = labels == k
        if largest_component:
            mask = largest_components(mask)
        centres, count = mask_centroids(mask)
        others = coloured & (labels != k)
        touching = (_neighbours(mask) & others).flatten(1).any(-1)
        clipped = mask[:, 0].any(-1) | mask[:, -1].any(-1) | mask[:, :, 0].any(-1) | mask[:, :, -1].any(-1)
        out["centroids"].append(centres.reshape(v, f, 2))
        out["counts"].append(count.to(torch.long).reshape(v, f))
        out["found"].append((count >= min_pixels).reshape(v, f))
        out["touching"].append(touching.reshape(v, f))
        out["clipped"].append(clipped.reshape(v, f))
    return Detections(**{key: torch.stack(val) for key, val in out.items()})


def triangulate(centroids: torch.Tensor, found: torch.Tensor, rig: CameraRig, height: int, width: int,
                refine_steps: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """One 3D point per object and frame from its centroids in the views where it was found.

    centroids [N, V, F, 2] (pixels), found [N, V, F]; the rig must have F frames. Returns points
    float64 [N, F, 3] and valid bool [N, F] (found in at least 2 views). Linear DLT in normalised
    camera coordinates, then Gauss-Newton on the pixel reprojection error.
    """
    n, v, f, _ = centroids.shape
    c2w = rig.c2w[:, :f]                                                   # [V, F, 4, 4]
    k = rig.intrinsics                                                     # [V, 4]
    w2c = torch.linalg.inv(c2w)[..., :3, :]                                # [V, F, 3, 4]
    weight = found.to(torch.float64)                                       # [N, V, F]
    # normalised image coordinates of the observations
    xn = (centroids[..., 0] / width - k[None, :, None, 2]) / k[None, :, None, 0]
    yn = (centroids[..., 1] / height - k[None, :, None, 3]) / k[None, :, None, 1]
    rows_x = xn[..., None] * w2c[None, ..., 2, :] - w2c[None, ..., 0, :]  # [N, V, F, 4]
    rows_y = yn[..., None] * w2c[None, ..., 2, :] - w2c[None, ..., 1, :]
    rows = torch.stack([rows_x, rows_y], 2) * weight[:, :, None, :, None]  # [N, V, 2, F, 4]
    rows = rows / rows.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    a = rows.permute(0, 3, 1, 2, 4).reshape(n, f, 2 * v, 4)
    valid = (found.sum(1) >= 2) & torch.isfinite(a).all(-1).all(-1)
    a = torch.where(valid[..., None, None], a, torch.zeros_like(a))       # no NaN/inf into the SVD
    _, _, vh = torch.linalg.svd(a)
    hom = vh[..., -1, :]
    safe_w = torch.where(hom[..., 3].abs() < 1e-12, torch.full_like(hom[..., 3], 1e-12), hom[..., 3])
    points = hom[..., :3] / safe_w[..., None]                              # [N, F, 3]

    # Gauss-Newton on pixel errors: u = fx*W * x/z + cx*W with (x, y, z) = R^T (X - t)
    rot_t = w2c[..., :3].permute(1, 0, 2, 3)                               # [F, V, 3, 3] (= R^T)
    trans = w2c[..., 3].permute(1, 0, 2)                                   # [F, V, 3]
    scale = torch.stack([k[:, 0] * width, k[:, 1] * height], -1)           # [V, 2]
    obs = centroids.permute(0, 2, 1, 3)                                    # [N, F, V, 2]
    wt = weight.permute(0, 2, 1)                                           # [N, F, V]
    for _ in range(refine_steps):
        cam = (rot_t[None] @ points[:, :, None, :, None]).squeeze(-1) + trans[None]  # [N, F, V, 3]
        z = cam[..., 2:3].clamp(min=1e-6)
        proj = scale * cam[..., :2] / z + torch.stack([k[:, 2] * width, k[:, 3] * height], -1)
        resid = (proj - obs) * wt[..., None]                               # [N, F, V, 2]
        # d(x/z)/dX = (R0 - (x/z) R2) / z, likewise for y
        jac = (rot_t[None, :, :, :2, :] - (cam[..., :2] / z)[..., None] * rot_t[None, :, :, 2:3, :]) / z[..., None]
        jac = jac * scale[None, None, :, :, None] * wt[..., None, None]    # [N, F, V, 2, 3]
        jt_j = torch.einsum("nfvai,nfvaj->nfij", jac, jac)
        jt_r = torch.einsum("nfvai,nfva->nfi", jac, resid)
        # damping relative to the system's own scale (a point at infinity or behind every camera makes
        # J^T J (nearly) singular); solve_ex reports a failed solve instead of raising, and such a
        # point keeps its previous estimate
        damping = 1e-9 * (1.0 + jt_j.diagonal(dim1=-2, dim2=-1).abs().amax(-1))
        jt_j = jt_j + damping[..., None, None] * torch.eye(3, dtype=torch.float64)
        ok = torch.isfinite(jt_j).all(-1).all(-1) & torch.isfinite(jt_r).all(-1)
        eye = torch.eye(3, dtype=torch.float64).expand_as(jt_j)
        step, info = torch.linalg.solve_ex(torch.where(ok[..., None, None], jt_j, eye),
                                           torch.where(ok[..., None], jt_r, torch.zeros_like(jt_r))[..., None])
        step = step.squeeze(-1)
        ok = ok & (info == 0) & torch.isfinite(step).all(-1)
        points = torch.where((valid & ok)[..., None], points - step, points)
    valid = valid & torch.isfinite(points).all(-1)
    return points, valid


def triangulated_residuals(centroids: torch.Tensor, used: torch.Tensor, rig: CameraRig, height: int,
                           width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each observation's reprojection error float64 [N, V, F] (pixels) when every object and frame is
    triangulated from the views in `used` [N, V, F] (centroids [N, V, F, 2]; the rig has F frames), and where that
    triangulation exists, valid bool [N, F]."""
    points, valid = triangulate(centroids, used, rig, height, width)
    proj, _ = project_points(points[:, None, :, :], rig.c2w[None], rig.intrinsics[None, :, None], height, width)
    return (proj - centroids).norm(dim=-1), valid


def reprojection_errors(frames, rig: CameraRig, colours: Sequence[Colour], min_pixels: int | None = None,
                        **segment_kwargs) -> tuple[torch.Tensor, torch.Tensor, Detections, torch.Tensor]:
    """Steps 1-3 of the module docstring for frames [V, F, H, W, 3]: (errors float64 [N, V, F] in pixels,
    used bool [N, V, F]: the observations that count, detections, valid bool [N, F]: triangulated)."""
    frames = _as_frames(frames)
    v, f, h, w, _ = frames.shape
    if rig.num_views != v:
        raise ValueError(f"frames have {v} views but the rig has {rig.num_views} cameras; pass the rig the grid was generated with.")
    if len(colours) == 0:
        raise ValueError("colours is empty; pass the objects' colours, e.g. scene.colours.")
    rig = rig_at_frames(rig, f)
    det = object_centroids(frames, colours, min_pixels, **segment_kwargs)
    usable = det.usable
    err, valid = triangulated_residuals(det.centroids, usable, rig, h, w)
    return err, usable & valid[:, None, :], det, valid


def consistency_metrics(frames, rig: CameraRig, colours: Sequence[Colour], min_pixels: int | None = None,
                        **segment_kwargs) -> dict:
    """Multi-view consistency of a generated grid (see the module docstring).

    frames: [V, F, H, W, 3] RGB (float 0..1 or uint8), generated for `rig` (resampled to F frames
    when its frame count differs); colours: the objects' palette names (e.g. `scene.colours`) or
    (r, g, b) triples. `segment_kwargs` go to `object_centroids`. Only *usable* detections (found,
    not bordering another object, not cut by the image border) are triangulated and scored, since
    a partly hidden object's centroid is not its centre's projection. Returns a dict:

      reproj_px         mean reprojection error (pixels) over the usable (object, view, frame)
                        observations of objects seen usable in >= 2 views; nan when there are none
      reproj_px_median  the median of the same errors
      reproj_rel        reproj_px divided by the image diagonal (comparable across resolutions)
      found             fraction of (object, view, frame) where the object was segmented
      usable            fraction of (object, view, frame) with a usable detection
      triangulated      fraction of (object, frame) with usable detections in >= 2 views
      num_observations  how many errors the mean is over
      per_object_px     list: each object's mean reprojection error (nan where none)
    """
    frames = _as_frames(frames)
    h, w = frames.shape[2:4]
    err, used, det, valid = reprojection_errors(frames, rig, colours, min_pixels, **segment_kwargs)
    errors = err[used]
    nan = float("nan")
    per_object = [float(err[i][used[i]].mean()) if used[i].any() else nan for i in range(len(colours))]
    mean = float(errors.mean()) if errors.numel() else nan
    return dict(
        reproj_px=mean,
        reproj_px_median=float(errors.median()) if errors.numel() else nan,
        reproj_rel=mean / math.hypot(h, w),
        found=float(det.found.to(torch.float64).mean()),
        usable=float(det.usable.to(torch.float64).mean()),
        triangulated=float(valid.to(torch.float64).mean()),
        num_observations=int(errors.numel()),
        per_object_px=per_object,
    )
