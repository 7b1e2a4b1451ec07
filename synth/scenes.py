"""Synthetic 4D scenes: a few coloured primitives moving over a checkered ground plane.

World convention (the same as the camera presets in `model/camera.py`)
-----------------------------------------------------------------------
Right-handed, metres, **x right, y down, z forward**; world up is **-y**. A preset camera at
azimuth 0, elevation 0 sits on the -z side of the origin looking along +z, so OpenCV cameras on an
orbit around the origin see the scene upright. The ground is the plane `y = GROUND_Y` (0.3 m
*below* the origin, i.e. positive y), so the look-at target of an orbit (the origin) lies in the
middle of the objects rather than on the floor. Objects rest on or hop above the ground: an
object's centre has `y = GROUND_Y - half_height - hop(t)`.

Time: every motion is a smooth function of the clip time `t` in [0, 1] (frame f of F sits at
`t = f / (F - 1)`), so a scene can be sampled at any frame count and stays the same motion.

A scene is deterministic from its seed (`sample_scene` uses its own `random.Random(seed)`).
"""
from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field

import torch

__all__ = [
    "PALETTE", "SHAPES", "VOCABULARY", "GROUND_Y", "SceneObject", "Scene", "sample_scene", "caption_for",
    "clip_times", "SceneStyle", "SCENE_STYLES", "scene_style",
]

# Saturated colours 60 degrees apart in hue, so shading (which scales all channels alike) never
# moves a pixel closer to another palette colour; the metric classifies pixels by this hue.
PALETTE: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.12, 0.12),
    "yellow": (0.9, 0.9, 0.12),
    "green": (0.12, 0.9, 0.12),
    "cyan": (0.12, 0.9, 0.9),
    "blue": (0.12, 0.12, 0.9),
    "magenta": (0.9, 0.12, 0.9),
}
SHAPES = ("sphere", "box")

# Every word a caption can contain (a small fixed vocabulary for text-conditioning experiments).
VOCABULARY = tuple(sorted({"a", "and", *PALETTE, *SHAPES}))

GROUND_Y = 0.3          # the ground plane y = GROUND_Y (world up is -y, so the floor is below the origin)
CHECKER_SIZE = 0.5      # metres per checker square
ARENA_RADIUS = 0.9      # object anchors lie within this distance of the origin (horizontal plane)
MAX_OBJECTS = 4
MIN_CLEARANCE = 0.15    # metres kept free between any two objects' footprints at every frame


@dataclass(frozen=True)
class SceneStyle:
    """How the data looks through the cameras, beyond what a scene's objects and paths are: the floor's checker
    square and the training cameras' distance from the scene (random rigs draw it from `camera_radius`; the
    built-in demo's rig stands at `demo_radius`). A built-in model records the style it learned
    (train/builtin.py meta "scene_style"), and its held-out scenes are drawn in that style.

    align_floor: every rig's view 0 looks along one of the floor's grid lines over a checker corner
    (synth/dataset.random_rig's align_floor), the demo's rig too; the same scenes and draws otherwise."""

    checker_size: float = CHECKER_SIZE
    camera_radius: tuple[float, float] = (3.0, 4.5)
    demo_radius: float = 3.5
    align_floor: bool = False

    def looks_like(self, other: "SceneStyle") -> bool:
        """Whether the two render the same scenes through the same kind of cameras, the rigs' turn aside (a model
        of one style may be trained further on the other)."""
        return dataclasses.replace(self, align_floor=other.align_floor) == other


# "close": the same scenes with 1 m checkers and cameras at 2.2-3.2 m. At 80x48 px an object is then 15-25 px
# across rather than 5-12, and the floor's pattern coarse enough that the tiny autoencoder's latents are smoother
# (benchmarks/TINY_MODEL.md, "What this leaves").
SCENE_STYLES: dict[str, SceneStyle] = {
    "standard": SceneStyle(),
    "close": SceneStyle(checker_size=1.0, camera_radius=(2.2, 3.2), demo_radius=3.0),   # 2.7: too few demo scenes
    # "close_aligned": close, with view 0 looking along a grid line. The camera input is relative to view 0 (or
    # absent), and the rigs turn every way, so in "close" nothing tells the model which way the squares lie: the
    # floor probe drew the lattice on aligned floors and camouflage on the others in the same steps
    # (benchmarks/TINY_MODEL.md "Is the floor many floors at once?").
    "close_aligned": SceneStyle(checker_size=1.0, camera_radius=(2.2, 3.2), demo_radius=3.0, align_floor=True),
}


def scene_style(name: str) -> SceneStyle:
    """The SceneStyle called `name` (a key of SCENE_STYLES)."""
    if name not in SCENE_STYLES:
        raise ValueError(f"scene style: expected one of {sorted(SCENE_STYLES)}, got {name!r}")
    return SCENE_STYLES[name]


