"""Rig files: camgrid's JSON schema, SynCamVideo / MultiCamVideo camera files, plain 4x4 matrix lists.

`load_rig` reads any of them (the format is detected), `save_rig` writes camgrid's schema
(docs/ARCHITECTURE.md §4 Cameras). A rig file is untrusted input: it is size-capped, decoded strictly, every
value is type- and range-checked before a tensor is built (`values.py`), the frame count is bounded by what
the file holds before anything is allocated, and every problem is a `CameraRigError` that names the file,
the camera and the field, without quoting the file's contents.

1. camgrid's own schema (what `save_rig` writes)::

       {
         "format": "camgrid.rig",           # required marker
         "version": 1,
         "convention": "opencv",            # camera axes: "opencv" | "opengl" | "blender"
         "matrix": "c2w",                   # "c2w" (camera-to-world) | "w2c" (world-to-camera)
         "units": "m",                      # translation units: "m" | "cm" | "mm"
         "target": [0.0, 0.0, 0.0],         # optional look-at point (world, in `units`) or null
         "views": [
           {
             "name": "cam01",
             "intrinsics": [fx, fy, cx, cy],   # optional; fractions of width/height
             "c2w": [ [[r, r, r, tx], [r, r, r, ty], [r, r, r, tz], [0, 0, 0, 1]],  # frame 0
                      ... ]                      # one 4x4 per frame, or one 4x4 = static
           }
         ]
       }

   The per-view matrix key is "c2w" or "w2c" (whichever "matrix" says; "matrices" also works).
   An entry of "views" may also be just the matrices (one 4x4 = a static camera, or one 4x4 per frame);
   such cameras are named cam01, cam02, ... by position. Views with a single matrix are static and
   repeated to the longest view's frame count.

2. SynCamVideo / MultiCamVideo / SynCamMaster / ReCamMaster camera files::

       {"frame0": {"cam01": "[r r r 0] [r r r 0] [r r r 0] [tx ty tz 1] ", ...}, "frame1": ...}

   Unreal Engine row-vector transforms (rows = camera forward, right, up axes, then location),
   left-handed Z-up world, centimetres; frames frame0..frame(N-1), each listing the same cameras.

3. Plain lists of 4x4 matrices with a convention field::

       {"convention": "opengl", "matrix": "c2w", "units": "m",
        "matrices": [[4x4], [4x4], ...],         # one camera, one matrix per frame
        "layout": "frames"}                       # or "views": one static camera per matrix

   or `"cameras": {"name": [[4x4] per frame] or [4x4], ...}` instead of "matrices". Without
   "format": "camgrid.rig" the "convention" field is required, so the axes are never guessed.
"""
from __future__ import annotations

import codecs
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from ..files import atomic_write
from .geometry import CONVENTIONS, MATRIX_KINDS, check_convention, from_opencv_c2w, to_opencv_c2w, \
    unreal_to_opencv_c2w
from .limits import MAX_RIG_FILE_BYTES, CameraRigError
from .rig import CameraRig, check_pose_count, check_poses, default_intrinsics
from .values import camera_name, choice, describe, float_array, name_list, point3, shown, whole_number

UNITS_PER_METRE = {"m": 1.0, "cm": 100.0, "mm": 1000.0}
LAYOUT_KEYS = ("views", "cameras", "matrices")     # where a dict rig keeps its cameras; exactly one of them
SCHEMA_HINT = ("see README 'Camera rig files': {\"format\": \"camgrid.rig\", \"version\": 1, \"convention\": "
               "\"opencv\", \"matrix\": \"c2w\", \"views\": [{\"name\": ..., \"c2w\": [4x4 per frame]}]}")

_FRAME_KEY = re.compile(r"^frame([0-9]+)$")
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_MAX_FRAME_DIGITS = 9
_MAX_MATRIX_STRING = 4096


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------

