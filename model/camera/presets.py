"""Preset rigs (orbit arc, elevation sweep, dolly, SynCamMaster's example cameras, ReCamMaster's ten
trajectories) and their registry, which the rig node and the CLI offer (docs/ARCHITECTURE.md §4 Cameras).

World: x right, y down, z forward; up = -y; the look-at target sits at the origin unless given.
Every parameter is checked against the ranges of `limits.py`, which the rig node's widgets also use.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from .geometry import look_at
from .limits import (AMPLITUDE, AZIMUTH_DEG, AZIMUTH_SPAN_DEG, DISTANCE_M, ELEVATION_DEG, RIG_FRAMES, STEP_M, VIEWS,
                     CameraRigError)
from .rig import CameraRig, default_intrinsics
from .values import point3

# The three example pairs of SynCamMaster's inference script: (reference view, other view).
SYNCAMMASTER_EXAMPLE_PAIRS = {"az": ("cam01", "cam03"), "el": ("cam03", "cam07"), "dis": ("cam09", "cam10")}

# cam01..cam10 of ReCamMaster's example camera file, in that order.
RECAMMASTER_TRAJECTORIES = ("pan_right", "pan_left", "tilt_up", "tilt_down", "zoom_in", "zoom_out",
                            "translate_up", "translate_down", "arc_left", "arc_right")

_UP = (0.0, -1.0, 0.0)


def _orbit_eye(target: torch.Tensor, radius: float, azimuth_deg: float, elevation_deg: float) -> torch.Tensor:
    """Point on a sphere around target. Azimuth 0 = in front (-z side of the target), positive
    azimuth moves the camera to +x (its right); positive elevation raises it (-y)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    offset = torch.tensor([math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)],
                          dtype=torch.float64)
    return target + radius * offset


def _static_rig(poses: list[torch.Tensor], names: list[str], num_frames: int, target, hfov_deg: float) -> CameraRig:
    num_frames = RIG_FRAMES.check("num_frames", num_frames)
    c2w = torch.stack(poses)[:, None].expand(-1, num_frames, -1, -1).clone()
    return CameraRig(c2w, default_intrinsics(len(poses), hfov_deg), names, target)


def _spread(num_views: int, start: float, stop: float) -> list[float]:
    if num_views == 1:
        return [(start + stop) / 2]
    return [start + (stop - start) * i / (num_views - 1) for i in range(num_views)]


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}_{seen[n]}")
    return out


def orbit_arc(num_views: int = 4, azimuth_span_deg: float = 60.0, elevation_deg: float = 0.0, radius: float = 3.0,
              target=(0.0, 0.0, 0.0), num_frames: int = 81, hfov_deg: float = 60.0) -> CameraRig:
    """Static cameras on a horizontal arc around `target`, all looking at it. Azimuths are spread
    evenly from -span/2 (left) to +span/2 (right); view 0 is the leftmost."""
    num_views = VIEWS.check("num_views", num_views)
    span = AZIMUTH_SPAN_DEG.check("azimuth_span_deg", azimuth_span_deg)
    elevation_deg = ELEVATION_DEG.check("elevation_deg", elevation_deg)
    radius = DISTANCE_M.check("radius", radius)
    target = point3(target, "target")
    azimuths = _spread(num_views, -span / 2, span / 2)
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
    num_views = VIEWS.check("num_views", num_views)
    low = ELEVATION_DEG.check("min_elevation_deg", min_elevation_deg)
    high = ELEVATION_DEG.check("max_elevation_deg", max_elevation_deg)
    radius = DISTANCE_M.check("radius", radius)
    azimuth_deg = AZIMUTH_DEG.check("azimuth_deg", azimuth_deg)
    target = point3(target, "target")
    elevations = _spread(num_views, low, high)
    poses = []
    for el in elevations:
        r = radius / math.cos(math.radians(el)) if keep_ground_distance else radius
        poses.append(look_at(_orbit_eye(target, r, azimuth_deg, el), target, _UP))
    return _static_rig(poses, _unique([f"el{e:+g}" for e in elevations]), num_frames, target, hfov_deg)


