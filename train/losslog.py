"""`loss.csv` of a training run: one row per logged step (stage, step, loss, lr, seconds).

An append-only log, flushed and fsync'ed after every row (a row per log interval), so a crash loses at
most one interval; the last line may then be cut short, and reopening the log drops it. A new run starts
the file afresh (through model/files.py); a resumed run keeps only the rows that describe the state it
resumes from (the finished stages, and the stage in progress up to its checkpoint), so the steps it
trains again are not logged twice.
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Callable, Optional

from ..model.files import atomic_write

HEADER = ("stage", "step", "loss", "lr", "seconds")


def _complete_rows(text: str) -> list[list[str]]:
    """The well-formed data rows of a log's text: a torn last line (no line end) and malformed rows go."""
    if not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    rows = []
    for row in list(csv.reader(io.StringIO(text)))[1:]:
        if len(row) == len(HEADER) and row[1].isdigit():
            rows.append(row)
    return rows


class LossLog:
    def __init__(self, path, keep: Optional[Callable[[str, int], bool]] = None):
        """keep=None starts a new log at `path`; otherwise the existing log keeps the rows whose
        (stage, step) `keep` accepts."""
        self.path = Path(path)
        old = self.path.read_text(encoding="utf-8") if keep is not None and self.path.exists() else ""
        rows = [r for r in _complete_rows(old) if keep(r[0], int(r[1]))] if old else []
        buffer = io.StringIO()
        csv.writer(buffer).writerows([HEADER, *rows])
        atomic_write(self.path, buffer.getvalue())
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)

    def write(self, stage: str, step: int, loss: float, lr: float, seconds: float) -> None:
        self._csv.writerow([stage, step, f"{loss:.6f}", f"{lr:.3g}", f"{seconds:.1f}"])
        self._file.flush()
        os.fsync(self._file.fileno())

    @property
    def closed(self) -> bool:
        return self._file.closed

    def close(self) -> None:
        self._file.close()
