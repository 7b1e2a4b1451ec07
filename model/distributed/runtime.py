"""The processes of a run on several GPUs (or CPU processes): joining them, who writes, and the
`parallel()` context every forward reads (docs/ARCHITECTURE.md §12 Several GPUs).

    torchrun --nproc-per-node N -m camgrid generate|demo ...        (the CLI joins and splits by itself)

    from camgrid.model.distributed import parallel, is_main
    with parallel():                       # joins torchrun's process group (NCCL on CUDA, gloo on CPU)
        grid = sample_grid(model, ...)     # every rank computes its share; every rank gets the grid
    if is_main():
        save(grid)

`parallel(...)` is the one place the option is set: inside it every GridDiT forward is split over the
ranks (model/distributed/split.py says how); outside it, or with one process, nothing changes. Every
rank must run the same calls with the same inputs (same seed): the forwards are collective.
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterator, Optional, Union

import torch
import torch.distributed as dist

from ..checks import InputError
from .comm import Group
from .split import ParallelOptions, Split

# How long a collective may wait for the other ranks before the run fails (a rank that died or diverged).
TIMEOUT = timedelta(minutes=float(os.environ.get("CAMGRID_DIST_TIMEOUT_MIN", "30")))


def launched_world_size() -> int:
    """The number of processes torchrun started (WORLD_SIZE), 1 when started alone."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise InputError(f"WORLD_SIZE={os.environ['WORLD_SIZE']!r} is not a number: start with torchrun") from None


def joined() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if joined() else 0


def world_size() -> int:
    return dist.get_world_size() if joined() else 1


def is_main() -> bool:
    """Whether this process prints and writes the results (rank 0, or the only process)."""
    return rank() == 0


def local_device(device: Union[str, torch.device, None]) -> torch.device:
    """The device of this rank: a bare 'cuda' becomes this process's GPU (LOCAL_RANK) under torchrun."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and device.index is None and launched_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def init_from_env(device: Union[str, torch.device, None] = None) -> bool:
    """Join the process group torchrun described in the environment (RANK, WORLD_SIZE, MASTER_ADDR, ...):
    NCCL when `device` is CUDA, gloo otherwise. Returns whether this process is part of a group of more
    than one; a no-op when already joined or started alone."""
    if joined():
        return world_size() > 1
    if launched_world_size() <= 1:
        return False
    device = local_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    return world_size() > 1


@dataclass
class ParallelContext:
    """The active `parallel()` settings and the process groups made for them."""

    options: ParallelOptions
    world: int
    rank: int
    last_split: Optional[Split] = None                  # the split of the latest forward (for logs and tests)
    _groups: dict = field(default_factory=dict)

    def group_for(self, split: Split) -> tuple[int, Group]:
        """(index of this rank's batch group, that group) for `split`. Groups are consecutive ranks; every
        rank creates every group in the same order (torch.distributed.new_group is collective)."""
        size = split.group_size
        if size == self.world:
            return 0, Group(None, self.world, self.rank)
        if size == 1:   # a group of one never communicates
            return self.rank, Group(None, 1, 0)
        if size not in self._groups:
            handles = [dist.new_group(list(range(g * size, (g + 1) * size))) for g in range(self.world // size)]
            self._groups[size] = handles
        g = self.rank // size
        return g, Group(self._groups[size][g], size, self.rank % size)

    def world_group(self) -> Group:
        return Group(None, self.world, self.rank)


_active: contextvars.ContextVar[Optional[ParallelContext]] = contextvars.ContextVar("camgrid_parallel", default=None)


def active() -> Optional[ParallelContext]:
    """The innermost `parallel()` context with more than one rank, or None."""
    return _active.get()


@contextlib.contextmanager
def parallel(strategy: str = "auto", split_batch: Optional[bool] = None,
             device: Union[str, torch.device, None] = None) -> Iterator[Optional[ParallelContext]]:
    """Split every GridDiT forward inside the block over the ranks (see the module docstring).

    strategy / split_batch: see split.ParallelOptions. device: the device the model runs on, which picks
    the backend when this call joins torchrun's process group (NCCL for CUDA, gloo otherwise). Yields the
    context, or None when there is a single process (then forwards run as usual)."""
    options = ParallelOptions(strategy, split_batch)
    if not init_from_env(device):
        yield None
        return
    token = _active.set(ParallelContext(options, world_size(), rank()))
    try:
        yield _active.get()
    finally:
        _active.reset(token)
