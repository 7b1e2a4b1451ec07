"""Decoding a grid's views as fast as memory allows (docs/ARCHITECTURE.md §7 Attention and memory).

A grid is V videos to decode. Measured on an H200 (diffusers `AutoencoderKLWan`, Wan2.1 config, bf16, one
81-frame 480p view): 1.83 s untiled at 4.6 GiB, 4.27 s tiled at 1.2 GiB; four views in one call 7.26 s at
17.8 GiB. So tiles cost 2.3x the time and are worth it only when a view does not fit, and the peak grows
linearly with the views in a call. The policy, `decode_views`:

  1. views per call: as many as fit, `n * per_view_bytes <= headroom * free`, capped by `max_batch`.
     `per_view_bytes` is given (ComfyUI's own `memory_used_decode` estimate in CamGrid Decode) or measured
     on the first view (CUDA peak-memory counters; `VaeCosts` remembers it for the next decode of the same
     size); unknown (a CPU without an estimate) means one view at a time, as before;
  2. tiles only when needed: a view whose known cost exceeds the free memory is tiled from the start;
  3. out of memory (`torch.OutOfMemoryError`): the memory is freed after leaving the `except` block (the
     exception holds the failed call's tensors until then), the batch is halved and retried; a failure at
     one view switches the remaining views to tiles.
`DecodeOptions` says what the caller wants (`tiled` auto/always/never, `max_batch`, `headroom`, and for
diffusers VAEs `compile`, `cudnn_benchmark`, `channels_last`); `DecodeReport` says what happened.

`WanVaeDecoder` applies the policy to a diffusers `AutoencoderKLWan` (Pipeline.decode); nodes/decode.py
applies it to ComfyUI's VAE object, whose own `decode` already batches by its estimate and tiles after an
out-of-memory error (comfy/sd.py `VAE.decode`): there the policy chooses the chunks (so progress, cancel
and a tile fallback are per chunk, not per grid) and handles what ComfyUI's guard does not see.
"""
from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional, Sequence

import torch

TILED_CHOICES = ("auto", "always", "never")
OOM_ERRORS = (torch.OutOfMemoryError,)

FramesFn = Callable[[torch.Tensor], torch.Tensor]   # latents [n, C, T, h, w] -> frames [n, F, H, W, 3] (CPU)


