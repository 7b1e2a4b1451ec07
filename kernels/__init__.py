"""Fused GPU kernels (Triton) and attention backends, each beside its torch reference.

This file stays light: it never imports triton, so `import camgrid.kernels` works on machines
without it. Each kernel module (qk_norm_rope, layernorm_modulate, gated_residual) exposes
  <op>_reference(...)  pure torch, fp32 math; what CPU runs and what the kernel is tested against
  <op>_triton(...)     the Triton launcher (CUDA, or CPU tensors under TRITON_INTERPRET=1)
  <op>(...)            dispatch: Triton when `use_triton(...)` says so, else the reference
Set CAMGRID_DISABLE_TRITON=1 to force the torch references everywhere (debugging, parity runs).
"""
import functools
import importlib.util
import os

import torch


@functools.lru_cache(maxsize=None)
def triton_available() -> bool:
    """True when the `triton` package can be imported (checked once, without importing it here)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


def use_triton(*tensors: torch.Tensor) -> bool:
    """Whether the fused kernels should run for these inputs.

    Only on CUDA, only without autograd (the kernels have no backward), not while torch.compile
    traces (it fuses the references itself), and not when the user disabled them via
    CAMGRID_DISABLE_TRITON=1.
    """
    if torch.compiler.is_compiling():
        return False  # under torch.compile the torch references are traced and fused by Inductor
    if os.environ.get("CAMGRID_DISABLE_TRITON", "0") not in ("", "0") or not triton_available():
        return False
    if not all(t.is_cuda for t in tensors):
        return False

    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
