"""The training objective: flow matching on the path the sampler integrates (model/sampling.py).

x_σ = (1 - σ)·x0 + σ·noise, target v = noise - x0, timestep 1000·σ, with σ = shift(u) for u ~ U(0, 1)
and the sampler's own shift σ' = s·σ / (1 + (s - 1)·σ), so training weights the noise levels the way
sampling visits them (unless TrainConfig.train_shift gives the stages another s: 1 draws σ uniformly).

`mixed_precision` is the DiT stages' autocast: bfloat16 linear layers and attention on CUDA (the model keeps
its LayerNorms, modulation and residual stream in float32, docs/ARCHITECTURE.md §3.1 Base block), the
loss in float32.

Given views (`given_view_share`, camgrid train --given-view-share): in that share of the multi-view samples one
view, drawn at random, is noised less than the others (σ_given = u·σ, u ~ U(0, 1)) and left out of the loss,
so the model learns to draw the other views from a view it can already see, for their own cameras: what
novel-view synthesis asks of it (a source video held at a lower noise level, `SourceVideo(noise_scale=...)`).
The DiT is not told which view it is (one timestep per grid): it sees it in the latents.
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
                       camera: Optional[torch.Tensor] = None, given_view_share: float = 0.0) -> torch.Tensor:
    """x0 [B, V, C, T, h, w] clean latents -> MSE between the predicted and the true velocity (given views: the
    module docstring)."""
    b, v = x0.shape[:2]
    sigma = shift_sigmas(torch.rand(b, device=x0.device), shift)
    noise = torch.randn_like(x0)
    s = sigma.view(b, 1, 1, 1, 1, 1)
    given = given_views(b, v, given_view_share, x0.device) if given_view_share > 0 and v > 1 else None
    if given is not None:   # the given views at u·σ
        s = torch.where(given[:, :, None, None, None, None], s * torch.rand(b, 1, 1, 1, 1, 1, device=x0.device), s)
    x = (1 - s) * x0 + s * noise
    pred = model(x, float(NUM_TRAIN_TIMESTEPS) * sigma, context, mode=mode, camera=camera)
    if given is None:
        return F.mse_loss(pred.float(), noise - x0)
    per_view = (pred.float() - (noise - x0)).pow(2).mean(dim=(2, 3, 4, 5))
    scored = (~given).float()
    return (per_view * scored).sum() / scored.sum()


def given_views(b: int, v: int, share: float, device) -> torch.Tensor:
    """[B, V] bool: for each sample, with probability `share`, one view drawn at random is given."""
    if not 0.0 <= share <= 1.0:
        raise InputError(f"given_view_share (--given-view-share): expected a share in [0, 1], got {share}")
    which = torch.randint(v, (b,), device=device)
    chosen = torch.rand(b, device=device) < share
    return (torch.arange(v, device=device)[None] == which[:, None]) & chosen[:, None]
