"""CamGridModelLoader: a Wan2.1-family DiT (plain Wan, SynCamMaster, ReCamMaster) + optional sync weights."""
from __future__ import annotations

import logging
import os

import torch

from ..model.attention import BACKENDS
from ..model.checkpoint import CheckpointError, describe, load_grid_dit
from ..model.sync import load_sync_weights
from . import host
from .optional import BUILTIN_MODEL_NAME, block_swap_functions, builtin_loader, fp8_function
from .sockets import MODEL, LoadedModel

log = logging.getLogger("camgrid")

DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
ATTENTION = tuple(b for b in BACKENDS if b != "naive")  # naive is for tests only
WEIGHT_STORAGE = ("default", "fp8_e4m3fn")
NO_SYNC = "none"


def dit_files() -> list[str]:
    names = list(host.list_models("diffusion_models"))
    if builtin_loader() is not None:
        names.insert(0, BUILTIN_MODEL_NAME)
    return names


def sync_files() -> list[str]:
    return [NO_SYNC] + [n for n in host.list_models(host.CAMGRID_FOLDER) if not n.lower().endswith(".json")]


def compute_dtype(choice: str, file_dtype: torch.dtype | None) -> torch.dtype:
    """auto: the file's dtype where it computes well (bf16/fp16 on GPUs), fp32 on the CPU."""
    if DTYPES[choice] is not None:
        return DTYPES[choice]
    if host.torch_device().type == "cpu":
        return torch.float32
    return file_dtype if file_dtype in (torch.float16, torch.bfloat16) else torch.bfloat16


def _file_dtype(info: dict) -> torch.dtype | None:
    name = info.get("dtype", "").split(",")[0]
    return getattr(torch, name, None) if name else None


