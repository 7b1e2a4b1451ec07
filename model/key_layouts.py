"""Key layouts of DiT files: every name in circulation mapped to the original Wan names GridDiT uses
(docs/ARCHITECTURE.md §13 Loading).

  - original Wan / ComfyUI names, bare or prefixed `model.diffusion_model.`, `diffusion_model.`, `model.`,
    `module.` (DDP) or `dit.` (DiffSynth pipelines);
  - diffusers `WanTransformer3DModel` names (`condition_embedder.*`, `attn1.to_q`, `ffn.net.0.proj`,
    `scale_shift_table`, `proj_out`, with norm2 <-> norm3 swapped).

A file in which two keys map to the same name (every key both bare and prefixed, say) is ambiguous and
refused; block keys `blocks.{i}.…` must carry block numbers 0..n-1.
"""
from __future__ import annotations

import re
from typing import Mapping

from .weights_io import CheckpointError

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "module.", "dit.")

# diffusers -> original Wan names, applied in order (specific before generic)
_DIFFUSERS_RENAMES = [
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"\.scale_shift_table$", ".modulation"),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_out\.0\.", ".o."),
    (r"\.to_([qkv])\.", r".\1."),
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    (r"\.norm2\.", ".norm3."),  # diffusers' norm2 is the affine cross-attention norm (Wan's norm3)
]
_DIFFUSERS_FROM_ORIGINAL = [
    (r"^time_embedding\.0\.", "condition_embedder.time_embedder.linear_1."),
    (r"^time_embedding\.2\.", "condition_embedder.time_embedder.linear_2."),
    (r"^text_embedding\.0\.", "condition_embedder.text_embedder.linear_1."),
    (r"^text_embedding\.2\.", "condition_embedder.text_embedder.linear_2."),
    (r"^time_projection\.1\.", "condition_embedder.time_proj."),
    (r"^head\.modulation$", "scale_shift_table"),
    (r"^head\.head\.", "proj_out."),
    (r"^(blocks\.\d+)\.modulation$", r"\1.scale_shift_table"),
    (r"\.self_attn\.", ".attn1."),
    (r"\.cross_attn\.", ".attn2."),
    (r"\.o\.", ".to_out.0."),
    (r"\.(attn[12])\.([qkv])\.", r".\1.to_\2."),
    (r"\.ffn\.0\.", ".ffn.net.0.proj."),
    (r"\.ffn\.2\.", ".ffn.net.2."),
    (r"\.norm3\.", ".norm2."),
]


def _rename(key: str, rules) -> str:
    for pattern, repl in rules:
        key = re.sub(pattern, repl, key)
    return key


def original_key(key: str) -> str:
    """One key (or module path) in diffusers names -> original Wan names; other keys pass unchanged. Per key,
    for files such as LoRAs whose keys alone cannot tell the layout (a LoRA of `ffn.net.*` only)."""
    return _rename(key, _DIFFUSERS_RENAMES)


def is_diffusers_layout(keys) -> bool:
    return any(k.startswith("condition_embedder.") or ".attn1." in k for k in keys)


def detect_prefix(keys) -> str:
    """The prefix in front of the DiT keys ("" when bare)."""
    for prefix in PREFIXES:
        if any(k.startswith(prefix + "blocks.") or k.startswith(prefix + "patch_embedding.") for k in keys):
            return prefix
    return ""


def original_names(keys, name: str = "state dict") -> tuple[dict, str]:
    """({original Wan name: key in the file}, layout description) for the keys of a DiT file in any layout.

    Refuses ambiguous files: two keys that would become the same name (the same weights stored twice,
    bare and prefixed, or in both layouts)."""
    prefix = detect_prefix(keys)
    diffusers = is_diffusers_layout([k[len(prefix):] if k.startswith(prefix) else k for k in keys])
    names: dict = {}
    for key in keys:
        new = key[len(prefix):] if prefix and key.startswith(prefix) else key
        if diffusers:
            new = _rename(new, _DIFFUSERS_RENAMES)
        if new in names:
            raise CheckpointError(f"{name}: ambiguous file: {names[new]!r} and {key!r} are both the weight {new!r} "
                                  "(the same weights stored twice?); keep one copy of each tensor")
        names[new] = key
    layout = ("diffusers" if diffusers else "original Wan") + (f" (prefix {prefix})" if prefix else "")
    return names, layout


def strip_prefix(sd: Mapping) -> tuple[dict, str]:
    prefix = detect_prefix(sd)
    return {k[len(prefix):] if prefix and k.startswith(prefix) else k: v for k, v in sd.items()}, prefix


def to_original_layout(sd: Mapping) -> tuple[dict, str]:
    """Any supported layout -> original Wan names; returns (state dict, description of the layout)."""
    names, layout = original_names(list(sd))
    return {new: sd[key] for new, key in names.items()}, layout


def to_diffusers_layout(sd: Mapping) -> dict:
    """Original Wan names -> diffusers names (for tests and export)."""
    return {_rename(k, _DIFFUSERS_FROM_ORIGINAL): v for k, v in sd.items()}


def block_index(key: str, name: str = "state dict") -> int:
    """i of a key `blocks.{i}.…`, with a message that names the key when i is not a block number."""
    part = key.split(".")[1] if "." in key else ""
    if not (part.isascii() and part.isdigit() and len(part) <= 6):
        raise CheckpointError(f"{name}: key {key[:80]!r} is not a block weight: 'blocks.' must be followed by a "
                              "block number (blocks.0., blocks.1., ...)")
    return int(part)


def block_count(keys, name: str = "state dict") -> int:
    """Number of blocks in keys `blocks.{i}.…`; they must be numbered 0..n-1 without gaps."""
    indices = {block_index(k, name) for k in keys if k.startswith("blocks.")}
    if indices and max(indices) >= len(indices):
        top, missing, i = max(indices), [], 0
        while len(missing) < 7 and i < top:  # ends within len(indices) + 7 steps: the gaps lie below `top`
            if i not in indices:
                missing.append(i)
            i += 1
        shown = ", ".join(str(i) for i in missing[:6]) + (" ..." if len(missing) > 6 else "")
        raise CheckpointError(f"{name}: its blocks must be numbered 0, 1, 2, ... without gaps, but block(s) {shown} "
                              f"are missing (highest block: {top}); the file is incomplete or damaged")
    return len(indices)
