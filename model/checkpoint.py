"""Loading DiT checkpoints: any released file -> GridDiT, with the variant and config detected
(docs/ARCHITECTURE.md §13 Loading).

    model = load_grid_dit(path_or_state_dict, device="cpu", dtype=None, options=LoadOptions(...))
    model = load_grid_dit(path, num_heads=2, fp8=True)    # keyword fields are shorthand for LoadOptions

Every choice about loading lives in one `LoadOptions` and is applied in one place. The steps, each a
function below:
  1. read     the file's declared keys, shapes and dtypes (the .safetensors header; the memory-mapped
              tensors of a torch file): model/weights_io.py
  2. detect   key layout -> original Wan names (model/key_layouts.py), the variant, and the config, from
              `camgrid.config` metadata or from the shapes; metadata may not claim more than the weights hold
  3. check    every key present, none unexpected, each declared shape and dtype what the config needs, all
              before anything is built: a 1 KB file cannot make the loader build a large model
  4. build    GridDiT on the meta device (no memory), with fp8 layers when asked
  5. fill     tensor by tensor: read, convert to the compute dtype on the device, refuse NaN / infinity, assign
  6. options  sync weights, attention backend, chunking, block swap
A bad file gives a CheckpointError naming the file, what is wrong and what to do; a bad option an InputError.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, fields, replace
from typing import Mapping, Optional, Union

import torch
from safetensors.torch import save_file

from .attention import BACKENDS
from .checks import InputError, Limit
from .config import DiTConfig, infer_config
from .dit import GridDiT
from .files import atomic_save
from .fp8 import SCALINGS, FP8Linear, dequantize_weight, quantize_linear_weights, split_fp8_scales, to_fp8_entry
from .key_layouts import (PREFIXES, block_count, is_diffusers_layout, original_names, strip_prefix,
                          to_diffusers_layout, to_original_layout)
from .offload import enable_block_swap
from .sync import load_sync_weights
from .weights_io import (PICKLE_SUFFIXES, WEIGHT_DTYPES, CheckpointError, TensorInfo, WeightsSource, check_finite,
                         open_weights, problem_list, read_header, read_state_dict)

# names other modules import from here: this module's own, and the file-level ones it re-exports
__all__ = ["LoadOptions", "OPTION_LIMITS", "COMPUTE_DTYPES", "METADATA_CONFIG_KEY", "load_grid_dit", "describe",
           "save_grid_dit", "check_block_swap", "default_compute_dtype", "expected_shapes", "DiTPlan", "plan_dit",
           "build_dit", "fill_dit", "apply_options",
           "CheckpointError", "TensorInfo", "read_state_dict", "read_header", "to_original_layout",
           "to_diffusers_layout", "strip_prefix", "is_diffusers_layout", "PREFIXES", "PICKLE_SUFFIXES"]

METADATA_CONFIG_KEY = "camgrid.config"
COMPUTE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
# the memory options' limits, for the library and the Model Loader node's widgets alike (0 = off)
OPTION_LIMITS = {
    "block_swap": Limit(0, 64, integer=True, hint="blocks whose weights stay on the CPU, 0 = off"),
    "row_chunks": Limit(0, 4096, integer=True, hint="rows (sequences) per block step, 0 = all at once"),
    "ffn_chunk": Limit(0, 1 << 20, integer=True, hint="tokens per feed-forward step, 0 = all at once"),
}
# config fields that the weights' shapes determine: `camgrid.config` metadata must agree with them
SHAPE_FIELDS = ("dim", "ffn_dim", "num_layers", "in_dim", "out_dim", "text_dim", "freq_dim", "patch_size",
                "cross_attn_norm")


@dataclass(frozen=True)
class LoadOptions:
    """Every choice about loading a DiT, checked when made. Unset fields keep the file's own choices."""

    dtype: Optional[torch.dtype] = None   # compute dtype; None: the file's (fp8 files -> bf16, fp64 -> fp32)
    num_heads: Optional[int] = None       # only for widths that are not multiples of 128, in files without metadata
    sync_weights: Union[str, os.PathLike, Mapping, None] = None  # a camgrid sync-weights file (model/sync.py)
    fp8: bool = False                     # block Linear weights stored in fp8 e4m3 with scales (model/fp8.py)
    fp8_scaling: str = "per_channel"      # or "per_tensor"
    block_swap: int = 0                   # blocks whose Linear weights stay on the CPU, streamed in (model/offload.py)
    attention: Optional[str] = None       # attention backend (model/attention.py); None: auto
    ffn_chunk: int = 0                    # feed-forward layers on this many tokens at a time; 0: all at once
    row_chunks: int = 0                   # each block on this many rows (sequences) at a time; 0: all at once

    def __post_init__(self):
        if self.dtype is not None and self.dtype not in COMPUTE_DTYPES:
            raise InputError(f"dtype must be float32, float16 or bfloat16 (or None for the file's), got {self.dtype}")
        if self.num_heads is not None and (type(self.num_heads) is not int or self.num_heads < 1):
            raise InputError(f"num_heads must be a positive integer, got {self.num_heads!r}")
        if not isinstance(self.fp8, bool) or self.fp8_scaling not in SCALINGS:
            raise InputError(f"fp8 must be True or False and fp8_scaling one of {SCALINGS}")
        if self.attention is not None and self.attention not in BACKENDS:
            raise InputError(f"attention must be one of {', '.join(BACKENDS)}, got {self.attention!r}")
        if not (self.sync_weights is None or isinstance(self.sync_weights, (str, os.PathLike, Mapping))):
            raise InputError(f"sync_weights must be a file path or a state dict, got {type(self.sync_weights).__name__}")
        for name, limit in OPTION_LIMITS.items():
            value = getattr(self, name)
            if type(value) is not int:   # a count: 2.0 is a mistake somewhere upstream, not a count
                raise InputError(f"{name} must be an int, got {type(value).__name__} {value!r}")
            limit.check(name, value)

    def replace(self, **changes) -> "LoadOptions":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown load option(s) {', '.join(sorted(unknown))}; LoadOptions has "
                            f"{', '.join(f.name for f in fields(self))}")
        return replace(self, **changes)


