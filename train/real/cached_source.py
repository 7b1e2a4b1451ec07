"""Training batches from a latent cache (train/real/latent_cache.py): a train/sources.py GridSource.

Each sample: a cached scene drawn at random (with replacement, from this process's own seeded generator),
`views` of its cached cameras in random order (the first is the reference view of the camera embedding),
their latents, the caption's features padded with zeros to 512 tokens (Wan's context length), and the
cameras encoded the way the DiT's variant wants them (model/modes.py camera_embedding: SynCamMaster's
relative extrinsics for syncammaster and plain Wan, ReCamMaster's for recammaster). With probability
`caption_dropout` a sample gets the empty caption's features instead (classifier-free guidance).

Shards are read through safetensors' memory map, only the views drawn; a few stay open (LRU).
"""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file

from ...model.camera import CameraRig
from ...model.checks import InputError
from ...model.components import TEXT_LENGTH
from ...model.modes import camera_embedding
from ..sources import GridBatch
from .latent_cache import NULL_CONTEXT_FILE, read_parts, read_settings

OPEN_SHARDS = 8


class CachedGridSource:
    def __init__(self, cache_dir, views: int, variant: str, device, seed: int = 0, caption_dropout: float = 0.0,
                 text_length: int = TEXT_LENGTH):
        self.cache_dir, self.views, self.variant = Path(cache_dir), int(views), variant
        self.device, self.text_length, self.caption_dropout = torch.device(device), text_length, float(caption_dropout)
        self.settings = read_settings(self.cache_dir)
        entries = read_parts(self.cache_dir)
        self.entries = [(shard, scene) for shard, scene in entries if len(scene["cameras"]) >= self.views]
        if not self.entries:
            few = f" ({len(entries)} scenes have fewer than {views} cameras)" if entries else ""
            raise InputError(f"{self.cache_dir}: no cached scene with {views} cameras{few}; build the cache with "
                             "--data, or ask for fewer --views")
        null = self.cache_dir / NULL_CONTEXT_FILE
        if not null.is_file():
            raise InputError(f"{null} is missing: the cache build did not finish; run it again with --data")
        self.null_context = load_file(str(null))["context"]
        self.generator = torch.Generator().manual_seed(int(seed))
        self._open: OrderedDict = OrderedDict()

    def __len__(self) -> int:
        return len(self.entries)

    def _shard(self, name: str):
        if name not in self._open:
            if len(self._open) >= OPEN_SHARDS:
                self._open.popitem(last=False)[1].__exit__(None, None, None)
            handle = safe_open(str(self.cache_dir / name), framework="pt", device="cpu")
            self._open[name] = handle.__enter__()
        self._open.move_to_end(name)
        return self._open[name]

    def _padded(self, context: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.text_length, context.shape[-1])
        out[:min(len(context), self.text_length)] = context[:self.text_length].float()
        return out

    def sample(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latents [V, C, T, h, w], context [512, D], cameras [V, T, 12]) of cached scene `index`, views drawn."""
        shard, scene = self.entries[index]
        f, slot = self._shard(shard), scene["slot"]
        pick = torch.randperm(len(scene["cameras"]), generator=self.generator)[:self.views].tolist()
        stored = f.get_slice(f"{slot}.latents")
        latents = torch.cat([stored[i:i + 1] for i in pick]).float()
        c2w, intrinsics = f.get_tensor(f"{slot}.c2w")[pick], f.get_tensor(f"{slot}.intrinsics")[pick]
        rig = CameraRig(c2w, intrinsics, [scene["cameras"][i] for i in pick])
        cameras = camera_embedding(rig, self.variant, latents.shape[2])
        dropped = torch.rand((), generator=self.generator) < self.caption_dropout
        context = self.null_context if dropped else f.get_tensor(f"{slot}.context")
        return latents, self._padded(context), cameras

    def grid_batch(self, size: int, single_view: bool = False) -> GridBatch:
        picks = torch.randint(len(self.entries), (size,), generator=self.generator).tolist()
        samples = [self.sample(i) for i in picks]
        latents, context, cameras = (torch.stack(parts).to(self.device) for parts in zip(*samples))
        if single_view:
            latents, cameras = latents[:, :1], cameras[:, :1]
        return GridBatch(latents, context, cameras)

    def close(self) -> None:
        while self._open:
            self._open.popitem()[1].__exit__(None, None, None)
