"""What a weights file is, told by its keys: so that a file passed in the wrong place is refused with a
message that names what it is and where it goes, before anything is built.

    file_kind(keys) -> "wan_vae" | "wan22_vae" | "umt5" | "umt5_wan" | "dit" | "sync" | "lora" | "clip_vision" | "unknown"
    require_kind(weights, "umt5", "--text-encoder")   # CheckpointError unless the file is of that kind

The marker keys: Wan VAE `decoder.middle.0.residual.0.gamma` (the Wan2.2 VAE also has
`decoder.upsamples.0.upsamples.0.*`), umT5 in HF / ComfyUI names `encoder.block.0.layer.0.SelfAttention.q.weight`
(ComfyUI's own test in comfy/sd.py detect_te_model), umT5 in Wan's names `token_embedding.weight` +
`blocks.0.attn.q.weight`, the DiT `patch_embedding.weight` / `blocks.0.self_attn.q.weight` (or diffusers'
`condition_embedder.*`), camgrid sync weights `blocks.N.sync.*`, LoRAs `*.lora_down.weight` / `*.lora_A.weight`.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..checks import InputError
from ..weights_io import CheckpointError, WeightsSource

# what each kind is, and where it goes
DESCRIPTIONS = {
    "wan_vae": ("a Wan2.1 VAE", "--vae (ComfyUI: models/vae)"),
    "wan22_vae": ("a Wan2.2 VAE (48 latent channels)", "nowhere here: camgrid's DiTs use the Wan2.1 VAE"),
    "umt5": ("a umT5 text encoder", "--text-encoder (ComfyUI: models/text_encoders)"),
    "umt5_wan": ("a umT5 text encoder (Wan's own layout)", "--text-encoder"),
    "dit": ("a video DiT", "--dit (ComfyUI: models/diffusion_models)"),
    "sync": ("a camgrid sync-weights file", "--sync-weights (ComfyUI: models/camgrid)"),
    "lora": ("a LoRA", "--lora (ComfyUI: models/loras)"),
    "clip_vision": ("a CLIP vision encoder (Wan image-to-video)", "nowhere here: camgrid runs the text-to-video DiT"),
    "unknown": ("not a file camgrid recognises", ""),
}
_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "first_stage_model.", "vae.", "model.", "module.")


def _bare(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix):]
    return key


def file_kind(keys) -> str:
    keys = {_bare(k) for k in keys}
    if "decoder.middle.0.residual.0.gamma" in keys:
        return "wan22_vae" if any(k.startswith("decoder.upsamples.0.upsamples.") for k in keys) else "wan_vae"
    if "encoder.block.0.layer.0.SelfAttention.q.weight" in keys:
        return "umt5"
    if "token_embedding.weight" in keys and "blocks.0.attn.q.weight" in keys:
        return "umt5_wan"
    if any(".sync." in k for k in keys):
        return "sync"
    if any(k.endswith((".lora_down.weight", ".lora_A.weight", ".lora_A.default.weight")) for k in keys):
        return "lora"
    if "patch_embedding.weight" in keys or "blocks.0.self_attn.q.weight" in keys \
            or any(k.startswith("condition_embedder.") for k in keys):
        return "dit"
    if any(k.startswith(("visual.", "vision_model.")) for k in keys):
        return "clip_vision"
    return "unknown"


def require_kind(weights: WeightsSource, wanted, flag: str) -> str:
    """The file's kind when it is one of `wanted` (a kind or a tuple of kinds); CheckpointError otherwise."""
    wanted = (wanted,) if isinstance(wanted, str) else tuple(wanted)
    kind = file_kind(weights.infos)
    if kind in wanted:
        return kind
    what, where = DESCRIPTIONS[kind]
    expected = DESCRIPTIONS[wanted[0]][0]
    fix = f"; it belongs in {where}" if where else "; pick the right file"
    raise CheckpointError(f"{weights.name}: passed as {flag}, which takes {expected}, but this is {what}{fix}")


def folder_config_value(folder: Path, key: str, flag: str, hint: str) -> int:
    """An integer `key` of a diffusers / transformers folder's config.json; InputError naming `flag` and `hint`
    (what to pass instead) when it cannot be read."""
    try:
        return int(json.loads((folder / "config.json").read_text(encoding="utf-8"))[key])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{flag} {str(folder)!r}: cannot read {key!r} from its config.json "
                         f"({type(exc).__name__}); {hint}") from None
