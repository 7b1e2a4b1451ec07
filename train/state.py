"""What a training run keeps on disk to be resumed: `checkpoint.pt` and `progress.json` in its --out folder.

  checkpoint.pt   the stage in progress: its trained modules (float32), optimiser state, step and the
                  seconds of its time budget already spent; written every `checkpoint_every` steps and
                  removed when the stage finishes (the model files then hold its result).
  progress.json   the finished stages and the run's config.

Both are written through model/files.py (temporary file, fsync, rename), so a crash or a full disk in
the middle of a write leaves the previous copy. A file that cannot be read anyway (a disk error, a copy
cut short) gives a one-line `TrainStateError` that names the file and the way on: `--restart-stage`
starts the stage in progress again from the finished stages' model files.
"""
from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import torch

from ..model.checks import CamGridError
from ..model.files import atomic_save, atomic_write
from .config import LEGACY_STAGES, TrainConfig

CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"
CHECKPOINT_FORMAT = "camgrid-train-checkpoint"


class TrainStateError(CamGridError):
    """A run folder's checkpoint or progress file cannot be used to resume; the message says what to do."""


@dataclass
class StageCheckpoint:
    """The saved state of the stage in progress."""
    stage: str
    step: int
    elapsed: float          # seconds of the stage's time budget already spent
    modules: dict           # name -> state dict
    optimizer: dict


def one_line(exc: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message, shortened: for messages that must stay one line."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _not_a_torch_archive(path: Path) -> Optional[str]:
    """What is wrong with a file that cannot be a torch.save archive (a zip file), or None. Checked before
    torch.load, whose own message for random bytes talks about unsafe unpickling, which is not the problem."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    if head != b"PK\x03\x04":
        return "not a checkpoint written by camgrid train: it is not a torch archive"
    if not zipfile.is_zipfile(path):
        return "the file is truncated: it was cut short while being written or copied"
    return None


class RunFolder:
    """The files of one training run that make it resumable."""

    def __init__(self, out):
        self.out = Path(out)
        self.checkpoint_path = self.out / CHECKPOINT_FILE
        self.progress_path = self.out / PROGRESS_FILE

    # -- checkpoint.pt ---------------------------------------------------------------------------------
    def save_checkpoint(self, ckpt: StageCheckpoint) -> None:
        state = {"format": CHECKPOINT_FORMAT, **asdict(ckpt)}
        atomic_save(self.checkpoint_path, lambda tmp: torch.save(state, tmp))

    def drop_checkpoint(self) -> None:
        self.checkpoint_path.unlink(missing_ok=True)

    def damaged(self, what: str, stage: Optional[str]) -> TrainStateError:
        restart = f"start stage {stage} again" if stage else "start the stage in progress again"
        return TrainStateError(f"{self.checkpoint_path} is damaged ({what}): resume with --restart-stage to {restart} "
                               f"from the finished stages' model files, or delete {CHECKPOINT_FILE}")

    def load_checkpoint(self, device, next_stage: Optional[str] = None) -> Optional[StageCheckpoint]:
        """The stage-in-progress checkpoint, None when there is none; TrainStateError when it is unreadable.
        `next_stage` (the stage a resume would run) only makes the message more precise."""
        path = self.checkpoint_path
        if not path.exists():
            return None
        problem = _not_a_torch_archive(path)
        if problem:
            raise self.damaged(problem, next_stage)
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as exc:   # any failure to read back our own file: truncated zip, random bytes, EOF, ...
            raise self.damaged(f"cannot be read: {one_line(exc)}", next_stage) from None
        missing = [k for k in ("stage", "step", "modules", "optimizer") if not isinstance(state, dict) or k not in state]
        if missing:
            raise self.damaged(f"not a camgrid training checkpoint, it lacks {missing}", next_stage)
        try:
            return StageCheckpoint(stage=str(state["stage"]), step=int(state["step"]),
                                   elapsed=float(state.get("elapsed", 0.0)),   # older checkpoints: budget restarts
                                   modules=dict(state["modules"]), optimizer=dict(state["optimizer"]))
        except (TypeError, ValueError) as exc:
            raise self.damaged(f"malformed: {one_line(exc)}", next_stage) from None

    def restore(self, ckpt: StageCheckpoint, modules: dict, optimizer: torch.optim.Optimizer) -> None:
        """Load `ckpt` into the stage's modules and optimiser (a checkpoint of another config is refused)."""
        try:
            for name, module in modules.items():
                module.load_state_dict(ckpt.modules[name])
            optimizer.load_state_dict(ckpt.optimizer)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise TrainStateError(
                f"{self.checkpoint_path} does not fit this run's model (another --dim/--layers/... or code version: "
                f"{one_line(exc)}): resume with the same options, or with --restart-stage to start stage "
                f"{ckpt.stage} again") from None

    # -- progress.json ---------------------------------------------------------------------------------
    def save_progress(self, done: list, cfg: TrainConfig) -> None:
        atomic_write(self.progress_path, json.dumps({"done": list(done), "config": asdict(cfg)}, indent=1, default=str))

    def finished_stages(self) -> list:
        """The stages a previous run finished ([] for a new folder); legacy "sync" means hard + soft."""
        if not self.progress_path.exists():
            return []
        try:
            done = json.loads(self.progress_path.read_text(encoding="utf-8"))["done"]
            return [s for name in done for s in LEGACY_STAGES.get(str(name), (str(name),))]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TrainStateError(f"{self.progress_path} cannot be read ({one_line(exc)}): delete it to train every "
                                  "stage again") from None
