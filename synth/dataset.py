"""Training samples: a random scene rendered from a random preset rig, deterministic from an index.

Rigs come from the same presets the nodes offer (`model.camera.make_preset`): mostly orbit arcs
with a random azimuth span, elevation and radius around the scene centre, sometimes elevation
sweeps or dollies, 2-8 views; the whole rig is then turned about the vertical axis by a random
angle so view 0 is not always on the same side of the scene. Intrinsics get square pixels at the
rendered aspect (the presets default to Wan's 832x480).
"""
from __future__ import annotations

import dataclasses
import math
import random
from typing import Sequence

import torch

from ..model.camera import CameraRig, default_intrinsics, make_preset
from .render import render
from .scenes import Scene, sample_scene, scene_style

__all__ = ["SyntheticMultiViewDataset", "random_rig", "turn_to_floor_grid", "collate_samples", "default_arc_span",
           "check_arc_span", "VIEW_ORDERS", "check_view_order", "reorder_views"]

# The order of a rig's views. "preset": as the preset lays the cameras out (left to right along an orbit arc, low
# to high in an elevation sweep, near to far in a dolly), so the view index alone says which way the next camera
# moved; a model trained only on it can place objects by the index instead of reading the cameras (the built-in
# v5 does: benchmarks/TINY_MODEL.md, eleventh session). "reversed": the same cameras last to first (a held-out
# check of that). "shuffled": a random order per item, drawn apart from the scene, so the index says nothing.
VIEW_ORDERS = ("preset", "reversed", "shuffled")

DEFAULT_PRESETS = {"orbit_arc": 0.7, "elevation_sweep": 0.15, "dolly": 0.15}


def _turn_about_vertical(rig: CameraRig, angle: float, centre: Sequence[float]) -> CameraRig:
    """The rig rotated by `angle` radians about the vertical (y) axis through `centre`."""
    c, s = math.cos(angle), math.sin(angle)
    turn = torch.eye(4, dtype=torch.float64)
    turn[:3, :3] = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=torch.float64)
    centre = torch.as_tensor(centre, dtype=torch.float64)
    to_origin, back = torch.eye(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64)
    to_origin[:3, 3], back[:3, 3] = -centre, centre
    c2w = back @ turn @ to_origin @ rig.c2w
    return CameraRig(c2w, rig.intrinsics.clone(), list(rig.names), centre.clone())


def default_arc_span(num_views: int) -> tuple[float, float]:
    """The degrees an orbit arc of `num_views` cameras spans in all, drawn uniformly: up to 30 per view."""
    return 20.0, 30.0 * num_views


def random_rig(rng: random.Random, num_views: int, num_frames: int, aspect: float,
               presets: dict[str, float] | None = None, radius: tuple[float, float] = (3.0, 4.5),
               arc_span: tuple[float, float] | None = None, align_floor: bool = False) -> CameraRig:
    """A random static rig of `num_views` cameras looking at (near) the origin, from a preset, at a distance
    drawn from `radius` (metres; a SceneStyle's camera_radius); an orbit arc spans a total azimuth drawn from
    `arc_span` (degrees; default_arc_span without it).

    align_floor: view 0 looks along one of the floor's grid lines, straight over the origin (a checker corner),
    so the floor's squares lie the same way in view 0 of every rig (what a camera input relative to view 0, or
    none, cannot tell otherwise: the turn about the vertical is uniform). The same draws are made either way."""
    presets = DEFAULT_PRESETS if presets is None else presets
    names, weights = list(presets), list(presets.values())
    name = rng.choices(names, weights)[0]
    hfov = rng.uniform(50.0, 70.0)
    target = (rng.uniform(-0.2, 0.2), rng.uniform(-0.1, 0.1), rng.uniform(-0.2, 0.2))
    distance = rng.uniform(*radius)
    common = dict(num_views=num_views, radius=distance, target=target, num_frames=num_frames, hfov_deg=hfov)
    if name == "orbit_arc":
        # spans up to 30 degrees per view: the demo's 4-view 120-degree orbit lies inside the training rigs
        rig = make_preset(name, azimuth_span_deg=rng.uniform(*(arc_span or default_arc_span(num_views))),
                          elevation_deg=rng.uniform(5.0, 35.0), **common)
    elif name == "elevation_sweep":
        low = rng.uniform(0.0, 15.0)
        rig = make_preset(name, min_elevation_deg=low, max_elevation_deg=low + rng.uniform(10.0, 40.0),
                          azimuth_deg=0.0, **common)
    elif name == "dolly":
        step = rng.uniform(0.2, min(1.0, 4.0 / max(num_views - 1, 1)))   # the farthest view stays within ~8.5 m
        rig = make_preset(name, step=step, elevation_deg=rng.uniform(5.0, 30.0), **common)
    else:
        raise ValueError(f"random_rig: unsupported preset '{name}'; use orbit_arc, elevation_sweep or dolly.")
    rig.intrinsics = default_intrinsics(num_views, hfov, aspect=aspect)
    turn = rng.uniform(-math.pi, math.pi)
    if align_floor:
        rig, target = _aligned_over_origin(rig, target), (0.0, target[1], 0.0)
        turn = _turn_along_grid(rig, math.floor((turn + math.pi) / (math.pi / 2)) % 4)
    return _turn_about_vertical(rig, turn, target).validate()


