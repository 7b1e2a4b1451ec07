"""The collectives a split forward needs, on any split sizes (docs/ARCHITECTURE.md §12 Several GPUs).

Everything here works on uneven shares: `shard_sizes(n, parts)` gives the first `n % parts` parts one
item more, and a part may be empty. Two collectives carry all the traffic:
    Group.exchange(send, recv_shapes)   all-to-all: send[s] goes to member s; the pieces received from
                                        each member come back with the shapes the caller knows they have
                                        (one torch.distributed.all_to_all_single on a flat buffer)
    Group.gather(local, dim, sizes)     all-gather of tensors that differ only along `dim` (padded to the
                                        largest share for all_gather, then trimmed and concatenated)
NCCL on GPUs and gloo on CPUs run both. `record_comm()` measures the time and bytes spent in them (it
synchronises CUDA around each collective, so use it for a measurement, not in production).
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Iterator, Optional, Sequence

import torch
import torch.distributed as dist


def shard_sizes(n: int, parts: int) -> list[int]:
    """n items over `parts` members as evenly as possible: the first n % parts members get one more."""
    base, extra = divmod(n, parts)
    return [base + (i < extra) for i in range(parts)]


def shard_bounds(sizes: Sequence[int]) -> list[tuple[int, int]]:
    """[(start, stop)] of consecutive shares of the given sizes."""
    bounds, start = [], 0
    for s in sizes:
        bounds.append((start, start + s))
        start += s
    return bounds


@dataclass
class CommStats:
    """Seconds and bytes (sent by this rank) spent in collectives while `record_comm()` was active."""

    seconds: float = 0.0
    bytes: int = 0
    calls: int = 0
    by_kind: dict = field(default_factory=dict)


_stats: Optional[CommStats] = None


@contextlib.contextmanager
def record_comm() -> Iterator[CommStats]:
    """Measure the collectives run inside the block (synchronising CUDA before and after each one)."""
    global _stats
    previous, _stats = _stats, CommStats()
    try:
        yield _stats
    finally:
        _stats = previous


@contextlib.contextmanager
def _timed(kind: str, nbytes: int, device: torch.device):
    if _stats is None:
        yield
        return
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    yield
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    _stats.seconds += dt
    _stats.bytes += nbytes
    _stats.calls += 1
    _stats.by_kind[kind] = _stats.by_kind.get(kind, 0.0) + dt


@dataclass(frozen=True)
class Group:
    """The ranks that split one piece of work: a process group, its size and this rank's index in it."""

    handle: Optional[dist.ProcessGroup]
    size: int
    index: int

    def exchange(self, send: Sequence[torch.Tensor], recv_shapes: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """All-to-all: send[s] goes to member s; returns the piece from each member, shaped recv_shapes[s]."""
        if self.size == 1:
            return [send[0].reshape(*recv_shapes[0])]
        ref = send[self.index]
        flat_in = torch.cat([t.reshape(-1) for t in send])
        in_splits = [t.numel() for t in send]
        out_splits = [math.prod(s) for s in recv_shapes]
        flat_out = flat_in.new_empty(sum(out_splits))
        with _timed("all_to_all", (flat_in.numel() - in_splits[self.index]) * flat_in.element_size(), ref.device):
            dist.all_to_all_single(flat_out, flat_in, out_splits, in_splits, group=self.handle)
        return [p.view(*s) for p, s in zip(flat_out.split(out_splits), recv_shapes)]

    def gather(self, local: torch.Tensor, dim: int, sizes: Sequence[int]) -> torch.Tensor:
        """All members' tensors, which differ only in their `dim` size (sizes[s] for member s), concatenated
        along `dim` in member order."""
        if self.size == 1:
            return local
        shapes = []
        for s in sizes:
            shape = list(local.shape)
            shape[dim] = s
            shapes.append(shape)
        counts = [math.prod(s) for s in shapes]
        width = max(counts)
        flat = local.reshape(-1)
        if flat.numel() < width:
            flat = torch.cat([flat, flat.new_zeros(width - flat.numel())])
        parts = [flat.new_empty(width) for _ in sizes]
        with _timed("all_gather", flat.numel() * flat.element_size(), local.device):
            dist.all_gather(parts, flat.contiguous(), group=self.handle)
        return torch.cat([p[:c].view(*s) for p, c, s in zip(parts, counts, shapes)], dim=dim)
