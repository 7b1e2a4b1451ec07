"""What a camera rig and a camera parameter may hold, stated once, and the error when they do not.

The library functions, the file importers and the rig nodes check these same limits (a node's widget range
is read from here), so no value reaches the camera math that would make it allocate without bound, overflow
to infinity or divide by zero (docs/ARCHITECTURE.md §4 Cameras).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

from ..checks import CamGridError


class CameraRigError(CamGridError):
    """A camera rig, camera file or camera parameter that cannot be used; the one-line message names the file,
    camera and field, and the fix."""


# -- sizes: bound every allocation by numbers that no real rig comes near -------------------------------------
MAX_FRAMES = 4097            # video frames of one rig (4 min at 16 fps); longer paths: subsample them first
MAX_POSES = 64 * MAX_FRAMES  # views x frames of one rig (the largest preset grid): 34 MB of float64 4x4 poses
MAX_RIG_FILE_BYTES = 16 * 2 ** 20   # a rig file; 16 views x 1025 frames in JSON take about 6 MB
MAX_NAME_CHARS = 128         # a camera name

# -- geometry ---------------------------------------------------------------------------------------------------
# Camera positions beyond 10,000 km are unit mistakes (millimetres read as metres give at most a few km);
# the bound keeps every embedding, ray and preview finite in float32.
MAX_POSITION_M = 1e7
ORTHONORMAL_ATOL = 1e-4      # |R^T R - I| accepted in a rotation (files print rotations to ~6 digits)


@dataclass(frozen=True)
class Limit:
    """A closed range of finite numbers (integers when `integer`), with the unit its messages use."""

    lo: float
    hi: float
    unit: str = ""
    integer: bool = False

    def problem(self, value, name: str) -> str | None:
        """None when `value` is a finite number in range, else a one-line message naming `name` and the range."""
        expected = (f"{name} must be {'a whole number' if self.integer else 'a number'} between {self.lo:g} and "
                    f"{self.hi:g}{self.unit}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return f"{expected}, got {type(value).__name__}"
        if isinstance(value, numbers.Integral):
            ok = self.lo <= value <= self.hi       # exact for integers of any size
        else:
            number = float(value)
            ok = math.isfinite(number) and self.lo <= number <= self.hi and (not self.integer or number.is_integer())
        return None if ok else f"{expected}, got {show_number(value)}"

    def check(self, value, name: str, error: type = CameraRigError):
        """`value` (an int when `integer`, else a float) or `error` with the message of `problem`."""
        message = self.problem(value, name)
        if message is not None:
            raise error(message)
        return int(value) if self.integer else float(value)

    def widget(self, default, step=None) -> dict:
        """ComfyUI INT/FLOAT widget options for this range (min, max, default, step)."""
        cast = int if self.integer else float
        options = {"default": default, "min": cast(self.lo), "max": cast(self.hi)}
        if step is not None:
            options["step"] = step
        return options


def show_number(value) -> str:
    """A number for a message; a huge integer is described, not printed (10**400 has no float)."""
    if isinstance(value, numbers.Integral) and abs(int(value)) >= 10 ** 15:
        return f"an integer of {len(str(abs(int(value))))} digits"
    return f"{value:g}" if isinstance(value, float) else str(value)


# -- presets and node inputs: the node widgets use these ranges, the preset functions refuse values outside -------
VIEWS = Limit(1, 64, integer=True)                 # cameras a preset builds (a grid of more views does not fit)
FRAMES = Limit(1, MAX_FRAMES, integer=True)        # video frames a rig spans
DISTANCE_M = Limit(0.01, 1000.0, " m")             # a camera's distance to its target (radius, target distance)
STEP_M = Limit(-1000.0, 1000.0, " m")              # dolly: metres between consecutive cameras
AZIMUTH_SPAN_DEG = Limit(0.0, 360.0, "°")
AZIMUTH_DEG = Limit(-360.0, 360.0, "°")
ELEVATION_DEG = Limit(-89.0, 89.0, "°")           # at ±90° a camera looks along the up axis: its roll is undefined
AMPLITUDE = Limit(0.0, 360.0)                      # a ReCamMaster move: degrees (pan, tilt, arc) or metres
HFOV_DEG = Limit(1.0, 179.0, "°")                 # horizontal field of view
ASPECT = Limit(0.01, 100.0)                        # width / height
# fx, fy as fractions of width / height: a field of view between 0.06° and 179.9°
FOCAL = Limit(1e-3, 1e3)
PRINCIPAL_POINT = Limit(-10.0, 10.0)               # cx, cy as fractions of width / height (0.5 = centred)
TRANSLATION_SCALE_RANGE = Limit(1e-3, 100.0, " units per metre")
RAY_GRID = Limit(1, 4096, integer=True)            # height or width of a Plücker ray grid
