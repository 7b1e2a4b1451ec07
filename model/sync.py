"""4Real-Video synchronization layers (docs/ARCHITECTURE.md §3.3 Grid modes) and their own weights file.

After every block the two streams of the grid (view stream, time stream) are merged:
- hard:  x = Wv(σ) ⊙ y_view + Wt(σ) ⊙ y_time, Wv = ½ + g(σ), Wt = ½ - g(σ). `HardSyncGate` is g: a
         per-channel gate from the timestep, clamped to [-½, ½] so both weights stay in [0, 1].
         Zero-initialised, so an untrained gate is the plain average (training-free mode).
- soft:  the streams keep separate states; (Δv, Δt) = SoftSync(y_view, y_time, σ) with a LayerNorm of
         [y_view, y_time], Wan-style shift/scale modulation from the block's timestep projection, and a
         low-rank Linear(2d -> r -> 2d) whose last layer is zero-initialised (an untrained layer is a no-op).

Weights live in a separate camgrid file with keys `blocks.{i}.sync.gate.*` / `blocks.{i}.sync.soft.*`
and metadata naming the model width and depth they were trained for. Loading checks the whole file
(every block's keys and shapes, the model's width and depth, finite values) before it changes the model.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from .checks import InputError
from .files import atomic_save
from .key_layouts import block_count
from .timestep import sinusoid_embedding
from .weights_io import WEIGHT_DTYPES, CheckpointError, WeightsSource, check_finite, open_weights, problem_list

GATE_FREQ_DIM = 32


class HardSyncGate(nn.Module):
    """g(σ) per channel; x = (½ + g) y_view + (½ - g) y_time."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(GATE_FREQ_DIM, dim)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, timestep: torch.Tensor) -> torch.Tensor:
        g = self.proj(sinusoid_embedding(GATE_FREQ_DIM, timestep).to(self.proj.weight.dtype)).float()
        return g.clamp(-0.5, 0.5)[:, None, :]  # [B, 1, dim]


class SoftSync(nn.Module):
    """(Δv, Δt) from both streams; zero at initialisation."""

    def __init__(self, dim: int, rank: int = 64, eps: float = 1e-6):
        super().__init__()
        self.dim, self.rank = dim, rank
        self.norm = nn.LayerNorm(2 * dim, eps=eps, elementwise_affine=False)
        self.modulation = nn.Parameter(torch.zeros(1, 2, 2 * dim))
        self.down = nn.Linear(2 * dim, rank)
        self.up = nn.Linear(rank, 2 * dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, y_view, y_time, t_mod):
        # shift/scale as in a Wan block: own parameter + the shared timestep projection (t_mod[:, :2]),
        # the same projection for both halves of the concatenated features
        shift, scale = (self.modulation + t_mod[:, :2].repeat(1, 1, 2)).chunk(2, dim=1)
        h = self.norm(torch.cat([y_view, y_time], dim=-1).float()) * (1 + scale) + shift
        delta = self.up(F.gelu(self.down(h.to(self.down.weight.dtype)), approximate="tanh")).float()
        return delta[..., : self.dim], delta[..., self.dim:]


class SyncLayer(nn.Module):
    """The per-block container saved under `blocks.{i}.sync.*`."""

    def __init__(self, dim: int, rank: int = 64, eps: float = 1e-6, hard: bool = True, soft: bool = True):
        super().__init__()
        self.gate = HardSyncGate(dim) if hard else None
        self.soft = SoftSync(dim, rank, eps) if soft else None


def attach_sync_layers(model, rank: int = 64, hard: bool = True, soft: bool = True):
    """Give every block of `model` a fresh (identity-initialised) SyncLayer; returns the model."""
    p = next(model.parameters())
    for block in model.blocks:
        block.sync = SyncLayer(model.config.dim, rank, model.config.eps, hard, soft).to(p.device, p.dtype)
    return model


def sync_state_dict(model) -> dict:
    return {f"blocks.{i}.sync.{k}": v for i, b in enumerate(model.blocks) if b.sync is not None
            for k, v in b.sync.state_dict().items()}


def save_sync_weights(model, path) -> None:
    sd = {k: v.detach().contiguous().cpu() for k, v in sync_state_dict(model).items()}
    if not sd:
        raise InputError("save_sync_weights: the model has no sync layers; call attach_sync_layers first")
    rank = next((b.sync.soft.rank for b in model.blocks if b.sync is not None and b.sync.soft is not None), 0)
    meta = {"format": "camgrid-sync", "dim": str(model.config.dim), "num_layers": str(model.config.num_layers),
            "rank": str(rank), "model": model.config.size_name}
    atomic_save(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))