def turn_to_floor_grid(rig: CameraRig) -> CameraRig:
    """`rig`, aimed over the origin, turned about the vertical through it so that view 0 looks along the floor's
    grid line nearest its heading (a SceneStyle's align_floor, for rigs that are not random: the demo's)."""
    quarter = round(_view0_heading(rig) / (math.pi / 2)) % 4
    return _turn_about_vertical(rig, _turn_along_grid(rig, quarter), (0.0, 0.0, 0.0))


def _aligned_over_origin(rig: CameraRig, target: Sequence[float]) -> CameraRig:
    """The rig moved sideways so that its target is straight over the origin."""
    shift = torch.eye(4, dtype=torch.float64)
    shift[0, 3], shift[2, 3] = -float(target[0]), -float(target[2])
    moved = None if rig.target is None else rig.target.clone()
    if moved is not None:
        moved[0], moved[2] = 0.0, 0.0
    return CameraRig(shift @ rig.c2w, rig.intrinsics.clone(), list(rig.names), moved)


def _view0_heading(rig: CameraRig) -> float:
    """The angle atan2(z, x) of the horizontal direction view 0 looks in (radians)."""
    forward = rig.c2w[0, 0, :3, 2]   # an OpenCV camera looks along its z axis
    return math.atan2(float(forward[2]), float(forward[0]))


def _turn_along_grid(rig: CameraRig, quarter: int) -> float:
    """The turn about the vertical (_turn_about_vertical's angle) after which view 0 looks along a grid line of the
    floor: along +x, +z, -x or -z for quarter 0-3."""
    # _turn_about_vertical(angle) turns a direction's (x, z) angle atan2(z, x) by -angle
    return _view0_heading(rig) - quarter * math.pi / 2


def reorder_views(rig: CameraRig, order: str, rng: random.Random | None = None) -> CameraRig:
    """`rig` with its views in VIEW_ORDERS `order` (shuffled: a permutation drawn from `rng`)."""
    views = list(range(rig.num_views))
    if check_view_order(order) == "reversed":
        views.reverse()
    elif order == "shuffled":
        (rng or random.Random(0)).shuffle(views)
    if views == list(range(rig.num_views)):
        return rig
    return CameraRig(rig.c2w[views].clone(), rig.intrinsics[views].clone(), [rig.names[v] for v in views],
                     rig.target.clone() if rig.target is not None else None)


def check_view_order(order: str) -> str:
    """`order` when it is one of VIEW_ORDERS; refuses anything else."""
    if order not in VIEW_ORDERS:
        raise ValueError(f"view_order: expected one of {VIEW_ORDERS}, got {order!r}")
    return order


