"""Input checks shared by the library, the command line and the nodes: each limit is stated once, here.

Every check raises `InputError` (a ValueError) whose message names the input and the fix, so the CLI can
print it as one line and ComfyUI can show it in the node's error box. A `Limit` is one numeric input's
allowed range: the nodes build their widgets from it (`widget()` gives ComfyUI's min/max), their
VALIDATE_INPUTS and the library check values against it (`problem()` / `check()`), so a range cannot drift
between the three. Non-finite numbers never pass a Limit.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch


class CamGridError(ValueError):
    """Base of camgrid's errors about bad input (arguments, files, rigs): the message is one line that names
    the input and the fix. A ValueError, so callers that catch ValueError keep working."""


class InputError(CamGridError):
    """A bad argument: the message names the argument and what to do instead."""


# ---------------------------------------------------------------------------------------------
# numeric limits
# ---------------------------------------------------------------------------------------------

def _number(x) -> str:
    return str(x) if isinstance(x, numbers.Integral) else f"{x:g}"


def _shown(value) -> str:
    """A refused value for a message: numbers as numbers (a huge integer by its size: 10**400 has no float),
    anything else by its type only (a message must never echo the contents of a file that was not a number)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return type(value).__name__
    if isinstance(value, numbers.Integral) and abs(int(value)) >= 10 ** 15:
        return f"an integer of {len(str(abs(int(value))))} digits"
    return _number(value)


