"""Which fused SDPA kernel PyTorch should try first, per attention shape and GPU.

PyTorch's default order on CUDA is flash (FlashAttention-2) > memory-efficient > math, with cuDNN
attention tried only when asked for. On Hopper (sm_90) cuDNN's attention uses the chip's wgmma /
TMA units and runs the Wan shapes much faster than FlashAttention-2 (measured in
benchmarks/RESULTS.md: self-attention L=32760, head_dim 128, bf16). So on sm_90+ the model asks
for cuDNN first, falling back to flash / efficient / math where cuDNN refuses the inputs.

    sdpa_priority(q, k) -> a context manager for one `attention(...)` call (nullcontext off CUDA)
    set_sdpa_policy("auto" | "default" | "cudnn" | "flash")   process-wide choice, for benchmarks

"auto" applies the measured rule below; "default" leaves PyTorch's own order untouched.
model/attention.py's "sdpa" backend enters this context around its call (kernels never import model/).
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

POLICIES = ("auto", "default", "cudnn", "flash")
_policy = "auto"

# Queries/keys shorter than this keep PyTorch's default order in "auto" (launch-bound sizes where
# the backends tie; cuDNN also builds an execution plan per new shape, which costs more than it saves).
MIN_TOKENS_FOR_CUDNN = 1024


def set_sdpa_policy(policy: str) -> None:
    global _policy
    if policy not in POLICIES:
        raise ValueError(f"sdpa policy {policy!r} is unknown; choose one of {POLICIES}")
    _policy = policy


def get_sdpa_policy() -> str:
    return _policy


@functools.lru_cache(maxsize=None)
def _capability(index: int) -> tuple[int, int]:
    return torch.cuda.get_device_capability(index)


def _order(name: str):
    cudnn = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    flash = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return cudnn if name == "cudnn" else flash


def choose_order(q: torch.Tensor, k: torch.Tensor, policy: str | None = None) -> str | None:
    """'cudnn', 'flash' or None (PyTorch's default) for q [B, Lq, H, D], k [B, Lk, H, D]."""
    policy = policy or _policy
    if not q.is_cuda or policy == "default":
        return None
    if policy in ("cudnn", "flash"):
        return policy
    if q.dtype not in (torch.float16, torch.bfloat16) or q.shape[-1] > 128:
        return None
    major, _ = _capability(q.device.index if q.device.index is not None else torch.cuda.current_device())
    if major < 9 or q.shape[1] < MIN_TOKENS_FOR_CUDNN:
        return None
    return "cudnn"


def sdpa_priority(q: torch.Tensor, k: torch.Tensor):
    """Context manager that sets PyTorch's SDPA backend priority for these inputs."""
    name = choose_order(q, k)
    if name is None:
        return contextlib.nullcontext()
    return sdpa_kernel(_order(name), set_priority=True)