def check_arc_span(arc_span) -> tuple[float, float] | None:
    """(low, high) degrees with 0 < low <= high <= 360, or None (the default spans); refuses anything else."""
    if arc_span is None or len(arc_span) == 0:
        return None
    try:
        low, high = (float(v) for v in arc_span)
    except (TypeError, ValueError):
        raise ValueError(f"arc_span: expected two numbers (lowest, highest degrees), got {arc_span!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low <= high <= 360):
        raise ValueError(f"arc_span: expected 0 < lowest <= highest <= 360 degrees, got {low:g}, {high:g}")
    return low, high


def check_empty_share(share) -> float:
    """`share` as a float in [0, 1) (1 would leave no object to learn), or ValueError."""
    share = float(share)
    if not 0.0 <= share < 1.0:
        raise ValueError(f"empty_share: expected a share in [0, 1), got {share}")
    return share


class SyntheticMultiViewDataset(torch.utils.data.Dataset):
    """Map-style dataset of synthetic multi-view videos; item `i` is the same on every call and machine.

    Each item is a dict:
      videos   float32 [V, F, H, W, 3] in 0..1
      rig      CameraRig (V views, F frames, static)
      caption  str, e.g. "a red sphere and a blue box"
      tracks   float64 [num_objects, F, 3] world-space object centres
      colours  list[str], the objects' palette colours (for `consistency_metrics`)
      ids      int64 [V, F, H, W] per-pixel object index (-1 = floor/sky), when return_ids
      index    int
    V varies between items, so batch with `collate_fn=collate_samples` (a list) or batch_size=None.
    `style` (synth/scenes.py SCENE_STYLES) sets the floor's checker size and the cameras' distance; the scenes,
    presets and turns are the same in every style. `view_order` (VIEW_ORDERS) orders each rig's views; the scenes
    and cameras are the same in every order. `empty_share` (a share in [0, 1)) empties that share of the items of
    their objects, the ground alone under the item's cameras with the empty caption, so a model sees floors to learn
    from (benchmarks/TINY_MODEL.md "The floor alone"); the other items are those of `empty_share=0`.
    """

    def __init__(self, length: int = 100_000, height: int = 48, width: int = 80, num_frames: int = 17,
                 min_views: int = 2, max_views: int = 8, seed: int = 0, presets: dict[str, float] | None = None,
                 return_ids: bool = False, style: str = "standard", arc_span: tuple[float, float] | None = None,
                 view_order: str = "preset", empty_share: float = 0.0):
        if not 1 <= int(min_views) <= int(max_views):
            raise ValueError(f"need 1 <= min_views <= max_views, got min_views={min_views}, max_views={max_views}.")
        if int(length) < 1:
            raise ValueError(f"length must be >= 1, got {length}.")
        self.length, self.height, self.width = int(length), int(height), int(width)
        self.num_frames, self.min_views, self.max_views = int(num_frames), int(min_views), int(max_views)
        self.seed, self.presets, self.return_ids = int(seed), presets, bool(return_ids)
        self.style = scene_style(style)    # the same scenes and rigs in every style, seen as the style says
        self.arc_span = check_arc_span(arc_span)
        self.view_order = check_view_order(view_order)
        self.empty_share = check_empty_share(empty_share)

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> random.Random:
        # string seeding is stable across processes and Python versions (unlike hash())
        return random.Random(f"camgrid.synth:{self.seed}:{index}")

    def scene_and_rig(self, index: int) -> tuple[Scene, CameraRig]:
        """Item `index`'s scene and rig, without rendering it (what a caption + camera consumer needs)."""
        index = int(index)
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for a dataset of {self.length} items.")
        rng = self._rng(index % self.length)
        scene = sample_scene(rng.randrange(2 ** 31), num_frames=self.num_frames,
                             checker_size=self.style.checker_size)
        num_views = rng.randint(self.min_views, self.max_views)
        rig = random_rig(rng, num_views, self.num_frames, self.width / self.height, self.presets,
                         self.style.camera_radius, self.arc_span, self.style.align_floor)
        order_rng = random.Random(f"camgrid.synth.views:{self.seed}:{index % self.length}")   # the scene's draws stay
        if self.empty_share and self._is_empty(index % self.length):   # after every draw above: the rest stay
            scene = dataclasses.replace(scene, objects=())
        return scene, reorder_views(rig, self.view_order, order_rng)

    def _is_empty(self, index: int) -> bool:
        return random.Random(f"camgrid.synth.empty:{self.seed}:{index}").random() < self.empty_share

    def __getitem__(self, index: int) -> dict:
        scene, rig = self.scene_and_rig(index)
        index = int(index) % self.length
        videos, ids = render(scene, rig, self.height, self.width, return_ids=True)
        sample = dict(videos=videos, rig=rig, caption=scene.caption, tracks=scene.tracks(),
                      colours=scene.colours, index=index)
        if self.return_ids:
            sample["ids"] = ids
        return sample


def collate_samples(batch: list[dict]) -> list[dict]:
    """Keep items as a list: views and rigs differ between items, so they cannot be stacked."""
    return list(batch)