@dataclass(frozen=True)
class Limit:
    """The allowed values of one numeric input: low..high (inclusive), whole numbers if `integer`.

    `hint` says what the input does, so a refusal also tells the user which way to go; `unit` follows the
    numbers in messages (" m", "°"); `error` is what a refusal raises (CameraRigError for camera values).
    The nodes build their widgets from a Limit (`widget`), their VALIDATE_INPUTS and the library check values
    against it (`problem`, `check`), so a range is stated once. Non-finite numbers never pass."""

    low: float
    high: float
    integer: bool = False
    hint: str = ""
    unit: str = ""
    error: type = InputError

    def allows(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if isinstance(value, numbers.Integral):  # exact, even for ints too large for a float
            return self.low <= value <= self.high
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return False
        return not self.integer or float(value).is_integer()

    def problem(self, name: str, value) -> Optional[str]:
        """None when `value` is allowed, else a one-line message that names `name`."""
        if self.allows(value):
            return None
        kind = "a whole number" if self.integer else "a number"
        return (f"{name} must be {kind} between {_number(self.low)} and {_number(self.high)}{self.unit}, "
                f"got {_shown(value)}" + (f" ({self.hint})" if self.hint else ""))

    def check(self, name: str, value):
        """`value` as an int (`integer`) or a float if allowed, else `self.error` with the message of `problem`."""
        problem = self.problem(name, value)
        if problem is not None:
            raise self.error(problem)
        return int(value) if self.integer else float(value)

    def widget(self, **options) -> dict:
        """A ComfyUI INT / FLOAT widget's options with this limit's min and max (and `options`: default, step,
        tooltip, ...)."""
        low, high = (int(self.low), int(self.high)) if self.integer else (float(self.low), float(self.high))
        return {"min": low, "max": high, **options}


def raise_problem(problem: Optional[str]) -> None:
    """Raise InputError(problem) unless `problem` is None (the pattern of VALIDATE_INPUTS and execute)."""
    if problem:
        raise InputError(problem)


def range_problem(limits: Mapping[str, Limit], values: Mapping[str, object],
                  label: Callable[[str], str] = str) -> Optional[str]:
    """The message for the first of `values` outside its limit in `limits` (None values are not known yet,
    e.g. a ComfyUI input fed by a link at validation time, and are skipped); `label` names the input as
    its caller knows it (a node's input name, a CLI flag)."""
    for name, limit in limits.items():
        value = values.get(name)
        if value is not None:
            problem = limit.problem(label(name), value)
            if problem:
                return problem
    return None


def cli_flag(name: str) -> str:
    """`video_cfg` -> `--video-cfg`: how the command line names an input."""
    return "--" + name.replace("_", "-")


# Sampling (model/sampling.SamplerOptions checks them; the CamGrid Sampler's widgets and the CLI show them).
# STEPS.high / DENOISE.low also bound the schedule denoise < 1 cuts from: int(steps / denoise) <= 100000 steps.
STEPS = Limit(1, 1000, integer=True, hint="denoising steps; Wan uses 50, 20-30 is a fair preview")
CFG = Limit(0.0, 30.0, hint="text guidance scale; 1 = no guidance, Wan uses 5")
VIDEO_CFG = Limit(0.0, 30.0, hint="two_scale video guidance; SynCamMaster used 1.8")
SHIFT = Limit(0.01, 100.0, hint="flow shift of the noise schedule; Wan uses 3 at 480p, 5 at 720p")
DENOISE = Limit(0.01, 1.0, hint="1 generates from noise, lower keeps more of the input latent")
SEED = Limit(0, 0xFFFFFFFFFFFFFFFF, integer=True, hint="any 64-bit unsigned integer")
SAMPLING_LIMITS = {"steps": STEPS, "cfg": CFG, "video_cfg": VIDEO_CFG, "shift": SHIFT, "denoise": DENOISE,
                   "seed": SEED}
# an advanced setting: CamGrid Sampler Options' widget, not the sampler's (checked by SamplerOptions)
CFG_MAX_SIGMA = Limit(0.0, 1.0, hint="the highest noise level (0-1) that gets text guidance; 1 guides every step")
# an advanced setting of the sampler (SamplerOptions): the weight of a second, composed prompt
COMPOSE_CFG = Limit(0.0, 10.0, hint="the weight of the composed prompt's guidance term; 0 runs without it")
COMPOSE_MIN_SIGMA = Limit(0.0, 1.0, hint="the lowest noise level (0-1) that gets the composed prompt; 0: every "
                          "guided step")
COMPOSE_MAX_SIGMA = Limit(0.0, 1.0, hint="the highest noise level (0-1) that gets the composed prompt; 1: every "
                          "guided step")
COMPOSE_BACKGROUND_SIGMA = Limit(0.0, 1.0, hint="the noise level (0-1) below which the composed prompt acts on the "
                                 "background only; 0: everywhere on every step")
COMPOSE_BACKGROUND_TAU = Limit(1.0, 100.0, hint="background: the latent pixels where the two prompts' predictions "
                               "differ by at most this many times the frame's median difference")


def check_sampling(label: Callable[[str], str] = str, **values) -> dict:
    """The sampling settings (steps, cfg, video_cfg, shift, denoise, seed) as ints / floats, or an InputError
    for the first one outside its limit, named by `label` (the CLI: its flags)."""
    unknown = set(values) - set(SAMPLING_LIMITS)
    if unknown:
        raise TypeError(f"check_sampling got unknown settings {sorted(unknown)}")
    return {name: SAMPLING_LIMITS[name].check(label(name), value) for name, value in values.items()}


# The video grid (CamGrid Empty Latent / Source Video / Camera Encode, `generate`).
SPATIAL_STRIDE = 16  # 8x VAE times the DiT's 2x2 patch: width and height are multiples of this
FRAME_STRIDE = 4     # the Wan VAE packs 4 frames per latent frame after the first: frame counts are 4k+1
VIDEO_SIDE = Limit(SPATIAL_STRIDE, 4096, integer=True, hint="pixels, a multiple of 16")
FRAMES = Limit(1, 1025, integer=True, hint="video frames, 4k+1: 81 frames = 5 s at 16 fps")
VIEWS = Limit(1, 64, integer=True, hint="cameras in the grid")
VIEW_INDEX = Limit(0, VIEWS.high - 1, integer=True, hint="a view of the grid, 0 = the first")
SOURCE_NOISE = Limit(0.0, 1.0, hint="the given view's noise level as a share of the grid's (1: SynCamMaster's "
                                    "setting, 0: the clean source at every step)")
BATCH_SIZE = Limit(1, 16, integer=True, hint="independent grids generated at once")


def frames_problem(frames, name: str = "frames") -> Optional[str]:
    """None, or the message for a video frame count the Wan VAE cannot take (4k+1, within FRAMES)."""
    problem = FRAMES.problem(name, frames)
    if problem is None and (frames - 1) % FRAME_STRIDE:
        lo = (frames - 1) // FRAME_STRIDE * FRAME_STRIDE + 1
        problem = (f"{name} must be 4k+1 (the Wan VAE packs 4 frames per latent frame after the first), got "
                   f"{frames}: use {lo} or {lo + FRAME_STRIDE}")
    return problem


def video_size_problem(width, height, frames, names=("width", "height", "frames")) -> Optional[str]:
    """None, or the message for a video size the Wan VAE + DiT cannot take (None values are skipped)."""
    for name, size in zip(names[:2], (width, height)):
        if size is None:
            continue
        problem = VIDEO_SIDE.problem(name, size)
        if problem is None and size % SPATIAL_STRIDE:
            near = max(SPATIAL_STRIDE, round(size / SPATIAL_STRIDE) * SPATIAL_STRIDE)
            problem = (f"{name} must be a multiple of {SPATIAL_STRIDE} (8x VAE, 2x2 patches), got {size}: "
                       f"use {near}")
        if problem:
            return problem
    return None if frames is None else frames_problem(frames, names[2])


def check_video_size(width: int, height: int, frames: int, names=("width", "height", "frames")) -> None:
    """InputError unless width x height x frames is a size the Wan VAE + DiT can take."""
    raise_problem(video_size_problem(width, height, frames, names))


# ---------------------------------------------------------------------------------------------
# tensors, devices, folders
# ---------------------------------------------------------------------------------------------

def check_finite(tensor: torch.Tensor, what: str, fix: str = "") -> torch.Tensor:
    """`tensor` if every value is finite, else an InputError naming `what` (and `fix`)."""
    if tensor.is_floating_point() or tensor.is_complex():
        if not bool(torch.isfinite(tensor).all()):
            bad = int((~torch.isfinite(tensor)).sum())
            raise InputError(f"{what} holds {bad} NaN or infinite value(s)" + (f": {fix}" if fix else ""))
    return tensor


def torch_device(name, what: str = "device") -> torch.device:
    """`name` as a torch.device that this torch can use, or an InputError that says how to get one."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"{what} {name!r} is not a device name ({exc}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise InputError(f"{what} {name!r}: this torch ({torch.__version__}) is a CPU-only build; "
                             "use --device cpu, or install a CUDA build of torch")
        if not torch.cuda.is_available():
            raise InputError(f"{what} {name!r}: no CUDA GPU is visible to torch; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"{what} {name!r}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"{what} {name!r}: MPS is not available here; use --device cpu")
    return device


def output_folder(path, what: str = "--out") -> Path:
    """A folder to write results into: created if missing; an existing file of that name is refused."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise InputError(f"{what} {str(path)!r} is an existing file, not a folder: name a folder to write into")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{what} {str(path)!r}: cannot create the folder ({exc.strerror})") from None
    return path


class NonFiniteError(InputError):
    """A tensor holds NaN or infinity: refused where it enters (an input) or as soon as it appears (a result)."""


def require_finite(name: str, tensor, fix: str) -> None:
    """Raise NonFiniteError naming `name` when `tensor` (None: nothing to check) holds NaN or infinity.

    One reduction and one device sync per tensor: cheap beside a DiT forward."""
    if tensor is None or not tensor.is_floating_point() or bool(torch.isfinite(tensor).all()):
        return
    bad = int((~torch.isfinite(tensor)).sum())
    raise NonFiniteError(f"{name} holds {bad} NaN or infinite value(s) of {tensor.numel()}: {fix}")
