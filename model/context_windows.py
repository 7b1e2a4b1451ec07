"""Context windows: sample grids longer than one model pass (over time) and rigs larger than one pass (over views)
(docs/ARCHITECTURE.md §5 Sampling).

Wan2.1 and its fine-tunes were trained on 81-frame clips (21 latent frames); a single pass much longer falls
apart and its memory grows with the length. With context windows every sampling step runs the guided step (all
CFG branches) on overlapping windows of the grid and fuses the predictions per latent frame and view:

    v(view, frame) = sum over the calls that see (view, frame) of  w_call(view, frame) * v_call(view, frame),

with weights normalised to sum to 1 per (view, frame). The model's memory is that of one window, whatever the
length; the fused velocity goes to the solver as usual, so every sampler option works unchanged.

Time windows (`window_frames`, `window_overlap`, in latent frames; 21 latent frames = 81 video frames). The
schedule is static (the same windows every step, as ComfyUI's `standard_static` and WanVideoWrapper's
`static_standard`), but spread evenly: n = ceil((T - overlap) / (window - overlap)) windows of exactly `window`
frames, the first at 0, the last ending at T, the overlaps as equal as whole frames allow (at least `overlap`).
Every window has the same length, so the model's RoPE / attention shapes never change.
`stagger` (off by default) moves the windows every step instead, the trick of ComfyUI's / AnimateDiff's
uniform schedules in a simpler form: at step i the windows sit on the grid of stride (window - overlap)
shifted by an offset that walks the stride by the golden ratio, clamped into the video (so they keep their
length), and a border that would stay put at every step (a seam) is spread over many positions.
Fuse weights (`fuse`), per window position, then normalised per frame:
  - "linear"  (WanVideoWrapper's "linear", ComfyUI's "overlap-linear"): 1 inside, a linear ramp across each
              overlap with a neighbour, (i + 1) / (k + 1) for a k-frame overlap, so two windows' weights in their
              overlap sum to 1 before normalising (always positive: no frame is left without weight).
  - "pyramid" (ComfyUI's / FreeNoise's): min(i + 1, L - i), highest in the window's centre. Normalised, it
              equals "linear" wherever at most two windows share a frame (both then weigh overlap frame j of k
              as (k - j) / (k + 1) against (j + 1) / (k + 1)); they differ where three windows meet (staggered
              windows clamped at the ends, short videos). WanVideoWrapper's ramps run from 0 to 1 instead, which
              for a 1-frame overlap takes the frame from one window only.
  - "flat":   1 everywhere (a plain average).

What the model sees per window (why the fused result is what Wan expects):
  - RoPE: window-local frame indices 0..L-1, as Wan was trained; the DiT computes them from the window's shape.
  - Cameras: the slice of the whole grid's embedding. SynCamMaster's embedding is relative to view 0 at the
    same frame, so a slice is exactly what the model expects. ReCamMaster's is each target path relative to
    its own first pose (the source camera's first pose, by ReCamMaster's convention), and windows keep that
    *global* reference rather than re-referencing each window to its own first pose: (1) a frame in two
    overlapping windows then gets the same embedding in both, so their predictions agree and fuse; (2)
    ReCamMaster was trained with targets that do not start at the source camera (other cameras of the rig,
    relative to the source's first pose), so a window starting away from the identity is in distribution;
    (3) re-referencing would tell every window that the target starts at the source's viewpoint, pulling
    each window back to it: a jump at every window. (Exact for a static source camera; for a moving one the
    source's first frame in a window is a different camera, an approximation every window-based method has.)
  - Source video: recam's source latent is windowed in step with the target (the same latent frames); a
    replace_view / first_row source is replaced in the whole grid before the step and windowed with it.

View windows (`view_window` views per call, `view_overlap`, `anchor_view`): for rigs larger than one pass
(e.g. 16 cameras with syncam), each call sees a subset of views: the anchor view (0 by default) plus a chunk
of the other views; chunks overlap by `view_overlap` views. The anchor is in every subset, so the subsets
share a view they all denoise together and agree through it; its prediction is the plain average over the
subsets, the chunk views are fused with the same weights as frames. A replace_view / first_row source view is
kept in every subset too (it carries the input video's information to every subset). Subsets list their views
in the rig's order, so with anchor 0 the anchor is the subset's first view: for SynCamMaster (cameras
relative to view 0) every subset then holds the identity camera as its first view, exactly as in training,
and the two-stream modes' view-axis RoPE puts it at index 0. With another anchor the embeddings stay relative
to view 0 (one shared reference, so subsets still agree), but subsets without view 0 see no identity camera,
which SynCamMaster never saw in training. ReCamMaster's views never attend to each other (each is its own
sequence with the source), so for recam view windows only bound memory and the anchor is extra work.

Combined, every (view subset, time window) pair is one call of the guided step; weights multiply.

Known limit: Wan's causal VAE gives latent frame 0 one video frame and the others four; a window starting
later treats its first latent frame as a first frame. ComfyUI core and WanVideoWrapper share this.

Use: `SamplerOptions(windows=ContextWindows(window_frames=21, window_overlap=5))`; `sample_grid` then wraps the
guided step with `windowed_velocity`. A step cache wraps the result (it decides per whole grid per step).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .checks import FRAME_STRIDE, FRAMES, VIEW_INDEX, VIEWS, InputError, Limit, cli_flag, raise_problem, \
    range_problem

FUSE_METHODS = ("linear", "pyramid", "flat")
MAX_LATENT_FRAMES = (FRAMES.high - 1) // FRAME_STRIDE + 1

# The options' limits, stated once (the node's widgets and the CLI use them; 0 / None turns a window off).
WINDOW_FRAMES = Limit(1, MAX_LATENT_FRAMES, integer=True,
                      hint="latent frames per time window; 21 = 81 video frames, what Wan was trained on")
WINDOW_OVERLAP = Limit(0, MAX_LATENT_FRAMES - 1, integer=True,
                       hint="latent frames shared by neighbouring windows; about a quarter of the window")
VIEW_WINDOW = Limit(2, VIEWS.high, integer=True, hint="views per model call, the anchor view included")
VIEW_OVERLAP = Limit(0, VIEWS.high - 2, integer=True, hint="views shared by neighbouring view subsets, "
                     "besides the anchor")
WINDOW_LIMITS = {"window_frames": WINDOW_FRAMES, "window_overlap": WINDOW_OVERLAP, "view_window": VIEW_WINDOW,
                 "view_overlap": VIEW_OVERLAP, "anchor_view": VIEW_INDEX}


@dataclass(frozen=True)
class ContextWindows:
    """How one sampling step is split into model calls (see the module docstring), checked when made.

    window_frames:  latent frames per time window (None: no time windows); 21 = 81 video frames.
    window_overlap: latent frames shared by neighbouring time windows (at least; the spread evens them out).
    fuse:           "linear" | "pyramid" | "flat": how overlapping predictions are weighted.
    view_window:    views per call, the anchor included (None: all views in every call).
    view_overlap:   views shared by neighbouring view subsets besides the anchor (capped at the chunk size - 1).
    anchor_view:    the view every subset holds (default 0: SynCamMaster's reference camera).
    stagger:        move the time windows every step (`stagger_offset`) so their borders never stay in one place.
    """

    window_frames: Optional[int] = 21
    window_overlap: int = 5
    fuse: str = "linear"
    view_window: Optional[int] = None
    view_overlap: int = 1
    anchor_view: int = 0
    stagger: bool = False

    def __post_init__(self):
        raise_problem(windows_problem(**{k: v for k, v in dataclasses.asdict(self).items() if k != "stagger"}))
        if not isinstance(self.stagger, bool):
            raise InputError(f"stagger must be True or False, got {self.stagger!r}")
        for name in WINDOW_LIMITS:  # ints, not floats that happen to be whole
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else int(value))

    @classmethod
    def from_inputs(cls, window_frames: int = 0, window_overlap: int = 5, fuse: str = "linear", view_window: int = 0,
                    view_overlap: int = 1, anchor_view: int = 0, stagger: bool = False) -> Optional["ContextWindows"]:
        """The node's / CLI's values, where 0 turns a kind of window off; None when both are off."""
        if not window_frames and not view_window:
            return None
        return cls(window_frames or None, window_overlap, fuse, view_window or None, view_overlap, anchor_view,
                   bool(stagger))


def windows_problem(label: Callable[[str], str] = str, **values) -> Optional[str]:
    """None, or the message for the first bad ContextWindows value (None values are off or not known yet);
    `label` names an input as its caller knows it (a field, a node input, a CLI flag)."""
    problem = range_problem(WINDOW_LIMITS, values, label)
    if problem:
        return problem
    fuse = values.get("fuse")
    if fuse is not None and fuse not in FUSE_METHODS:
        return f"{label('fuse')} {fuse!r} is not one of {', '.join(FUSE_METHODS)}"
    frames, overlap = values.get("window_frames"), values.get("window_overlap")
    if frames is not None and overlap is not None and overlap >= frames:
        return (f"{label('window_overlap')} {overlap} must be smaller than {label('window_frames')} {frames} "
                "(about a quarter of it: e.g. 5 for 21)")
    return None


# ---------------------------------------------------------------------------------------------
# schedules and weights
# ---------------------------------------------------------------------------------------------

def spans(length: int, size: Optional[int], overlap: int, offset: Optional[int] = None) -> list[range]:
    """Windows of `size` positions covering 0..length-1, overlapping by at least `overlap`, spread evenly
    (first at 0, last ending at `length`); one window of everything when size is None or >= length.

    With `offset` (0 <= offset < size - overlap, the staggered schedule): windows on the grid of stride
    size - overlap shifted by `offset`, clamped into 0..length-size (so all keep `size` positions)."""
    if size is None or size >= length:
        return [range(length)]
    if offset is not None:
        stride = size - overlap
        starts = sorted({min(max(s, 0), length - size) for s in range(offset - stride, length - size + stride, stride)})
        return [range(s, s + size) for s in starts]
    count = math.ceil((length - overlap) / (size - overlap))
    last = length - size
    # start k = round(k * last / (count - 1)) in integers: exact, and the same on every machine
    starts = [(2 * k * last + count - 1) // (2 * (count - 1)) for k in range(count)]
    return [range(s, s + size) for s in starts]


def axis_weights(windows: Sequence[range], fuse: str) -> list[torch.Tensor]:
    """Unnormalised float64 weights per position of each window (see the module docstring for the methods)."""
    out = []
    for k, win in enumerate(windows):
        n = len(win)
        i = torch.arange(n, dtype=torch.float64)
        if fuse == "flat":
            w = torch.ones(n, dtype=torch.float64)
        elif fuse == "pyramid":
            w = torch.minimum(i + 1, n - i)
        else:  # linear: ramps across the overlaps with the previous and the next window
            before = max(0, windows[k - 1].stop - win.start) if k > 0 else 0
            after = max(0, win.stop - windows[k + 1].start) if k + 1 < len(windows) else 0
            w = torch.ones(n, dtype=torch.float64)
            if before:
                w = torch.minimum(w, (i + 1) / (before + 1))
            if after:
                w = torch.minimum(w, (n - i) / (after + 1))
        out.append(w)
    return out


def view_subsets(num_views: int, windows: ContextWindows, keep: Sequence[int] = ()) \
        -> tuple[list[list[int]], list[torch.Tensor]]:
    """(views of each call in rig order, their unnormalised weights): the anchor and the `keep` views in every
    subset with weight 1, the other views in overlapping chunks weighted like frames."""
    if windows.view_window is None or num_views <= windows.view_window:
        return [list(range(num_views))], [torch.ones(num_views, dtype=torch.float64)]
    if not windows.anchor_view < num_views:
        raise InputError(f"anchor_view {windows.anchor_view} is not a view of this grid (0..{num_views - 1}): "
                         "pick a view that exists (0 is SynCamMaster's reference camera)")
    anchors = sorted({windows.anchor_view, *keep})
    others = [v for v in range(num_views) if v not in anchors]
    chunk = windows.view_window - len(anchors)
    if chunk < 1:
        raise InputError(f"view_window {windows.view_window} leaves no room besides the views every subset holds "
                         f"({anchors}: the anchor and the source video's view): use view_window >= "
                         f"{len(anchors) + 1}")
    chunks = spans(len(others), chunk, min(windows.view_overlap, chunk - 1))
    subsets, weights = [], []
    for span, w in zip(chunks, axis_weights(chunks, windows.fuse)):
        members = {others[p]: float(w[j]) for j, p in enumerate(span)}
        members.update({a: 1.0 for a in anchors})
        views = sorted(members)
        subsets.append(views)
        weights.append(torch.tensor([members[v] for v in views], dtype=torch.float64))
    return subsets, weights


@dataclass(frozen=True)
class WindowCall:
    """One call of the guided step: which grid views and latent frames it sees, and their fusion weights."""

    views: tuple                 # grid view indices, ascending
    frames: range                # latent frames
    weight: torch.Tensor         # float32 [len(views), len(frames)], normalised over all calls


def stagger_offset(windows: ContextWindows, step: int) -> Optional[int]:
    """The time windows' offset at sampling step `step` (None: not staggered). The offsets walk the stride by the
    golden ratio, so consecutive steps put their borders far apart and every position gets its turn."""
    if not windows.stagger or windows.window_frames is None:
        return None
    stride = windows.window_frames - windows.window_overlap
    return int((step * 0.6180339887498949) % 1.0 * stride) % stride


def window_calls(num_views: int, num_frames: int, windows: ContextWindows, keep_views: Sequence[int] = (),
                 step: int = 0) -> list[WindowCall]:
    """Every (view subset, time window) call of sampling step `step`, with weights that sum to 1 per (view, frame)."""
    times = spans(num_frames, windows.window_frames, windows.window_overlap, stagger_offset(windows, step))
    time_weights = axis_weights(times, windows.fuse)
    subsets, view_weights = view_subsets(num_views, windows, keep_views)
    raw = [(views, frames, wv[:, None] * wt[None, :]) for views, wv in zip(subsets, view_weights)
           for frames, wt in zip(times, time_weights)]
    total = torch.zeros(num_views, num_frames, dtype=torch.float64)
    for views, frames, w in raw:
        total[views, frames.start:frames.stop] += w
    return [WindowCall(tuple(views), frames, (w / total[views, frames.start:frames.stop]).float())
            for views, frames, w in raw]


# ---------------------------------------------------------------------------------------------
# the restricted plan and the windowed step
# ---------------------------------------------------------------------------------------------

def restrict_plan(plan, views: Sequence[int], frames: range):
    """The sampling plan of one window call: every per-view / per-frame input cut to `views` x `frames` (noise,
    camera, recam source per guidance branch, the source video and its view index), text unchanged.

    Only for velocity calls: x_init, the scheduler and sigmas stay the whole run's. A new SamplingPlan field
    indexed by view or latent frame must be cut here too."""
    index = torch.as_tensor(list(views), dtype=torch.long, device=plan.noise.device)
    t = slice(frames.start, frames.stop)

    def video(x):            # [B, C, T, H, W]
        return None if x is None else x[:, :, t]

    def camera(c):           # [B, V, T, 12]
        return None if c is None else c[:, index, t]

    source = plan.source
    if source is not None:
        view = list(views).index(source.view) if source.replaces_a_view else source.view
        source = dataclasses.replace(source, latent=video(source.latent), view=view)
    batched = plan.batched
    if batched is not None:
        texts, sources, cams = batched
        batched = (texts, video(sources), camera(cams))
    return dataclasses.replace(plan, noise=plan.noise[:, index, :, t], camera=camera(plan.camera),
                               sources=[video(s) for s in plan.sources], source=source,
                               source_latent=video(plan.source_latent), batched=batched)


def kept_views(plan) -> tuple:
    """Views every subset must hold besides the anchor: the view a replace_view / first_row source replaces."""
    source = plan.source
    return (source.view,) if source is not None and source.replaces_a_view else ()


Velocity = Callable[..., torch.Tensor]


def windowed_velocity(velocity: Velocity, windows: ContextWindows) -> Velocity:
    """`velocity(plan, x, sigma)` run on every window call of the grid and fused (the module docstring).

    The calls depend only on the grid's shape, the source's view and the stagger offset, so they are made once
    per run (and offset)."""
    calls_of = {}

    def step(plan, x: torch.Tensor, sigma: float) -> torch.Tensor:
        # the step's index from its noise level (not a call count: a step cache may skip calls)
        index = int((plan.sigmas - sigma).abs().argmin()) if windows.stagger else 0
        key = (x.shape[1], x.shape[3], kept_views(plan), stagger_offset(windows, index))
        if key not in calls_of:
            calls_of[key] = window_calls(x.shape[1], x.shape[3], windows, key[2], index)
        fused = torch.zeros(x.shape, dtype=torch.float32, device=x.device)
        for call in calls_of[key]:
            plan.check_interrupt()  # between windows too: a step of many windows takes a while
            index = torch.as_tensor(call.views, dtype=torch.long, device=x.device)
            t = slice(call.frames.start, call.frames.stop)
            v = velocity(restrict_plan(plan, call.views, call.frames), x[:, index, :, t], sigma)
            weight = call.weight.to(x.device)[None, :, None, :, None, None]
            fused[:, index, :, t] += weight * v.float()
        return fused

    return step


def describe(windows: ContextWindows, num_views: int, num_frames: int, keep_views: Sequence[int] = ()) -> str:
    """One line for logs and the sampler's info: what the windows do to this grid."""
    calls = window_calls(num_views, num_frames, windows, keep_views)
    times = spans(num_frames, windows.window_frames, windows.window_overlap, stagger_offset(windows, 0))
    subsets = sorted({c.views for c in calls})
    parts = []
    if len(times) > 1:
        parts.append(f"{len(times)} time windows of {len(times[0])} latent frames (starts "
                     f"{', '.join(str(w.start) for w in times)})")
    else:
        parts.append(f"one time window of all {num_frames} latent frames")
    if len(subsets) > 1:
        parts.append(f"{len(subsets)} view subsets of up to {max(map(len, subsets))} views, all with view "
                     f"{', '.join(map(str, sorted(set.intersection(*map(set, subsets)))))}")
    stagger = " at step 1, staggered every step" if windows.stagger and len(times) > 1 else ""
    return (f"context windows: {'; '.join(parts)}{stagger}; {windows.fuse} fuse; {len(calls)} model call(s) per "
            "step and guidance pass")


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`generate`'s context-window flags (0 turns a kind of window off)."""
    g = parser.add_argument_group("context windows (videos longer than 81 frames, rigs larger than one pass)")
    g.add_argument("--window-frames", type=int, default=0, help="latent frames per time window (21 = 81 video "
                   "frames, Wan's training length); 0 = one pass over all frames")
    g.add_argument("--window-overlap", type=int, default=5, help="latent frames shared by neighbouring windows")
    g.add_argument("--window-fuse", default="linear", choices=FUSE_METHODS, help="how overlapping predictions "
                   "are weighted")
    g.add_argument("--view-window", type=int, default=0, help="views per model call, the anchor included; 0 = "
                   "all views in one pass")
    g.add_argument("--view-overlap", type=int, default=1, help="views shared by neighbouring view subsets")
    g.add_argument("--anchor-view", type=int, default=0, help="the view every view subset holds")
    g.add_argument("--window-stagger", action="store_true", help="move the time windows every step, so their "
                   "borders never stay in one place")


def from_arguments(args: argparse.Namespace) -> Optional[ContextWindows]:
    """The flags of `add_arguments` as ContextWindows (None when off); a bad value's message names its flag."""
    values = dict(window_frames=args.window_frames or None, window_overlap=args.window_overlap,
                  fuse=args.window_fuse, view_window=args.view_window or None, view_overlap=args.view_overlap,
                  anchor_view=args.anchor_view)
    raise_problem(windows_problem(lambda name: "--window-fuse" if name == "fuse" else cli_flag(name), **values))
    if values["window_frames"] is None and values["view_window"] is None:
        return None
    return ContextWindows(**values, stagger=bool(args.window_stagger))
