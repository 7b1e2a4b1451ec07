"""A bank of rendered training samples in memory, filled by background worker processes.

Rendering (synth.render, a CPU ray caster) is the slow part of training tiny models, so worker
processes render samples of `SyntheticMultiViewDataset` while the GPU trains; `poll()` moves finished
samples into the bank without waiting. Frames are kept as uint8, object masks as bool (the AE loss
weighs object pixels up: they carry what the consistency metric measures). Every sample of a bank
has the same number of views, so batches stack. `encode_pending` keeps every sample's latents on the
device once the autoencoder exists (an in-memory latent cache). train/sources.py draws batches from it.
"""
from __future__ import annotations

import multiprocessing as mp
import queue
import threading
from typing import Callable, Optional

import numpy as np
import torch

from ..synth.dataset import SyntheticMultiViewDataset
from .autoencoder import TinyVideoAE
from .builtin import camera_embedding

_WORKER_DATASET: Optional[SyntheticMultiViewDataset] = None


def _init_worker():
    torch.set_num_threads(1)


def render_item(dataset: SyntheticMultiViewDataset, index: int) -> dict:
    """One training sample as numpy arrays and plain Python values only: a torch tensor in an item
    (the CameraRig's) travels between processes as a shared file descriptor, and thousands of them
    in flight broke the pool's result thread on the GPU machine ("received 0 items of ancdata"),
    which silently stopped the bank from growing."""
    s = dataset[index]
    t_lat = TinyVideoAE.latent_frames(dataset.num_frames)
    return dict(index=index,
                videos=(s["videos"].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy(),
                mask=(s["ids"] >= 0).numpy(),
                camera=camera_embedding(s["rig"], t_lat).numpy(),
                caption=s["caption"], colours=list(s["colours"]))


def _render_global(index: int) -> dict:
    return render_item(_WORKER_DATASET, index)


class SampleBank:
    def __init__(self, num_samples: int, views: int, height: int, width: int, frames: int, seed: int = 0,
                 workers: int = 0, style: str = "standard", arc_span: tuple | None = None,
                 view_order: str = "preset", empty_share: float = 0.0):
        global _WORKER_DATASET
        self.dataset = SyntheticMultiViewDataset(length=num_samples, height=height, width=width, num_frames=frames,
                                                 min_views=views, max_views=views, seed=seed, return_ids=True,
                                                 style=style, arc_span=arc_span, view_order=view_order,
                                                 empty_share=empty_share)
        self.target = int(num_samples)
        self.items: list[dict] = []
        self.latents: list[torch.Tensor] = []   # per item [V, C, T, h, w], filled by encode_pending
        self._pool, self._results, self._next = None, None, 0
        self.workers = int(workers)
        if workers > 0:
            _WORKER_DATASET = self.dataset  # inherited by the forked workers
            self._pool = mp.get_context("fork").Pool(workers, initializer=_init_worker)
            self._queue: queue.Queue = queue.Queue()
            results = self._pool.imap_unordered(_render_global, range(self.target), chunksize=2)
            # a thread hands finished samples over, so poll() can take them without blocking
            self._thread = threading.Thread(target=self._collect, args=(results,), daemon=True)
            self._thread.start()

    def _collect(self, results):
        try:
            for item in results:
                self._queue.put(item)
        except Exception as exc:  # a pool terminated by close(), or a rendering error: poll() reports it
            self._queue.put(exc)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def complete(self) -> bool:
        return len(self.items) >= self.target

    def poll(self, at_least: int = 0, fresh: int = 0) -> int:
        """Move rendered samples into the bank; wait until it holds `at_least` (capped at the target). Without
        workers the samples are rendered here: as many as asked for, and `fresh` more (the stand-in for the
        workers' background rendering, so that a run without workers still sees new scenes every step)."""
        at_least = min(int(at_least), self.target)
        if self._pool is None:
            at_least = min(max(at_least, len(self.items) + int(fresh)), self.target)
            while len(self.items) < at_least:
                self.items.append(render_item(self.dataset, len(self.items)))
            return len(self.items)
        while not self.complete:
            try:
                item = self._queue.get(block=len(self.items) < at_least, timeout=600)
            except queue.Empty:
                break
            if isinstance(item, Exception):
                raise RuntimeError(f"rendering training samples failed: {item}") from item
            self.items.append(item)
        if self.complete:
            self.close()
        return len(self.items)

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                pool.terminate()
                pool.join()
            except AssertionError:   # the pool's own result thread died: its workers go with the process
                pass

    @torch.no_grad()
    def encode_pending(self, encode: Callable[[torch.Tensor], torch.Tensor], device, chunk: int = 64) -> None:
        """Encode every sample that has no latent yet (all views), keeping latents on `device`.
        encode: frames [N, F, H, W, 3] in 0..1 -> latents [N, C, T, h, w]."""
        while len(self.latents) < len(self.items):
            items = self.items[len(self.latents):len(self.latents) + chunk]
            frames = torch.from_numpy(np.stack([it["videos"] for it in items])).to(device)  # [n, V, F, H, W, 3]
            n, v = frames.shape[:2]
            z = encode(frames.flatten(0, 1).float() / 255.0)
            self.latents.extend(z.reshape(n, v, *z.shape[1:]).unbind(0))
