"""Weight files on disk: formats, declared shapes and dtypes, values (docs/ARCHITECTURE.md §13 Loading).

This module knows files, not models. model/checkpoint.py (the DiT) and model/sync.py (sync layers) build
on it; it imports nothing of the model, so neither of them has to import the other to read a file.

    with open_weights(path_or_state_dict) as weights:   # reads headers only (.safetensors)
        weights.name, weights.infos, weights.meta       # file name, key -> TensorInfo(shape, dtype), metadata
        weights.tensor(key)                             # one tensor, read when asked for

Formats, recognised by their content (the suffix only gates which files are accepted):
  - `.safetensors`: the JSON header is read and checked here (dtypes, shapes, byte ranges that fit the file
    and do not overlap) before any tensor is read, so declared sizes never exceed the bytes the file holds;
  - `.ckpt` / `.pt` / `.pth` / `.bin`: `torch.load(weights_only=True)` only (zip files memory-mapped). A file
    that needs unpickling of Python objects is refused: loading it could run arbitrary code. The tensors'
    sizes must fit in the storages the file holds (no tensor expanded from a few bytes to gigabytes).
Tensors are memory-mapped (copy-on-write) where the format allows: a model kept on the CPU in the file's dtype
reads its weights from the file's pages, which saves a copy of the model in RAM. Replace a model file by
writing a new file and renaming it, never by overwriting it in place while a program has it loaded.
Every problem is a `CheckpointError` that names the file and says what is wrong and what to do.

Key names (prefixes, diffusers layout, block numbers) are model/key_layouts.py's job; `check_finite` refuses
NaN and infinity, one cheap pass per tensor as it is loaded.
"""
from __future__ import annotations

import json
import math
import pickle
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional

import torch
from safetensors import safe_open

from .checks import CamGridError

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SUFFIXES = (".safetensors",) + PICKLE_SUFFIXES

# every dtype name of the safetensors format that torch has a dtype for
SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "F8_E4M3FNUZ": torch.float8_e4m3fnuz, "F8_E5M2FNUZ": torch.float8_e5m2fnuz, "F8_E8M0": torch.float8_e8m0fnu,
    "C64": torch.complex64, "C128": torch.complex128,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U64": torch.uint64, "U32": torch.uint32, "U16": torch.uint16, "U8": torch.uint8, "BOOL": torch.bool,
}
# floating dtypes a weight may be stored in (fp8 e4m3fn / e5m2: fp8 checkpoints, model/fp8.py)
WEIGHT_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.float8_e4m3fn, torch.float8_e5m2)

_MAX_HEADER_BYTES = 100_000_000          # the safetensors format's own limit
_ZIP_MAGIC = b"PK\x03\x04"
_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"  # pickled magic number of pre-1.6 torch.save
_CONVERT_HINT = ("Fix: convert it once, in an environment you trust, to .safetensors (python -c \"import torch, "
                 "safetensors.torch as s; sd=torch.load('in.ckpt', weights_only=False); "
                 "s.save_file({k: v.contiguous() for k, v in sd.items()}, 'out.safetensors')\").")


class CheckpointError(CamGridError):
    """A weights file that camgrid cannot or will not load; the message names the file, what is wrong and
    what to do."""


@dataclass(frozen=True)
class TensorInfo:
    """What a file declares about one tensor. dtype None: a bare shape (state dicts of shapes, `describe`)."""

    shape: tuple
    dtype: Optional[torch.dtype]

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * (self.dtype.itemsize if self.dtype is not None else 0)


def _truncated(detail: str = "") -> str:
    return f"the file is truncated ({detail + '; ' if detail else ''}an interrupted download or copy?): download it again"


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception's message as one short line (camgrid errors are one line)."""
    text = str(exc).strip()
    return (text.splitlines()[0][:limit] if text else "") or type(exc).__name__