def dolly(num_views: int = 3, step: float = 1.0, radius: float = 3.0, azimuth_deg: float = 0.0,
          elevation_deg: float = 0.0, target=(0.0, 0.0, 0.0), num_frames: int = 81, hfov_deg: float = 60.0) -> CameraRig:
    """Static cameras on one line of sight: view i is `radius + i*step` metres from `target`
    (positive step = dolly back, as SynCamMaster's 'dis' cameras)."""
    num_views = VIEWS.check("num_views", num_views)
    step = STEP_M.check("step", step)
    radius = DISTANCE_M.check("radius", radius)
    azimuth_deg = AZIMUTH_DEG.check("azimuth_deg", azimuth_deg)
    elevation_deg = ELEVATION_DEG.check("elevation_deg", elevation_deg)
    target = point3(target, "target")
    poses, names = [], []
    for i in range(num_views):
        dist = radius + i * step
        if dist <= 0:
            raise CameraRigError(f"dolly: view {i} would be {dist:g} m from the target (radius {radius:g} + {i} x "
                                 f"step {step:g}); use a larger radius or a smaller negative step.")
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


def _trajectory_pose(key: str, s: float, amp: float, target: torch.Tensor, target_distance: float) -> torch.Tensor:
    """Pose of ReCamMaster trajectory `key` at progress s (0 = start, 1 = nominal end); see recammaster_trajectory."""
    origin = torch.zeros(3, dtype=torch.float64)
    if key in ("pan_right", "pan_left"):       # turn right (+x) or left in place
        a = math.radians(amp * s) * (1 if key == "pan_right" else -1)
        return look_at(origin, torch.tensor([math.sin(a), 0.0, math.cos(a)], dtype=torch.float64), _UP)
    if key in ("tilt_up", "tilt_down"):        # pitch up (-y) or down in place
        a = math.radians(amp * s) * (1 if key == "tilt_up" else -1)
        return look_at(origin, torch.tensor([0.0, -math.sin(a), math.cos(a)], dtype=torch.float64), _UP)
    if key in ("zoom_in", "zoom_out"):         # dolly along the optical axis
        dz = amp * s * (1 if key == "zoom_in" else -1)
        eye = torch.tensor([0.0, 0.0, dz], dtype=torch.float64)
        return look_at(eye, eye + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), _UP)
    if key in ("translate_up", "translate_down"):  # pedestal, keeping the target in view
        dy = -amp * s if key == "translate_up" else amp * s
        return look_at(torch.tensor([0.0, dy, 0.0], dtype=torch.float64), target, _UP)
    # arc: chord towards the point `amp` degrees around target
    side = -1.0 if key == "arc_left" else 1.0
    a = math.radians(amp)
    end = target + target_distance * torch.tensor([side * math.sin(a), 0.0, -math.cos(a)], dtype=torch.float64)
    return look_at(s * end, target, _UP)


def recammaster_trajectory(name: str, num_frames: int = 81, amplitude: float | None = None,
                           target_distance: float = 4.0, hfov_deg: float = 60.0) -> CameraRig:
    """One of ReCamMaster's ten camera paths as a moving one-view rig, starting at the identity pose.

    Geometry read off the official file: progress s = k / (F - 0.5) at frame k (the nominal
    amplitude is reached half a frame after the last frame, as there). pan: yaw +-20°; tilt:
    pitch +-10°; zoom: move 2 m along the view axis; translate up/down: move 1 m vertically while
    turning to keep a point `target_distance` (4 m) ahead in view; arc: slide along the chord to the
    point 30° around that point, looking at it. `amplitude` overrides the nominal value.
    """
    key = str(name).lower().replace(" ", "_").replace("-", "_") if isinstance(name, str) else ""
    if key not in _RECAM_AMPLITUDE:
        raise CameraRigError(f"unknown ReCamMaster trajectory; use one of {', '.join(RECAMMASTER_TRAJECTORIES)}.")
    num_frames = RIG_FRAMES.check("num_frames", num_frames)
    amp = _RECAM_AMPLITUDE[key] if amplitude is None else AMPLITUDE.check("amplitude", amplitude)
    target_distance = DISTANCE_M.check("target_distance", target_distance)
    target = torch.tensor([0.0, 0.0, target_distance], dtype=torch.float64)
    poses = [_trajectory_pose(key, k / (num_frames - 0.5), amp, target, target_distance) for k in range(num_frames)]
    tgt = None if key.startswith(("pan", "tilt", "zoom")) else target
    return CameraRig(torch.stack(poses)[None], default_intrinsics(1, hfov_deg), [key], tgt)


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
    if not isinstance(name, str) or name not in RIG_PRESETS:
        raise CameraRigError(f"unknown camera preset; choose one of {', '.join(RIG_PRESETS)}.")
    spec = RIG_PRESETS[name]
    unknown = sorted(set(kwargs) - set(spec.params))
    if unknown:
        raise CameraRigError(f"preset '{name}' has no parameter(s) {unknown}; its parameters are {spec.params}.")
    return spec.build(**kwargs)
