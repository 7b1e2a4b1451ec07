"""A trainable LoRA on a GridDiT's block Linear layers, saved in the Kijai / lightx2v layout `apply_lora` reads.

    lora = LoraSet(model, rank=32)       # adapters on every block's self_attn / cross_attn q,k,v,o, ffn.0, ffn.2
    ... train lora.parameters() ...
    lora.save("lora.safetensors")        # diffusion_model.blocks.N.<module>.lora_down.weight [r, in],
                                         # .lora_up.weight [out, r], .alpha  (scale alpha / r)
    lora.remove()                        # the model as it was

Each adapter adds `scale * up(down(x))` to its layer's output through a forward hook, so the DiT keeps its
own modules, names and state dict (nothing else in camgrid has to know about training), fp8 layers
(model/fp8.py FP8Linear) included. The adapters' weights are float32 (masters for the optimiser); the
products run in the layer input's dtype. `up` starts at zero (the model starts as it was), `down` with
PEFT's default (Kaiming-uniform, a = sqrt(5)) from a seeded generator, so every process of a multi-GPU run
starts from the same adapters.

Why hooks and not merged deltas: the frozen weights stay shared and untouched (no copy per step), and a
checkpoint holds only the adapters.
"""
from __future__ import annotations

import math
import re
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

from ...model.checks import InputError
from ...model.files import atomic_save

# the block Linear layers a LoRA adapts (DiffSynth's default target modules q, k, v, o, ffn.0, ffn.2), of the
# layers every grid mode runs: SynCamMaster's mvs_attn is not part of the two-stream modes the LoRA trains in
TARGETS = re.compile(r"^blocks\.\d+\.((self_attn|cross_attn)\.[qkvo]|ffn\.[02])$")
PREFIX = "diffusion_model."   # Kijai / lightx2v / ComfyUI LoRA keys


class LoraAdapter(nn.Module):
    def __init__(self, in_features: int, out_features: int, rank: int, scale: float, generator: torch.Generator):
        super().__init__()
        self.scale = float(scale)
        self.down = nn.Parameter(torch.empty(rank, in_features))
        self.up = nn.Parameter(torch.zeros(out_features, rank))
        bound = 1.0 / math.sqrt(in_features)   # kaiming_uniform_(a=sqrt(5)) on [rank, in]
        with torch.no_grad():
            self.down.uniform_(-bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.linear(x, self.down.to(x.dtype)), self.up.to(x.dtype)) * self.scale


class LoraSet(nn.Module):
    """Adapters on the model's target Linear layers (see the module docstring)."""

    def __init__(self, model: nn.Module, rank: int, alpha: Optional[float] = None, seed: int = 0,
                 targets: re.Pattern = TARGETS):
        super().__init__()
        if rank < 1:
            raise InputError(f"LoRA rank must be at least 1, got {rank}")
        self.rank, self.alpha = int(rank), float(rank if alpha is None else alpha)
        self.names = [name for name, module in model.named_modules() if targets.match(name) and hasattr(module, "in_features")]
        if not self.names:
            raise InputError("the model has no Linear layers a LoRA can adapt (blocks.N.self_attn.q, ...)")
        generator = torch.Generator().manual_seed(int(seed))
        device = next(model.parameters()).device
        self.adapters = nn.ModuleList()
        for name in self.names:
            layer = model.get_submodule(name)
            self.adapters.append(LoraAdapter(layer.in_features, layer.out_features, self.rank, self.alpha / self.rank,
                                             generator))
        self.to(device)
        self._hooks = [model.get_submodule(name).register_forward_hook(self._hook(adapter))
                       for name, adapter in zip(self.names, self.adapters)]

    @staticmethod
    def _hook(adapter: LoraAdapter):
        def add_adapter(_module, inputs, output):
            return output + adapter(inputs[0]).to(output.dtype)
        return add_adapter

    def remove(self) -> None:
        """Detach the adapters from the model (the model computes as before the LoRA)."""
        for hook in self._hooks:
            hook.remove()
        self._hooks = []

    def lora_state_dict(self, dtype: torch.dtype = torch.bfloat16, values: Optional[dict] = None) -> dict:
        """The adapters in the Kijai / lightx2v layout (alpha as a float32 scalar per module). `values`: the
        adapters' tensors by this module's state-dict names ("adapters.K.down" / ".up"), e.g. gathered from the
        shards of a multi-GPU run; default: this process's own."""
        values = self.state_dict() if values is None else values
        sd = {}
        for k, name in enumerate(self.names):
            key = PREFIX + name
            sd[f"{key}.lora_down.weight"] = values[f"adapters.{k}.down"].detach().to(dtype).contiguous().cpu()
            sd[f"{key}.lora_up.weight"] = values[f"adapters.{k}.up"].detach().to(dtype).contiguous().cpu()
            sd[f"{key}.alpha"] = torch.tensor(self.alpha, dtype=torch.float32)
        return sd

    def save(self, path, dtype: torch.dtype = torch.bfloat16, metadata: Optional[dict] = None,
             values: Optional[dict] = None) -> None:
        sd = self.lora_state_dict(dtype, values)
        meta = {"format": "camgrid-lora", "rank": str(self.rank), "alpha": str(self.alpha), **(metadata or {})}
        atomic_save(path, lambda tmp: save_file(sd, str(tmp), metadata=meta))
