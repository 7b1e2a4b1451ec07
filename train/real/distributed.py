"""One process per GPU under `torchrun`, with torch's own data parallelism (DDP; FSDP2 for the frozen weights).

    torchrun --nproc_per_node 8 -m camgrid train --dit ... --parallel ddp

`Dist.from_env(device)` reads torchrun's RANK / WORLD_SIZE / LOCAL_RANK (none: a single process), joins the
process group (NCCL on CUDA, gloo on the CPU) and picks the process's device (cuda:LOCAL_RANK). `wrap`
returns the module the loss calls:
  ddp   DistributedDataParallel: every process holds the whole DiT; the gradients of the trainable
        parameters (sync layers, LoRA) are averaged in backward. find_unused_parameters is on when the steps
        alternate modes (a hard step leaves the soft layers unused, and the other way round).
  fsdp  FSDP2 `fully_shard` on every frozen block Linear layer (>99% of the weights: each process keeps
        1/world of them and gathers a layer just before it runs), then on the whole model, whose remaining
        parameters (embeddings, norms, modulation, sync layers, LoRA) form the root group. For the 14B model.
Everything a process writes (checkpoints, loss log, outputs) is written by rank 0 only; the decisions that
must agree (stop now? which learning rate?) are rank 0's, broadcast to the others (`agree`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist
import torch.nn as nn

from ...model.checks import InputError
from ...model.fp8 import QUANTIZABLE


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, device: str) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        device = torch.device(device)
        if world <= 1:
            return cls(device=device)
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        if device.type == "cuda":
            device = torch.device("cuda", local_rank)
            torch.cuda.set_device(device)
        if not tdist.is_initialized():
            tdist.init_process_group("nccl" if device.type == "cuda" else "gloo",
                                     device_id=device if device.type == "cuda" else None)
        return cls(rank, world, local_rank, device)

    def agree(self, values: list) -> list:
        """Rank 0's numbers, on every process."""
        if not self.active:
            return list(values)
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.comm_device)
        tdist.broadcast(t, src=0)
        return t.tolist()

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a scalar over all processes (every process must call it)."""
        if not self.active:
            return value.detach().float()
        t = value.detach().float().reshape(1).to(self.comm_device)
        tdist.all_reduce(t)
        return t[0] / self.world

    @property
    def comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def barrier(self) -> None:
        if self.active:
            tdist.barrier()

    def close(self) -> None:
        if self.active and tdist.is_initialized():
            tdist.destroy_process_group()


def wrap(module: nn.Module, dist: Dist, parallel: str, unused_parameters: bool) -> nn.Module:
    """The module the training steps call (see the module docstring)."""
    if not dist.active:
        return module
    if parallel == "ddp":
        ids = [dist.device.index] if dist.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=unused_parameters)
    if parallel == "fsdp":
        from torch.distributed.fsdp import fully_shard   # torch >= 2.6
        frozen = [m for name, m in module.named_modules() if QUANTIZABLE.match(name.split("dit.", 1)[-1])]
        if not frozen:
            raise InputError("--parallel fsdp found no block Linear layers to shard")
        for layer in frozen:
            fully_shard(layer)
        fully_shard(module)
        return module
    raise InputError(f"--parallel must be ddp or fsdp, got {parallel!r}")
