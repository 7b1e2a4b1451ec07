"""Weights sharded over the ranks when one GPU cannot hold them (docs/ARCHITECTURE.md §12 Several GPUs).

`shard_weights(model)` puts every block's parameters (and its sync layer) under torch's FSDP2
(`torch.distributed.fsdp.fully_shard`): each rank keeps 1/N of them. The embeddings and the head stay
whole on every rank (small next to the blocks: ~3 % of the 14B model). A forward gathers one block's
weights when it reaches it and frees them after it (`gathered`, entered by GridDiT._blocks), so the peak
is the sharded model plus one whole block. Every rank walks every block (also a rank whose share of a
stream is empty), which keeps the gathers collective. The 1.3B model (2.6 GiB in bf16) fits any GPU:
keep it replicated, the default.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch.nn as nn

from ..checks import InputError
from .runtime import world_size

SHARDED = "_camgrid_sharded"   # attribute set on a block whose weights FSDP shards


def shard_weights(model):
    """Shard the weights of every block of `model` over all ranks (call on every rank, after loading and
    before the first forward); returns the model. The model must already be on this rank's device."""
    # imported here: FSDP's modules take a while to import and only sharded runs need them
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if world_size() < 2:
        raise InputError("shard_weights needs several processes: start with torchrun --nproc-per-node N "
                         "and call it inside or after init_from_env()")
    mesh = init_device_mesh(model.device.type, (world_size(),))
    for block in model.blocks:
        # reshard_after_forward=False: `gathered` frees the weights itself, after all of a block's uses
        # (two-stream modes call a block twice per forward)
        fully_shard(block, mesh=mesh, reshard_after_forward=False)
        setattr(block, SHARDED, True)
    return model


@contextlib.contextmanager
def gathered(block: nn.Module) -> Iterator[None]:
    """The whole weights of `block` for the duration of the block; a no-op unless `shard_weights` sharded it."""
    if not getattr(block, SHARDED, False):
        yield
        return
    block.unshard()
    try:
        yield
    finally:
        block.reshard()
