"""CamGridModelLoader: a Wan2.1-family DiT (plain Wan, SynCamMaster, ReCamMaster) + optional sync weights."""
from __future__ import annotations

import logging
import os

import torch

from ..model.attention import BACKENDS, FP8_ATTENTION_ACCURACY, require_installed
from ..model.checkpoint import OPTION_LIMITS, LoadOptions, check_block_swap, describe, load_grid_dit
from ..model.checks import InputError
from . import host
from .builtin import BUILTIN_MODEL_NAME, builtin_weight_files
from .sockets import MODEL, LoadedModel

log = logging.getLogger("camgrid")

DTYPES = {"auto": None, "bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
ATTENTION = tuple(b for b in BACKENDS if b != "naive")  # naive is for tests only
ATTENTION_TOOLTIP = ("Attention kernel. auto picks the fastest exact one available: FlashAttention-3 on Hopper GPUs "
                     "(H100 / H200) when tokenspeed-fa3 is installed, else PyTorch's SDPA (cuDNN; on the CPU its "
                     "memory-bounded kernel, else chunked). flash_attn3 needs tokenspeed-fa3 "
                     "(pip install tokenspeed-fa3). fp8: FP8 attention "
                     f"(Hopper, FA3; opt-in, {FP8_ATTENTION_ACCURACY}; faster on long sequences only). chunked "
                     "bounds memory on small GPUs; flash_attn / sage need those packages (sage is 8-bit too).")
WEIGHT_STORAGE = ("default", "fp8_e4m3fn")
NO_SYNC = "none"


def dit_files() -> list[str]:
    names = list(host.list_models("diffusion_models"))
    if builtin_weight_files() is not None:
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


def _int_input(name: str, default: int, step: int, tooltip: str) -> tuple:
    """An INT widget whose limits are the library's (ComfyUI enforces them: VALIDATE_INPUTS does not name it)."""
    return ("INT", OPTION_LIMITS[name].widget(default=default, step=step, tooltip=tooltip))


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
                "attention": (list(ATTENTION), {"default": "auto", "tooltip": ATTENTION_TOOLTIP}),
            },
            "optional": {
                "sync_weights": (sync_files(), {"default": NO_SYNC, "tooltip": "camgrid sync-layer weights from "
                                 "models/camgrid (trained 4Real-Video hard gates or soft sync). Needed for sync "
                                 "mode soft; optional for hard."}),
                "block_swap": _int_input("block_swap", 0, 1, "Keep this many blocks' weights in CPU memory and "
                                         "stream them in (saves VRAM, costs speed). 0 = off."),
                "weight_storage": (list(WEIGHT_STORAGE), {"default": "default", "tooltip": "fp8_e4m3fn stores "
                                   "the big weights in 8 bits (half the memory of bf16; fp8 matmuls on Hopper GPUs, dequantised elsewhere)."}),
                "row_chunks": _int_input("row_chunks", 0, 1, "Run each block on this many sequences at a time (one "
                                         "view's video, or one frame of all views): the same result with much less "
                                         "activation memory (1.3B, 8 views, 81 frames: 16 -> 9.7 GiB syncam, 22 -> "
                                         "13.5 GiB hard at 2), a few % slower. 0 = off."),
                "ffn_chunk": _int_input("ffn_chunk", 0, 1024, "Run the feed-forward layers on this many tokens at a "
                                        "time (e.g. 8192): the same result, less memory for the FFN's 4x-wide hidden "
                                        "layer. 0 = off."),
            },
        }

    RETURN_TYPES = (MODEL, "STRING")
    RETURN_NAMES = ("model", "info")
    FUNCTION = "load"
    CATEGORY = "CamGrid/loaders"
    DESCRIPTION = "Loads a Wan2.1 / SynCamMaster / ReCamMaster DiT and reports what it is."

    @classmethod
    def VALIDATE_INPUTS(cls, dit_name=None):
        # Only dit_name is named here: ComfyUI repeats a failed check once per named input and skips its own
        # min/max and list checks for named inputs, which it does right for every other input of this node.
        if dit_name is not None and dit_name not in dit_files():
            return (f"DiT file {dit_name!r} is not in models/diffusion_models; put the model file there and "
                    "refresh the page")
        return True

    def load(self, dit_name, dtype, attention, sync_weights=NO_SYNC, block_swap=0, weight_storage="default",
             row_chunks=0, ffn_chunk=0):
        require_installed(attention)  # a missing kernel package is named before a multi-GB file is read
        path, default_sync, notes = self._files(dit_name)
        info = describe(path)  # the declared header only: a bad file fails here, before any memory is used
        check_block_swap(block_swap, info["config"].num_layers)
        if sync_weights in (None, NO_SYNC):
            sync_path, sync_name = default_sync, None if default_sync is None else "built-in"
        else:
            sync_path, sync_name = host.model_path(host.CAMGRID_FOLDER, sync_weights), sync_weights
        target = torch.float32 if dit_name == BUILTIN_MODEL_NAME else compute_dtype(dtype, info["file_dtype"])
        # block_swap is not a load option here: the sampler applies it whenever it moves the model to the GPU
        options = LoadOptions(dtype=target, sync_weights=sync_path, fp8=weight_storage == "fp8_e4m3fn",
                              attention=None if attention == "auto" else attention, row_chunks=row_chunks,
                              ffn_chunk=ffn_chunk)
        host.free_memory_for(os.path.getsize(path), host.offload_device())  # before reading a multi-GB file
        model = load_grid_dit(path, device="cpu", options=options)
        if info["layout"].startswith("diffusers"):
            notes.append(f"converted from {info['layout']} layout")
        if info["config"].camera_rays:
            notes.append("reads per-token camera rays")
        if info["config"].relative_cameras:
            notes.append("views told apart by their relative camera poses")
        loaded = LoadedModel(model=model, name=dit_name, variant=model.variant, size=info["size"], dtype=target,
                             attention=attention, sync_weights=sync_name, block_swap=block_swap,
                             weight_storage=weight_storage, row_chunks=row_chunks, ffn_chunk=ffn_chunk, notes=notes)
        summary = loaded.summary()
        log.info("camgrid: loaded %s", summary)
        return loaded, summary

    @staticmethod
    def _files(dit_name):
        """(DiT file, sync weights that come with it or None, notes) for a name of the dit_name list."""
        if dit_name != BUILTIN_MODEL_NAME:
            return host.model_path("diffusion_models", dit_name), None, []
        files = builtin_weight_files()
        if files is None:
            raise InputError("the built-in tiny model is not part of this install; pick a DiT file")
        return files[0], files[1], ["built-in: pair it with CamGrid Built-in Model's CLIP and VAE"]
