"""apply_lora: merge a LoRA into a GridDiT's weights (docs/ARCHITECTURE.md §14 LoRA).

    W <- W + strength * scale * up @ down      (low-rank pair; scale = alpha / rank, see layouts.py)
    P <- P + strength * diff                   (full deltas: .diff, .diff_b, .diff_m)

computed in float32 and written back in the parameter's dtype. Call it again to stack LoRAs.

fp8 weight storage (model/fp8.py FP8Linear): the weight is dequantised, merged in float32 and quantised
again with fresh scales (same scaling mode). Chosen over an unmerged side branch because (a) the merge is
a one-time cost while a branch costs every forward of every step (benchmarks/bench_lora.py --fp8-choice),
and (b) GridDiT reads some weights directly instead of calling the module (the fused-GELU FFN path on
CUDA, the head, the time embedding), where a branch would silently not apply. The cost of merging after
quantising instead of before is one more fp8 rounding of each patched weight (same table).

Block swap (model/offload.py): BlockSwap keeps its own reference to the CPU master of each swapped Linear
tensor, so those are updated in place (on the swap's GPU when it has one); every other tensor is replaced
by a new one and never written in place, which is what makes `clone_for_patching` copies safe.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..checkpoint import CheckpointError
from ..checks import InputError
from ..fp8 import FP8Linear, dequantize_weight, quantize_weight
from ..offload import block_swap_of
from .layouts import ModelIndex, all_finite, plan_lora, read_lora

log = logging.getLogger("camgrid")
_BLOCK = re.compile(r"^blocks\.(\d+)\.")


@dataclass
class LoraReport:
    """What one apply_lora call did (kept in `model.applied_loras`, oldest first)."""

    name: str
    strength: float
    layout: str
    made_for: str
    patched: list = field(default_factory=list)     # parameter names changed
    unmatched: list = field(default_factory=list)   # LoRA keys that matched nothing in this model

    def summary(self) -> str:
        text = f"LoRA {self.name} x{self.strength:g} ({self.layout}): {len(self.patched)} weights patched"
        return text + (f", {len(self.unmatched)} keys unmatched" if self.unmatched else "")


def apply_lora(model: nn.Module, path_or_state_dict, strength: float = 1.0, *, device=None) -> nn.Module:
    """Merge a LoRA file (or state dict) into `model` (a GridDiT of any variant) and return the model.

    Any layout of layouts.py; the file is read with the checkpoint reader (safetensors, weights-only
    pickles). The whole file is checked before any weight changes: a LoRA for another width or block count,
    non-finite numbers, unsupported adapter kinds, or a file that patches nothing raise CheckpointError.
    Keys that match nothing in this model are logged and listed in `model.applied_loras[-1].unmatched`.
    `device`: where the float32 arithmetic runs (default: where each weight lives; a block-swapped weight:
    the swap's GPU) - e.g. the GPU for a model parked on the CPU.
    """
    strength = _check_strength(strength)
    sd, meta, name = read_lora(path_or_state_dict)
    plan = plan_lora(sd, meta, ModelIndex(model), name)
    swap = block_swap_of(model)
    by_target: dict[str, list] = {}
    for patch in plan.patches:
        by_target.setdefault(patch.target, []).append(patch)
    with torch.no_grad():
        for target, patches in by_target.items():
            _merge(model, target, patches, strength, device, swap, name)
    report = LoraReport(name, strength, plan.layout, plan.made_for, list(by_target), list(plan.unmatched))
    model.applied_loras = [*getattr(model, "applied_loras", []), report]  # a new list: clones share the old one
    if plan.unmatched:
        _warn_unmatched(name, plan.unmatched, model.variant)
    log.info("camgrid: %s", report.summary())
    return model


def _check_strength(strength) -> float:
    try:
        value = float(strength)
    except (TypeError, ValueError):
        raise InputError(f"LoRA strength must be a number, got {strength!r}") from None
    if not math.isfinite(value):
        raise InputError(f"LoRA strength must be finite, got {strength!r}")
    return value


def _warn_unmatched(name, unmatched, variant):
    hint = ""
    if any(m in k for k in unmatched for m in ("k_img", "v_img", "img_emb")):
        hint = " (image-to-video keys: this LoRA was made for Wan I2V; only its text-to-video part applies)"
    elif any(m in k for k in unmatched for m in ("mvs_attn", "cam_encoder", "projector")):
        hint = f" (camera / multi-view modules that a {variant} model does not have)"
    log.warning("camgrid: %s: %d LoRA keys matched nothing in this model%s, e.g. %s", name, len(unmatched), hint,
                ", ".join(unmatched[:6]))


# ---------------------------------------------------------------------------------------------
# one parameter
# ---------------------------------------------------------------------------------------------
def _merge(model, target, patches, strength, device, swap, name):
    module_name, _, attr = target.rpartition(".")
    module = model.get_submodule(module_name)
    fp8 = isinstance(module, FP8Linear) and attr == "weight"
    swapped = _is_swapped(swap, module_name, module)
    stored = module.weight_fp8 if fp8 else _slot(module, attr)
    here = torch.device(device) if device is not None else (swap.device if swapped and swap.cuda else stored.device)
    if fp8:
        value = dequantize_weight(module.weight_fp8.to(here), module.scale_weight.to(here), torch.float32)
    else:
        # move in the stored dtype, convert on `here` (a CPU->GPU copy with a dtype change converts on the CPU);
        # copy=True: never the stored tensor itself
        value = stored.detach().to(here).to(torch.float32, copy=True)
    for patch in patches:
        _add_patch(value, patch, strength)
    if not all_finite(value):
        raise CheckpointError(f"{name}: merging at strength {strength:g} made {target} non-finite; lower the "
                              "strength (the model is now partly patched: reload it)")
    if fp8:
        q, s = quantize_weight(value, module.fp8_dtype, "per_channel" if module.per_channel else "per_tensor")
        _store(module, "weight_fp8", q, swapped)
        _store(module, "scale_weight", s, swapped)
        return
    new = value.to(stored.dtype)
    if new.dtype == torch.float16 and not all_finite(new):
        raise CheckpointError(f"{name}: {target} overflows float16 after the merge; lower the strength or load "
                              "the model in bf16 (the model is now partly patched: reload it)")
    _store(module, attr, new, swapped)


def _add_patch(value: torch.Tensor, patch, strength: float) -> None:
    if patch.diff is not None:
        value.add_(patch.diff.to(value.device).float().reshape(value.shape), alpha=strength)
        return
    up = patch.up.to(value.device).float().flatten(1)
    down = patch.down.to(value.device).float().flatten(1)
    if value.dim() == 2:
        value.addmm_(up, down, alpha=strength * patch.scale)
    else:  # a convolution (patch_embedding): the product has the kernel's element count
        value.add_((up @ down).reshape(value.shape), alpha=strength * patch.scale)


def _slot(module, attr) -> torch.Tensor:
    if attr in module._parameters:
        return module._parameters[attr]
    return module._buffers[attr]


def _store(module, attr, new, in_place):
    """Swapped tensors: write into BlockSwap's master. Others: point the slot at the new tensor."""
    old = _slot(module, attr)
    if in_place:
        old.data.copy_(new)
    elif attr in module._parameters:
        old.data = new.to(old.device)  # this module's own Parameter object (clones have their own)
    else:
        module._buffers[attr] = new.to(old.device)


def _is_swapped(swap, module_name, module) -> bool:
    """Whether BlockSwap holds this module's tensors as CPU masters (Linear layers of swapped blocks)."""
    if swap is None or not isinstance(module, (nn.Linear, FP8Linear)):
        return False
    m = _BLOCK.match(module_name + ".")
    return m is not None and int(m.group(1)) in swap.swapped

