"""How one forward is split over the ranks: the strategies and the automatic choice
(docs/ARCHITECTURE.md §12 Several GPUs).

A split has two levels. First the batch items (with batched CFG the guidance branches are batch items:
cond on one group of ranks, uncond on another) are divided over `batch_groups` groups of ranks; this
needs no communication inside the model, only one all-gather of the outputs. Then the ranks of a group
split their items' forward by the `inner` strategy:

    replicate  every rank computes the whole forward (no speed-up; the fallback of modes without a split)
    views      the grid's views over the ranks, each rank runs the mode's own forward on its views
               (modes whose views are independent sequences: independent, recam); no communication
               until the outputs are gathered
    streams    two-stream modes (hard, soft) and syncam: in the time stream a rank owns views, in the view
               stream (multi-view attention) it owns latent frames; one all-to-all moves the tokens
               between the layouts each time a block changes stream (model/distributed/streams.py)
    sequence   the tokens of every sequence over the ranks; self-attention runs on a share of the heads
               over the whole sequence (Ulysses all-to-all; model/distributed/sequence.py). For single
               long sequences (one view, recam with one target) where `views` has too few views
    none       groups of one rank: the batch split alone

Automatic choice (`strategy="auto"`): batch_groups = gcd(ranks, batch items) (an even batch split is
never slower than an inner split: it has no communication and balanced work), then for the ranks of a
group: `streams` for the two-stream modes and syncam; for independent / recam `views` when the views
divide evenly, else `sequence` when there are at least as many heads as ranks, else `views` when every
rank gets a view, else `replicate`. A mode without a parallel forward (a new mode) runs `replicate`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..checks import InputError

STRATEGIES = ("auto", "replicate", "batch", "views", "streams", "sequence")

# the inner strategies each mode has a parallel forward for (besides replicate)
MODE_STRATEGIES = {
    "independent": ("views", "sequence"),
    "recam": ("views", "sequence"),
    "syncam": ("streams",),
    "hard": ("streams",),
    "soft": ("streams",),
}


@dataclass(frozen=True)
class ParallelOptions:
    """How forwards are split (`parallel(...)`), checked once when made.

    strategy:    "auto", or one of STRATEGIES to force it ("batch": only the batch split, one rank per group).
    split_batch: None (auto: batch items split evenly over groups of ranks), True (split the batch over as
                 many groups as there are items, up to the ranks, even when uneven), False (never).
    """

    strategy: str = "auto"
    split_batch: Optional[bool] = None

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise InputError(f"parallel strategy {self.strategy!r} is not one of {STRATEGIES}")
        if self.split_batch not in (None, True, False):
            raise InputError(f"split_batch must be None (auto), True or False, got {self.split_batch!r}")


@dataclass(frozen=True)
class Split:
    """One forward's split: `batch_groups` groups of `group_size` consecutive ranks, `inner` inside each."""

    batch_groups: int
    group_size: int
    inner: str

    def describe(self) -> str:
        batch = f"batch over {self.batch_groups} groups" if self.batch_groups > 1 else "whole batch"
        return f"{batch}; {self.inner} over {self.group_size} rank(s) per group"


def _batch_groups(batch: int, world: int, options: ParallelOptions) -> int:
    if options.strategy == "batch":
        if batch < world:
            raise InputError(f"parallel strategy 'batch' needs at least as many batch items as ranks ({world}), got "
                             f"{batch} (items = grids x guidance branches with batch_cfg): use strategy 'auto'")
        return world
    if options.split_batch is False or options.strategy == "replicate":
        return 1
    if options.split_batch is True:
        return max(d for d in range(1, world + 1) if world % d == 0 and d <= batch)
    return math.gcd(world, batch)


def _auto_inner(mode: str, views: int, heads: int, ranks: int) -> str:
    allowed = MODE_STRATEGIES.get(mode, ())
    if "streams" in allowed:
        return "streams"
    if "views" in allowed and views % ranks == 0:
        return "views"
    if "sequence" in allowed and heads >= ranks:
        return "sequence"
    if "views" in allowed and views >= ranks:
        return "views"
    return "replicate"


def choose_split(mode: str, batch: int, views: int, heads: int, world: int, options: ParallelOptions) -> Split:
    """The split of a forward of `mode` over a grid of `batch` items x `views` views on `world` ranks."""
    groups = _batch_groups(batch, world, options)
    ranks = world // groups
    if ranks == 1:
        return Split(groups, 1, "none")
    if options.strategy in ("auto", "batch"):
        inner = _auto_inner(mode, views, heads, ranks)
    elif options.strategy == "replicate":
        inner = "replicate"
    else:
        inner = options.strategy
        if inner not in MODE_STRATEGIES.get(mode, ()):
            raise InputError(f"parallel strategy {inner!r} cannot split mode {mode!r}; it takes "
                             f"{MODE_STRATEGIES.get(mode, ()) + ('replicate', 'auto')}")
        if inner == "views" and views < ranks:
            raise InputError(f"parallel strategy 'views' needs at least one view per rank ({views} views, {ranks} "
                             "ranks per batch group): use strategy 'sequence' or 'auto'")
    return Split(groups, ranks, inner)