def clip_times(num_frames: int) -> torch.Tensor:
    """Clip time t in [0, 1] of each of `num_frames` frames (float64 [F]); one frame sits at t = 0."""
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}.")
    if num_frames == 1:
        return torch.zeros(1, dtype=torch.float64)
    return torch.linspace(0.0, 1.0, num_frames, dtype=torch.float64)


@dataclass(frozen=True)
class SceneObject:
    """One primitive. Sizes in metres: a sphere's radius, or a box's half extents (x, y, z) before yaw.

    Horizontal path: `anchor + sum_k amp_k * sin(2 pi freq_k t + phase_k)` per axis (x and z);
    vertical: resting on the ground plus a smooth hop `hop * (1 - cos(2 pi hop_freq t)) / 2`.
    Boxes turn about the vertical axis: `yaw(t) = yaw0 + yaw_turns * 2 pi t`.
    """

    shape: str                                  # "sphere" | "box"
    colour: str                                 # a PALETTE name
    size: tuple[float, float, float]            # sphere: (r, r, r); box: half extents (hx, hy, hz)
    anchor: tuple[float, float]                 # (x, z) of the path's centre
    amp: tuple[tuple[float, float], ...]        # per harmonic: (amp_x, amp_z)
    freq: tuple[float, ...]                     # per harmonic, cycles per clip
    phase: tuple[tuple[float, float], ...]      # per harmonic: (phase_x, phase_z)
    hop: float = 0.0
    hop_freq: float = 1.0
    yaw0: float = 0.0
    yaw_turns: float = 0.0

    @property
    def footprint_radius(self) -> float:
        """Radius of the object's footprint on the ground, whatever its yaw (for spacing objects apart)."""
        return math.hypot(self.size[0], self.size[2]) if self.shape == "box" else self.size[0]

    @property
    def rgb(self) -> tuple[float, float, float]:
        return PALETTE[self.colour]

    def centres(self, times: torch.Tensor) -> torch.Tensor:
        """World-space centre at each clip time: float64 [F, 3]."""
        t = times.to(torch.float64)
        x = torch.full_like(t, self.anchor[0])
        z = torch.full_like(t, self.anchor[1])
        for (ax, az), f, (px, pz) in zip(self.amp, self.freq, self.phase):
            x = x + ax * torch.sin(2 * math.pi * f * t + px)
            z = z + az * torch.sin(2 * math.pi * f * t + pz)
        hop = self.hop * (1 - torch.cos(2 * math.pi * self.hop_freq * t)) / 2
        y = GROUND_Y - self.size[1] - hop
        return torch.stack([x, y, z], -1)

    def yaws(self, times: torch.Tensor) -> torch.Tensor:
        """Rotation about the vertical axis at each clip time (radians, float64 [F]); 0 for spheres."""
        if self.shape != "box":
            return torch.zeros_like(times, dtype=torch.float64)
        return self.yaw0 + self.yaw_turns * 2 * math.pi * times.to(torch.float64)


@dataclass(frozen=True)
class Scene:
    """2-4 coloured primitives over a grey checkered ground, `num_frames` frames by default (no objects: the
    ground alone, the empty scenes of `SyntheticMultiViewDataset(empty_share=...)`)."""

    objects: tuple[SceneObject, ...]
    num_frames: int = 17
    seed: int | None = None
    light_dir: tuple[float, float, float] = field(default=(-0.35, -1.0, -0.45))  # towards the light (up = -y)
    checker_size: float = CHECKER_SIZE                                             # metres per floor square

    @property
    def num_objects(self) -> int:
        return len(self.objects)

    @property
    def colours(self) -> list[str]:
        return [o.colour for o in self.objects]

    @property
    def caption(self) -> str:
        return caption_for(self.objects)

    def tracks(self, num_frames: int | None = None) -> torch.Tensor:
        """Ground-truth world-space object centres: float64 [num_objects, F, 3]."""
        t = clip_times(self.num_frames if num_frames is None else num_frames)
        if not self.objects:
            return torch.zeros(0, len(t), 3, dtype=torch.float64)
        return torch.stack([o.centres(t) for o in self.objects])

    def yaws(self, num_frames: int | None = None) -> torch.Tensor:
        """Yaw of every object at every frame: float64 [num_objects, F]."""
        t = clip_times(self.num_frames if num_frames is None else num_frames)
        if not self.objects:
            return torch.zeros(0, len(t), dtype=torch.float64)
        return torch.stack([o.yaws(t) for o in self.objects])