def load_sync_weights(model, path_or_state_dict):
    """Attach and fill sync layers from a camgrid sync-weights file (or state dict); returns the model.

    The whole file is checked first (keys, shapes of every block, the model's width and depth, finite
    values): a file that does not fit leaves the model as it was."""
    with open_weights(path_or_state_dict, what="sync-weights file") as weights:
        rank, hard, soft = _sync_layout(weights, model.config)
        expected = {k: tuple(v.shape) for k, v in _meta_layer(model.config, rank, hard, soft).state_dict().items()}
        _check_blocks(weights, expected)
        dtype = model.patch_embedding.weight.dtype
        per_block = [{} for _ in model.blocks]
        for key in weights.infos:
            stored = weights.tensor(key)
            value = stored.to(dtype)
            check_finite(weights.name, key, value, stored)
            index, part = _split(key)
            per_block[index][part] = value
    attach_sync_layers(model, rank=rank, hard=hard, soft=soft)
    for block, sd in zip(model.blocks, per_block):
        block.sync.load_state_dict(sd, strict=True)
    return model


def _split(key: str) -> tuple[int, str]:
    """blocks.{i}.sync.{part} -> (i, part)."""
    _, index, _, part = key.split(".", 3)
    return int(index), part


def _meta_layer(config, rank: int, hard: bool, soft: bool) -> SyncLayer:
    with torch.device("meta"):
        return SyncLayer(config.dim, rank, config.eps, hard, soft)


def _sync_layout(weights: WeightsSource, config) -> tuple[int, bool, bool]:
    """(rank, has hard gates, has soft layers) of a sync-weights file, which must fit the model's size."""
    name, infos = weights.name, weights.infos
    not_sync = [k for k in infos if not (k.startswith("blocks.") and k.count(".") >= 3 and k.split(".")[2] == "sync")]
    if not infos or len(not_sync) == len(infos):
        raise CheckpointError(f"{name}: not a camgrid sync-weights file (no 'blocks.N.sync.*' keys). "
                              "Pick a file saved by camgrid's trainer (save_sync_weights).")
    if not_sync:
        raise CheckpointError(f"{name}: besides sync weights it holds {len(not_sync)} other tensors "
                              f"({problem_list(not_sync, 4)}); pick a file saved by save_sync_weights")
    layers = block_count(infos, name)
    parts = {_split(k)[1]: info for k, info in infos.items() if k.startswith("blocks.0.")}
    hard, soft = any(p.startswith("gate.") for p in parts), any(p.startswith("soft.") for p in parts)
    gate, down = parts.get("gate.proj.weight"), parts.get("soft.down.weight")
    if gate is not None and len(gate.shape) == 2:
        dim = gate.shape[0]
    elif down is not None and len(down.shape) == 2 and down.shape[1] % 2 == 0:
        dim = down.shape[1] // 2
    else:
        raise CheckpointError(f"{name}: block 0 has neither a 2-D 'sync.gate.proj.weight' nor a 2-D "
                              "'sync.soft.down.weight'; the file is damaged: save or download it again")
    if dim != config.dim or layers != config.num_layers:
        raise CheckpointError(
            f"{name}: sync weights were trained for a model of width {dim} with {layers} blocks, but the loaded "
            f"model has width {config.dim} with {config.num_layers} blocks ({config.size_name}). "
            "Use sync weights made for this model size.")
    rank = down.shape[0] if soft and down is not None and len(down.shape) == 2 else 64
    if rank < 1:
        raise CheckpointError(f"{name}: 'blocks.0.sync.soft.down.weight' has rank 0; the file is damaged")
    return rank, hard, soft


def _check_blocks(weights: WeightsSource, expected: dict) -> None:
    """Every block holds exactly the keys and shapes of a SyncLayer of block 0's kind and rank."""
    name, infos = weights.name, weights.infos
    layers = block_count(infos, name)
    wanted = {f"blocks.{i}.sync.{part}": shape for i in range(layers) for part, shape in expected.items()}
    missing, unexpected = wanted.keys() - infos.keys(), infos.keys() - wanted.keys()
    bad = [f"{k} {list(infos[k].shape)} != {list(s)}" for k, s in wanted.items() if k in infos and infos[k].shape != s]
    if missing or unexpected or bad:
        found = [f"missing {problem_list(missing, 4)}" if missing else "", f"unexpected {problem_list(unexpected, 4)}"
                 if unexpected else "", f"shapes {problem_list(bad, 4)}" if bad else ""]
        raise CheckpointError(f"{name}: the sync layers differ between blocks or from block 0's kind and rank "
                              f"({'; '.join(f for f in found if f)}); the file is damaged: save or download it again")
    wrong = [f"{k} ({str(i.dtype).replace('torch.', '')})" for k, i in infos.items() if i.dtype not in WEIGHT_DTYPES[:4]]
    if wrong:
        raise CheckpointError(f"{name}: sync weights must be float32, float16 or bfloat16, found {problem_list(wrong, 4)}")
