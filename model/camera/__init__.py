"""Cameras: the `CameraRig`, rig files, relative encodings, Plücker rays and presets
(docs/ARCHITECTURE.md §4 Cameras).

Conventions
-----------
Internally every camera pose is a **camera-to-world** 4x4 matrix in **OpenCV camera axes**
(x right, y down, z forward) with translations in **metres**, stored as float64 `[V, F, 4, 4]`
(V views, F video frames). Intrinsics are `[V, 4]` = (fx, fy, cx, cy) as fractions of the image
width (fx, cx) and height (fy, cy), so they do not depend on the resolution.

The presets use a right-handed world whose axes match a level camera at azimuth 0:
x right, y **down** (world up is -y), z forward; the look-at target sits at the origin.

SynCamVideo / MultiCamVideo files hold Unreal row-vector transforms in a left-handed Z-up world. The
official loaders give OpenCV camera axes but keep that world (det -1); camgrid additionally re-expresses
the world right-handed (x = Unreal Y, y = -Unreal Z, z = Unreal X): a change of world frame that cancels in
every relative pose `inv(C_ref) @ C_i`, so the embeddings equal the official ones exactly while all
rotations have det +1.

Modules
-------
  limits    CameraRigError and every limit a rig or camera parameter must respect (stated once)
  values    reading untrusted values (numbers, arrays, names, keywords) with messages that say where
  geometry  axis conventions, Unreal transforms, quaternions and slerp, look_at
  rig       CameraRig (validated when made), default_intrinsics, the pose and intrinsics checks
  io        load_rig / save_rig and the three file formats
  encoding  relative_extrinsics (SynCamMaster / ReCamMaster), plucker_rays, latent_frame_count
  presets   orbit arc, elevation sweep, dolly, SynCamMaster's and ReCamMaster's rigs, the registry
"""
from .encoding import TRANSLATION_SCALE, VAE_TEMPORAL_STRIDE, latent_frame_count, plucker_rays, relative_extrinsics
from .geometry import CONVENTIONS, MATRIX_KINDS, from_opencv_c2w, look_at, to_opencv_c2w, unreal_to_opencv_c2w
from .io import (UNITS_PER_METRE, load_rig, parse_unreal_matrix, read_rig_json, rig_from_dict, rig_from_matrices,
                 rig_from_unreal_json, rig_to_dict, save_rig)
from .limits import CameraRigError
from .presets import (PRESETS, RECAMMASTER_TRAJECTORIES, RIG_PRESETS, SYNCAMMASTER_EXAMPLE_PAIRS, PresetSpec, dolly,
                      elevation_sweep, make_preset, orbit_arc, recammaster_trajectory, syncammaster_example_rig)
from .rig import CameraRig, default_intrinsics

__all__ = [
    "CameraRig", "CameraRigError", "TRANSLATION_SCALE", "SYNCAMMASTER_EXAMPLE_PAIRS",
    "RECAMMASTER_TRAJECTORIES", "default_intrinsics", "look_at", "to_opencv_c2w", "from_opencv_c2w",
    "parse_unreal_matrix", "unreal_to_opencv_c2w", "rig_from_unreal_json", "rig_from_matrices",
    "rig_from_dict", "load_rig", "rig_to_dict", "save_rig", "latent_frame_count", "relative_extrinsics",
    "plucker_rays", "orbit_arc", "elevation_sweep", "dolly", "syncammaster_example_rig",
    "recammaster_trajectory", "PresetSpec", "RIG_PRESETS", "PRESETS", "make_preset",
    # also public since the package split
    "CONVENTIONS", "MATRIX_KINDS", "UNITS_PER_METRE", "VAE_TEMPORAL_STRIDE", "read_rig_json",
]
