"""Reading untrusted values (parsed JSON, arguments) into tensors and names, with messages that say where.

A rig file is user input: every number is checked to be a real, finite number before a tensor is built, every
list to be regular (no ragged rows) and no deeper than expected, every name to be a string. Messages name the
place (`where`, e.g. "camera 'cam02', field 'c2w'") and describe a bad value by its type, never by its
content, so an error cannot show the contents of a file that was not a rig.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Sequence

import numpy as np
import torch

from .limits import MAX_NAME_CHARS, MAX_POSITION_M, CameraRigError

_FAST_NUMBER_TYPES = (int, float)   # what JSON numbers parse to; bool is a subclass of int, so it is excluded by type


def describe(value: Any) -> str:
    """What a value is, for a message: its JSON type (and length), not its content."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral) and not math.isfinite(value):
        return "a non-finite number (NaN or infinity)"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else f"a string of {plural(len(value), 'character')}"
    if isinstance(value, (list, tuple)):
        return "an empty list" if not value else f"a list of {plural(len(value), 'item')}"
    if isinstance(value, dict):
        return "an object" if value else "an empty object"
    return f"a {type(value).__name__}"


def plural(count: int, noun: str) -> str:
    """'1 camera', '3 cameras'."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _is_number(x) -> bool:
    return type(x) in _FAST_NUMBER_TYPES or (isinstance(x, numbers.Real) and not isinstance(x, bool))


def _index(path: tuple) -> str:
    return "".join(f"[{i}]" for i in path)


def _nested_shape(value, where: str, depth_left: int, path: tuple = ()) -> tuple:
    """Shape of a regular nested list of numbers; CameraRigError for anything else."""
    if _is_number(value):
        return ()
    if not isinstance(value, (list, tuple)):
        raise CameraRigError(f"{where}{_index(path)}: expected a number or a list of numbers, got {describe(value)}")
    if not value:
        return (0,)
    if depth_left == 0:
        raise CameraRigError(f"{where}: lists are nested deeper than expected; write each pose as 4 rows of 4 numbers")
    if not isinstance(value[0], (list, tuple)):                   # a row of numbers: the common case, kept fast
        if all(type(x) in _FAST_NUMBER_TYPES for x in value):
            return (len(value),)
        for i, x in enumerate(value):
            if not _is_number(x):
                raise CameraRigError(f"{where}{_index(path + (i,))}: expected a number, got {describe(x)}")
        return (len(value),)
    inner = None
    for i, item in enumerate(value):
        if not isinstance(item, (list, tuple)):
            raise CameraRigError(f"{where}{_index(path + (i,))}: expected a list like its neighbours, got "
                                 f"{describe(item)}")
        shape = _nested_shape(item, where, depth_left - 1, path + (i,))
        if inner is None:
            inner = shape
        elif shape != inner:
            raise CameraRigError(f"{where}{_index(path + (i,))}: rows of different lengths (shape {list(shape)} after "
                                 f"{list(inner)}); every row needs the same number of values")
    return (len(value),) + inner


def _tensor_input(value, where: str) -> torch.Tensor:
    """A tensor or numpy array as float64 on the CPU; only real number dtypes."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise CameraRigError(f"{where}: expected real numbers, got an array of {value.dtype}")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if value.dtype == torch.bool or value.is_complex():
        raise CameraRigError(f"{where}: expected real numbers, got a tensor of {value.dtype}")
    return value.detach().to("cpu", torch.float64)


def float_array(value, where: str, max_depth: int = 4, finite: bool = True) -> torch.Tensor:
    """Nested lists of numbers (or a tensor / numpy array) -> float64 CPU tensor, every element finite unless
    `finite` is False (then the caller checks, with a better message: camera and frame).

    `max_depth` bounds the nesting (4 for [views][frames][4][4]) so a hostile file cannot recurse deeply.
    """
    if isinstance(value, (torch.Tensor, np.ndarray)):
        array = _tensor_input(value, where)
    else:
        _nested_shape(value, where, max_depth)
        try:
            array = torch.tensor(value, dtype=torch.float64)
        except OverflowError:
            raise CameraRigError(f"{where}: a number is too large for a float (over 1e308)") from None
    bad = (~torch.isfinite(array)).nonzero() if finite else ()
    if len(bad):
        raise CameraRigError(f"{where}{_index(tuple(bad[0].tolist()))}: NaN or infinite values are not allowed; "
                             "write finite numbers")
    return array


def point3(value, where: str) -> torch.Tensor:
    """[x, y, z] world point: float64 [3], finite, within MAX_POSITION_M of the origin (in metres)."""
    p = float_array(value, where, max_depth=1)
    if p.shape != (3,):
        raise CameraRigError(f"{where}: expected 3 numbers [x, y, z], got shape {list(p.shape)}")
    if p.abs().max() > MAX_POSITION_M:
        raise CameraRigError(f"{where}: a coordinate exceeds {MAX_POSITION_M:g} m; check the units")
    return p


def name_list(value, count: int, where: str) -> list[str]:
    """`count` camera names: strings (or integers), 1..MAX_NAME_CHARS printable characters, unique."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise CameraRigError(f"{where}: expected a list of camera names (one per camera: {count}), got "
                             f"{describe(value)}")
    if len(value) != count:
        raise CameraRigError(f"{where}: {plural(len(value), 'name')} for {plural(count, 'camera')}; give exactly one "
                             "name per camera")
    return [camera_name(n, f"{where}[{i}]") for i, n in enumerate(value)]


def camera_name(value, where: str) -> str:
    """One camera name: a string (an integer is written out), 1..MAX_NAME_CHARS printable characters."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = str(int(value)) if abs(int(value)) < 10 ** 18 else value
    if not isinstance(value, str):
        raise CameraRigError(f"{where}: a camera name must be a string, got {describe(value)}")
    if not 1 <= len(value) <= MAX_NAME_CHARS or not value.isprintable():
        raise CameraRigError(f"{where}: a camera name must be 1 to {MAX_NAME_CHARS} printable characters, got "
                             f"{describe(value)}")
    return value


def shown(name: str) -> str:
    """A camera name quoted for a message, cut to 40 characters."""
    return repr(name if len(name) <= 40 else name[:37] + "...")


def choice(value, options: Sequence[str], what: str, hint: str = "") -> str:
    """A keyword from `options` (case-insensitive). The message lists the options, not the value given."""
    if isinstance(value, str) and value.lower() in options:
        return value.lower()
    got = "" if isinstance(value, str) else f" (got {describe(value)})"
    raise CameraRigError(f"unknown {what}{got}; use one of {', '.join(options)}{hint}")


def whole_number(value, where: str) -> int:
    """A JSON integer (or a float with an integral value)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
            (not isinstance(value, numbers.Integral) and not (math.isfinite(value) and float(value).is_integer())):
        raise CameraRigError(f"{where} must be a whole number, got {describe(value)}")
    return int(value)