def problem_list(items, limit: int = 8) -> str:
    """A few of `items`, sorted, and how many more there are."""
    items = sorted(items)
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# ---------------------------------------------------------------------------------------------
# opening a file or a state dict
# ---------------------------------------------------------------------------------------------
class WeightsSource:
    """An open weights file or in-memory state dict: declared infos up front, tensors on demand."""

    def __init__(self, name: str, infos: dict, meta: dict, tensors=None, safetensors_handle=None):
        self.name, self.infos, self.meta = name, infos, meta
        self._tensors, self._handle = tensors, safetensors_handle

    def tensor(self, key: str) -> torch.Tensor:
        if self._handle is not None:
            try:
                return self._handle.get_tensor(key)
            except Exception as exc:  # safetensors raises its own error types
                raise CheckpointError(f"{self.name}: cannot read tensor {key!r} ({first_line(exc)}); the file is damaged: "
                                      "download it again") from None
        value = self._tensors[key]
        if not isinstance(value, torch.Tensor) or value.is_meta:
            raise CheckpointError(f"{self.name}: entry {key!r} holds a shape, not the weights; pass real tensors")
        return value

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        handle, self._handle, self._tensors = self._handle, None, None
        if handle is not None:
            handle.__exit__(None, None, None)


def open_weights(path_or_state_dict, what: str = "checkpoint") -> WeightsSource:
    """A WeightsSource for a .safetensors / torch file or a state dict (values: tensors or bare shapes)."""
    if isinstance(path_or_state_dict, Mapping):
        return _from_mapping(path_or_state_dict, "state dict")
    path = Path(path_or_state_dict)
    name = path.name
    if not path.is_file():
        raise CheckpointError(f"{what} {str(path)!r} " + ("is a folder, not a file" if path.is_dir() else "does not exist"))
    if path.suffix.lower() not in SUFFIXES:
        raise CheckpointError(f"{name}: unsupported {what} format {path.suffix!r}; use .safetensors, .ckpt, .pt or .pth")
    kind = sniff_format(path)
    if kind == "safetensors":
        infos, meta = read_safetensors_header(path)
        return WeightsSource(name, infos, meta, safetensors_handle=_safe_open(path))
    if kind in ("torch_zip", "torch_legacy", "pickle"):
        return _from_mapping(_load_torch_file(path, kind), name)
    raise CheckpointError(f"{name}: {_not_weights_reason(kind)}")


def read_header(path) -> tuple[dict, dict]:
    """(key -> TensorInfo, metadata) without reading tensor data (.safetensors; torch files are mapped)."""
    with open_weights(path) as weights:
        return weights.infos, weights.meta


def read_state_dict(path) -> tuple[dict, dict]:
    """(key -> tensor on the CPU, metadata strings) of a .safetensors or weights-only torch file."""
    with open_weights(path) as weights:
        return {k: weights.tensor(k) for k in weights.infos}, weights.meta


def _from_mapping(sd: Mapping, name: str) -> WeightsSource:
    infos = {}
    for key, value in sd.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{name}: its keys must be tensor names (text), found {key!r} "
                                  f"({type(key).__name__}); this is not a model state dict")
        infos[key] = _info_of(value, key, name)
    return WeightsSource(name, infos, {}, tensors=sd)


def _info_of(value, key, name) -> TensorInfo:
    if isinstance(value, torch.Tensor):
        return TensorInfo(tuple(value.shape), value.dtype)
    if isinstance(value, TensorInfo):
        return value
    if isinstance(value, (tuple, list, torch.Size)) and all(type(s) is int and s >= 0 for s in value):
        return TensorInfo(tuple(value), None)
    raise CheckpointError(f"{name}: entry {key!r} is a {type(value).__name__}, not a tensor")


# ---------------------------------------------------------------------------------------------
# recognising a file by its first bytes
# ---------------------------------------------------------------------------------------------
def sniff_format(path: Path) -> str:
    """"safetensors", "torch_zip", "torch_legacy", "pickle", "empty", "text" or "unknown"."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "empty"
    if head.startswith(_ZIP_MAGIC):
        return "torch_zip"
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch_legacy"
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < 1 << 40:
        return "safetensors"
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # a pickle's PROTO opcode
        return "pickle"
    text = head.decode("utf-8", "ignore")  # ignore: a character cut at byte 512
    return "text" if len(text) * 2 >= len(head) and all(c.isprintable() or c in "\r\n\t" for c in text) else "unknown"


def _not_weights_reason(kind: str) -> str:
    return "not a readable weights file: " + {
        "empty": "the file is empty (0 bytes): download it again",
        "text": "it is a text file (an HTML page or an error message saved by a failed download?): download the "
                "file again",
    }.get(kind, "neither .safetensors nor a PyTorch checkpoint (damaged, or another format): download it again")


# ---------------------------------------------------------------------------------------------
# .safetensors
# ---------------------------------------------------------------------------------------------
def read_safetensors_header(path: Path) -> tuple[dict, dict]:
    """(key -> TensorInfo, metadata) from the JSON header, checked against the file's size."""
    name, size = path.name, path.stat().st_size
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        if header_len > _MAX_HEADER_BYTES:
            raise CheckpointError(f"{name}: not a readable .safetensors file (its header claims {header_len} bytes)")
        if 8 + header_len > size:
            raise CheckpointError(f"{name}: {_truncated()}")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (ValueError, RecursionError):
        raise CheckpointError(f"{name}: not a readable .safetensors file (its header is not valid JSON); "
                              "download it again") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: not a readable .safetensors file (its header is not a JSON object)")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{name}: not a readable .safetensors file (its metadata must map names to text)")
    infos, spans = {}, []
    for key, entry in header.items():
        info, begin, end = _header_entry(name, key, entry)
        infos[key] = info
        spans.append((begin, end, key))
    data_size = size - 8 - header_len
    _check_spans(name, sorted(spans), data_size)
    return infos, meta


