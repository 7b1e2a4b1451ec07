"""CamGridLora: merge a LoRA from ComfyUI's `loras` folder into a CAMGRID_MODEL (chainable)."""
from __future__ import annotations

import dataclasses
import itertools
import logging

from ..model.checks import Limit
from ..model.lora import apply_lora, clone_for_patching
from . import host
from .sockets import MODEL, LoadedModel

log = logging.getLogger("camgrid")

STRENGTH = Limit(-4.0, 4.0, hint="how much of the LoRA to add; negative subtracts it")


def lora_files() -> list[str]:
    return list(host.list_models("loras"))


def _merge_bytes(dit) -> int:
    """GPU memory one weight's merge needs: its float32 copy, the result and the LoRA factors (x3 margin);
    fp8 weights are buffers, hence both."""
    return 3 * 4 * max((t.numel() for t in itertools.chain(dit.parameters(), dit.buffers())), default=0)


class CamGridLora:
    """Applies a LoRA to the model. The input model is left as it is (other branches of the graph keep
    using it); the output shares every weight the LoRA does not change."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "The model from CamGrid Model Loader (or another CamGrid LoRA)."}),
                "lora_name": (lora_files(), {"tooltip": "LoRA from models/loras, made for the same Wan2.1 size "
                              "(1.3B or 14B). Kijai/lightx2v, diffusers/PEFT, kohya/musubi and DiffSynth files "
                              "load; a base-Wan LoRA also works on SynCamMaster and ReCamMaster."}),
                "strength": ("FLOAT", STRENGTH.widget(default=1.0, step=0.05, tooltip="How much of the LoRA to add "
                             "(negative subtracts it).")),
            },
        }

    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"
    CATEGORY = "CamGrid/loaders"
    DESCRIPTION = ("Merges a LoRA into the model's weights. Chain several to stack them. The output holds its own "
                   "copy of the weights the LoRA changes (a LoRA on every layer of 14B: ~28 GB in bf16).")

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name=None, strength=None):
        if lora_name is not None and lora_name not in lora_files():
            return f"LoRA file {lora_name!r} is not in models/loras; put the file there and refresh the page"
        return (STRENGTH.problem("strength", strength) if strength is not None else None) or True

    def apply(self, model: LoadedModel, lora_name: str, strength: float):
        if strength == 0:
            return (model,)
        path = host.model_path("loras", lora_name)
        dit = clone_for_patching(model.model)  # ComfyUI caches `model`: never patch it in place
        device = host.torch_device()
        if device.type != "cpu":  # merge on the GPU (seconds for 14B), weights stay where they are
            host.free_memory_for(_merge_bytes(dit), device)
        apply_lora(dit, path, strength, device=device)
        summary = dit.applied_loras[-1].summary()
        log.info("camgrid: %s", summary)
        return (dataclasses.replace(model, model=dit, notes=[*model.notes, summary]),)
