"""Writing files so that a crash, a full disk or a kill in the middle never destroys the last good copy.

Every file camgrid writes goes through `atomic_write`: the data goes to a temporary file in the same
folder, is flushed and fsync'ed, then renamed over the target (an atomic step on POSIX and Windows), and
the folder is fsync'ed so the rename itself survives a power cut. On any error the temporary file is
removed and the previous file is untouched.
"""
from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from pathlib import Path
from typing import Callable, Iterator, Union

PathLike = Union[str, os.PathLike]

# Under torchrun every rank runs the same command and only rank 0's files are kept (docs/ARCHITECTURE.md
# §12 Several GPUs): model/distributed/launch.py turns keeping off on the other ranks.
_keep_files = True


def keep_files(keep: bool) -> None:
    """Whether this process's writes reach their targets; False: each file is written to a scratch folder
    that is deleted at once (the writer runs unchanged, nothing appears at the target)."""
    global _keep_files
    _keep_files = bool(keep)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yields a temporary path beside `path`; a writer writes the whole file there. When the block ends
    without an error the file is fsync'ed and renamed over `path`; on an error it is deleted."""
    path = Path(path)
    if not _keep_files:
        with tempfile.TemporaryDirectory(prefix="camgrid-dropped-") as scratch:
            dropped = Path(scratch) / path.name
            dropped.touch()   # like the mkstemp file below: writers may expect it to exist
            yield dropped
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary_file(path)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def atomic_write(path: PathLike, data: Union[bytes, str], encoding: str = "utf-8") -> Path:
    """Write `data` (bytes, or text in `encoding`) to `path` atomically."""
    payload = data.encode(encoding) if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(payload)
    return Path(path)


def atomic_save(path: PathLike, write: Callable[[Path], object]) -> Path:
    """`write(tmp_path)` writes the file (torch.save, safetensors' save_file, PIL's save, ...); then it is
    moved over `path` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def _new_temporary_file(path: Path) -> Path:
    """A new empty file `.<name>.<random>.tmp` beside `path`, created with mode 0666 less the umask: the
    permissions a plain open() gives (tempfile.mkstemp's 0600 would make every written file private)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(f"no free temporary file name beside {path}")


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return   # Windows cannot open a folder for fsync; os.replace is still atomic there
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
