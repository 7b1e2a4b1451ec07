"""clone_for_patching: a copy of a GridDiT that shares every tensor with the original.

ComfyUI caches node outputs, so a LoRA node must leave its input model untouched: two LoRA nodes fed by
the same loader must each see the unpatched weights. Copying a 14B model for that would cost 28 GB
(bf16); instead the copy gets its own module objects and its own Parameter objects around the *same*
tensors. apply_lora never writes into a stored tensor (it replaces the ones it changes; merge.py), so
the copy costs only the weights its LoRAs change, and `.to(device)` on the copy re-points the copy's
Parameters only.
"""
from __future__ import annotations

import copy

import torch.nn as nn

from ..checks import InputError
from ..offload import block_swap_of


def clone_for_patching(model: nn.Module) -> nn.Module:
    """A GridDiT sharing all tensors with `model`; patch the copy, the original stays as it was."""
    if block_swap_of(model) is not None:
        raise InputError("clone_for_patching: the model has block swap enabled (its hooks belong to the original); "
                         "disable block swap first (disable_block_swap) and enable it on the copy")
    return _clone(model)


def _clone(module: nn.Module) -> nn.Module:
    new = copy.copy(module)  # new object; its __dict__ is a new dict holding the same values
    new._parameters = type(module._parameters)(
        (name, None if p is None else nn.Parameter(p.detach(), requires_grad=p.requires_grad))
        for name, p in module._parameters.items())
    new._buffers = type(module._buffers)(module._buffers)
    new._non_persistent_buffers_set = set(module._non_persistent_buffers_set)
    new._modules = type(module._modules)(
        (name, None if m is None else _clone(m)) for name, m in module._modules.items())
    for key, value in module.__dict__.items():
        if "hooks" in key and isinstance(value, dict):  # registering a hook on the copy must not touch the original
            new.__dict__[key] = type(value)(value)
    if getattr(module, "_compiled_call_impl", None) is not None:
        new._compiled_call_impl = None  # torch.compile bound the original's forward; compile the copy again
    return new
