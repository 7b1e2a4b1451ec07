"""The DiT made ready to train: loaded in bf16 with the memory options, sync layers and a LoRA attached, every
other weight frozen.

    trainable = prepare_dit(cfg, device)       # TrainableDiT: .dit (GridDiT), .lora (LoraSet or None)
    trainable(x, timestep, context, mode="soft", camera=cameras)   # the DiT's forward
    trainable.parameter_groups()               # optimiser groups: sync layers, LoRA
    trainable.sync_layers()                    # nn.ModuleList of every block's SyncLayer (what sync weights hold)

Trained: the hard-sync gates (when "hard" is a training mode) and the soft-sync layers (when "soft" is) of every
block (model/sync.py; zero-initialised, so the model starts as the training-free merge / as the plain
two-stream model), and a LoRA on the block Linear layers (train/real/lora.py), in float32. The wave-1 finding
that motivates the LoRA: sync layers alone on a frozen DiT learn little; the DiT must adapt to two-stream mode.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ...model.checkpoint import LoadOptions, load_grid_dit
from ...model.fp8 import set_fp8_matmul
from ...model.sync import attach_sync_layers
from .config import RealTrainConfig
from .lora import LoraSet

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


class TrainableDiT(nn.Module):
    """A GridDiT and its LoRA under one module (what DDP / FSDP wrap); forward is the DiT's."""

    def __init__(self, dit, lora):
        super().__init__()
        self.dit, self.lora = dit, lora

    def forward(self, *args, **kwargs):
        return self.dit(*args, **kwargs)

    def sync_layers(self) -> nn.ModuleList:
        return nn.ModuleList([block.sync for block in self.dit.blocks])

    def parameter_groups(self) -> list:
        groups = [{"params": [p for p in self.sync_layers().parameters() if p.requires_grad]}]
        if self.lora is not None:
            groups.append({"params": list(self.lora.parameters())})
        return groups


def load_for_training(cfg: RealTrainConfig, device) -> torch.nn.Module:
    """The frozen DiT with the memory options that work with training (block swap is refused by the config)."""
    options = LoadOptions(dtype=DTYPES[cfg.dtype], attention=cfg.attention, row_chunks=cfg.row_chunks,
                          ffn_chunk=cfg.ffn_chunk, fp8=cfg.fp8)
    model = load_grid_dit(cfg.dit, device=device, options=options)
    if cfg.fp8:
        set_fp8_matmul(model, "dequant")   # the fp8 tensor-core matmul has no backward; dequantised bf16 has
    model.set_gradient_checkpointing(cfg.gradient_checkpointing)
    return model


def make_trainable(model, modes, sync_rank: int, lora_rank: int, lora_alpha=None, seed: int = 0) -> TrainableDiT:
    """Freeze a loaded GridDiT, attach float32 sync layers for `modes` and (lora_rank > 0) a LoRA."""
    torch.manual_seed(seed)   # the sync layers' initialisation: the same in every process
    attach_sync_layers(model, rank=sync_rank, hard="hard" in modes, soft="soft" in modes)
    model.requires_grad_(False)
    for block in model.blocks:
        block.sync.float().requires_grad_(True)
    lora = LoraSet(model, lora_rank, lora_alpha, seed=seed) if lora_rank else None
    return TrainableDiT(model, lora).train()


def prepare_dit(cfg: RealTrainConfig, device) -> TrainableDiT:
    return make_trainable(load_for_training(cfg, device), cfg.modes, cfg.sync_rank, cfg.lora_rank, cfg.lora_alpha,
                          cfg.seed)
