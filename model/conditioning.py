"""Conditioning of the grid sampler: the prompt's text features and novel-view video conditioning, i.e. how an
encoded input video steers the grid (docs/ARCHITECTURE.md §6 Novel-view video conditioning).

Text: Wan was trained on umT5 features padded with zero tokens to `TEXT_LENGTH` (512); `pad_text` pads.

An input video is VAE-encoded once (normalised latent `[B, C, T, H, W]`, the same size as one view
of the grid) and used in one of three ways:

- ``recam``        ReCamMaster: the model attends to the source through frame concatenation
                   (`GridDiT(..., mode="recam", source=latent)`); every grid view is a new camera path.
- ``replace_view`` SynCamMaster's video setting: at every step the latent of view k is replaced by
                   the source noised to the current sigma, ``x_k = (1 - σ)·src + σ·noise_k``; after the
                   last step view k is the source itself. Works with every grid mode. `noise_scale` s < 1
                   holds it at s·σ instead (clearer to the other views; 0: the clean source).
- ``first_row``    4Real-Video: the source is the fixed-camera video of view 0 across time (the first
                   row of the view x time grid); the same replacement, always on view 0.
- ``auto``         decided by the grid mode (`SourceVideo.resolve`): recam in mode recam, else replace_view.

"No video" for two-scale guidance (`sampling.sample_grid(guidance="two_scale")`) is defined here too:
- recam: an all-zero source latent. Latents are normalised with the VAE's per-channel mean/std, so
  zero is the data-mean latent: a video carrying no scene content, the analogue of InstructPix2Pix's
  zeroed image latent. (ReCamMaster was not trained with source dropout, so treat s_v as a knob.)
- replace_view / first_row: view k holds its pure noise `noise_k` (what σ = 1 would give), i.e. the
  source contributes no information while the other views are denoised as usual.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .checks import SOURCE_NOISE, InputError, require_finite
from .modes import mode_problem, source_problem

TEXT_LENGTH = 512  # Wan's umT5 context length: shorter prompts are padded with zero tokens
SOURCE_USES = ("recam", "replace_view", "first_row")


def pad_text(context: torch.Tensor, length: int) -> torch.Tensor:
    """Text features [B, L, D] padded with zero tokens to `length` (unchanged when L >= length). Zero tokens
    are what Wan's text encoder gives for padding; the model was trained on prompts padded to TEXT_LENGTH."""
    return F.pad(context, (0, 0, 0, length - context.shape[1])) if context.shape[1] < length else context


class SourceVideoError(InputError):
    """A source video that does not fit the grid / model / mode; the message names the fix."""


@dataclass
class SourceVideo:
    """An encoded input video and how the sampler uses it.

    latent: normalised VAE latent [B, C, T, H, W] (B = 1 is broadcast over the grid's batch).
    how:    "recam" | "replace_view" | "first_row" | "auto" (see the module docstring).
    view:   the grid view the source replaces (replace_view); first_row always uses view 0.
    noise_scale: replace_view / first_row hold the view at noise_scale·σ instead of the grid's σ (1: SynCamMaster's
            setting; 0: the clean source at every step). Below 1 the other views see the given one more clearly;
            a model trained with given views (camgrid train --given-view-share) learned to follow it there.
    """

    latent: torch.Tensor
    how: str = "replace_view"
    view: int = 0
    noise_scale: float = 1.0

    def __post_init__(self):
        if self.how not in SOURCE_USES + ("auto",):
            raise SourceVideoError(f"SourceVideo.how must be one of {SOURCE_USES} or 'auto', got {self.how!r}")
        if not isinstance(self.latent, torch.Tensor) or self.latent.ndim != 5:
            shape = tuple(self.latent.shape) if isinstance(self.latent, torch.Tensor) else type(self.latent).__name__
            raise SourceVideoError(f"SourceVideo.latent must be a VAE latent [B, C, T, H, W], got {shape}: encode "
                                   "the video with the Wan VAE (one video, not a grid of views)")
        self.view = int(self.view)
        problem = SOURCE_NOISE.problem("SourceVideo.noise_scale", self.noise_scale)
        if problem:
            raise SourceVideoError(problem)
        self.noise_scale = float(self.noise_scale)
        if self.how == "first_row" and self.view != 0:
            raise SourceVideoError(f"SourceVideo how='first_row' always conditions view 0 (the first row of the grid), "
                                   f"got view={self.view}: use view=0, or how='replace_view' to condition view "
                                   f"{self.view}")

    def resolve(self, mode: str) -> "SourceVideo":
        """This source with how "auto" decided for grid mode `mode`: recam in mode recam, else replace_view."""
        if self.how != "auto":
            return self
        return dataclasses.replace(self, how="recam" if mode == "recam" else "replace_view")

    @property
    def replaces_a_view(self) -> bool:
        return self.how in ("replace_view", "first_row")

    def check(self, model, grid_shape, mode: str) -> None:
        """Raise `SourceVideoError` unless this source fits a grid [B, V, C, T, H, W], the model and mode."""
        b, v, c, t, h, w = grid_shape
        sb, sc, st, sh, sw = self.latent.shape
        if (sc, st, sh, sw) != (c, t, h, w):
            raise SourceVideoError(
                f"source latent [C, T, H, W] = {[sc, st, sh, sw]} does not match one view of the grid "
                f"{[c, t, h, w]}: encode the source video at the output size (width = 8*W, height = 8*H) "
                f"and frame count (4*(T-1)+1 = {4 * (t - 1) + 1} frames)")
        if sb not in (1, b):
            raise SourceVideoError(f"source latent batch {sb} must be 1 or the grid's batch {b}")
        require_finite("the source video latent", self.latent, "re-encode the source video")
        problem = source_problem(mode, self.how)
        if problem is None and self.how == "recam":   # the source is fed to the model: it must be a ReCamMaster
            problem = mode_problem("recam", getattr(model, "variant", None), soft_sync=False)
        if problem is None and self.replaces_a_view and not 0 <= self.view < v:
            problem = (f"source view index {self.view} is out of range for a grid of {v} views (0..{v - 1}): pick "
                       "a view that exists or add views to the rig")
        if problem is not None:
            raise SourceVideoError(problem)

    def batched(self, b: int, device, dtype=torch.float32) -> torch.Tensor:
        """The latent on `device` broadcast to batch `b`."""
        lat = self.latent.to(device=device, dtype=dtype)
        return lat.expand(b, *lat.shape[1:]) if lat.shape[0] != b else lat


def noised_source(src: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    """The flow-matching forward process at `sigma`: (1 - σ)·src + σ·noise."""
    return (1.0 - sigma) * src + sigma * noise


def replace_view(x: torch.Tensor, view: int, value: torch.Tensor) -> torch.Tensor:
    """A copy of grid x [B, V, C, T, H, W] with view `view` set to `value` [B, C, T, H, W]."""
    out = x.clone()
    out[:, view] = value.to(out.dtype)
    return out


def null_source_latent(latent: torch.Tensor) -> torch.Tensor:
    """The 'no video' recam input of two-scale guidance: zeros (= the VAE's data-mean latent)."""
    return torch.zeros_like(latent)
