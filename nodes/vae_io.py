"""Encoding and decoding with ComfyUI's VAE object, one video at a time.

Only the VAE's public methods are used (duck typing, so tests can hand in a small stand-in):
  vae.decode(latent [1, C, T, h, w]) -> frames [1, F, H, W, 3] (or [F, H, W, 3]), float 0..1
  vae.decode_tiled(latent, tile_x, tile_y, overlap, tile_t, overlap_t)   sizes in latent units
  vae.encode(frames [F, H, W, 3]) -> raw latent [1, C, T, h, w]
  vae.encode_tiled(frames, tile_x, tile_y, overlap, tile_t, overlap_t)   sizes in pixels
  vae.spacial_compression_decode() / temporal_compression_decode()       (8 and 4 for Wan2.1)
"""
from __future__ import annotations

import torch

from . import host


def _compressions(vae) -> tuple[int, int | None]:
    spatial = getattr(vae, "spacial_compression_decode", lambda: 8)()
    temporal = getattr(vae, "temporal_compression_decode", lambda: 4)()
    return int(spatial), (None if temporal is None else int(temporal))


def _as_frames(pixels: torch.Tensor) -> torch.Tensor:
    """[1, F, H, W, 3] / [F, H, W, 3] -> float [F, H, W, 3] on the CPU."""
    if pixels.ndim == 5:
        pixels = pixels.reshape(-1, *pixels.shape[-3:])
    if pixels.ndim != 4 or pixels.shape[-1] != 3:
        raise ValueError(f"the VAE decoded an unexpected shape {tuple(pixels.shape)}; is it a video VAE "
                         "(Wan2.1 VAE for Wan2.1 models)?")
    return pixels.float().cpu()


def decode_video(vae, latent: torch.Tensor, tiled: bool = False, tile_size: int = 256, overlap: int = 64,
                 temporal_size: int = 64, temporal_overlap: int = 8) -> torch.Tensor:
    """One raw latent video [1, C, T, h, w] -> frames [F, H, W, 3] (CPU). Tile sizes are in pixels and
    video frames, as in core VAE Decode (Tiled)."""
    if not tiled:
        return _as_frames(vae.decode(latent))
    if not hasattr(vae, "decode_tiled"):
        raise ValueError("this VAE has no tiled decoding; set tiled to false")
    spatial, temporal = _compressions(vae)
    overlap = min(overlap, tile_size // 4)
    args = dict(tile_x=tile_size // spatial, tile_y=tile_size // spatial, overlap=overlap // spatial)
    if temporal is not None:
        temporal_overlap = min(temporal_overlap, temporal_size // 2)
        args["tile_t"] = max(2, temporal_size // temporal)
        args["overlap_t"] = max(1, min(args["tile_t"] // 2, temporal_overlap // temporal))
    return _as_frames(vae.decode_tiled(latent, **args))


def encode_video(vae, frames: torch.Tensor, tiled: bool = False, tile_size: int = 512, overlap: int = 64) -> torch.Tensor:
    """Frames [F, H, W, 3] float 0..1 -> raw latent [1, C, T, h, w] (CPU, float32)."""
    if tiled and hasattr(vae, "encode_tiled"):
        latent = vae.encode_tiled(frames, tile_x=tile_size, tile_y=tile_size, overlap=overlap)
    else:
        latent = vae.encode(frames)
    if latent.ndim == 4:  # an image VAE gives [F, C, h, w]: not a video latent
        raise ValueError(f"the VAE encoded the video to {tuple(latent.shape)}, an image latent; use the Wan2.1 "
                         "video VAE (wan_2.1_vae.safetensors)")
    host.soft_empty_cache()
    return latent.float().cpu()
