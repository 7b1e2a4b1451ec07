"""What a camera rig and a camera parameter may hold, stated once, and the error when they do not.

The library functions, the file importers and the rig nodes check these same limits (a node's widget range
is read from here), so no value reaches the camera math that would make it allocate without bound, overflow
to infinity or divide by zero (docs/ARCHITECTURE.md §4 Cameras).
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from .. import checks
from ..checks import CamGridError, Limit


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


# -- presets and node inputs: the node widgets use these ranges, the preset functions refuse values outside -------
# (model/checks.py's Limit; a refusal here is a CameraRigError)
CameraLimit = partial(Limit, error=CameraRigError)
VIEWS = replace(checks.VIEWS, error=CameraRigError)  # cameras a preset builds: as many as a grid may have
RIG_FRAMES = CameraLimit(1, MAX_FRAMES, integer=True)  # video frames a rig spans (a generated video: checks.FRAMES)
DISTANCE_M = CameraLimit(0.01, 1000.0, unit=" m")  # a camera's distance to its target (radius, target distance)
STEP_M = CameraLimit(-1000.0, 1000.0, unit=" m")   # dolly: metres between consecutive cameras
AZIMUTH_SPAN_DEG = CameraLimit(0.0, 360.0, unit="°")
AZIMUTH_DEG = CameraLimit(-360.0, 360.0, unit="°")
ELEVATION_DEG = CameraLimit(-89.0, 89.0, unit="°")  # at ±90° a camera looks along the up axis: its roll is undefined
AMPLITUDE = CameraLimit(0.0, 360.0)                # a ReCamMaster move: degrees (pan, tilt, arc) or metres
HFOV_DEG = CameraLimit(1.0, 179.0, unit="°")       # horizontal field of view
ASPECT = CameraLimit(0.01, 100.0)                  # width / height
# fx, fy as fractions of width / height: a field of view between 0.06° and 179.9°
FOCAL = CameraLimit(1e-3, 1e3)
PRINCIPAL_POINT = CameraLimit(-10.0, 10.0)         # cx, cy as fractions of width / height (0.5 = centred)
TRANSLATION_SCALE_RANGE = CameraLimit(1e-3, 100.0, unit=" units per metre")
RAY_GRID = CameraLimit(1, 4096, integer=True)      # height or width of a Plücker ray grid
