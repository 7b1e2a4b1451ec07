"""A picture of a camera rig: top view and side view, frusta numbered by view, look-at target, a scale bar.

`draw_rig(rig) -> PIL.Image` is what the rig-preview node and the demo show. World convention as in
`model/camera/` (OpenCV, metres, y down; docs/ARCHITECTURE.md §4 Cameras): the top view looks down the -y
axis onto the x-z plane (x right, z up the picture), the side view looks along +x onto the z-y plane
(z right, up = -y). Only the first frame's poses are drawn, plus each camera's path when the rig moves.
"""
from __future__ import annotations

import math

import torch

from .camera import CameraRig, CameraRigError
from .camera.limits import MAX_POSITION_M, CameraLimit

PREVIEW_PIXELS = CameraLimit(64, 4096, integer=True, unit=" pixels")   # width or height of the picture
FRUSTUM_DEPTH_M = CameraLimit(1e-6, MAX_POSITION_M, unit=" m")
VIEW_COLOURS = [(230, 60, 60), (60, 140, 230), (60, 180, 90), (230, 160, 40), (160, 80, 200), (40, 190, 190),
                (200, 90, 150), (120, 120, 120)]
# (panel name, horizontal world axis and sign, vertical world axis and sign: picture up = +value)
PANELS = [("top view (x-z)", (0, 1.0), (2, 1.0)), ("side view (z, up)", (2, 1.0), (1, -1.0))]
_BAR_LABELS = {-3: "1 mm", -2: "1 cm", -1: "10 cm", 0: "1 m", 1: "10 m", 2: "100 m", 3: "1 km", 4: "10 km",
               5: "100 km", 6: "1000 km", 7: "10000 km"}


def _frusta(c2w: torch.Tensor, intr: torch.Tensor, depth: float) -> torch.Tensor:
    """Camera centre + 4 far corners in world space for poses [V, 4, 4], intrinsics [V, 4]: [V, 5, 3]."""
    fx, fy, cx, cy = (intr[:, i, None] for i in range(4))
    u = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=torch.float64)     # image corners, fractions of width/height
    v = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    corners = torch.stack([(u - cx) / fx, (v - cy) / fy, torch.ones(fx.shape[0], 4, dtype=torch.float64)], -1) * depth
    world = corners @ c2w[:, :3, :3].transpose(-1, -2) + c2w[:, None, :3, 3]
    return torch.cat([c2w[:, None, :3, 3], world], 1)


def _scale_bar(px_per_metre: float, max_px: float) -> tuple[float, str]:
    """The longest power-of-ten length (1 mm .. 10000 km) whose bar fits in `max_px`: (pixels, label)."""
    exponent = min(7, max(-3, math.floor(math.log10(max_px / px_per_metre))))
    return 10.0 ** exponent * px_per_metre, _BAR_LABELS[exponent]


def _draw_panel(draw, rig: CameraRig, frusta: torch.Tensor, target: torch.Tensor, everything: torch.Tensor,
                panel: int, panel_w: int, height: int) -> None:
    """One projection of the rig into the picture's `panel`-th half."""
    title, (ha, hs), (va, vs) = PANELS[panel]
    x0 = panel * panel_w
    hvals, vvals = everything[:, ha] * hs, everything[:, va] * vs
    span = max(float(hvals.max() - hvals.min()), float(vvals.max() - vvals.min()), 1e-3) * 1.25
    scale = min(panel_w - 20, height - 40) / span
    hc, vc = float(hvals.max() + hvals.min()) / 2, float(vvals.max() + vvals.min()) / 2

    def to_px(pt):
        return (x0 + panel_w / 2 + (float(pt[ha]) * hs - hc) * scale, height / 2 + 8 - (float(pt[va]) * vs - vc) * scale)

    draw.rectangle([x0 + 2, 2, x0 + panel_w - 3, height - 3], outline=(200, 200, 200))
    draw.text((x0 + 8, 6), title, fill=(60, 60, 60))
    tx, ty = to_px(target)                                                    # look-at target
    draw.line([tx - 6, ty, tx + 6, ty], fill=(0, 0, 0), width=2)
    draw.line([tx, ty - 6, tx, ty + 6], fill=(0, 0, 0), width=2)
    centres = rig.c2w[:, :, :3, 3]
    for v, fr in enumerate(frusta):
        colour = VIEW_COLOURS[v % len(VIEW_COLOURS)]
        if rig.num_frames > 1 and float((centres[v] - centres[v, :1]).norm(dim=-1).max()) > 1e-6:
            draw.line([to_px(c) for c in centres[v]], fill=colour, width=1)    # the camera's path
        pts = [to_px(q) for q in fr]
        for corner in pts[1:]:
            draw.line([pts[0], corner], fill=colour, width=2)
        draw.polygon(pts[1:], outline=colour)
        draw.ellipse([pts[0][0] - 3, pts[0][1] - 3, pts[0][0] + 3, pts[0][1] + 3], fill=colour)
        draw.text((pts[0][0] + 5, pts[0][1] - 12), str(v), fill=colour)
    bar, label = _scale_bar(scale, panel_w * 0.6)
    by = height - 14
    draw.line([x0 + 10, by, x0 + 10 + bar, by], fill=(0, 0, 0), width=2)
    draw.text((x0 + 14 + bar, by - 6), label, fill=(0, 0, 0))


def draw_rig(rig: CameraRig, size: tuple[int, int] = (640, 320), frustum_depth: float | None = None):
    """PIL RGB image of `rig` (a CameraRig), `size` = (width, height): top view left, side view right.

    Any valid rig draws (positions up to the rig limit, focal lengths 1e-3 .. 1e3): every coordinate is scaled
    into the picture in float64 before PIL sees it."""
    from PIL import Image, ImageDraw   # lazily: Pillow is needed only when a preview is drawn

    if not isinstance(rig, CameraRig):
        raise CameraRigError(f"draw_rig needs a CameraRig, got {type(rig).__name__}")
    rig.validate()
    width = PREVIEW_PIXELS.check("draw_rig: width", size[0])
    height = PREVIEW_PIXELS.check("draw_rig: height", size[1])
    target = torch.zeros(3, dtype=torch.float64) if rig.target is None else rig.target
    centres = rig.c2w[:, :, :3, 3].reshape(-1, 3)
    if frustum_depth is None:
        frustum_depth = max(0.25, 0.25 * float((centres - target).norm(dim=-1).max()))
    else:
        frustum_depth = FRUSTUM_DEPTH_M.check("draw_rig: frustum_depth", frustum_depth)
    frusta = _frusta(rig.c2w[:, 0], rig.intrinsics, frustum_depth)
    everything = torch.cat([centres, frusta.reshape(-1, 3), target[None]])

    img = Image.new("RGB", (width, height), (250, 250, 248))
    draw = ImageDraw.Draw(img)
    for panel in range(len(PANELS)):
        _draw_panel(draw, rig, frusta, target, everything, panel, width // 2, height)
    return img
