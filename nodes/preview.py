"""Live previews during sampling: a grid latent -> one small picture of every view.

ComfyUI previews a sampler's current x0 estimate by projecting each latent pixel to RGB with a
matrix per latent format (`Latent2RGBPreviewer`, `comfy.latent_formats.*.latent_rgb_factors`), or
with a tiny decoder (TAESD / TAEHV) when the user installed one. It knows Wan's 16- and 48-channel
latents but not the built-in model's 8-channel one, and it shows one video. So here:

- `tile_views` lays the views of a grid latent out as one latent picture (as square as possible, the
  layout CamGrid Decode uses), which any of ComfyUI's previewers then turns into one image;
- `latent_rgb_factors` gives the projection for the built-in autoencoder (fitted by
  `python -m camgrid.train.fit_preview`; Wan's come from ComfyUI's own latent formats);
- `latent_to_rgb` applies a projection without ComfyUI (tests, scripts);
- `decoder_preview_fn` gives the built-in model's previews through its distilled preview decoder
  (model/preview_decoder.py, trained by `python -m camgrid.train.preview_decoder`): every view's first frame
  at full resolution instead of the projection's latent-resolution colours (ComfyUI's "latent2rgb" preview
  method keeps the projection); `draft_decoder` gives CamGrid Decode's `decoder: preview` the same decoder.
  Wan latents need none of ours: ComfyUI previews them with TAEHV (`lighttaew2_1*` in models/vae_approx,
  `--preview-method taesd`), which the grid previews go through already (host.py asks ComfyUI's
  `get_previewer` for the Wan21 format).

No ComfyUI import here: nodes/host.py hands these to ComfyUI's preview machinery.
"""
from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from ..model.checks import InputError
from ..model.preview_decoder import BUILTIN_PREVIEW_DECODER_FILE, load_preview_decoder, matches_teacher, \
    state_fingerprint
from ..model.video_io import grid_layout, tile_frames
from ..model.weights_io import CheckpointError, read_state_dict

log = logging.getLogger("camgrid")
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
BUILTIN_AUTOENCODER_FILE = "camgrid-tiny-text-ae.safetensors"  # train/builtin.py's TEXT_AE_FILE: its `ae.*` tensors

BUILTIN_LATENT_CHANNELS = 8  # the built-in tiny autoencoder (train/autoencoder.py)

# latent channel -> (r, g, b) in -1..1 and the bias, for the built-in autoencoder's normalised latent.
# From `python -m camgrid.train.fit_preview` (96 synthetic scenes; held-out PSNR at latent resolution
# 26.3 dB vs the decoded frames). Refit when the autoencoder is retrained (tests/test_preview.py checks).
TINY_AE_LATENT_RGB_FACTORS = (
    (-0.0428, -0.0192, -0.0301),
    (-0.0295, -0.1624, -0.0770),
    (0.0177, -0.0288, -0.0334),
    (-0.1658, -0.1092, -0.1250),
    (-0.0120, 0.1043, 0.0620),
    (0.0107, 0.0049, 0.2092),
    (-0.1235, -0.1103, -0.1526),
    (0.0159, -0.0161, -0.0211),
)
TINY_AE_LATENT_RGB_BIAS = (0.0161, 0.0212, 0.0335)


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


# ---------------------------------------------------------------------------------------------
# the built-in model's preview decoder
# ---------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def builtin_preview_decoder(directory: Path = ASSETS_DIR):
    """(PreviewDecoder, its metadata) from `directory`, or None when the file is missing or unreadable."""
    path = Path(directory) / BUILTIN_PREVIEW_DECODER_FILE
    if not path.is_file():
        return None
    try:
        return load_preview_decoder(path)
    except CheckpointError as exc:
        log.warning("camgrid: the built-in preview decoder is not usable: %s", exc)
        return None