class CamGridModelLoader:
    """Loads the video DiT and tells which kind it is (variant, size)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "dit_name": (dit_files(), {"tooltip": "DiT weights from models/diffusion_models: a Wan2.1 T2V "
                             "model (hard sync), SynCamMaster-Wan2.1 or ReCamMaster-Wan2.1 (.safetensors or "
                             ".ckpt). The kind is detected from the weights."}),
                "dtype": (list(DTYPES), {"default": "auto", "tooltip": "Compute precision. auto: the file's "
                          "bf16/fp16 on GPUs, fp32 on the CPU."}),
                "attention": (list(ATTENTION), {"default": "auto", "tooltip": "Attention kernel. auto picks the "
                              "fastest available; chunked bounds memory on small GPUs and the CPU; flash_attn / "
                              "sage need those packages."}),
            },
            "optional": {
                "sync_weights": (sync_files(), {"default": NO_SYNC, "tooltip": "camgrid sync-layer weights from "
                                 "models/camgrid (trained 4Real-Video hard gates or soft sync). Needed for sync "
                                 "mode soft; optional for hard."}),
                "block_swap": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip": "Keep this many blocks' "
                               "weights in CPU memory and stream them in (saves VRAM, costs speed). 0 = off."}),
                "weight_storage": (list(WEIGHT_STORAGE), {"default": "default", "tooltip": "fp8_e4m3fn stores "
                                   "the big weights in 8 bits (half the memory of bf16; fp8 matmuls on Hopper GPUs, dequantised elsewhere)."}),
                "row_chunks": ("INT", {"default": 0, "min": 0, "max": 4096, "tooltip": "Run each block on this "
                               "many sequences at a time (one view's video, or one frame of all views): the same "
                               "result with much less activation memory (1.3B, 8 views, 81 frames: 16 -> 9.7 GiB "
                               "syncam, 22 -> 13.5 GiB hard at 2), a few % slower. 0 = off."}),
                "ffn_chunk": ("INT", {"default": 0, "min": 0, "max": 1 << 20, "step": 1024, "tooltip": "Run the "
                              "feed-forward layers on this many tokens at a time (e.g. 8192): the same result, "
                              "less memory for the FFN's 4x-wide hidden layer. 0 = off."}),
            },
        }

    RETURN_TYPES = (MODEL, "STRING")
    RETURN_NAMES = ("model", "info")
    FUNCTION = "load"
    CATEGORY = "CamGrid/loaders"
    DESCRIPTION = "Loads a Wan2.1 / SynCamMaster / ReCamMaster DiT and reports what it is."

    @classmethod
    def VALIDATE_INPUTS(cls, dit_name=None, block_swap=None, weight_storage=None, sync_weights=None,
                        row_chunks=None, ffn_chunk=None):
        if dit_name is not None and dit_name not in dit_files():
            return (f"DiT file {dit_name!r} is not in models/diffusion_models; put the model file there and "
                    "refresh the page")
        if sync_weights not in (None, NO_SYNC) and sync_weights not in sync_files():
            return f"sync weights {sync_weights!r} are not in models/camgrid; put the file there or choose none"
        if block_swap and block_swap_functions() is None:
            return "block_swap needs camgrid's model/offload.py, which this install lacks; set block_swap to 0"
        if block_swap is not None and not 0 <= block_swap <= 64:
            return f"block_swap must be between 0 and 64, got {block_swap}"
        for name, value in (("row_chunks", row_chunks), ("ffn_chunk", ffn_chunk)):
            if value is not None and value < 0:
                return f"{name} must be 0 (off) or a positive number, got {value}"
        if weight_storage not in (None, "default"):
            if weight_storage not in WEIGHT_STORAGE:
                return f"weight_storage must be one of {', '.join(WEIGHT_STORAGE)}"
            if fp8_function() is None:
                return "fp8 weight storage needs camgrid's model/fp8.py, which this install lacks; use default"
        return True

    def load(self, dit_name, dtype, attention, sync_weights=NO_SYNC, block_swap=0, weight_storage="default",
             row_chunks=0, ffn_chunk=0):
        notes = []
        if dit_name == BUILTIN_MODEL_NAME:
            loader = builtin_loader()
            if loader is None:
                raise ValueError("the built-in tiny model is not part of this install; pick a DiT file")
            target = torch.float32  # the tiny model is stored in fp16 and always runs in fp32
            model = loader(device="cpu").dit
            size = getattr(model.config, "size_name", "tiny")
            notes.append("built-in: pair it with CamGrid Built-in Model's CLIP and VAE")
        else:
            path = host.model_path("diffusion_models", dit_name)
            try:
                info = describe(path)
            except CheckpointError as exc:
                raise CheckpointError(f"{dit_name}: {exc}") from None
            target = compute_dtype(dtype, _file_dtype(info))
            size = info["size"]
            # free what the host holds before reading a multi-GB file into memory
            host.free_memory_for(os.path.getsize(path), host.offload_device())
            model = load_grid_dit(path, device="cpu", dtype=target)
            if info.get("layout") not in (None, "original"):
                notes.append(f"converted from {info['layout']} layout")
        sync_name = None
        if sync_weights and sync_weights != NO_SYNC:
            load_sync_weights(model, host.model_path(host.CAMGRID_FOLDER, sync_weights))
            model.to(dtype=target)
            sync_name = sync_weights
        if weight_storage != "default":
            quantize = fp8_function()
            if quantize is None:
                raise ValueError("fp8 weight storage needs camgrid's model/fp8.py; use weight_storage default")
            quantize(model, dtype=torch.float8_e4m3fn)
        model.attention_backend = None if attention == "auto" else attention
        model.set_row_chunks(int(row_chunks) or None)
        model.set_ffn_chunk(int(ffn_chunk) or None)
        loaded = LoadedModel(model=model, name=dit_name, variant=model.variant, size=size, dtype=target,
                             attention=attention, sync_weights=sync_name, block_swap=int(block_swap),
                             weight_storage=weight_storage, row_chunks=int(row_chunks), ffn_chunk=int(ffn_chunk),
                             notes=notes)
        if block_swap > len(model.blocks):
            raise ValueError(f"block_swap {block_swap} is more than the model's {len(model.blocks)} blocks; "
                             f"use at most {len(model.blocks)}")
        summary = loaded.summary()
        log.info("camgrid: loaded %s", summary)
        return loaded, summary
