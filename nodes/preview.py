"""Live previews during sampling: a grid latent -> one small picture of every view.

ComfyUI previews a sampler's current x0 estimate by projecting each latent pixel to RGB with a
matrix per latent format (`Latent2RGBPreviewer`, `comfy.latent_formats.*.latent_rgb_factors`), or
with a tiny decoder (TAESD / TAEHV) when the user installed one. It knows Wan's 16- and 48-channel
latents but not the built-in model's 8-channel one, and it shows one video. So here:

- `tile_views` lays the views of a grid latent out as one latent picture (as square as possible, the
  layout CamGrid Decode uses), which any of ComfyUI's previewers then turns into one image;
- `latent_rgb_factors` gives the projection for the built-in autoencoder (fitted by
  `python -m camgrid.train.fit_preview`; Wan's come from ComfyUI's own latent formats);
- `latent_to_rgb` applies a projection without ComfyUI (tests, scripts).

No ComfyUI import here: nodes/host.py hands these to ComfyUI's preview machinery.
"""
from __future__ import annotations

import torch

from ..model.video_io import grid_layout, tile_frames

BUILTIN_LATENT_CHANNELS = 8  # the built-in tiny autoencoder (train/autoencoder.py)

# latent channel -> (r, g, b) in -1..1 and the bias, for the built-in autoencoder's normalised latent.
# From `python -m camgrid.train.fit_preview` (96 synthetic scenes; held-out PSNR at latent resolution
# 26.1 dB vs the decoded frames). Refit when the autoencoder is retrained (tests/test_preview.py checks).
TINY_AE_LATENT_RGB_FACTORS = (
    (-0.1156, -0.1083, -0.1006),
    (-0.0202, -0.0943, -0.0104),
    (0.0173, -0.0348, -0.0027),
    (-0.1566, -0.0656, -0.0535),
    (-0.0269, 0.0176, -0.0062),
    (0.0609, 0.0911, 0.1930),
    (-0.0071, 0.0254, -0.0215),
    (-0.0107, -0.0419, -0.0380),
)
TINY_AE_LATENT_RGB_BIAS = (0.0645, 0.0763, 0.0888)


def latent_rgb_factors(channels: int):
    """(factors [C][3], bias [3]) of camgrid's own latents with `channels` channels, or None (Wan's
    16 / 48 channels are ComfyUI's formats: its previewers, TAEHV included, handle them)."""
    if channels == BUILTIN_LATENT_CHANNELS:
        return TINY_AE_LATENT_RGB_FACTORS, TINY_AE_LATENT_RGB_BIAS
    return None


def tile_views(latent: torch.Tensor) -> torch.Tensor:
    """The first batch item's views as one latent picture: a grid [B, V, C, T, H, W] ->
    [1, C, T, rows*H, cols*W] (views left to right, top to bottom; empty cells zero). A plain
    video latent [B, C, T, H, W] is one view: its first item is returned."""
    if latent.ndim == 5:
        return latent[:1]
    if latent.ndim != 6:
        raise ValueError(f"a preview needs a latent grid [B, V, C, T, H, W] or video [B, C, T, H, W], "
                         f"got shape {tuple(latent.shape)}")
    views = latent[0].permute(0, 2, 3, 4, 1)                      # [V, T, H, W, C]
    rows, cols = grid_layout(views.shape[0])
    return tile_frames(views, rows, cols).permute(3, 0, 1, 2)[None]  # [1, C, T, rows*H, cols*W]


def latent_to_rgb(latent: torch.Tensor, factors, bias, frame: int = 0) -> torch.Tensor:
    """One latent frame of a [1, C, T, H, W] latent -> colours [H, W, 3] in 0..1, as ComfyUI's
    Latent2RGBPreviewer computes them (projection to -1..1, then mapped to 0..1)."""
    x = latent[0, :, frame].float().movedim(0, -1)                # [H, W, C]
    f = torch.as_tensor(factors, dtype=x.dtype, device=x.device)
    b = torch.as_tensor(bias, dtype=x.dtype, device=x.device)
    return ((x @ f + b + 1) / 2).clamp(0, 1)


__all__ = ["BUILTIN_LATENT_CHANNELS", "TINY_AE_LATENT_RGB_FACTORS", "TINY_AE_LATENT_RGB_BIAS",
           "latent_rgb_factors", "tile_views", "latent_to_rgb"]
