"""FlashAttention-3 (Hopper) as an attention backend: `flash_attn_interface.flash_attn_func`.

FA3 uses Hopper's wgmma / TMA units; on an H200 it ran the Wan self-attention shapes (12 heads x
128, bf16) 1.2x faster than cuDNN's SDPA (issue 14). It ships in the registry's prebuilt wheel
`tokenspeed-fa3` (3.0.0.post20260810: cp39-abi3, manylinux_2_28_x86_64, built for CUDA 13 /
libcudart.so.13, forward only, head dims 64 / 128 / 192 / 256 compiled; 96 is padded to 128),
whose top-level module is `flash_attn_interface` (kernels in `flash_attn_3._C`). It is an optional
dependency: nothing here imports it until a backend call or a probe asks, and every probe returns
False instead of raising when it is missing or broken, so a dispatcher can skip it.

Call signatures (the layout of every camgrid attention backend,
docs/ARCHITECTURE.md §7.1 Attention backends)
    out = attention_flash_attn3(q, k, v)
        q [B, Lq, H, D], k / v [B, Lk, H, D], bf16 or fp16 on a Hopper GPU -> out [B, Lq, H, D] (q.dtype);
        softmax scale 1 / sqrt(D), no mask, not causal.
    available(q=None) -> bool          package importable and a CUDA device of compute capability 9.x
                                       (and, with q, these inputs supported)
    unsupported_reason(q) -> str|None  why attention_flash_attn3 cannot take q (None when it can)
    flash_attn_interface() -> module   the imported module (raises ImportError with the install hint)
"""
from __future__ import annotations

import functools
import importlib
import math

import torch

BACKEND_NAME = "flash_attn3"
MODULE_NAME = "flash_attn_interface"
INSTALL_HINT = "pip install tokenspeed-fa3 (Hopper GPUs, CUDA 13 builds of torch)"
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16)
MAX_HEAD_DIM = 256
HEAD_DIM_MULTIPLE = 8  # FA3 loads the head dimension in 16-byte vectors


@functools.lru_cache(maxsize=None)
def _load_module():
    """(module, None) or (None, the import error's text); imported once per process."""
    try:
        return importlib.import_module(MODULE_NAME), None
    except Exception as err:  # a CUDA extension built for another torch/CUDA raises OSError / RuntimeError
        return None, f"{type(err).__name__}: {err}"


def installed() -> bool:
    """True when `flash_attn_interface` (and its CUDA extension) imports."""
    return _load_module()[0] is not None


def flash_attn_interface():
    module, error = _load_module()
    if module is None:
        raise ImportError(f"attention backend {BACKEND_NAME!r} needs the {MODULE_NAME!r} module ({INSTALL_HINT}); "
                          f"importing it failed with {error}")
    return module


def input_reason(device_capability: tuple[int, int] | None, dtype: torch.dtype, head_dim: int,
                 dtypes=SUPPORTED_DTYPES) -> str | None:
    """Why FA3 cannot run inputs of this dtype / head_dim on a device of this capability (None: it can).

    `device_capability` is None for a non-CUDA device. Pure function, so CPU tests cover it.
    """
    if device_capability is None:
        return "it runs on CUDA only"
    if device_capability[0] != 9:
        return f"it needs a Hopper GPU (compute capability 9.x), this one is {device_capability[0]}.{device_capability[1]}"
    if dtype not in dtypes:
        return f"it takes {', '.join(str(d).replace('torch.', '') for d in dtypes)} inputs, got {dtype}"
    if head_dim > MAX_HEAD_DIM or head_dim % HEAD_DIM_MULTIPLE:
        return f"head_dim {head_dim} is not a multiple of {HEAD_DIM_MULTIPLE} up to {MAX_HEAD_DIM}"
    return None


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def device_capability(device: torch.device) -> tuple[int, int] | None:
    if device.type != "cuda":
        return None
    return _capability(device.index if device.index is not None else torch.cuda.current_device())


def unsupported_reason(q: torch.Tensor, dtypes=SUPPORTED_DTYPES) -> str | None:
    if not installed():
        return f"the {MODULE_NAME!r} module is not importable ({_load_module()[1]}); {INSTALL_HINT}"
    return input_reason(device_capability(q.device), q.dtype, q.shape[-1], dtypes)


def available(q: torch.Tensor | None = None) -> bool:
    """Whether attention_flash_attn3 can run here (for `q`, when given)."""
    if not installed():
        return False
    if q is not None:
        return unsupported_reason(q) is None
    return torch.cuda.is_available() and device_capability(torch.device("cuda"))[0] == 9


def call_flash_attn_func(q, k, v, return_lse=False, **kwargs):
    """flash_attn_func on [B, L, H, D] tensors, scale 1 / sqrt(D), not causal: the output, or with
    return_lse (out, lse float32 [B, H, Lq], natural log). kwargs: FA3's q_descale / k_descale / ..."""
    out = flash_attn_interface().flash_attn_func(q, k, v, softmax_scale=1.0 / math.sqrt(q.shape[-1]), causal=False,
                                                 return_attn_probs=return_lse, **kwargs)
    if return_lse:
        if not (isinstance(out, tuple) and len(out) >= 2):
            raise RuntimeError("flash_attn_func(return_attn_probs=True) returned no LSE in this FA3 build")
        return out[0], out[1].float()
    return out[0] if isinstance(out, tuple) else out  # builds differ: some return (out, lse) always


def attention_flash_attn3(q, k, v):
    """FA3 forward, q [B, Lq, H, D], k / v [B, Lk, H, D] (bf16/fp16, Hopper) -> [B, Lq, H, D] in q.dtype.

    FA3 needs the last dimension contiguous (it copies otherwise); Wan's q / k / v are views of
    [B, L, H*D] projections, which already are.
    """
    return call_flash_attn_func(q, k, v)