def set_conv3d_layout(module: torch.nn.Module, memory_format: torch.memory_format) -> None:
    """Put every 5-D parameter (the Conv3d kernels) of `module` in `memory_format`. `module.to(memory_format=
    torch.channels_last_3d)` cannot do it: it converts every parameter and fails on the Wan VAE's lower-rank
    ones (the RMS norms' [C, 1, 1, 1] gammas: "required rank 5 tensor to use channels_last_3d format")."""
    for param in module.parameters():
        if param.dim() == 5:
            param.data = param.data.contiguous(memory_format=memory_format)


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode. `tiled`: auto (tiles only when a view does not fit), always, never (fail instead).
    `headroom`: the share of the free memory one call may plan to use (estimates are not exact)."""

    tiled: str = "auto"
    max_batch: int = 8
    headroom: float = 0.85
    compile: bool = False          # torch.compile the VAE decoder (CUDA; the first decode pays the compile time)
    cudnn_benchmark: bool = False  # let cuDNN time its 3D convolution algorithms during the decode
    channels_last: bool = False    # channels-last-3d weights and latents (CUDA)

    def __post_init__(self):
        if self.tiled not in TILED_CHOICES:
            raise ValueError(f"tiled must be one of {', '.join(TILED_CHOICES)}, got {self.tiled!r}")
        if self.max_batch < 1 or not 0.0 < self.headroom <= 1.0:
            raise ValueError(f"max_batch must be >= 1 and headroom in (0, 1], got {self.max_batch}, {self.headroom}")


@dataclass
class DecodeReport:
    """What `decode_views` did: views per untiled call in order, views tiled, out-of-memory retries."""

    batches: list = field(default_factory=list)
    tiled_views: int = 0
    oom_retries: int = 0
    per_view_bytes: Optional[int] = None

    def summary(self) -> str:
        parts = [f"{sum(self.batches)} views in {len(self.batches)} call(s) of {max(self.batches)}"] if self.batches else []
        if self.tiled_views:
            parts.append(f"{self.tiled_views} tiled")
        if self.oom_retries:
            parts.append(f"{self.oom_retries} out-of-memory retr{'y' if self.oom_retries == 1 else 'ies'}")
        return ", ".join(parts) or "nothing decoded"


def plan_batch(views: int, per_view_bytes: Optional[int], free_bytes: Optional[int], options: DecodeOptions) -> int:
    """Views for the next untiled call, or 0 = tile the next view."""
    if options.tiled == "always":
        return 0
    if per_view_bytes is None or free_bytes is None:
        return 1                                  # nothing known: one view (it may be measured, then batch)
    fits = int(free_bytes * options.headroom) // max(1, int(per_view_bytes))
    if fits < 1:
        return 1 if options.tiled == "never" else 0
    return max(1, min(views, options.max_batch, fits))


def release_memory() -> None:
    """Return cached accelerator memory after a failed call (the default `release` of `decode_views`)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def decode_views(latents: torch.Tensor, decode: FramesFn, decode_tiled: Optional[FramesFn] = None,
                 options: DecodeOptions = DecodeOptions(), *, per_view_bytes: Optional[int] = None,
                 free_bytes: Callable[[], Optional[int]] = lambda: None,
                 measure_peak: Optional[Callable[[], contextlib.AbstractContextManager]] = None,
                 release: Callable[[], None] = release_memory,
                 progress: Optional[Callable[[int], None]] = None) -> tuple[torch.Tensor, DecodeReport]:
    """latents [N, C, T, h, w] -> (frames [N, F, H, W, 3], report), by the policy in the module docstring.

    `decode` / `decode_tiled` decode a chunk; `free_bytes()` is asked before each plan; `measure_peak()`,
    when given, is a context manager whose `.bytes` is the peak memory of the block (to learn the cost of one
    view); `progress(done)` is called after each chunk (it may raise to cancel). This loop is one function
    so the retry state (batch, position, report) stays in one place."""
    n = latents.shape[0]
    report = DecodeReport(per_view_bytes=per_view_bytes)
    if decode_tiled is None and options.tiled == "always":
        raise ValueError("this VAE has no tiled decoding; decode untiled")
    out: Optional[torch.Tensor] = None             # filled chunk by chunk (no second copy of all frames)
    done, batch = 0, None
    while done < n:
        if batch is None:
            batch = plan_batch(n - done, report.per_view_bytes, free_bytes(), options)
            if batch == 0 and (decode_tiled is None or report.batches):
                batch = 1                          # nothing else to try, or one view already went untiled
        size = max(1, min(batch, n - done))
        chunk = latents[done:done + size]
        failed = False
        try:
            if batch == 0:
                frames = torch.cat([decode_tiled(chunk[i:i + 1]) for i in range(size)])
            elif report.per_view_bytes is None and measure_peak is not None and size == 1:
                with measure_peak() as peak:
                    frames = decode(chunk)
                report.per_view_bytes = peak.bytes
                batch = None                       # re-plan with the measured cost
            else:
                frames = decode(chunk)
        except OOM_ERRORS:
            if batch == 0 or (batch == 1 and (options.tiled == "never" or decode_tiled is None)):
                raise
            failed = True                          # free the memory once out of the except block
        if failed:
            frames = chunk = None
            release()
            report.oom_retries += 1
            batch = batch // 2                     # 1 -> 0: tiles from now on
            continue
        if out is None:
            out = frames.new_empty((n, *frames.shape[1:]))
        out[done:done + size] = frames
        if batch == 0:
            report.tiled_views += size
        else:
            report.batches.append(size)
        done += size
        if progress is not None:
            progress(done)
    return out, report


# ---------------------------------------------------------------------------------------------
# CUDA memory
# ---------------------------------------------------------------------------------------------

def cuda_free_bytes(device: torch.device) -> int:
    """Free memory for PyTorch on `device`: the driver's free memory plus what PyTorch's cache holds unused."""
    free, _total = torch.cuda.mem_get_info(device)
    return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))