def check_block_swap(block_swap: int, num_layers: int) -> None:
    """Block swap holds back between none and every block of the model."""
    if type(block_swap) is not int or not 0 <= block_swap <= num_layers:
        raise InputError(f"block_swap must be an integer from 0 (off) to the model's {num_layers} blocks, "
                         f"got {block_swap!r}")


# ---------------------------------------------------------------------------------------------
# the public loaders
# ---------------------------------------------------------------------------------------------
def load_grid_dit(path_or_state_dict, device="cpu", dtype: Optional[torch.dtype] = None,
                  options: Optional[LoadOptions] = None, **option_fields) -> GridDiT:
    """Load a Wan2.1-family DiT (plain Wan, SynCamMaster, ReCamMaster) from a file or a state dict.

    The config and variant come from the keys and shapes (and `camgrid.config` metadata). `dtype` and the
    keyword fields override `options` (see LoadOptions). Returns a GridDiT in eval mode without gradients,
    with `load_info` saying what was loaded."""
    opts = (options or LoadOptions()).replace(**option_fields, **({"dtype": dtype} if dtype is not None else {}))
    with open_weights(path_or_state_dict) as weights:
        plan = plan_dit(weights, opts.num_heads)
        check_block_swap(opts.block_swap, plan.config.num_layers)
        compute_dtype = opts.dtype or default_compute_dtype(plan.file_dtype)
        model = build_dit(plan.config, compute_dtype, opts)
        fill_dit(model, plan, weights, compute_dtype, "cpu" if opts.block_swap else device, opts.fp8_scaling)
    apply_options(model, opts, device)
    model.load_info = {"name": plan.name, "layout": plan.layout, "variant": plan.config.variant,
                       "size": plan.config.size_name, "dtype": str(compute_dtype).replace("torch.", ""),
                       "fp8": opts.fp8, "block_swap": opts.block_swap, "sync_weights": opts.sync_weights is not None}
    return model


