"""4Real-Video synchronization layers (DESIGN §3.3) and their own weights file.

After every block the two streams of the grid (view stream, time stream) are merged:
- hard:  x = Wv(σ) ⊙ y_view + Wt(σ) ⊙ y_time, Wv = ½ + g(σ), Wt = ½ - g(σ). `HardSyncGate` is g: a
         per-channel gate from the timestep, clamped to [-½, ½] so both weights stay in [0, 1].
         Zero-initialised, so an untrained gate is the plain average (training-free mode).
- soft:  the streams keep separate states; (Δv, Δt) = SoftSync(y_view, y_time, σ) with a LayerNorm of
         [y_view, y_time], Wan-style shift/scale modulation from the block's timestep projection, and a
         low-rank Linear(2d -> r -> 2d) whose last layer is zero-initialised (an untrained layer is a no-op).

Weights live in a separate camgrid file with keys `blocks.{i}.sync.gate.*` / `blocks.{i}.sync.soft.*`
and metadata naming the model width and depth they were trained for.
"""
from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from .timestep import sinusoid_embedding

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
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().cpu() for k, v in sync_state_dict(model).items()}
    if not sd:
        raise ValueError("save_sync_weights: the model has no sync layers; call attach_sync_layers first")
    rank = next((b.sync.soft.rank for b in model.blocks if b.sync is not None and b.sync.soft is not None), 0)
    meta = {"format": "camgrid-sync", "dim": str(model.config.dim), "num_layers": str(model.config.num_layers),
            "rank": str(rank), "model": model.config.size_name}
    save_file(sd, str(path), metadata=meta)


def load_sync_weights(model, path_or_state_dict, strict: bool = True):
    """Attach and fill sync layers from a camgrid sync-weights file; checks it fits the model."""
    from .checkpoint import read_state_dict

    sd, meta = read_state_dict(path_or_state_dict) if not isinstance(path_or_state_dict, dict) else (path_or_state_dict, {})
    name = path_or_state_dict if not isinstance(path_or_state_dict, dict) else "state dict"
    sync_keys = [k for k in sd if ".sync." in k]
    if not sync_keys:
        raise ValueError(f"{name}: not a camgrid sync-weights file (no 'blocks.N.sync.*' keys). "
                         "Pick a file saved by camgrid's trainer (save_sync_weights).")
    layers = 1 + max(int(k.split(".")[1]) for k in sync_keys)
    probe = next((sd[k] for k in sync_keys if k.endswith("gate.proj.weight") or k.endswith("soft.down.weight")))
    dim = probe.shape[0] if probe.ndim == 2 and probe.shape[1] == GATE_FREQ_DIM else probe.shape[1] // 2
    if dim != model.config.dim or layers != model.config.num_layers:
        raise ValueError(
            f"{name}: sync weights were trained for a model of width {dim} with {layers} blocks, but the loaded "
            f"model has width {model.config.dim} with {model.config.num_layers} blocks ({model.config.size_name}). "
            "Use sync weights made for this model size.")
    has_gate = any(".sync.gate." in k for k in sync_keys)
    has_soft = any(".sync.soft." in k for k in sync_keys)
    rank = sd["blocks.0.sync.soft.down.weight"].shape[0] if has_soft else 64
    attach_sync_layers(model, rank=rank, hard=has_gate, soft=has_soft)
    for i, block in enumerate(model.blocks):
        prefix = f"blocks.{i}.sync."
        block.sync.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, strict=strict)
    return model