def caption_for(objects) -> str:
    """'a red sphere', 'a red sphere and a blue box', 'a red sphere, a blue box and a green sphere'."""
    parts = [f"a {o.colour} {o.shape}" for o in objects]
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _sample_object(rng: random.Random, shape: str, colour: str, anchor: tuple[float, float],
                   scale: float = 1.0) -> SceneObject:
    if shape == "sphere":
        r = rng.uniform(0.2, 0.35) * scale
        size = (r, r, r)
    else:
        size = tuple(rng.uniform(0.15, 0.3) * scale for _ in range(3))
    harmonics = rng.randint(1, 2)
    amp = tuple((rng.uniform(0.05, 0.3) / k, rng.uniform(0.05, 0.3) / k) for k in range(1, harmonics + 1))
    freq = tuple(rng.uniform(0.3, 1.0) * k for k in range(1, harmonics + 1))
    phase = tuple((rng.uniform(0, 2 * math.pi), rng.uniform(0, 2 * math.pi)) for _ in range(harmonics))
    hop = rng.uniform(0.1, 0.4) if rng.random() < 0.35 else 0.0
    return SceneObject(shape, colour, size, anchor, amp, freq, phase, hop=hop, hop_freq=rng.choice((1.0, 2.0)),
                       yaw0=rng.uniform(0, math.pi / 2), yaw_turns=rng.uniform(-0.5, 0.5) if shape == "box" else 0.0)


def _min_clearance(objects, times: torch.Tensor) -> float:
    """Smallest horizontal gap between any two footprints over the clip (metres; negative = overlap).
    Horizontal, because every object rests on (or hops straight up from) the floor."""
    best = math.inf
    centres = [o.centres(times)[:, [0, 2]] for o in objects]
    for i in range(len(objects)):
        for j in range(i + 1, len(objects)):
            dist = (centres[i] - centres[j]).norm(dim=-1).min().item()
            gap = dist - objects[i].footprint_radius - objects[j].footprint_radius
            best = min(best, gap)
    return best


def sample_scene(seed: int, num_objects: int | None = None, colours=None, shapes=None,
                 num_frames: int = 17, max_tries: int = 100, checker_size: float = CHECKER_SIZE) -> Scene:
    """A random scene, deterministic from `seed`.

    num_objects: 1-4 (random 2-4 when None, or len(colours)); colours / shapes: pin the objects'
    palette colours and shapes (e.g. to build a second scene with the same objects on other
    paths). Objects get distinct colours and anchors spread around the origin, and paths that keep
    them `MIN_CLEARANCE` apart at every frame (re-drawn up to `max_tries` times). checker_size: the floor's
    square (a SceneStyle's); it does not change the objects or their paths.
    """
    rng = random.Random(int(seed))
    if num_objects is None:
        num_objects = len(colours) if colours is not None else (len(shapes) if shapes is not None else rng.randint(2, 4))
    num_objects = int(num_objects)
    if not 1 <= num_objects <= MAX_OBJECTS:
        raise ValueError(f"num_objects must be between 1 and {MAX_OBJECTS} (more do not fit the arena apart), got {num_objects}.")
    if colours is None:
        colours = rng.sample(list(PALETTE), num_objects)
    colours = [str(c).lower() for c in colours]
    unknown = [c for c in colours if c not in PALETTE]
    if unknown or len(colours) != num_objects or len(set(colours)) != len(colours):
        raise ValueError(f"colours must be {num_objects} distinct names from {list(PALETTE)}, got {colours}.")
    if shapes is None:
        shapes = [rng.choice(SHAPES) for _ in range(num_objects)]
    shapes = [str(s).lower() for s in shapes]
    if len(shapes) != num_objects or any(s not in SHAPES for s in shapes):
        raise ValueError(f"shapes must be {num_objects} names from {SHAPES}, got {shapes}.")

    check_times = clip_times(65)  # dense enough to catch close passes between the frames
    scale = min(1.0, 1.2 - 0.1 * num_objects)  # crowded scenes get smaller objects so they fit apart
    for _ in range(max_tries):
        # anchors on a ring, evenly spread with jitter, so objects start apart
        start = rng.uniform(0, 2 * math.pi)
        anchors = []
        for i in range(num_objects):
            ang = start + 2 * math.pi * i / num_objects + rng.uniform(-0.3, 0.3)
            rad = rng.uniform(0.45, ARENA_RADIUS) if num_objects > 1 else rng.uniform(0.0, 0.3)
            anchors.append((rad * math.cos(ang), rad * math.sin(ang)))
        objects = tuple(_sample_object(rng, s, c, a, scale) for s, c, a in zip(shapes, colours, anchors))
        if num_objects == 1 or _min_clearance(objects, check_times) >= MIN_CLEARANCE:
            return Scene(objects, int(num_frames), int(seed), checker_size=float(checker_size))
    raise RuntimeError(f"sample_scene(seed={seed}): no collision-free paths for {num_objects} objects in "
                       f"{max_tries} tries; use fewer objects or more tries.")