def describe(path_or_state_dict, num_heads: Optional[int] = None) -> dict:
    """What a DiT file is, from its declared keys, shapes and dtypes alone (checked as load_grid_dit
    checks them): variant, size, layout, dtypes, the most common weight dtype, config."""
    with open_weights(path_or_state_dict) as weights:
        plan = plan_dit(weights, num_heads)
    dtypes = {_dtype_name(info.dtype) for info in plan.infos.values()}
    return {"variant": plan.config.variant, "size": plan.config.size_name, "layout": plan.layout,
            "dtype": ",".join(sorted(dtypes)), "file_dtype": plan.file_dtype, "config": plan.config,
            "num_tensors": len(plan.infos)}


def save_grid_dit(model, path, layout: str = "original") -> None:
    """Save a GridDiT as .safetensors, with its config in the metadata so that any width reloads."""
    if layout not in ("original", "diffusers"):
        raise InputError(f"layout must be 'original' or 'diffusers', got {layout!r}")
    sd = {k: v.detach().contiguous().cpu() for k, v in model.base_state_dict().items()}
    if layout == "diffusers":
        sd = to_diffusers_layout(sd)
    meta = {METADATA_CONFIG_KEY: model.config.to_json(), "format": "camgrid-dit"}
    atomic_save(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))


# ---------------------------------------------------------------------------------------------
# steps 2 and 3: detect and check, from declared shapes only
# ---------------------------------------------------------------------------------------------
@dataclass
class DiTPlan:
    """What a file holds, checked: model key -> file key, fp8 scales, declared infos, config."""

    name: str
    layout: str
    config: DiTConfig
    keys: dict            # original Wan name -> key in the file
    scales: dict          # "<layer>.weight" -> file key of its fp8 scale
    infos: dict           # original Wan name -> TensorInfo
    file_dtype: Optional[torch.dtype]  # the most common weight dtype (None: shapes only)


def plan_dit(weights: WeightsSource, num_heads: Optional[int] = None) -> DiTPlan:
    """Steps 2 and 3: layout, variant and config from the declared keys and shapes, every key and shape
    checked against the config. Builds nothing."""
    name = weights.name
    names, layout = original_names(list(weights.infos), name)
    keys, scales = split_fp8_scales(names)  # scaled-fp8 files: per-layer scales out of the way of the key checks
    infos = {k: weights.infos[f] for k, f in keys.items()}
    _refuse_other_files(name, infos)
    config = detect_config(name, infos, weights.meta, num_heads)
    check_keys_and_shapes(name, config, layout, infos)
    check_dtypes(name, infos, {k: weights.infos[f] for k, f in scales.items()})
    counts = Counter(info.dtype for info in infos.values() if info.dtype is not None)
    file_dtype = counts.most_common(1)[0][0] if counts else None
    return DiTPlan(name, layout, config, keys, scales, infos, file_dtype)


def _refuse_other_files(name: str, infos: Mapping) -> None:
    if any(".sync." in k for k in infos):
        raise CheckpointError(f"{name}: this is a camgrid sync-weights file, not a DiT. Load a DiT first and pass this "
                              "file as its sync weights (CamGridModelLoader 'sync_weights' / load_sync_weights).")
    if any(k.startswith("img_emb.") for k in infos):
        raise CheckpointError(f"{name}: this is a Wan2.1 image-to-video (I2V) DiT (it has 'img_emb.*' keys); camgrid's "
                              "multi-view modes are built on the text-to-video DiT. Load a Wan2.1 T2V, "
                              "SynCamMaster-Wan2.1 or ReCamMaster-Wan2.1 file.")


