"""Attention that also returns the log-sum-exp of each query's scores, and the exact merge of two
attentions over disjoint key sets (what the fused grid mode's "streams" path is built from).

    out, lse = attention_with_lse(q, k, v, backend="auto")
        q [B, Lq, H, D], k / v [B, Lk, H, D] -> out [B, Lq, H, D] (q.dtype), lse [B, H, Lq] float32
        (float64 for float64 inputs)
        (natural log of sum_j exp(q.k_j / sqrt(D))); softmax scale 1 / sqrt(D), no mask.
        backends: "fa3" (flash_attn_func(return_attn_probs=True), Hopper), "cudnn" / "flash" (PyTorch's
        fused SDPA kernels through their aten ops, which return the LSE), "chunked" (pure torch,
        fp32, query blocks under a memory budget: CPU and the reference). "auto": the first of
        fa3, cudnn (sm90+), flash, chunked that takes the inputs; "aten": the same without fa3
        (PyTorch's own kernels, for a caller that asked for sdpa).
    out = merge_attention(out_a, lse_a, out_b, lse_b)
        attention over the union of two disjoint key sets, exactly: weights exp(lse_x - max) in fp32.
"""
from __future__ import annotations

import math

import torch

from . import fa3

LSE_BACKENDS = ("auto", "aten", "fa3", "cudnn", "flash", "chunked")
AUTO_LSE_ORDER = {"auto": ("fa3", "cudnn", "flash", "chunked"), "aten": ("cudnn", "flash", "chunked")}
DEFAULT_CHUNK_BUDGET_BYTES = 256 * 2**20  # fp32 scores of one query block


def _heads_first(*tensors):
    return tuple(t.transpose(1, 2) for t in tensors)  # [B, L, H, D] -> [B, H, L, D] views


def attention_lse_chunked(q, k, v, budget_bytes: int | None = None):
    """Exact attention and LSE in fp32 (fp64 for fp64 inputs), query blocks of bounded score memory
    (budget_bytes, default DEFAULT_CHUNK_BUDGET_BYTES; the scores are exponentiated in place at inference)."""
    budget_bytes = DEFAULT_CHUNK_BUDGET_BYTES if budget_bytes is None else budget_bytes
    acc = torch.float64 if q.dtype == torch.float64 else torch.float32
    b, lq, h, d = q.shape
    lk = k.shape[1]
    qh, kh, vh = _heads_first(q, k, v)
    kt = kh.to(acc).transpose(-1, -2).contiguous()   # [B, H, D, Lk], once (not a copy per query block)
    vf = vh.to(acc).contiguous()
    out = torch.empty(b, lq, h, v.shape[-1], dtype=q.dtype, device=q.device)
    lse = torch.empty(b, h, lq, dtype=acc, device=q.device)
    block = max(1, min(lq, budget_bytes // max(4 * b * h * lk, 1)))
    scale = 1.0 / math.sqrt(d)
    for i in range(0, lq, block):
        s = torch.matmul(qh[:, :, i:i + block].to(acc) * scale, kt)
        m = s.amax(dim=-1, keepdim=True)
        grad = torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)
        p = (s - m).exp() if grad else s.sub_(m).exp_()  # autograd needs s; inference reuses its memory
        z = p.sum(dim=-1, keepdim=True)
        out[:, i:i + block] = (torch.matmul(p, vf) / z).transpose(1, 2).to(q.dtype)
        lse[:, :, i:i + block] = (m + z.log()).squeeze(-1)
    return out, lse


def _lse_fa3(q, k, v):
    return fa3.call_flash_attn_func(q, k, v, return_lse=True)


def _lse_aten(q, k, v, which: str):
    qh, kh, vh = _heads_first(q, k, v)
    scale = 1.0 / math.sqrt(q.shape[-1])
    if which == "cudnn":
        res = torch.ops.aten._scaled_dot_product_cudnn_attention(qh, kh, vh, None, True, 0.0, False, False, scale=scale)
    else:
        res = torch.ops.aten._scaled_dot_product_flash_attention(qh, kh, vh, 0.0, False, False, scale=scale)
    out, lse = res[0], res[1]
    return out.transpose(1, 2), lse.reshape(q.shape[0], q.shape[2], q.shape[1]).float()


def lse_backend_reason(name: str, q: torch.Tensor) -> str | None:
    """Why LSE backend `name` cannot take q, or None."""
    if name == "chunked":
        return None
    if name == "fa3":
        return fa3.unsupported_reason(q)
    if not q.is_cuda:
        return "it runs on CUDA only"
    if q.dtype not in (torch.float16, torch.bfloat16) or q.shape[-1] > 256:
        return "it takes fp16 / bf16 with head_dim <= 256"
    if name == "cudnn" and fa3.device_capability(q.device)[0] < 9:
        return "cuDNN attention is used on sm90+ only"
    return None


def resolve_lse_backend(q: torch.Tensor, backend: str = "auto") -> str:
    if backend not in LSE_BACKENDS:
        raise ValueError(f"attention_with_lse: backend {backend!r} is unknown; choose one of {', '.join(LSE_BACKENDS)}")
    if backend not in AUTO_LSE_ORDER:
        reason = lse_backend_reason(backend, q)
        if reason:
            raise ValueError(f"attention_with_lse: backend {backend!r} cannot take these inputs ({reason})")
        return backend
    return next(name for name in AUTO_LSE_ORDER[backend] if lse_backend_reason(name, q) is None)


def attention_with_lse(q, k, v, backend: str = "auto"):
    """(out [B, Lq, H, D] in q.dtype, lse float32 [B, H, Lq]); see the module docstring."""
    name = resolve_lse_backend(q, backend)
    if name == "chunked":
        return attention_lse_chunked(q, k, v)
    if name == "fa3":
        return _lse_fa3(q, k, v)
    return _lse_aten(q, k, v, name)


def merge_attention(out_a, lse_a, out_b, lse_b):
    """Attention over keys A + keys B from the two partial attentions (disjoint key sets).

    out_x [B, L, H, D], lse_x [B, H, L]; out = w_a out_a + (1 - w_a) out_b with
    w_a = exp(lse_a) / (exp(lse_a) + exp(lse_b)) = sigmoid(lse_a - lse_b) (no overflow), computed in fp32
    (fp64 for fp64 outputs) as out_b + w_a (out_a - out_b) in one working copy; returned in out_a.dtype.
    """
    acc = torch.float64 if out_a.dtype == torch.float64 else torch.float32
    w_a = torch.sigmoid(lse_a.to(acc) - lse_b.to(acc)).transpose(1, 2)[..., None]  # [B, L, H, 1]
    out = out_a.to(acc, copy=True)
    out.sub_(out_b).mul_(w_a).add_(out_b)
    return out.to(out_a.dtype)
