"""A tiny preview decoder: video latents -> frames, an order of magnitude cheaper than the VAE it imitates.

It belongs to the family the community uses for Wan latents (madebyollin's TAEHV / taew2_1, which
ComfyUI ships as `comfy/taesd/taehv.py`): a latent clamp (`tanh(x / 3) * 3`), a 3x3 convolution into
features, residual blocks of three 3x3 convolutions, nearest-neighbour 2x upsampling followed by a 3x3
convolution per spatial stage, and temporal upsampling by a 1x1-style "grow" that turns channels into
frames (TAEHV's `TGrow`), with the first latent frame's extra frames trimmed (the causal first frame
of Wan's VAE and of the built-in autoencoder). Two differences, both because of the teacher it is
distilled from (train/preview_decoder.py):
  - no memory blocks: TAEHV's `MemBlock` mixes in the previous latent frame's features because Wan's
    VAE decoder looks back in time; the built-in autoencoder decodes each latent frame on its own, so
    the student does too (it costs nothing to leave out what the teacher does not use);
  - the time "grow" happens once, at the end (the last convolution gives `temporal_stride` frames of
    RGB at once, the layout the built-in autoencoder uses), so every convolution runs once per latent
    frame instead of once per video frame.

Input: normalised latents `[N, C, T, h, w]` (what the sampler produces and `TinyVideoAE.decode` takes);
output: frames `[N, F, H, W, 3]` in 0..1 with `F = (T - 1) * temporal_stride + 1`.
Files are safetensors with the config and a fingerprint of the teacher autoencoder in the metadata, so a
decoder trained for another autoencoder is recognised as such (`matches_teacher`).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from .files import atomic_save
from .weights_io import CheckpointError, read_state_dict

FILE_FORMAT = "camgrid-preview-decoder"
BUILTIN_PREVIEW_DECODER_FILE = "camgrid-tiny-preview-decoder.safetensors"   # in assets/, beside the built-in model


def conv3x3(n_in: int, n_out: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(n_in, n_out, 3, padding=1, bias=bias)


class LatentClamp(nn.Module):
    """Soft clamp of the input latents to about +-3 (TAEHV's `Clamp`): a wild x0 estimate early in sampling
    cannot blow the preview up."""

    def forward(self, x):
        return torch.tanh(x / 3) * 3


class ConvBlock(nn.Module):
    """TAEHV's residual block without the memory input: relu(conv(relu(conv(relu(conv(x))))) + x)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Sequential(conv3x3(channels, channels), nn.ReLU(inplace=True), conv3x3(channels, channels),
                                  nn.ReLU(inplace=True), conv3x3(channels, channels))

    def forward(self, x):
        return F.relu(self.conv(x) + x)


class PreviewDecoder(nn.Module):
    """latents [N, C, T, h, w] -> frames [N, F, H, W, 3]; H = h * 2^(len(widths) - 1), F = (T-1) * stride + 1."""

    def __init__(self, latent_channels: int, widths: Sequence[int] = (32, 32, 16), temporal_stride: int = 4):
        super().__init__()
        self.latent_channels, self.widths, self.temporal_stride = int(latent_channels), tuple(widths), int(temporal_stride)
        layers = [LatentClamp(), conv3x3(self.latent_channels, widths[0]), nn.ReLU(inplace=True), ConvBlock(widths[0])]
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv3x3(n_in, n_out, bias=False), ConvBlock(n_out)]
        layers += [conv3x3(widths[-1], 3 * self.temporal_stride)]  # the time "grow": stride frames of RGB
        self.layers = nn.Sequential(*layers)

    @property
    def spatial_stride(self) -> int:
        return 2 ** (len(self.widths) - 1)

    def config(self) -> dict:
        return {"latent_channels": self.latent_channels, "widths": list(self.widths),
                "temporal_stride": self.temporal_stride}

    def groups(self, z: torch.Tensor) -> torch.Tensor:
        """Latent frames [M, C, h, w] -> their groups of `temporal_stride` frames [M, stride, H, W, 3], unclamped
        (each latent frame is decoded on its own; training samples single latent frames through this)."""
        if z.shape[1] != self.latent_channels:
            raise ValueError(f"this preview decoder takes {self.latent_channels}-channel latents, got {z.shape[1]}")
        weight = self.layers[1].weight
        y = self.layers(z.to(weight.device, weight.dtype))
        return y.unflatten(1, (self.temporal_stride, 3)).permute(0, 1, 3, 4, 2)

    def frames_raw(self, z: torch.Tensor) -> torch.Tensor:
        """latents [N, C, T, h, w] -> unclamped frames [N, F, H, W, 3] (`forward` clamps)."""
        n, c, t, h, w = z.shape
        y = self.groups(z.transpose(1, 2).reshape(n * t, c, h, w))             # [N*T, s, H, W, 3]
        s = self.temporal_stride
        return y.reshape(n, t * s, *y.shape[-3:])[:, s - 1:]                  # causal: keep frame 0 once

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """latents [N, C, T, h, w] or a grid [B, V, C, T, h, w] -> frames [..., F, H, W, 3] in 0..1."""
        lead = z.shape[:-4]
        frames = self.frames_raw(z.reshape(-1, *z.shape[-4:])).float().clamp(0, 1)
        return frames.reshape(*lead, *frames.shape[1:])


def state_fingerprint(state_dict) -> str:
    """A short hash of a state dict's tensors, rounded to float16 (as the built-in model's files store them), so
    an autoencoder read from its file and the same autoencoder in memory after training give the same string."""
    digest = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float16).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def module_fingerprint(module: nn.Module) -> str:
    """`state_fingerprint` of a module's parameters and buffers."""
    return state_fingerprint(module.state_dict())


def save_preview_decoder(decoder: PreviewDecoder, path: Union[str, Path], teacher: str, report: dict) -> Path:
    """Write `decoder` (float16) with its config, the teacher's fingerprint and a training report, atomically."""
    sd = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in decoder.state_dict().items()}
    meta = {"format": FILE_FORMAT, "config": json.dumps(decoder.config()), "teacher": teacher,
            "report": json.dumps(report)}
    return atomic_save(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))


def load_preview_decoder(path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> tuple[PreviewDecoder, dict]:
    """(decoder in float32, eval mode, metadata with 'teacher' and 'report'); CheckpointError for other files."""
    sd, meta = read_state_dict(path)
    name = Path(path).name
    if meta.get("format") != FILE_FORMAT:
        raise CheckpointError(f"{name} is not a camgrid preview decoder (no '{FILE_FORMAT}' format in its "
                              "metadata): train one with `python -m camgrid.train.preview_decoder`")
    try:
        decoder = PreviewDecoder(**json.loads(meta["config"]))
        decoder.load_state_dict({k: v.float() for k, v in sd.items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{name}: its config and weights do not fit ({type(exc).__name__}): retrain it with "
                              "`python -m camgrid.train.preview_decoder`") from None
    report = json.loads(meta.get("report", "{}"))
    return decoder.to(device).eval().requires_grad_(False), {"teacher": meta.get("teacher", ""), "report": report}


def matches_teacher(meta: dict, teacher: Optional[nn.Module]) -> bool:
    """True when the file's recorded teacher is `teacher` (the same autoencoder weights, to float16 rounding)."""
    return teacher is not None and meta.get("teacher") == module_fingerprint(teacher)


__all__ = ["PreviewDecoder", "state_fingerprint", "module_fingerprint", "save_preview_decoder", "load_preview_decoder",
           "matches_teacher", "FILE_FORMAT", "BUILTIN_PREVIEW_DECODER_FILE"]
