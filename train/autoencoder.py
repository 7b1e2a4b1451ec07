"""A tiny video autoencoder for the built-in model: frames [N, F, H, W, 3] <-> latents [N, C, T, H/4, W/4].

Why a latent space rather than pixels: the DiT then sees the same grid structure as the real
pipeline. Time is packed like Wan's causal VAE, T = (F - 1) / 4 + 1 (the first frame alone, then
groups of 4; done by repeating the first frame 3 times in front), so `relative_extrinsics` gives one
camera per latent frame exactly as for Wan, and the DiT keeps Wan's (1, 2, 2) patches. Each latent frame is its group of 4 frames stacked as channels through 2D convolutions
(3D convolutions trained too slowly here). Space is
compressed 4x rather than Wan's 8x: at 48x80 pixels an 8x latent (6x10) cannot hold the checkered
floor and small objects sharply enough for colour segmentation, while 4x (12x20, 8 channels) trains
to clean reconstructions in a minute; with 2x2 patches a token still covers 8x8 pixels, as in Wan.
Pixel space was the other option: 17 frames x 6x10 tokens of 8x8 pixels is 13x the tokens per view,
too slow for the 2-minute CPU demo.

Latents are normalised per channel with statistics measured on training data (like Wan's
`latents_mean` / `latents_std`), so the flow-matching noise has the scale of the data.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

TEMPORAL_STRIDE = 4
SPATIAL_STRIDE = 4


class ResBlock2d(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.silu(self.conv1(F.silu(x))))


class TinyVideoAE(nn.Module):
    """Each latent frame encodes its group of 4 video frames, stacked as 12 input channels, with 2D
    convolutions (fast on any device); the first group is the first frame repeated (causal, like Wan)."""

    def __init__(self, latent_dim: int = 8, width: int = 64):
        super().__init__()
        self.latent_dim, self.width = int(latent_dim), int(width)
        w1, w2 = width, 2 * width
        c_in = 3 * TEMPORAL_STRIDE
        self.encoder = nn.Sequential(
            nn.Conv2d(c_in, w1, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w1, w2, 4, stride=2, padding=1), ResBlock2d(w2),          # H/2, W/2
            nn.Conv2d(w2, w2, 4, stride=2, padding=1), ResBlock2d(w2),          # H/4, W/4
            nn.SiLU(), nn.Conv2d(w2, latent_dim, 1))
        self.decoder = nn.Sequential(
            nn.Conv2d(latent_dim, w2, 3, padding=1), ResBlock2d(w2),
            nn.ConvTranspose2d(w2, w2, 4, stride=2, padding=1), ResBlock2d(w2),
            nn.ConvTranspose2d(w2, w1, 4, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w1, w1, 3, padding=1), nn.SiLU(), nn.Conv2d(w1, c_in, 3, padding=1))
        # per-channel latent statistics (set by `measure_latent_stats` after training)
        self.register_buffer("latent_mean", torch.zeros(latent_dim))
        self.register_buffer("latent_std", torch.ones(latent_dim))
        self.channels_last = False   # see use_channels_last

    def use_channels_last(self) -> "TinyVideoAE":
        """Run the convolutions in the channels-last layout, weights and inputs. On a CPU that is oneDNN's faster
        path: the quick start's decode of 8 grids took 0.83 of the time (1.96 s against 2.38, medians of 5, 2
        AVX2 cores; benchmarks/bench_demo_io.py). The frames move by under 1e-6 (another summation order)."""
        self.to(memory_format=torch.channels_last)
        self.channels_last = True
        return self

    def _conv_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def config(self) -> dict:
        return {"latent_dim": self.latent_dim, "width": self.width}

    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    @staticmethod
    def latent_frames(num_frames: int) -> int:
        if num_frames < 1 or (num_frames - 1) % TEMPORAL_STRIDE:
            raise ValueError(f"frames must be 4k+1 (like Wan's VAE), got {num_frames}")
        return (num_frames - 1) // TEMPORAL_STRIDE + 1

    def _stats(self):
        return self.latent_mean.view(1, -1, 1, 1, 1), self.latent_std.view(1, -1, 1, 1, 1)

    def encode_raw(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [N, F, H, W, 3] in 0..1 -> un-normalised latents [N, C, T, H/4, W/4]."""
        n, f, h, w, _ = frames.shape
        self.latent_frames(f)
        if h % SPATIAL_STRIDE or w % SPATIAL_STRIDE:
            raise ValueError(f"height and width must be multiples of {SPATIAL_STRIDE}, got {h}x{w}")
        x = frames.to(self.device, torch.float32).permute(0, 4, 1, 2, 3) * 2 - 1      # [N, 3, F, H, W]
        x = torch.cat([x[:, :, :1].expand(-1, -1, TEMPORAL_STRIDE - 1, -1, -1), x], dim=2)  # causal: 4T frames
        t = x.shape[2] // TEMPORAL_STRIDE
        groups = x.reshape(n, 3, t, TEMPORAL_STRIDE, h, w).permute(0, 2, 1, 3, 4, 5).reshape(n * t, -1, h, w)
        z = self.encoder(self._conv_input(groups))
        return z.reshape(n, t, *z.shape[1:]).transpose(1, 2)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """frames [N, F, H, W, 3] in 0..1 -> normalised latents [N, C, T, H/4, W/4]."""
        mean, std = self._stats()
        return (self.encode_raw(frames) - mean) / std

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        """un-normalised latents -> frames [N, F, H, W, 3], unclamped (-1..1 range mapped to 0..1)."""
        n, c, t, h, w = z.shape
        y = self.decoder(self._conv_input(z.transpose(1, 2).reshape(n * t, c, h, w).to(self.device)))
        y = y.reshape(n, t, 3, TEMPORAL_STRIDE, *y.shape[-2:]).permute(0, 1, 3, 4, 5, 2)   # [N, T, 4, H, W, 3]
        x = y.reshape(n, t * TEMPORAL_STRIDE, *y.shape[-3:])[:, TEMPORAL_STRIDE - 1:]
        return (x.float() + 1) / 2

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """normalised latents [N, C, T, h, w] (or a grid [B, V, C, T, h, w]) -> frames [..., F, H, W, 3] in 0..1."""
        lead = z.shape[:-4]
        z = z.reshape(-1, *z.shape[-4:])
        mean, std = self._stats()
        frames = self.decode_raw(z.to(self.device, torch.float32) * std + mean).clamp(0, 1)
        return frames.reshape(*lead, *frames.shape[1:])

    @torch.no_grad()
    def measure_latent_stats(self, frames_batches) -> None:
        """Set latent_mean / latent_std from an iterable of frame batches [N, F, H, W, 3]."""
        zs = [self.encode_raw(f).transpose(0, 1).flatten(1) for f in frames_batches]
        z = torch.cat(zs, dim=1)
        self.latent_mean.copy_(z.mean(1))
        self.latent_std.copy_(z.std(1).clamp(min=1e-4))