def detect_config(name: str, infos: Mapping, meta: Mapping, num_heads: Optional[int] = None) -> DiTConfig:
    """The config from `camgrid.config` metadata (which must agree with the shapes) or from the shapes."""
    stored = None
    if METADATA_CONFIG_KEY in meta:
        try:
            stored = DiTConfig.from_json(meta[METADATA_CONFIG_KEY])
        except ValueError as exc:
            raise CheckpointError(f"{name}: its '{METADATA_CONFIG_KEY}' metadata is not a valid DiT config ({exc}); "
                                  "the file is damaged: save or download it again") from None
    block_count(infos, name)  # block numbering checked here, where the message can name the file
    try:
        inferred = infer_config(infos, num_heads=stored.num_heads if stored else num_heads)
    except ValueError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    if stored is None:
        return inferred
    differences = [f"{f} {getattr(stored, f)!r} (the weights: {getattr(inferred, f)!r})"
                   for f in SHAPE_FIELDS if getattr(stored, f) != getattr(inferred, f)]
    if differences:
        raise CheckpointError(f"{name}: its '{METADATA_CONFIG_KEY}' metadata does not match its weights: "
                              f"{'; '.join(differences[:4])}. The file is damaged or was edited: save or download it again")
    return stored.replace(variant=inferred.variant, camera_rays=inferred.camera_rays)


def expected_shapes(config: DiTConfig) -> dict:
    """{key: shape} of a GridDiT with `config`, from one block built on the meta device (no memory)."""
    with torch.device("meta"):
        one_block = GridDiT(config.replace(num_layers=1)).state_dict()
    shapes = {}
    for key, value in one_block.items():
        if key.startswith("blocks.0."):
            for i in range(config.num_layers):
                shapes[f"blocks.{i}.{key[len('blocks.0.'):]}"] = tuple(value.shape)
        else:
            shapes[key] = tuple(value.shape)
    return shapes


def check_keys_and_shapes(name: str, config: DiTConfig, layout: str, infos: Mapping) -> None:
    expected = expected_shapes(config)
    missing, unexpected = expected.keys() - infos.keys(), infos.keys() - expected.keys()
    if missing or unexpected:
        parts = [f"{name}: the keys do not match a {config.variant} DiT ({config.size_name}, layout {layout})."]
        if missing:
            parts.append(f"Missing {len(missing)}: {problem_list(missing)}.")
        if unexpected:
            parts.append(f"Unexpected {len(unexpected)}: {problem_list(unexpected)}.")
        parts.append("Is this a Wan2.1 T2V / SynCamMaster / ReCamMaster DiT file (not a VAE or text encoder)?")
        raise CheckpointError(" ".join(parts))
    bad = [f"{k} {list(infos[k].shape)} != {list(s)}" for k, s in expected.items() if tuple(infos[k].shape) != s]
    if bad:
        raise CheckpointError(f"{name}: tensor shapes do not match the detected config ({config.size_name}): "
                              f"{problem_list(bad, 6)}; the file is damaged or not a Wan2.1-family DiT")


def check_dtypes(name: str, infos: Mapping, scale_infos: Mapping) -> None:
    """Weights are floating point (no integer, bool or complex tensors); fp8 scales belong to fp8 weights."""
    bad = [f"{k} ({_dtype_name(i.dtype)})" for k, i in infos.items() if i.dtype is not None and i.dtype not in WEIGHT_DTYPES]
    if bad:
        raise CheckpointError(f"{name}: weights must be floating point (float32, float16, bfloat16 or fp8), found "
                              f"{problem_list(bad, 4)}; the file is damaged or not a DiT")
    for key, scale in scale_infos.items():
        weight = infos.get(key)
        if weight is None:
            raise CheckpointError(f"{name}: it holds an fp8 scale for {key!r}, which is not a weight of the model")
        if weight.dtype is None or scale.dtype is None:
            continue
        if weight.dtype not in (torch.float8_e4m3fn, torch.float8_e5m2) or scale.dtype not in WEIGHT_DTYPES[:4] \
                or scale.numel not in (1, weight.shape[0]):
            raise CheckpointError(f"{name}: the fp8 scale of {key!r} ({_dtype_name(scale.dtype)}, {scale.numel} values) "
                                  f"does not fit its weight ({_dtype_name(weight.dtype)}, {list(weight.shape)})")