def _header_entry(name, key, entry) -> tuple[TensorInfo, int, int]:
    bad = f"{name}: not a readable .safetensors file (header entry {key!r} is malformed"
    if not isinstance(entry, dict):
        raise CheckpointError(bad + ")")
    dtype_name, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if not isinstance(dtype_name, str) or dtype_name not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"{name}: tensor {key!r} has dtype {dtype_name!r}, which camgrid cannot read")
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise CheckpointError(bad + ": shape)")
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(type(o) is int for o in offsets)
            or not 0 <= offsets[0] <= offsets[1]):
        raise CheckpointError(bad + ": data_offsets)")
    info = TensorInfo(tuple(shape), SAFETENSORS_DTYPES[dtype_name])
    if offsets[1] - offsets[0] != info.nbytes:
        raise CheckpointError(f"{name}: tensor {key!r} declares shape {list(shape)} ({info.nbytes} bytes) but the "
                              f"file gives it {offsets[1] - offsets[0]} bytes; the file is damaged: download it again")
    return info, offsets[0], offsets[1]


def _check_spans(name, spans, data_size):
    end_so_far = 0
    for begin, end, key in spans:
        if begin < end_so_far:
            raise CheckpointError(f"{name}: not a readable .safetensors file (tensor {key!r} overlaps another)")
        end_so_far = max(end_so_far, end)
    if end_so_far > data_size:
        raise CheckpointError(f"{name}: " + _truncated(f"it holds {data_size} bytes of tensor data, its header "
                                                       f"declares {end_so_far}"))


def _safe_open(path: Path):
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
        return handle.__enter__()
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path.name}: not a readable .safetensors file ({first_line(exc)}); download it again") from None


# ---------------------------------------------------------------------------------------------
# torch files
# ---------------------------------------------------------------------------------------------
def _load_torch_file(path: Path, kind: str) -> dict:
    name = path.name
    if kind == "torch_zip":
        _check_zip(path)
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=kind == "torch_zip")
    except pickle.UnpicklingError as exc:
        raise CheckpointError(_unpickling_message(name, exc)) from None
    except Exception as exc:  # torch reports damaged files with many exception types
        raise CheckpointError(_torch_read_message(name, kind, exc)) from None
    sd = _unwrap(obj, name)
    _check_storage_sizes(name, sd)
    return sd


def _check_zip(path: Path) -> None:
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except zipfile.BadZipFile:
        raise CheckpointError(f"{path.name}: {_truncated()}") from None  # the zip directory is at the end
    except Exception as exc:
        raise CheckpointError(f"{path.name}: a damaged zip archive ({type(exc).__name__}); download it again") from None
    if not any(m.filename.endswith("data.pkl") for m in members):
        raise CheckpointError(f"{path.name}: a zip archive but not a PyTorch checkpoint (no data.pkl inside)")


def _unpickling_message(name: str, exc: Exception) -> str:
    reason = next((line.strip()[:200] for line in str(exc).splitlines() if "Unsupported" in line), first_line(exc))
    wanted = re.search(r"Unsupported (?:global|class):? (?:GLOBAL )?(\S+)", reason)
    if wanted and _names_something(wanted.group(1)):
        return (f"{name}: refused: this file needs unsafe unpickling (it stores Python objects, not just tensors), "
                f"and loading it could run arbitrary code. Reason given by torch: {reason} {_CONVERT_HINT}")
    # a name that names nothing (cut short, or random bytes) or another refusal: a damaged file, not code
    return (f"{name}: not a readable PyTorch checkpoint: torch's safe (weights-only) loader refused its contents "
            f"({reason}); the file is damaged or truncated: download it again")