class CudaPeak:
    """Context manager: `.bytes` = the peak allocated memory of the block above what was allocated before."""

    def __init__(self, device: torch.device):
        self.device, self.bytes = device, None

    def __enter__(self):
        torch.cuda.synchronize(self.device)
        self.start = torch.cuda.memory_allocated(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            torch.cuda.synchronize(self.device)
            self.bytes = int(torch.cuda.max_memory_allocated(self.device) - self.start)
        return False


# ---------------------------------------------------------------------------------------------
# diffusers AutoencoderKLWan (Pipeline.decode)
# ---------------------------------------------------------------------------------------------

@dataclass
class VaeCosts:
    """Measured peak bytes of one view, per (latent shape, dtype, device): later decodes batch at once."""

    table: dict = field(default_factory=dict)

    def key(self, latents: torch.Tensor, dtype, device) -> tuple:
        return tuple(latents.shape[1:]), str(dtype), str(device)


class WanVaeDecoder:
    """Normalised Wan latents [V, C, T, h, w] -> frames [V, F, H, W, 3] in 0..1 (CPU), with a diffusers
    `AutoencoderKLWan` (or any VAE with `decode(z).sample` in -1..1 and optionally `tiled_decode`), by the
    policy above. `latents_mean` / `latents_std` undo the normalisation (the VAE config's numbers)."""

    def __init__(self, vae, latents_mean: Sequence[float], latents_std: Sequence[float],
                 options: DecodeOptions = DecodeOptions()):
        self.vae, self.options, self.costs = vae, options, VaeCosts()
        param = next(vae.parameters())
        self.device, self.dtype = param.device, param.dtype
        c = len(latents_mean)
        self.mean = torch.tensor(latents_mean, dtype=torch.float32, device=self.device).view(1, c, 1, 1, 1)
        self.std = torch.tensor(latents_std, dtype=torch.float32, device=self.device).view(1, c, 1, 1, 1)
        self._prepared = False

    def _prepare(self) -> None:
        """Layout and compilation, once, on CUDA only (on a CPU neither pays)."""
        if self._prepared or self.device.type != "cuda":
            return
        if self.options.channels_last:
            set_conv3d_layout(self.vae, torch.channels_last_3d)
        if self.options.compile:
            self.vae.decoder.compile(dynamic=False)   # in place: the Pipeline owns its VAE
        self._prepared = True

    def _raw(self, z: torch.Tensor) -> torch.Tensor:
        z = (z.to(self.device, torch.float32) * self.std + self.mean).to(self.dtype)
        if self.options.channels_last and self.device.type == "cuda":
            z = z.contiguous(memory_format=torch.channels_last_3d)
        return z

    @staticmethod
    def _frames(video: torch.Tensor) -> torch.Tensor:
        """VAE output [n, 3, F, H, W] in -1..1 -> [n, F, H, W, 3] float32 in 0..1 on the CPU."""
        return ((video.float().clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 4, 1).cpu()

    @torch.no_grad()
    def decode_batch(self, z: torch.Tensor) -> torch.Tensor:
        return self._frames(self.vae.decode(self._raw(z)).sample)

    @torch.no_grad()
    def decode_tiled(self, z: torch.Tensor) -> torch.Tensor:
        if hasattr(self.vae, "tiled_decode"):
            return self._frames(self.vae.tiled_decode(self._raw(z)).sample)
        return self.decode_batch(z)

    @contextlib.contextmanager
    def _cudnn(self) -> Iterator[None]:
        if self.device.type == "cuda" and self.options.cudnn_benchmark:
            with torch.backends.cudnn.flags(enabled=True, benchmark=True):
                yield
        else:
            yield

    def __call__(self, latents: torch.Tensor, progress: Optional[Callable[[int], None]] = None) -> torch.Tensor:
        frames, self.last_report = self.decode_with_report(latents, progress)
        return frames

    def decode_with_report(self, latents: torch.Tensor, progress=None) -> tuple[torch.Tensor, DecodeReport]:
        self._prepare()
        key = self.costs.key(latents, self.dtype, self.device)
        cuda = self.device.type == "cuda"
        with self._cudnn():
            frames, report = decode_views(
                latents, self.decode_batch, self.decode_tiled, self.options,
                per_view_bytes=self.costs.table.get(key),
                free_bytes=(lambda: cuda_free_bytes(self.device)) if cuda else (lambda: None),
                measure_peak=(lambda: CudaPeak(self.device)) if cuda else None, progress=progress)
        if report.per_view_bytes is not None:
            self.costs.table[key] = report.per_view_bytes
        return frames, report


__all__ = ["DecodeOptions", "DecodeReport", "TILED_CHOICES", "plan_batch", "decode_views", "release_memory",
           "cuda_free_bytes", "CudaPeak", "VaeCosts", "WanVaeDecoder"]