def default_compute_dtype(file_dtype: Optional[torch.dtype]) -> torch.dtype:
    """The file's dtype where camgrid computes in it; fp8 files compute in bf16, fp64 files in fp32."""
    if file_dtype in COMPUTE_DTYPES:
        return file_dtype
    return torch.bfloat16 if file_dtype in (torch.float8_e4m3fn, torch.float8_e5m2) else torch.float32


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "") if dtype is not None else "?"


# ---------------------------------------------------------------------------------------------
# steps 4 to 6: build, fill, options
# ---------------------------------------------------------------------------------------------
def build_dit(config: DiTConfig, dtype: torch.dtype, opts: LoadOptions) -> GridDiT:
    """The model on the meta device (no memory yet), in `dtype`, with fp8 block Linear layers if asked."""
    with torch.device("meta"):
        model = GridDiT(config).to(dtype)
    if opts.fp8:
        quantize_linear_weights(model, scaling=opts.fp8_scaling)
    return model


def fill_dit(model: GridDiT, plan: DiTPlan, weights: WeightsSource, dtype: torch.dtype, device,
             fp8_scaling: str) -> None:
    """Read each tensor once, convert it on `device`, refuse NaN / infinity, and assign it to the model."""
    fp8_layers = {name for name, module in model.named_modules() if isinstance(module, FP8Linear)}
    tensors = {}
    for key, file_key in plan.keys.items():
        stored = weights.tensor(file_key)
        scale = weights.tensor(plan.scales[key]) if key in plan.scales else None
        layer = key[: -len(".weight")] if key.endswith(".weight") else None
        if layer in fp8_layers:  # kept in fp8: the file's fp8 weight and scale, or quantised now
            fp8_weight, fp8_scale = to_fp8_entry(stored, scale, scaling=fp8_scaling)
            tensors[key], tensors[layer + ".scale_weight"] = fp8_weight.to(device), fp8_scale.to(device)
            check_finite(plan.name, layer + ".scale_weight", tensors[layer + ".scale_weight"])
        elif scale is not None:  # a scaled-fp8 file loaded in the compute dtype
            tensors[key] = dequantize_weight(stored, scale, dtype).to(device)
        else:
            tensors[key] = stored.to(device=device, dtype=dtype)  # no copy when it is already right (mmap)
        check_finite(plan.name, key, tensors[key], stored)
    assign_per_block(model, tensors)


def assign_per_block(model: GridDiT, tensors: dict) -> None:
    """model.load_state_dict(tensors, strict=True, assign=True), one block (or top-level module) at a time:
    torch filters the whole dict once per submodule, which is quadratic in the number of blocks (seconds
    for a small file that declares hundreds of tiny blocks); per block it stays linear."""
    groups: dict = {}
    for key, value in tensors.items():
        parts = key.split(".", 2)
        owner = ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]
        groups.setdefault(owner, {})[key[len(owner) + 1:]] = value
    for owner, local in groups.items():
        model.get_submodule(owner).load_state_dict(local, strict=True, assign=True)


def apply_options(model: GridDiT, opts: LoadOptions, device) -> None:
    """Step 6: everything LoadOptions sets on a filled model, in the order the pieces need."""
    if opts.sync_weights is not None:
        load_sync_weights(model, opts.sync_weights)  # before block swap, which places the sync layers too
    model.eval().requires_grad_(False)
    model.attention_backend = opts.attention
    model.set_ffn_chunk(opts.ffn_chunk or None)
    model.set_row_chunks(opts.row_chunks or None)
    if opts.block_swap:
        enable_block_swap(model, opts.block_swap, device)

