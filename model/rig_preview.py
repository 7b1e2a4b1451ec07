"""A picture of a camera rig: top view and side view, frusta numbered by view, look-at target, 1 m scale bar.

`draw_rig(rig) -> PIL.Image` is what the rig-preview node and the demo show. World convention as in
`model/camera.py` (OpenCV, metres, y down): the top view looks down the -y axis onto the x-z plane
(x right, z up the picture), the side view looks along +x onto the z-y plane (z right, up = -y).
Only the first frame's poses are drawn, plus each camera's path when the rig moves.
"""
from __future__ import annotations

import math

import torch

VIEW_COLOURS = [(230, 60, 60), (60, 140, 230), (60, 180, 90), (230, 160, 40), (160, 80, 200), (40, 190, 190),
                (200, 90, 150), (120, 120, 120)]


def _frustum(c2w: torch.Tensor, intr: torch.Tensor, depth: float) -> torch.Tensor:
    """Camera centre + 4 far corners in world space: [5, 3]."""
    fx, fy, cx, cy = [float(v) for v in intr]
    corners = torch.tensor([[(0 - cx) / fx, (0 - cy) / fy, 1.0], [(1 - cx) / fx, (0 - cy) / fy, 1.0],
                            [(1 - cx) / fx, (1 - cy) / fy, 1.0], [(0 - cx) / fx, (1 - cy) / fy, 1.0]],
                           dtype=torch.float64) * depth
    world = corners @ c2w[:3, :3].T + c2w[:3, 3]
    return torch.cat([c2w[:3, 3][None], world])


def draw_rig(rig, size: tuple[int, int] = (640, 320), frustum_depth: float | None = None):
    """PIL RGB image of `rig` (a CameraRig), `size` = (width, height): top view left, side view right."""
    from PIL import Image, ImageDraw

    width, height = int(size[0]), int(size[1])
    if width < 64 or height < 32:
        raise ValueError(f"draw_rig: size must be at least 64x32 pixels, got {width}x{height}")
    c2w = rig.c2w.to(torch.float64)
    intr = rig.intrinsics if rig.intrinsics is not None else torch.tensor([[0.87, 1.5, 0.5, 0.5]]).repeat(rig.num_views, 1)
    target = getattr(rig, "target", None)
    target = torch.zeros(3, dtype=torch.float64) if target is None else torch.as_tensor(target, dtype=torch.float64)
    centres = c2w[:, :, :3, 3]                                                    # [V, F, 3]
    extent = float((centres.reshape(-1, 3) - target).norm(dim=-1).max()) if centres.numel() else 1.0
    depth = frustum_depth if frustum_depth is not None else max(0.25, 0.25 * extent)
    frusta = [_frustum(c2w[v, 0], intr[v], depth) for v in range(rig.num_views)]
    everything = torch.cat([centres.reshape(-1, 3), *frusta, target[None]])

    img = Image.new("RGB", (width, height), (250, 250, 248))
    draw = ImageDraw.Draw(img)
    panel_w = width // 2
    # (panel name, horizontal world axis and sign, vertical world axis and sign: picture up = +value)
    panels = [("top view (x-z)", (0, 1.0), (2, 1.0)), ("side view (z, up)", (2, 1.0), (1, -1.0))]
    for p, (title, (ha, hs), (va, vs)) in enumerate(panels):
        x0 = p * panel_w
        hvals, vvals = everything[:, ha] * hs, everything[:, va] * vs
        span = max(float(hvals.max() - hvals.min()), float(vvals.max() - vvals.min()), 1e-3) * 1.25
        scale = min(panel_w - 20, height - 40) / span
        hc, vc = float(hvals.max() + hvals.min()) / 2, float(vvals.max() + vvals.min()) / 2

        def to_px(pt, x0=x0, ha=ha, hs=hs, va=va, vs=vs, scale=scale, hc=hc, vc=vc):
            return (x0 + panel_w / 2 + (float(pt[ha]) * hs - hc) * scale,
                    height / 2 + 8 - (float(pt[va]) * vs - vc) * scale)

        draw.rectangle([x0 + 2, 2, x0 + panel_w - 3, height - 3], outline=(200, 200, 200))
        draw.text((x0 + 8, 6), title, fill=(60, 60, 60))
        tx, ty = to_px(target)                                                    # look-at target
        draw.line([tx - 6, ty, tx + 6, ty], fill=(0, 0, 0), width=2)
        draw.line([tx, ty - 6, tx, ty + 6], fill=(0, 0, 0), width=2)
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
        bar = scale * 1.0                                                         # 1 m scale bar
        if bar > panel_w * 0.6:
            bar, label = scale * 0.1, "10 cm"
        else:
            label = "1 m"
        by = height - 14
        draw.line([x0 + 10, by, x0 + 10 + bar, by], fill=(0, 0, 0), width=2)
        draw.text((x0 + 14 + bar, by - 6), label, fill=(0, 0, 0))
    return img
