"""Where training batches come from: the interface the stages draw from, and its sources.

A DiT stage (train/stages.py) asks a `GridSource` for `GridBatch`es and never looks further:

    GridBatch.latents  [B, V, C, T, h, w]  clean latents of V views (V = 1 for single-view batches)
    GridBatch.context  [B, L, text_dim]    text features, caption dropout already applied
    GridBatch.cameras  [B, V, T, 12]       each view's camera per latent frame (relative extrinsics)

    class GridSource(Protocol):
        def grid_batch(self, size: int, single_view: bool = False) -> GridBatch
        def __len__(self) -> int          # samples available now
        def close(self) -> None

The autoencoder stage needs pixels instead: a `PixelSource` also has
`pixel_batch(size) -> (frames [n, F, H, W, 3] in 0..1, object masks [n, F, H, W])`.

Sources:
  SyntheticSource   scenes rendered while training (train/data.py), encoded with the model's own
                    autoencoder and text encoder. Those are trained by the first stages, so they are
                    passed in as functions and called as the model changes; the text encoder runs with
                    gradients exactly when it has trainable parameters (the video stage trains it).
  TensorGridSource  samples already held as tensors: what a latent cache of a real multi-camera
                    dataset (latents from the Wan VAE, umT5 features, cameras) loads and serves.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Callable, Optional, Protocol, Sequence

import numpy as np
import torch

from ..model.checks import InputError
from .data import SampleBank


@dataclass
class GridBatch:
    latents: torch.Tensor    # [B, V, C, T, h, w]
    context: torch.Tensor    # [B, L, text_dim]
    cameras: torch.Tensor    # [B, V, T, 12]


class GridSource(Protocol):
    def grid_batch(self, size: int, single_view: bool = False) -> GridBatch: ...

    def __len__(self) -> int: ...

    def close(self) -> None: ...


class PixelSource(Protocol):
    def pixel_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]: ...


# how many samples a batch waits for before it draws: enough variety for the first steps without stalling
# the first batches behind a long render
_MIN_SAMPLES_TO_DRAW = 64


class SyntheticSource:
    """Synthetic multi-camera scenes (synth/), rendered by `workers` processes while the model trains.

    encode_video: frames [N, F, H, W, 3] in 0..1 -> latents [N, C, T, h, w] (no gradients);
    encode_text:  captions -> features [B, L, text_dim]."""

    def __init__(self, cfg, device, encode_video: Callable[[torch.Tensor], torch.Tensor],
                 encode_text: Callable[[Sequence[str]], torch.Tensor]):
        self.views, self.device, self.caption_dropout = cfg.views, torch.device(device), cfg.caption_dropout
        self.encode_video, self.encode_text = encode_video, encode_text
        self.rng = random.Random(cfg.seed)
        self.bank = SampleBank(cfg.samples, cfg.views, cfg.height, cfg.width, cfg.frames, cfg.seed, cfg.workers,
                               cfg.data_style, cfg.arc_span, cfg.view_order, cfg.empty_scene_share)
        if cfg.workers > 0:
            torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))   # leave the cores to the renderers

    def start(self, first: int, log=print) -> None:
        """Wait for the first `first` samples (before any stage's time budget starts)."""
        t0 = time.time()
        self.bank.poll(at_least=first)
        spans = self.bank.dataset.arc_span
        more = "more in the background" if self.bank.workers else "more in this process as training draws them"
        log(f"data: {len(self.bank)} samples rendered in {time.time() - t0:.1f}s, {more}"
            + (f"; orbit arcs span {spans[0]:g}-{spans[1]:g} degrees" if spans else "")
            + (f"; views in {self.bank.dataset.view_order} order" if self.bank.dataset.view_order != "preset" else "")
            + (f"; {self.bank.dataset.empty_share:g} of the scenes empty (the floor alone, empty caption)"
               if self.bank.dataset.empty_share else ""))

    def __len__(self) -> int:
        return len(self.bank)

    def _draw(self, n: int) -> list[int]:
        # without workers half a batch of new scenes (at most 8) is rendered per draw, until --samples are there
        self.bank.poll(at_least=max(1, min(n, _MIN_SAMPLES_TO_DRAW)), fresh=max(1, min(n // 2, 8)))
        return [self.rng.randrange(len(self.bank)) for _ in range(n)]

    def pixel_batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """`size` single views: frames [n, F, H, W, 3] float in 0..1 and object masks [n, F, H, W], on the device."""
        idx = self._draw(size)
        views = [self.rng.randrange(self.views) for _ in range(size)]
        items = self.bank.items
        # numpy stacks (one thread): torch's threaded CPU ops crawl next to busy rendering workers
        frames = torch.from_numpy(np.stack([items[i]["videos"][v] for i, v in zip(idx, views)]))
        masks = torch.from_numpy(np.stack([items[i]["mask"][v] for i, v in zip(idx, views)]))
        return frames.to(self.device).float() / 255.0, masks.to(self.device)

    def grid_batch(self, size: int, single_view: bool = False) -> GridBatch:
        idx = self._draw(size)
        self.bank.encode_pending(self.encode_video, self.device)
        latents = torch.stack([self.bank.latents[i] for i in idx])
        cameras = torch.stack([torch.from_numpy(self.bank.items[i]["camera"]) for i in idx]).to(self.device)
        if single_view:   # one random view of each sample
            pick = torch.tensor([self.rng.randrange(self.views) for _ in range(size)], device=self.device)
            rows = torch.arange(size, device=self.device)
            latents, cameras = latents[rows, pick][:, None], cameras[rows, pick][:, None]
        captions = ["" if self.rng.random() < self.caption_dropout else self.bank.items[i]["caption"] for i in idx]
        return GridBatch(latents, self.encode_text(captions), cameras)

    def close(self) -> None:
        self.bank.close()


class TensorGridSource:
    """Samples held as tensors on one device: latents [N, V, C, T, h, w], context [N, L, D], cameras
    [N, V, T, 12]. Batches are drawn with replacement from their own generator (seeded), so drawing never
    moves torch's global random state; caption dropout replaces a sample's context by `null_context`
    ([L, D], the features of the empty caption: zeros when not given)."""

    def __init__(self, latents: torch.Tensor, context: torch.Tensor, cameras: torch.Tensor, seed: int = 0,
                 caption_dropout: float = 0.0, null_context: Optional[torch.Tensor] = None):
        n = latents.shape[0]
        if latents.ndim != 6 or context.ndim != 3 or cameras.ndim != 4:
            raise InputError(f"TensorGridSource: expected latents [N, V, C, T, h, w], context [N, L, D] and cameras "
                             f"[N, V, T, 12], got {list(latents.shape)}, {list(context.shape)}, {list(cameras.shape)}")
        if context.shape[0] != n or cameras.shape[:3] != (n, latents.shape[1], latents.shape[3]) or cameras.shape[3] != 12:
            raise InputError(f"TensorGridSource: latents {list(latents.shape)}, context {list(context.shape)} and "
                             f"cameras {list(cameras.shape)} do not describe the same N samples of V views, T frames")
        if len({latents.device, context.device, cameras.device}) != 1:
            raise InputError("TensorGridSource: latents, context and cameras must be on one device")
        for name, t in (("latents", latents), ("context", context), ("cameras", cameras)):
            if not torch.isfinite(t).all():
                raise InputError(f"TensorGridSource: {name} hold NaN or infinite values; rebuild the cache")
        self.latents, self.context, self.cameras = latents, context, cameras
        self.null_context = torch.zeros_like(context[0]) if null_context is None else null_context.to(context)
        self.caption_dropout = float(caption_dropout)
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return self.latents.shape[0]

    def grid_batch(self, size: int, single_view: bool = False) -> GridBatch:
        device = self.latents.device
        idx = torch.randint(len(self), (size,), generator=self.generator).to(device)
        latents, cameras = self.latents[idx], self.cameras[idx]
        if single_view:
            pick = torch.randint(latents.shape[1], (size,), generator=self.generator).to(device)
            rows = torch.arange(size, device=device)
            latents, cameras = latents[rows, pick][:, None], cameras[rows, pick][:, None]
        drop = (torch.rand(size, generator=self.generator) < self.caption_dropout).to(device)
        context = torch.where(drop[:, None, None], self.null_context, self.context[idx])
        return GridBatch(latents, context, cameras)

    def close(self) -> None:
        pass