def _decode(raw: bytes, label: str) -> str:
    """Bytes -> text: UTF-8 (a BOM allowed) or UTF-16/32 (as JSON allows); anything else is refused."""
    if raw.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"
    elif raw.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):   # before UTF-16: its LE BOM starts alike
        encoding = "utf-32"
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    else:
        encoding = json.detect_encoding(raw)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CameraRigError(f"{label} is not {encoding.upper().replace('-SIG', '')} text (undecodable byte at "
                             f"offset {exc.start}); save it as UTF-8 JSON") from None


def read_rig_json(path: Union[str, os.PathLike], name: str | None = None) -> Any:
    """The parsed JSON of a rig file, or CameraRigError naming the file (missing, too large, not text, not JSON).
    `name`: how messages call the file (default: the path)."""
    path = Path(path)
    label = f"camera file {name or str(path)!r}"
    if not path.is_file():
        raise CameraRigError(f"{label} not found; check the path.")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_RIG_FILE_BYTES + 1)
    except OSError as exc:
        raise CameraRigError(f"{label} cannot be read ({exc.strerror}).") from None
    if len(raw) > MAX_RIG_FILE_BYTES:
        raise CameraRigError(f"{label} is larger than {MAX_RIG_FILE_BYTES // 2 ** 20} MiB; a rig file is a few "
                             "hundred kB: check that it is the right file.")
    text = _decode(raw, label)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CameraRigError(f"{label} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                             "fix or re-export it.") from None
    except RecursionError:
        raise CameraRigError(f"{label} nests lists or objects too deeply to be a rig; {SCHEMA_HINT}.") from None
    except ValueError:   # an integer literal of thousands of digits (Python's int-string limit)
        raise CameraRigError(f"{label} holds a number with too many digits; write ordinary numbers.") from None


# ---------------------------------------------------------------------------------------------
# SynCamVideo / MultiCamVideo (Unreal row-vector strings)
# ---------------------------------------------------------------------------------------------

def parse_unreal_matrix(text: str, where: str = "camera matrix") -> torch.Tensor:
    """'[a b c 0] [d e f 0] [g h i 0] [tx ty tz 1]' -> float64 [4, 4] (rows as written), finite."""
    example = "'[1 0 0 0] [0 1 0 0] [0 0 1 0] [x y z 1]'"
    if not isinstance(text, str):
        raise CameraRigError(f"{where}: expected a matrix string like {example}, got {describe(text)}")
    rows = _BRACKETS.findall(text[:_MAX_MATRIX_STRING + 1])
    cells = [row.replace(",", " ").split() for row in rows]
    if len(text) > _MAX_MATRIX_STRING or len(cells) != 4 or any(len(r) != 4 for r in cells):
        raise CameraRigError(f"{where}: the matrix string is not four bracketed rows of four numbers like {example}")
    try:
        mat = [[float(v) for v in row] for row in cells]
    except ValueError:
        raise CameraRigError(f"{where}: the matrix string holds something that is not a number; expected four "
                             f"bracketed rows of four numbers like {example}") from None
    if not all(math.isfinite(v) for row in mat for v in row):
        raise CameraRigError(f"{where}: the matrix string holds NaN or infinite values; write finite numbers")
    return torch.tensor(mat, dtype=torch.float64)


def _is_unreal_json(data: Any) -> bool:
    """A dict of 'frameK' keys (and no camgrid/matrix-list keys): the SynCamVideo layout."""
    return (isinstance(data, Mapping) and len(data) > 0
            and any(isinstance(k, str) and _FRAME_KEY.match(k) for k in data)
            and not any(k in data for k in LAYOUT_KEYS + ("format", "convention")))


def _unreal_frame_keys(data: Mapping) -> list[str]:
    """The 'frameK' keys in frame order. Frames must be frame0..frame(N-1) for the N entries the file has, so
    the frame count is bounded by the file's own size (a key 'frame30000000' cannot make it allocate)."""
    by_index: dict[int, str] = {}
    for key in data:
        match = _FRAME_KEY.match(key) if isinstance(key, str) else None
        if match is None:
            raise CameraRigError("a SynCamVideo/MultiCamVideo camera file has only the keys 'frame0', 'frame1', ...; "
                                 "this one mixes in other keys: remove them or use camgrid's schema")
        digits = match.group(1)
        if len(digits) > _MAX_FRAME_DIGITS:
            raise CameraRigError(f"a frame key has a {len(digits)}-digit number; frames are frame0..frame(N-1) for a "
                                 "file of N frames")
        index = int(digits)
        if index in by_index:
            raise CameraRigError(f"'{by_index[index]}' and '{key}' both name frame {index}; keep one of them")
        by_index[index] = key
    count = len(by_index)
    missing = [i for i in range(count) if i not in by_index]
    if missing:
        extra = sorted(i for i in by_index if i >= count)
        raise CameraRigError(f"camera file frames must be frame0..frame{count - 1} without gaps (one entry per frame); "
                             f"missing: {', '.join(f'frame{i}' for i in missing[:5])}; beyond the end: "
                             f"{', '.join(f'frame{i}' for i in extra[:5])}. Add the missing frames or renumber.")
    return [by_index[i] for i in range(count)]


def _unreal_camera_names(data: Mapping, frame_keys: list[str]) -> list[str]:
    """The cameras of frame0, sorted; every frame must list exactly these."""
    first = data[frame_keys[0]]
    if not isinstance(first, Mapping) or not first:
        raise CameraRigError(f"'{frame_keys[0]}' must map camera names to matrix strings, got {describe(first)}")
    names = sorted(camera_name(n, f"'{frame_keys[0]}': a camera name") for n in first)
    for key in frame_keys[1:]:
        cams = data[key]
        if not isinstance(cams, Mapping) or len(cams) != len(names) or any(n not in cams for n in names):
            raise CameraRigError(f"camera file: '{key}' does not list the same cameras as '{frame_keys[0]}' "
                                 f"({', '.join(map(shown, names[:5]))}{', ...' if len(names) > 5 else ''}); every "
                                 "frame must list the same cameras.")
    return names


def rig_from_unreal_json(data: Mapping[str, Mapping[str, str]], units_per_metre: float = 100.0,
                         intrinsics=None) -> CameraRig:
    """SynCamVideo / MultiCamVideo camera JSON (`{"frameK": {"camNN": "[..] [..] [..] [..]"}}`) -> rig.

    Frames are ordered by K, cameras by name. Every frame must list the same cameras. The official loaders do
    `C = M.T; C = C[:, [1, 2, 0, 3]]; C[:3, 1] *= -1` which gives OpenCV camera axes but leaves the world
    left-handed (det -1); camgrid re-expresses the world right-handed (`unreal_to_opencv_c2w`).
    """
    if not _is_unreal_json(data):
        raise CameraRigError("not a SynCamVideo/MultiCamVideo camera file: expected keys 'frame0', 'frame1', ... "
                             "each mapping camera names to '[r r r 0] [r r r 0] [r r r 0] [x y z 1]' strings.")
    if isinstance(units_per_metre, bool) or not isinstance(units_per_metre, (int, float)) or \
            not 0 < units_per_metre < math.inf:
        raise CameraRigError("units_per_metre must be a positive number (100 for centimetres).")
    frame_keys = _unreal_frame_keys(data)
    names = _unreal_camera_names(data, frame_keys)
    check_pose_count(len(names), len(frame_keys), "the camera file")
    mats = torch.empty(len(names), len(frame_keys), 4, 4, dtype=torch.float64)
    for f, key in enumerate(frame_keys):
        for v, name in enumerate(names):
            mats[v, f] = parse_unreal_matrix(data[key][name], f"camera {shown(name)}, {key}")
    # row-vector form keeps the translation in the last row and [0, 0, 0, 1] in the last column
    col = mats[..., :, 3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    bad = (col.abs() > 1e-6).any(-1).nonzero()
    if len(bad):
        v, f = int(bad[0][0]), int(bad[0][1])
        raise CameraRigError(f"camera {shown(names[v])}, frame{f}: the last column is not [0, 0, 0, 1] as Unreal "
                             "row-vector matrices have it; if the file stores column-vector 4x4s, save it as a plain "
                             "matrix list with a 'convention' field instead.")
    return CameraRig(unreal_to_opencv_c2w(mats, units_per_metre), intrinsics, names)


# ---------------------------------------------------------------------------------------------
# camgrid schema and plain matrix lists
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Header:
    """The file-wide fields: axes, matrix kind, units, look-at target (metres)."""
    convention: str
    kind: str
    units_per_metre: float
    target: torch.Tensor | None


def _read_header(data: Mapping) -> _Header:
    fmt = data.get("format")
    if fmt is not None and fmt != "camgrid.rig":
        raise CameraRigError(f"field 'format' must be \"camgrid.rig\" (or absent for a plain matrix list); "
                             f"{SCHEMA_HINT}")
    if fmt == "camgrid.rig":
        version = whole_number(data.get("version", 1), "field 'version'")
        if version > 1:
            raise CameraRigError(f"rig file version {version} is newer than this camgrid understands (1); "
                                 "update camgrid.")
        if version < 1:
            raise CameraRigError("field 'version' must be 1.")
    elif "convention" not in data:
        raise CameraRigError("a matrix list needs a 'convention' field ('opencv', 'opengl' or 'blender') and a "
                             "'matrix' field ('c2w' or 'w2c'); add them so the axes are not guessed.")
    convention, kind = check_convention(data.get("convention", "opencv"), data.get("matrix", "c2w"))
    units = choice(data.get("units", "m"), tuple(UNITS_PER_METRE), "units (field 'units')")
    scale = UNITS_PER_METRE[units]
    target = data.get("target")
    if target is not None:
        raw = float_array(target, "field 'target'", max_depth=1)
        target = point3(raw / scale if raw.shape == (3,) else raw, "field 'target'")
    return _Header(convention, kind, scale, target)


def _pose_stack(value, where: str) -> torch.Tensor:
    """One camera's poses from a file: a 4x4 (static) or a list of 4x4 (one per frame) -> [F, 4, 4]."""
    m = float_array(value, where, max_depth=3)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3 or m.shape[1:] != (4, 4) or m.shape[0] == 0:
        raise CameraRigError(f"{where}: expected a 4x4 matrix or a list of them (one per frame), got shape "
                             f"{list(m.shape)}; write every pose as four rows of four numbers.")
    return m


def _intrinsics_rows(value, count: int, where: str) -> torch.Tensor | None:
    """Intrinsics from a file: null (defaults), one [fx, fy, cx, cy] for every camera, or one row per camera."""
    if value is None:
        return None
    k = float_array(value, where, max_depth=2)
    if k.shape == (4,):
        return k.expand(count, 4).clone()
    if k.shape != (count, 4):
        raise CameraRigError(f"{where}: expected [fx, fy, cx, cy] or one such row per camera ({count}), got shape "
                             f"{list(k.shape)}.")
    return k


def _view_entry(view, index: int, kind: str) -> tuple[str, torch.Tensor, torch.Tensor | None]:
    """One entry of "views": a camera object, or just its matrices -> (name, [F, 4, 4], intrinsics or None)."""
    default_name = f"cam{index + 1:02d}"
    if isinstance(view, (list, tuple)):
        return default_name, _pose_stack(view, f"views[{index}] ({default_name})"), None
    if not isinstance(view, Mapping):
        raise CameraRigError(f"views[{index}] must be a camera object {{\"name\": ..., \"{kind}\": [...]}} or its 4x4 "
                             f"matrices, got {describe(view)}")
    name = camera_name(view.get("name", default_name), f"views[{index}], field 'name'")
    key = kind if kind in view else ("matrices" if "matrices" in view else None)
    if key is None:
        other = next((k for k in MATRIX_KINDS if k in view), None)
        if other is not None:
            raise CameraRigError(f"camera {shown(name)} has '{other}' matrices but the file says \"matrix\": \"{kind}\"; "
                                 f"set \"matrix\": \"{other}\" at the top level.")
        raise CameraRigError(f"camera {shown(name)} has no '{kind}' matrices; add one 4x4 per frame under '{kind}'.")
    poses = _pose_stack(view[key], f"camera {shown(name)}, field '{key}'")
    k = view.get("intrinsics")
    k = None if k is None else _intrinsics_rows(k, 1, f"camera {shown(name)}, field 'intrinsics'")[0]
    return name, poses, k


def _views_layout(data: Mapping, header: _Header):
    views = data["views"]
    if not isinstance(views, (list, tuple)) or not views:
        raise CameraRigError(f"field 'views' must be a non-empty list of cameras, got {describe(views)}; {SCHEMA_HINT}")
    entries = [_view_entry(view, i, header.kind) for i, view in enumerate(views)]
    names = [e[0] for e in entries]
    defaults = default_intrinsics(len(names))
    intrinsics = torch.stack([defaults[i] if e[2] is None else e[2] for i, e in enumerate(entries)])
    return names, [e[1] for e in entries], intrinsics


def _cameras_layout(data: Mapping, header: _Header):
    cams = data["cameras"]
    if not isinstance(cams, Mapping) or not cams:
        raise CameraRigError(f"field 'cameras' must be an object {{name: [4x4 per frame] or 4x4}}, got {describe(cams)}")
    names = [camera_name(n, "field 'cameras': a camera name") for n in cams]
    per_view = [_pose_stack(cams[n], f"camera {shown(n)}, field 'cameras'") for n in cams]
    return names, per_view, _intrinsics_rows(data.get("intrinsics"), len(names), "field 'intrinsics'")


def _matrices_layout(data: Mapping, header: _Header):
    m = float_array(data["matrices"], "field 'matrices'", max_depth=4)
    layout = choice(data.get("layout", "frames"), ("frames", "views"), "layout (field 'layout')",
                    ": 'frames' = one camera over time, 'views' = static cameras")
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[None] if layout == "frames" else m[:, None]
    if m.ndim != 4 or m.shape[-2:] != (4, 4) or 0 in m.shape:
        raise CameraRigError(f"field 'matrices': expected 4x4 matrices shaped [4, 4], [N, 4, 4] or [views, frames, 4, "
                             f"4]; got shape {list(m.shape)}. Write every pose as four rows of four numbers.")
    names = data.get("names")
    names = [f"cam{i + 1:02d}" for i in range(m.shape[0])] if names is None else \
        name_list(names, m.shape[0], "field 'names'")
    return names, list(m), _intrinsics_rows(data.get("intrinsics"), len(names), "field 'intrinsics'")


def _assemble(names: list[str], per_view: list[torch.Tensor], intrinsics, header: _Header) -> CameraRig:
    """Per-camera poses in the file's convention and units -> rig. Single-frame (static) cameras are repeated
    to the others' frame count, after the pose budget is checked."""
    counts = [int(p.shape[0]) for p in per_view]
    frames = max(counts)
    if set(counts) - {1, frames}:
        detail = ", ".join(f"{shown(n)}: {c}" for n, c in list(zip(names, counts))[:8])
        raise CameraRigError(f"cameras have different frame counts ({detail}); give every camera the same number "
                             "of frames, or a single matrix for a static camera.")
    check_pose_count(len(names), frames)
    mats = torch.stack([p.expand(frames, 4, 4) for p in per_view])
    # checked in the file's own form first: a w2c must be rigid before it is inverted, and the message then
    # names the field the user wrote
    check_poses(mats, names, field=header.kind, units_per_metre=header.units_per_metre)
    c2w = to_opencv_c2w(mats, header.convention, header.kind)
    c2w[..., :3, 3] /= header.units_per_metre
    return CameraRig(c2w, intrinsics, names, header.target)


_LAYOUT_READERS = {"views": _views_layout, "cameras": _cameras_layout, "matrices": _matrices_layout}


def rig_from_dict(data: Mapping[str, Any]) -> CameraRig:
    """camgrid schema or plain-matrix dict -> rig (see the module docstring for both layouts)."""
    if not isinstance(data, Mapping):
        raise CameraRigError(f"a rig dict is a JSON object, got {describe(data)}; {SCHEMA_HINT}")
    present = [key for key in LAYOUT_KEYS if key in data]
    if len(present) > 1:
        raise CameraRigError(f"the rig has both {present[0]!r} and {present[1]!r}; give the cameras once, under one "
                             "of 'views', 'cameras' or 'matrices'.")
    if not present:
        raise CameraRigError("the rig dict has no cameras: use 'views' (camgrid schema), 'cameras' "
                             f"({{name: [4x4 per frame]}}) or 'matrices' (a list of 4x4); {SCHEMA_HINT}")
    header = _read_header(data)
    names, per_view, intrinsics = _LAYOUT_READERS[present[0]](data, header)
    return _assemble(names, per_view, intrinsics, header)


def rig_from_matrices(matrices, convention: str = "opencv", matrix: str = "c2w", units: str = "m",
                      names=None, intrinsics=None, target=None, layout: str = "frames") -> CameraRig:
    """4x4 pose matrices -> rig. Shapes: [4, 4] (one static camera), [N, 4, 4] (one camera over N
    frames with layout="frames", or N static cameras with layout="views"), [V, F, 4, 4]."""
    return rig_from_dict({"convention": convention, "matrix": matrix, "units": units, "matrices": matrices,
                          "names": None if names is None else list(names), "intrinsics": intrinsics,
                          "target": target, "layout": layout})


def _rig_from_data(data: Any) -> CameraRig:
    if isinstance(data, CameraRig):
        return data
    if isinstance(data, (list, tuple)):
        raise CameraRigError("a bare list of matrices does not say its axes; wrap it as {\"convention\": \"opencv\"|"
                             "\"opengl\"|\"blender\", \"matrix\": \"c2w\"|\"w2c\", \"matrices\": [...]}.")
    if not isinstance(data, Mapping):
        raise CameraRigError(f"cannot read a camera rig from {describe(data)}; pass a JSON path or a dict.")
    if _is_unreal_json(data):
        return rig_from_unreal_json(data)
    return rig_from_dict(data)


def load_rig(source: Union[str, Path, Mapping, CameraRig], name: str | None = None) -> CameraRig:
    """Load a rig from a JSON path or an already parsed dict; the format is auto-detected: camgrid schema,
    SynCamVideo/MultiCamVideo ("frameK" -> "camNN" strings), or plain matrices. Every problem is a
    CameraRigError naming the file (as `name`, default the path), camera and field."""
    if isinstance(source, (str, os.PathLike)):
        data = read_rig_json(source, name)
        try:
            return _rig_from_data(data)
        except CameraRigError as exc:
            raise CameraRigError(f"camera file {name or str(source)!r}: {exc}") from None
    return _rig_from_data(source)


def rig_to_dict(rig: CameraRig, convention: str = "opencv", matrix: str = "c2w") -> dict:
    """Rig -> camgrid schema dict (JSON-ready, full float precision). The rig is validated first."""
    conv, kind = check_convention(convention, matrix)
    rig.validate()
    mats = from_opencv_c2w(rig.c2w, conv, kind)
    return {
        "format": "camgrid.rig",
        "version": 1,
        "convention": conv,
        "matrix": kind,
        "units": "m",
        "target": None if rig.target is None else rig.target.tolist(),
        "views": [{"name": name, "intrinsics": rig.intrinsics[v].tolist(), kind: mats[v].tolist()}
                  for v, name in enumerate(rig.names)],
    }


def save_rig(rig: CameraRig, path: Union[str, Path], convention: str = "opencv", matrix: str = "c2w") -> Path:
    """Write `rig` in camgrid's schema, atomically (a crash never leaves half a file). Strict JSON: an invalid
    rig is refused before anything is written."""
    text = json.dumps(rig_to_dict(rig, convention, matrix), indent=1, allow_nan=False)
    return atomic_write(path, text)


__all__ = ["UNITS_PER_METRE", "CONVENTIONS", "read_rig_json", "parse_unreal_matrix", "rig_from_unreal_json",
           "rig_from_dict", "rig_from_matrices", "load_rig", "rig_to_dict", "save_rig"]
