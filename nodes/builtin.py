"""CamGridBuiltinModel: the embedded tiny model (DiT + its own text encoder and video autoencoder).

It runs on a CPU in seconds with no downloads (the quick start). Its text encoder and autoencoder are
not Wan's, so this node hands them out as a CLIP and a VAE that core CLIP Text Encode and our nodes
use like the real ones.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch

from ..model.checks import InputError
from ..train import builtin as tiny_model   # its files' folder is read at call time (tests point it elsewhere)
from ..train.builtin import BUILTIN_NAME, builtin_available, load_builtin
from .sockets import MODEL, LoadedModel

BUILTIN_MODEL_NAME = BUILTIN_NAME   # how both loader nodes list it


def builtin_weight_files() -> Optional[tuple[Path, Optional[Path]]]:
    """(DiT file, sync-weights file or None) of the built-in model when its asset files are installed, else
    None: the Model Loader loads them like any other DiT file."""
    if not builtin_available():
        return None
    sync = tiny_model.ASSETS_DIR / tiny_model.SYNC_FILE
    return tiny_model.ASSETS_DIR / tiny_model.DIT_FILE, (sync if sync.is_file() else None)


class BuiltinCLIP:
    """The tiny text encoder behind ComfyUI's CLIP methods (tokenize / encode_from_tokens_scheduled)."""

    def __init__(self, text_encoder):
        self.text = text_encoder

    def tokenize(self, text, **_):
        return str(text)

    @torch.no_grad()
    def encode_from_tokens_scheduled(self, tokens, **_):
        return [[self.text.encode(tokens).float().cpu(), {"pooled_output": None}]]


class BuiltinVAE:
    """The tiny video autoencoder behind ComfyUI's VAE methods. Its latents are normalised by the
    autoencoder itself (8 channels, 4x space, 4x time), so LATENTs of this model hold them as they are."""

    def __init__(self, autoencoder):
        self.ae = autoencoder
        self.latent_channels = autoencoder.latent_dim

    def spacial_compression_decode(self):
        return 4

    def spacial_compression_encode(self):
        return 4

    def temporal_compression_decode(self):
        return 4

    @torch.no_grad()
    def decode(self, samples, **_):
        return self.ae.decode(samples.float()).cpu()  # [B, F, H, W, 3]

    def decode_tiled(self, samples, **_):
        return self.decode(samples)  # tiny: never needs tiles

    @torch.no_grad()
    def encode(self, pixels):
        return self.ae.encode(pixels[None, ..., :3].float()).cpu()


class CamGridBuiltinModel:
    """The built-in tiny model: generates small multi-camera videos of simple synthetic scenes."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "use_sync_layers": ("BOOLEAN", {"default": True, "tooltip": "Load the model's trained sync layers "
                             "(needed for sync mode soft)."}),
        }, "optional": {
            "few_step_student": ("BOOLEAN", {"default": False, "tooltip": "Merge the 4-step student (a LoRA "
                                 "distilled from this model, assets/camgrid-tiny-4step-lora.safetensors) and sample "
                                 "with steps 4, cfg 1, scheduler euler, shift 3: about 10x fewer model runs than the "
                                 "teacher's 20 guided steps. Off: the 20-step teacher (cfg 2-4, unipc)."}),
        }}

    RETURN_TYPES = (MODEL, "CLIP", "VAE", "STRING")
    RETURN_NAMES = ("model", "clip", "vae", "info")
    FUNCTION = "load"
    CATEGORY = "CamGrid/loaders"
    DESCRIPTION = (f"{BUILTIN_MODEL_NAME}: a tiny model trained on synthetic scenes ('a red sphere and a blue "
                   "box'), 80x48 pixels, 17 frames. Runs on a CPU; for trying camgrid without downloads.")

    @classmethod
    def VALIDATE_INPUTS(cls, use_sync_layers=None, few_step_student=None):
        if not builtin_available():
            return ("the built-in model files are not installed (assets/ folder of the node pack); reinstall the "
                    "pack, or use CamGrid Model Loader with a real model")
        if few_step_student and not tiny_model.student_available():
            return (f"few_step_student: {tiny_model.STUDENT_FILE} is not in the node pack's assets/ folder; "
                    "reinstall the pack, or turn few_step_student off (the 20-step teacher)")
        return True

    def load(self, use_sync_layers=True, few_step_student=False):
        if not builtin_available():
            raise InputError("the built-in model files are not installed (assets/ folder); reinstall the node pack")
        tiny = load_builtin(device="cpu", student=bool(few_step_student))
        dit = tiny.dit
        if not use_sync_layers:
            for block in dit.blocks:
                block.sync = None
        size = f"tiny {tiny.width}x{tiny.height}, {tiny.frames} frames"
        model = LoadedModel(model=dit, name=BUILTIN_MODEL_NAME, variant=dit.variant, size=size,
                            dtype=torch.float32, attention="auto",
                            sync_weights="built-in" if dit.has_sync_weights else None)
        info = model.summary() + f"; use width {tiny.width}, height {tiny.height}, length {tiny.frames}"
        if few_step_student:
            settings = tiny.sampling
            info += (f"; few-step student merged: sample with steps {settings['steps']}, cfg {settings['cfg']:g}, "
                     f"scheduler {settings['scheduler']}, shift {tiny.shift:g}")
        return model, BuiltinCLIP(tiny.text), BuiltinVAE(tiny.ae), info
