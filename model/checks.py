"""Input checks shared by the library, the command line and the nodes: each limit is stated once, here.

Every check raises `InputError` (a ValueError) whose message names the input and the fix, so the CLI can
print it as one line and ComfyUI can show it in the node's error box.
"""
from __future__ import annotations

from pathlib import Path

import torch


class CamGridError(ValueError):
    """Base of camgrid's errors about bad input (arguments, files, rigs): the message is one line that names
    the input and the fix. A ValueError, so callers that catch ValueError keep working."""


class InputError(CamGridError):
    """A bad argument: the message names the argument and what to do instead."""


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