@functools.lru_cache(maxsize=None)
def shipped_autoencoder_fingerprint(directory: Path = ASSETS_DIR):
    """Fingerprint of the built-in model's autoencoder as its file holds it (None: no file)."""
    path = Path(directory) / BUILTIN_AUTOENCODER_FILE
    if not path.is_file():
        return None
    sd, _meta = read_state_dict(path)
    return state_fingerprint({k[3:]: v for k, v in sd.items() if k.startswith("ae.")})


def matching_builtin_decoder(autoencoder=None):
    """The built-in preview decoder when it was distilled from `autoencoder` (default: the shipped one), else
    None (then previews use the linear projection; a warning says how to retrain it)."""
    found = builtin_preview_decoder()
    if found is None:
        return None
    decoder, meta = found
    fits = matches_teacher(meta, autoencoder) if autoencoder is not None else \
        meta.get("teacher") == shipped_autoencoder_fingerprint()
    if not fits:
        _warn_stale()
        return None
    return decoder


@functools.lru_cache(maxsize=1)
def _warn_stale() -> None:
    log.warning("camgrid: the built-in preview decoder was distilled from another autoencoder; previews use the "
                "linear projection. Retrain it: python -m camgrid.train.preview_decoder")


@torch.no_grad()
def decoded_preview(decoder, latent: torch.Tensor) -> torch.Tensor:
    """The first frame of every view of the first batch item, decoded and laid out as CamGrid Decode lays the
    views out: a grid [B, V, C, T, h, w] (or a video [B, C, T, h, w]) -> [rows*H, cols*W, 3] in 0..1."""
    views = latent[0] if latent.ndim == 6 else latent[:1]
    frames = decoder(views[:, :, :1].detach().float().cpu())                 # [V, 1, H, W, 3]
    rows, cols = grid_layout(frames.shape[0])
    return tile_frames(frames, rows, cols)[0]


def decoder_preview_fn(channels: int):
    """`latent -> PIL.Image` through the preview decoder for camgrid's own `channels`-channel latents, or None
    (no decoder for them, or it does not fit the shipped autoencoder)."""
    if channels != BUILTIN_LATENT_CHANNELS:
        return None
    decoder = matching_builtin_decoder()
    if decoder is None:
        return None
    from PIL import Image  # lazily: Pillow is needed only when a preview is drawn (ComfyUI has it)

    def to_image(latent):
        rgb = decoded_preview(decoder, latent)
        return Image.fromarray((rgb * 255 + 0.5).to(torch.uint8).numpy())
    return to_image


def draft_decoder(vae, channels: int):
    """CamGrid Decode's `decoder: preview`: a module latents [N, C, T, h, w] -> frames [N, F, H, W, 3] for this
    VAE's latents, or an InputError that says what to do instead."""
    if channels == BUILTIN_LATENT_CHANNELS and getattr(vae, "ae", None) is not None:
        if builtin_preview_decoder() is None:
            raise InputError("decoder 'preview': the built-in model's preview decoder file is not installed "
                             f"(assets/{BUILTIN_PREVIEW_DECODER_FILE}); reinstall the pack or use decoder 'full'")
        decoder = matching_builtin_decoder(vae.ae)
        if decoder is None:
            raise InputError("decoder 'preview': the preview decoder was distilled from another autoencoder than "
                             "this model's; retrain it (python -m camgrid.train.preview_decoder) or use 'full'")
        return decoder
    raise InputError(f"decoder 'preview' has no camgrid preview decoder for {channels}-channel latents: for Wan "
                     "latents load lighttaew2_1.safetensors (TAEHV, in models/vae_approx) with core Load VAE, "
                     "connect it as vae and use decoder 'full'")


__all__ = ["BUILTIN_LATENT_CHANNELS", "TINY_AE_LATENT_RGB_FACTORS", "TINY_AE_LATENT_RGB_BIAS",
           "latent_rgb_factors", "tile_views", "latent_to_rgb", "builtin_preview_decoder",
           "matching_builtin_decoder", "decoded_preview", "decoder_preview_fn", "draft_decoder"]
