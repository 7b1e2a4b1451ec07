"""`run_mode`: a GridDiT forward, split over the ranks of the active `parallel()` context
(docs/ARCHITECTURE.md §12 Several GPUs). GridDiT.forward calls it once per forward; without a context
(or with one process) it is the mode's own forward.

The split (model/distributed/split.py) first divides the batch items over groups of ranks, then the
group's forward by its inner strategy; every rank ends with the whole output (all-gathers), so the
sampler around the model runs unchanged and identically on every rank.
"""
from __future__ import annotations

import dataclasses
import warnings

import torch

from .comm import Group, shard_bounds, shard_sizes
from .runtime import active
from .sequence import SEQUENCE_FORWARDS
from .split import choose_split
from .streams import STREAM_FORWARDS


def run_mode(model, mode: str, inp) -> torch.Tensor:
    """Output patches [(B V), C, T, H, W] of `mode` for the GridInputs `inp`, split when a context is active."""
    ctx = active()
    if ctx is None:
        return model.MODE_FORWARDS[mode](model, inp)
    if torch.is_grad_enabled():   # the collectives do not carry gradients: a split forward cannot be trained
        warnings.warn("parallel(): autograd is recording, so this forward runs whole on every rank; the split is "
                      "for inference (call the model under torch.no_grad(), as sample_grid does)", stacklevel=3)
        return model.MODE_FORWARDS[mode](model, inp)
    b, v = inp.x.shape[:2]
    split = choose_split(mode, b, v, model.config.num_heads, ctx.world, ctx.options)
    ctx.last_split = split
    index, group = ctx.group_for(split)
    items = shard_sizes(b, split.batch_groups)
    if split.batch_groups > 1:
        inp = batch_items(inp, slice(*shard_bounds(items)[index]))
    out = _inner(model, mode, inp, split.inner, group)
    if split.batch_groups == 1:
        return out
    # one piece per batch group: members of a group hold the same output, the group's first member gives it
    world = ctx.world_group()
    size = split.group_size
    rows = [items[r // size] * v if r % size == 0 else 0 for r in range(ctx.world)]
    mine = out if group.index == 0 else out[:0]
    return world.gather(mine, 0, rows)


def _inner(model, mode: str, inp, inner: str, group: Group) -> torch.Tensor:
    if inner in ("none", "replicate"):
        return model.MODE_FORWARDS[mode](model, inp)
    if inner == "views":
        return _views_split(model, mode, inp, group)
    if inner == "streams":
        return STREAM_FORWARDS[mode](model, inp, group)
    return SEQUENCE_FORWARDS[mode](model, inp, group)


def _views_split(model, mode: str, inp, group: Group) -> torch.Tensor:
    """Modes whose views are independent sequences: each rank runs the mode's forward on its own views."""
    b, v = inp.x.shape[:2]
    sizes = shard_sizes(v, group.size)
    views = slice(*shard_bounds(sizes)[group.index])
    mine = dataclasses.replace(inp, x=inp.x[:, views], camera=None if inp.camera is None else inp.camera[:, views])
    out = model.MODE_FORWARDS[mode](model, mine)
    return group.gather(out.reshape(b, sizes[group.index], *out.shape[1:]), 1, sizes).flatten(0, 1)


def batch_items(inp, items: slice):
    """The GridInputs of batch items `items` (every per-item field sliced)."""
    def cut(t):
        return None if t is None else t[items]
    return dataclasses.replace(inp, x=inp.x[items], timestep=inp.timestep[items], t=inp.t[items],
                               t_mod=inp.t_mod[items], context=inp.context[items], camera=cut(inp.camera),
                               source=cut(inp.source))
