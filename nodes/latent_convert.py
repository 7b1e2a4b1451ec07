"""Conversions between ComfyUI's data and the tensors camgrid's model works on.

ComfyUI keeps latents *raw* (what the VAE's encoder gives; core VAEDecode takes them back) and a
model normalises them on the way in (`comfy.latent_formats.Wan21.process_in`). Our DiT works on
the normalised latent, so the sampler converts at its edges; every LATENT we emit is raw, which
keeps core VAE Decode and other latent nodes working on it.

A grid LATENT is `{"samples": [V*B, C, T, H, W], "camgrid": {"views": V, "batch": B, ...}}`,
view-major: entry `v*B + b` is view v of batch item b, so VAE Decode yields view 0's frames first.
"""
from __future__ import annotations

import torch

from ..model.checks import InputError, check_finite

# Wan2.1 VAE per-channel latent statistics (the same numbers as the VAE's config and ComfyUI's Wan21).
WAN21_LATENT_MEAN = (-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                     0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921)
WAN21_LATENT_STD = (2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
                    3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160)


def _stats(latent: torch.Tensor, channel_dim: int):
    shape = [1] * latent.ndim
    shape[channel_dim] = len(WAN21_LATENT_MEAN)
    mean = torch.tensor(WAN21_LATENT_MEAN, device=latent.device, dtype=latent.dtype).view(shape)
    std = torch.tensor(WAN21_LATENT_STD, device=latent.device, dtype=latent.dtype).view(shape)
    return mean, std


def normalize(latent: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """Raw Wan2.1 VAE latent -> the model's latent. Channel counts other than 16 (a test VAE, a
    model trained on its own latents) pass through unchanged."""
    if latent.shape[channel_dim] != len(WAN21_LATENT_MEAN):
        return latent
    mean, std = _stats(latent, channel_dim)
    return (latent - mean) / std


def denormalize(latent: torch.Tensor, channel_dim: int = 1) -> torch.Tensor:
    """The model's latent -> raw Wan2.1 VAE latent (inverse of `normalize`)."""
    if latent.shape[channel_dim] != len(WAN21_LATENT_MEAN):
        return latent
    mean, std = _stats(latent, channel_dim)
    return latent * std + mean


def grid_info(latent: dict) -> dict:
    """The camgrid entry of a LATENT; a plain video latent counts as one view per batch item."""
    samples = latent["samples"]
    info = dict(latent.get("camgrid") or {})
    info.setdefault("views", samples.shape[0])
    info.setdefault("batch", samples.shape[0] // max(1, int(info["views"])))
    return info


def latent_to_grid(latent: dict) -> torch.Tensor:
    """Grid LATENT -> raw latent grid [B, V, C, T, H, W]."""
    samples = latent["samples"]
    if samples.ndim != 5 or 0 in samples.shape:
        raise InputError(f"the latent must be a non-empty video latent [N, C, T, H, W], got shape "
                         f"{tuple(samples.shape)}: make it with CamGrid Empty Latent (or a Wan video latent node)")
    info = grid_info(latent)
    v, b = int(info["views"]), int(info["batch"])
    if v < 1 or b < 1 or v * b != samples.shape[0]:
        raise InputError(f"the latent holds {samples.shape[0]} videos but says it has {v} views x {b} batch: "
                         "it was edited by a node that changed its batch; make a fresh one with CamGrid Empty Latent")
    return samples.reshape(v, b, *samples.shape[1:]).transpose(0, 1)


def grid_to_latent(grid: torch.Tensor, **info) -> dict:
    """Raw latent grid [B, V, C, T, H, W] -> grid LATENT (view-major), with extra camgrid `info`."""
    b, v = grid.shape[:2]
    samples = grid.transpose(0, 1).reshape(v * b, *grid.shape[2:]).contiguous()
    return {"samples": samples, "camgrid": {"views": int(v), "batch": int(b), **info}}


def conditioning_to_context(conditioning, name: str = "positive") -> torch.Tensor:
    """ComfyUI CONDITIONING `[[tensor [1, L, D], {...}], ...]` -> text features [1, L, D] float32.

    Padding tokens carry nothing: ComfyUI's Wan text encoder already zeroes masked positions, and an
    `attention_mask` in the entry's options is honoured too. Only the first entry is used (the grid has one
    prompt). The sampler pads the features to Wan's 512 tokens (SamplerOptions.text_length), once.
    """
    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise InputError(f"{name}: expected a CONDITIONING from CLIP Text Encode, got {type(conditioning).__name__}")
    entry = conditioning[0]
    cond = entry[0] if isinstance(entry, (list, tuple)) and entry else entry
    options = entry[1] if isinstance(entry, (list, tuple)) and len(entry) > 1 and isinstance(entry[1], dict) else {}
    if not isinstance(cond, torch.Tensor) or cond.ndim != 3 or 0 in cond.shape:
        raise InputError(f"{name}: the conditioning tensor must be [1, tokens, features] with at least one token, "
                         f"got {tuple(getattr(cond, 'shape', ())) or type(cond).__name__}; encode the prompt with "
                         "CLIP Text Encode using a CLIP loaded as type 'wan' (umt5_xxl)")
    cond = check_finite(cond[:1].float(), f"{name}: the prompt features",
                        "re-encode the prompt (a text encoder run in fp16 can overflow; try its fp32 or bf16 weights)")
    mask = options.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.shape[-1] == cond.shape[1]:
        cond = cond * mask.reshape(1, -1, 1).to(cond)
    return cond