def _names_something(dotted: str) -> bool:
    """Whether `dotted` ("module.attr") names a loaded module's attribute, or a module that is not loaded (it
    may well exist). Looks only at sys.modules: nothing named by a file is imported."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:cut]))
        if module is not None:
            obj = module
            for attr in parts[cut:]:
                obj = getattr(obj, attr, None)
            return obj is not None
    return parts[0].isidentifier()


def _torch_read_message(name: str, kind: str, exc: Exception) -> str:
    text = first_line(exc)
    if isinstance(exc, EOFError) or "EOF" in text or "truncated" in text.lower():
        return f"{name}: {_truncated()}"
    if kind == "pickle" and "magic number" in text:
        return f"{name}: a Python pickle but not a PyTorch checkpoint; save the weights with torch.save or safetensors"
    return f"{name}: not a readable PyTorch checkpoint ({type(exc).__name__}: {text}); the file is damaged: download it again"


def _unwrap(obj, name: str) -> dict:
    # training scripts often save {"state_dict": {...}} or {"module": {...}}
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for key in ("state_dict", "module", "model", "ema"):
                if key in obj and isinstance(obj[key], Mapping):
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{name}: does not contain a state dict (found {type(obj).__name__})")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{name}: contains no tensors")
    for key in sd:
        if not isinstance(key, str):
            raise CheckpointError(f"{name}: its keys must be tensor names (text), found {key!r} "
                                  f"({type(key).__name__}); this is not a model state dict")
    return sd


def _check_storage_sizes(name: str, sd: dict) -> None:
    """The tensors may not declare more bytes than the storages behind them hold: a tensor expanded with
    stride 0 from a few stored bytes would become gigabytes when converted."""
    declared = sum(t.numel() * t.element_size() for t in sd.values())
    stored = {}
    for t in sd.values():
        storage = t.untyped_storage()
        stored[storage.data_ptr(), storage.nbytes()] = storage.nbytes()
    if declared > sum(stored.values()):
        raise CheckpointError(f"{name}: its tensors declare {declared} bytes but the file stores {sum(stored.values())}; "
                              "the file is damaged or crafted: refused")


# ---------------------------------------------------------------------------------------------
# values
# ---------------------------------------------------------------------------------------------
def is_finite(t: torch.Tensor) -> bool:
    """No NaN or infinity in t; one cheap pass (a sum) in the common case."""
    if not t.is_floating_point() or t.numel() == 0:
        return True
    if t.dtype == torch.float8_e4m3fn:  # no infinity; NaN is the code S.1111.111 (isfinite lacks this dtype)
        return not bool(((t.view(torch.uint8) & 0x7F) == 0x7F).any())
    if t.element_size() == 1:
        return bool(torch.isfinite(t.float()).all())
    # NaN and infinity survive a sum; a finite sum that overflows is rare and rechecked exactly
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def check_finite(name: str, key: str, t: torch.Tensor, source: Optional[torch.Tensor] = None) -> None:
    """Refuse a weight with NaN or infinity; `source` (the stored tensor, before a dtype conversion) tells
    a damaged file from values too large for the chosen dtype."""
    if is_finite(t):
        return
    if source is not None and source is not t and is_finite(source):
        raise CheckpointError(f"{name}: weight {key!r} overflows {str(t.dtype).replace('torch.', '')} (values too "
                              "large); load the model in bfloat16 or float32")
    raise CheckpointError(f"{name}: weight {key!r} contains NaN or infinite values; the file is damaged or was "
                          "badly converted: download or convert it again")


def check_layout(name: str, expected: dict, got: dict, what: str, hint: str) -> None:
    """CheckpointError unless `got` (key -> shape) has exactly `expected`'s keys and shapes; the message lists
    missing, unexpected and mis-shaped keys (4 each), says the weights do not form `what`, and ends in `hint`."""
    missing, unexpected = expected.keys() - got.keys(), got.keys() - expected.keys()
    bad = [f"{k} {list(got[k])} != {list(s)}" for k, s in expected.items() if k in got and got[k] != s]
    if missing or unexpected or bad:
        parts = [f"missing {problem_list(missing, 4)}" if missing else "",
                 f"unexpected {problem_list(unexpected, 4)}" if unexpected else "",
                 f"shapes {problem_list(bad, 4)}" if bad else ""]
        raise CheckpointError(f"{name}: the weights do not form {what} ({'; '.join(p for p in parts if p)}); {hint}")
