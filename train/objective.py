"""The training objective: flow matching on the path the sampler integrates (model/sampling.py).

x_σ = (1 - σ)·x0 + σ·noise, target v = noise - x0, timestep 1000·σ, with σ = shift(u) for u ~ U(0, 1)
and the sampler's own shift σ' = s·σ / (1 + (s - 1)·σ), so training weights the noise levels the way
sampling visits them (unless TrainConfig.train_shift gives the stages another s: 1 draws σ uniformly).

`mixed_precision` is the DiT stages' autocast: bfloat16 linear layers and attention on CUDA (the model keeps
its LayerNorms, modulation and residual stream in float32, docs/ARCHITECTURE.md §3.1 Base block), the
loss in float32.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from ..model.checks import InputError
from ..model.sampling import NUM_TRAIN_TIMESTEPS, shift_sigmas
from .config import AMP_CHOICES


def mixed_precision(device, amp: str = "auto"):
    """The autocast context of a DiT forward in training (see the module docstring)."""
    if amp not in AMP_CHOICES:
        raise InputError(f"amp (--amp): expected one of {AMP_CHOICES}, got {amp!r}")
    device = torch.device(device)
    enabled = amp == "bf16" or (amp == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def flow_matching_loss(model, x0: torch.Tensor, context: torch.Tensor, shift: float, mode: str = "independent",
                       camera: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x0 [B, V, C, T, h, w] clean latents -> MSE between the predicted and the true velocity."""
    b = x0.shape[0]
    sigma = shift_sigmas(torch.rand(b, device=x0.device), shift)
    noise = torch.randn_like(x0)
    s = sigma.view(b, 1, 1, 1, 1, 1)
    x = (1 - s) * x0 + s * noise
    pred = model(x, float(NUM_TRAIN_TIMESTEPS) * sigma, context, mode=mode, camera=camera)
    return F.mse_loss(pred.float(), noise - x0)
