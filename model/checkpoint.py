"""Loading DiT checkpoints: any released layout -> GridDiT, with the variant and config detected.

Formats: `.safetensors`; `.ckpt` / `.pt` / `.pth` through `torch.load(weights_only=True)` only. A file
that needs unpickling of code is refused (it could run arbitrary code on load).

Key layouts (all converted to the original Wan names that GridDiT uses):
  - original Wan / ComfyUI names, bare or prefixed `model.diffusion_model.`, `model.`, `diffusion_model.`,
    `module.` (DDP), or `dit.` (DiffSynth pipelines);
  - diffusers `WanTransformer3DModel` names (`condition_embedder.*`, `attn1.to_q`, `ffn.net.0.proj`,
    `scale_shift_table`, `proj_out`, with norm2 <-> norm3 swapped).
"""
from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path
from typing import Mapping

import torch

from .config import DiTConfig, detect_variant, infer_config

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "model.", "module.", "dit.")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
METADATA_CONFIG_KEY = "camgrid.config"


class CheckpointError(ValueError):
    """A checkpoint file that camgrid cannot or will not load; the message says why and what to do."""


# ---------------------------------------------------------------------------------------------
# reading files
# ---------------------------------------------------------------------------------------------
def read_state_dict(path) -> tuple[dict, dict]:
    """(state dict of tensors on CPU, metadata strings) from a .safetensors or weights-only pickle file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                return {k: f.get_tensor(k) for k in f.keys()}, meta
        except Exception as exc:  # safetensors raises its own error types
            raise CheckpointError(f"{path.name}: not a readable .safetensors file ({exc})") from None
    if suffix in PICKLE_SUFFIXES:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(
                f"{path.name}: refused: this file needs unsafe unpickling (it stores Python objects, not just "
                f"tensors), and loading it could run arbitrary code. Reason given by torch: {str(exc).splitlines()[0]} "
                "Fix: convert it once, in an environment you trust, to .safetensors "
                "(python -c \"import torch, safetensors.torch as s; sd=torch.load('in.ckpt', weights_only=False); "
                "s.save_file({k: v.contiguous() for k, v in sd.items()}, 'out.safetensors')\").") from None
        except RuntimeError as exc:
            if "mmap" in str(exc) or "zip" in str(exc).lower():
                try:  # legacy (non-zip) torch.save files cannot be memory-mapped
                    obj = torch.load(str(path), map_location="cpu", weights_only=True)
                except pickle.UnpicklingError as exc2:
                    raise CheckpointError(f"{path.name}: refused: needs unsafe unpickling ({exc2}). "
                                          "Convert it to .safetensors in a trusted environment.") from None
            else:
                raise CheckpointError(f"{path.name}: not a readable torch checkpoint ({exc})") from None
        return _unwrap(obj, path.name), {}
    raise CheckpointError(f"{path.name}: unsupported checkpoint format {suffix!r}; use .safetensors, .ckpt, .pt or .pth")


def _unwrap(obj, name) -> dict:
    # training scripts often save {"state_dict": {...}} or {"module": {...}}
    for _ in range(3):
        if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
            for key in ("state_dict", "module", "model", "ema"):
                if key in obj and isinstance(obj[key], Mapping):
                    obj = obj[key]
                    break
            else:
                break
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{name}: does not contain a state dict (found {type(obj).__name__})")
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not sd:
        raise CheckpointError(f"{name}: contains no tensors")
    return sd


# ---------------------------------------------------------------------------------------------
# key layouts
# ---------------------------------------------------------------------------------------------
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


def is_diffusers_layout(keys) -> bool:
    return any(k.startswith("condition_embedder.") or ".attn1." in k for k in keys)


def strip_prefix(sd: Mapping) -> tuple[dict, str]:
    for prefix in PREFIXES:
        if any(k.startswith(prefix + "blocks.") or k.startswith(prefix + "patch_embedding.") for k in sd):
            return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in sd.items()}, prefix
    return dict(sd), ""


def to_original_layout(sd: Mapping) -> tuple[dict, str]:
    """Convert any supported layout to original Wan names; returns (state dict, description of the layout)."""
    sd, prefix = strip_prefix(sd)
    if is_diffusers_layout(sd):
        out = {}
        for k, v in sd.items():
            for pattern, repl in _DIFFUSERS_RENAMES:
                k = re.sub(pattern, repl, k)
            out[k] = v
        return out, f"diffusers{' (prefix ' + prefix + ')' if prefix else ''}"
    return sd, f"original Wan{' (prefix ' + prefix + ')' if prefix else ''}"


def to_diffusers_layout(sd: Mapping) -> dict:
    """Original Wan names -> diffusers names (for tests and export)."""
    inverse = [
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
    out = {}
    for k, v in sd.items():
        for pattern, repl in inverse:
            k = re.sub(pattern, repl, k)
        out[k] = v
    return out


# ---------------------------------------------------------------------------------------------
# detection and loading
# ---------------------------------------------------------------------------------------------
def _config_from(sd: Mapping, meta: Mapping, num_heads=None, config=None) -> DiTConfig:
    if config is not None:
        return config
    if meta and METADATA_CONFIG_KEY in meta:
        stored = DiTConfig.from_json(meta[METADATA_CONFIG_KEY])
        return stored.replace(variant=detect_variant(sd))
    if any(k.startswith("img_emb.") for k in sd):
        raise CheckpointError("this is a Wan2.1 image-to-video (I2V) DiT (it has 'img_emb.*' keys); camgrid's "
                              "multi-view modes are built on the text-to-video DiT. Load a Wan2.1 T2V, "
                              "SynCamMaster-Wan2.1 or ReCamMaster-Wan2.1 file.")
    try:
        return infer_config(sd, num_heads=num_heads)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def describe(sd_or_path, num_heads=None) -> dict:
    """What a DiT file is, from its keys and shapes alone: variant, size, layout, dtype."""
    if isinstance(sd_or_path, (str, os.PathLike)):
        sd, meta = read_header(sd_or_path)
    else:
        sd, meta = sd_or_path, {}
    sd, layout = to_original_layout(sd)
    cfg = _config_from(sd, meta, num_heads)
    dtypes = {str(getattr(v, "dtype", "?")).replace("torch.", "") for v in sd.values()}
    return {"variant": cfg.variant, "size": cfg.size_name, "layout": layout, "dtype": ",".join(sorted(dtypes)),
            "config": cfg, "num_tensors": len(sd)}


def read_header(path):
    """Keys -> shape-carrying objects without reading the data (safetensors) or via mmap (pickles)."""
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                slices = {k: f.get_slice(k) for k in f.keys()}  # headers only; no tensor data is read
                return {k: _ShapeOnly(sl.get_shape(), sl.get_dtype()) for k, sl in slices.items()}, meta
        except Exception as exc:
            raise CheckpointError(f"{path.name}: not a readable .safetensors file ({exc})") from None
    return read_state_dict(path)


class _ShapeOnly:
    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), str(dtype).lower()


def _problem_list(keys, limit=12):
    keys = sorted(keys)
    more = f" ... and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_grid_dit(path_or_state_dict, device="cpu", dtype: torch.dtype | None = None, num_heads: int | None = None,
                  config: DiTConfig | None = None, strict: bool = True, fp8: bool = False,
                  fp8_scaling: str = "per_channel", block_swap: int = 0, attention: str | None = None,
                  ffn_chunk: int | None = None):
    """Load a Wan2.1-family DiT (plain Wan, SynCamMaster, ReCamMaster) from a file or a state dict.

    The config and variant come from the keys and shapes (`num_heads` only for non-standard widths);
    `dtype` None keeps the file's floating dtype (bf16 compute for fp8 files). Returns a GridDiT in eval mode.
    Memory options (DESIGN §7): `fp8` stores the block Linear weights in fp8 e4m3 with scales (model/fp8.py;
    fp8 files, ComfyUI "scaled fp8" included, load either way); `block_swap` keeps that many blocks' weights
    on the CPU (model/offload.py); `attention` sets the attention backend; `ffn_chunk` the FFN token chunk.
    """
    from .dit import GridDiT
    from .fp8 import dequantize_weight, quantize_linear_weights, split_fp8_scales, to_fp8_entry

    if isinstance(path_or_state_dict, Mapping):
        sd, meta, name = dict(path_or_state_dict), {}, "state dict"
    else:
        sd, meta = read_state_dict(path_or_state_dict)
        name = Path(path_or_state_dict).name
    sd, layout = to_original_layout(sd)
    sd, fp8_scales = split_fp8_scales(sd)  # scaled-fp8 files: per-layer scales out of the way of the key checks
    try:
        cfg = _config_from(sd, meta, num_heads, config)
    except CheckpointError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    if any(".sync." in k for k in sd):
        raise CheckpointError(f"{name}: this is a camgrid sync-weights file, not a DiT. Load a DiT first and pass this "
                              "file as its sync weights (CamGridModelLoader 'sync_weights' / load_sync_weights).")
    if dtype is None:
        floats = [v.dtype for v in sd.values() if v.is_floating_point()]
        dtype = max(set(floats), key=floats.count) if floats else torch.float32
        if dtype not in (torch.float32, torch.float16, torch.bfloat16):
            dtype = torch.bfloat16  # fp8 storage: compute in bf16
    with torch.device("meta"):
        model = GridDiT(cfg).to(dtype)
    kept_fp8 = set()
    if fp8:
        for layer in quantize_linear_weights(model, scaling=fp8_scaling):
            key = layer + ".weight"
            if key in sd:
                sd[key], sd[layer + ".scale_weight"] = to_fp8_entry(sd[key], fp8_scales.pop(key, None), scaling=fp8_scaling)
                kept_fp8.update((key, layer + ".scale_weight"))
    for key, scale in fp8_scales.items():  # scaled fp8 weights not kept in fp8
        if key in sd:
            sd[key] = dequantize_weight(sd[key], scale, dtype)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing = expected.keys() - sd.keys()
    unexpected = sd.keys() - expected.keys()
    if strict and (missing or unexpected):
        parts = [f"{name}: the keys do not match a {cfg.variant} DiT ({cfg.size_name}, layout {layout})."]
        if missing:
            parts.append(f"Missing {len(missing)}: {_problem_list(missing)}.")
        if unexpected:
            parts.append(f"Unexpected {len(unexpected)}: {_problem_list(unexpected)}.")
        parts.append("Is this a Wan2.1 T2V / SynCamMaster / ReCamMaster DiT file (not a VAE or text encoder)?")
        raise CheckpointError(" ".join(parts))
    bad_shapes = [f"{k} {tuple(sd[k].shape)} != {tuple(s)}" for k, s in expected.items()
                  if k in sd and tuple(sd[k].shape) != tuple(s) and not k.endswith(".scale_weight")]
    if bad_shapes:
        raise CheckpointError(f"{name}: tensor shapes do not match the detected config ({cfg.size_name}): "
                              f"{_problem_list(bad_shapes, 6)}")
    load_device = "cpu" if block_swap else device  # with block swap the full model need not fit on the GPU
    tensors = {k: sd[k].to(device=load_device, dtype=dtype if sd[k].is_floating_point() and k not in kept_fp8 else sd[k].dtype)
               for k in expected if k in sd}
    model.load_state_dict(tensors, strict=strict, assign=True)
    model.load_info = {"name": name, "layout": layout, "variant": cfg.variant, "size": cfg.size_name,
                       "dtype": str(dtype).replace("torch.", ""), "fp8": bool(kept_fp8), "block_swap": int(block_swap)}
    model.eval().requires_grad_(False)
    if attention is not None:
        model.attention_backend = attention
    if ffn_chunk:
        model.set_ffn_chunk(int(ffn_chunk))
    if block_swap:
        from .offload import enable_block_swap

        enable_block_swap(model, int(block_swap), device)
    return model


def save_grid_dit(model, path, layout: str = "original") -> None:
    """Save a GridDiT as .safetensors (with its config in the metadata so any width reloads)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().contiguous().cpu() for k, v in model.base_state_dict().items()}
    if layout == "diffusers":
        sd = to_diffusers_layout(sd)
    elif layout != "original":
        raise ValueError(f"layout must be 'original' or 'diffusers', got {layout!r}")
    save_file(sd, str(path), metadata={METADATA_CONFIG_KEY: model.config.to_json(), "format": "camgrid-dit"})
