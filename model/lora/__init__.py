"""LoRA loading for the grid DiT (docs/ARCHITECTURE.md §14 LoRA).

    apply_lora(model, path_or_state_dict, strength=1.0)   merge a LoRA (any layout of layouts.py); stackable
    clone_for_patching(model)                              a tensor-sharing copy to patch (ComfyUI node)
    parse_lora_arg("file.safetensors:0.8")                 the CLI's --lora FILE[:STRENGTH]
"""
from .clone import clone_for_patching
from .layouts import describe_size, plan_lora, read_lora
from .merge import LoraReport, apply_lora
from .spec import parse_lora_arg

__all__ = ["apply_lora", "clone_for_patching", "parse_lora_arg", "LoraReport", "plan_lora", "read_lora",
           "describe_size"]
