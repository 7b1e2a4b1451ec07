"""Attention dispatch: one function, a table of interchangeable backends
(docs/ARCHITECTURE.md §7 Attention and memory).

    attention(q, k, v, backend=None) -> out
        q [B, Lq, H, D], k / v [B, Lk, H, D]  ->  out [B, Lq, H, D] in q.dtype
        softmax scale 1 / sqrt(D), no mask, no dropout (inference).

Backends (the table `IMPLEMENTATIONS` at the end of this file)
    sdpa        torch.nn.functional.scaled_dot_product_attention; on CUDA PyTorch picks
                cuDNN / flash / memory-efficient kernels, none of which builds the score matrix
                (on Hopper cuDNN is asked for first: kernels/sdpa_select.py).
    flash_attn3 FlashAttention-3 (kernels/fa3.py): Hopper GPUs (compute capability 9.x), fp16/bf16,
                from the registry's prebuilt `tokenspeed-fa3` wheel (module `flash_attn_interface`).
                Exact. Measured on an H200 (benchmarks/ATTENTION_GPU.md, 12 heads x 128, bf16):
                9.70 ms vs cuDNN SDPA 11.27 ms on one 81-frame 480p view (N = 32760), 7.50 vs 9.08 ms
                on the 4-view view stream (21 x 6240): the fastest exact kernel there.
    fp8         scaled 8-bit attention (kernels/fp8_attention.py): FA3's fp8 forward with per-(batch,
                head) Q / K scales, smoothed K and per-channel V scales (SageAttention-2 recipe).
                NOT exact: 40.5 dB PSNR per attention call at N = 32760 (44 dB at the view-stream
                shape) where bf16 kernels reach 68.7 dB; 8.21 ms vs FA3 bf16 9.70 ms at N = 32760,
                but slower than FA3 bf16 on the short view-stream sequences (7.99 vs 7.50 ms).
                Opt-in only (`attention="fp8"`, loader node); `auto` never picks it.
    chunked     pure torch, query blocks sized from a memory budget, fp32 softmax per block:
                peak extra memory O(block * Lk), never O(Lq * Lk). On a CPU where PyTorch's SDPA would
                run its math kernel (the full score matrix), auto's choice.
    flash_attn  flash_attn.flash_attn_func (Dao-AILab, FlashAttention-2), CUDA + fp16/bf16, head_dim <= 256.
    sage        sageattention.sageattn: INT8 Q K^T (per-block scales) and fp16 P V; CUDA + fp16/bf16,
                head_dim 64 / 96 / 128. Changes the numerics (8-bit scores), so `auto` never picks it:
                it is a user choice (`attention=` option, loader node). See `attention_sage`.
                Measured on an H200 (benchmarks/RESULTS.md, round 2): 1.0.6's Triton kernel runs at
                0.5-0.8x cuDNN's speed; it pays on GPUs without a fast fused SDPA kernel.
    naive       materialises the full [Lq, Lk] score matrix; the reference for tests only.
    auto        the fastest *exact* backend that is installed and takes the inputs: the first of
                `auto_order(q)` that fits, else sdpa. Per device:
                  Hopper (sm 9.x)   flash_attn3, sdpa (cuDNN)   FA2 is skipped: 1.6x slower than cuDNN there
                  other CUDA GPUs   flash_attn, sdpa
                  CPU               sdpa when PyTorch runs it on its blocked flash kernel
                                    (`cpu_sdpa_is_blocked`; 0.49-0.64x chunked's time), else chunked
                A backend marked `exact=False` (fp8, sage) can never be in these lists (checked at import).

Which backend runs, in order: the `backend` argument, then the innermost `attention_backend(...)`
context (GridDiT.forward enters one with the model's `attention_backend`), then
`set_default_backend(...)`, then the environment variable CAMGRID_ATTENTION (default "auto").
Asking for a backend whose package is missing is an error that says how to install it (e.g.
flash_attn3 on a machine without `tokenspeed-fa3`). An installed optional backend handed inputs it
cannot take (CPU, fp32, a non-Hopper GPU for FA3, too large a head_dim) falls back to sdpa with a
one-time warning instead of failing mid-sampling.

The fused grid mode's attention (`fused_grid_attention`: a whole grid's tokens, a pair kept iff same view
or same time) goes through the same choice: its exact "streams" method runs two dense attentions with
log-sum-exps on the kernel of the backend chosen above (flash_attn3 -> FA3, sdpa -> cuDNN / flash,
chunked -> chunked torch; fp8 has no LSE path there and runs exact, FA3 when installed).

Adding a backend: write `fn(q, k, v) -> out` on [B, L, H, D] (its kernel lives in kernels/, which never
imports model/), then add one entry to `IMPLEMENTATIONS`, e.g.
    "mine": Backend(attention_mine, package="my_module", install="pip install ...",
                    unsupported=needs_cuda_half(max_head_dim=256)),
and its name to the `AUTO_ORDER` lists where `auto` should pick it (exact backends only).

Why a chunked backend at all: a reported ReCamMaster OOM asked for 192 GiB, which is one
materialised fp32 N x N score matrix; CPU and old GPUs need a path that cannot do that.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import math
import os
import sys
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend

from ..kernels import fa3, fp8_attention, triton_available
from ..kernels.grid_mask_attention import BACKENDS as GRID_MASK_METHODS
from ..kernels.grid_mask_attention import grid_mask_attention
from ..kernels.sdpa_select import sdpa_priority
from .checks import InputError

# Scores of one chunked step may use this many bytes (fp32); env CAMGRID_ATTENTION_CHUNK_MB overrides.
DEFAULT_CHUNK_BUDGET_BYTES = int(float(os.environ.get("CAMGRID_ATTENTION_CHUNK_MB", "256")) * 2**20)

# sageattention 1.x has kernels for these head sizes only (Wan: 128)
SAGE_HEAD_DIMS = (64, 96, 128)

_default_backend = os.environ.get("CAMGRID_ATTENTION", "auto")
_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar("camgrid_attention_backend", default=None)
_warned: set[str] = set()


@dataclass(frozen=True)
class Backend:
    """One attention implementation: `run(q, k, v)` on [B, L, H, D].

    package:     the optional module it needs (None: always available); imported on first use.
    install:     how to get that package (shown when it is missing).
    unsupported: q -> why these inputs cannot run on it, or None when they can (then `resolve_backend`
                 falls back to sdpa with a one-time warning).
    installed:   () -> bool, when the backend's kernel module probes its own dependencies (FA3, fp8);
                 otherwise importing `package` decides.
    exact:       False for backends that change the output by quantisation (fp8, sage): never in AUTO_ORDER.
    """

    run: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    package: Optional[str] = None
    install: str = ""
    unsupported: Optional[Callable[[torch.Tensor], Optional[str]]] = None
    installed: Optional[Callable[[], bool]] = None
    exact: bool = True


def needs_cuda_half(max_head_dim: Optional[int] = None, head_dims: tuple = ()):
    """An `unsupported` rule for CUDA kernels that take fp16/bf16 inputs of some head sizes only."""
    def reason(q) -> Optional[str]:
        if not q.is_cuda:
            return f"it runs on CUDA only (inputs are on {q.device})"
        if q.dtype not in (torch.float16, torch.bfloat16):
            return f"it needs float16/bfloat16 inputs (got {q.dtype})"
        if head_dims and q.shape[-1] not in head_dims:
            return f"head_dim {q.shape[-1]} is not one of its head sizes {head_dims}"
        if max_head_dim is not None and q.shape[-1] > max_head_dim:
            return f"head_dim {q.shape[-1]} exceeds its limit of {max_head_dim}"
        return None
    return reason


# --------------------------------------------------------------------------------------------
# backends; all take and return [B, L, H, D]
# --------------------------------------------------------------------------------------------
def _accum_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def attention_naive(q, k, v):
    """Full score matrix in fp32 (fp64 for fp64 inputs). Reference for tests; O(Lq * Lk) memory."""
    acc = _accum_dtype(q.dtype)
    qh, kh, vh = (t.transpose(1, 2).to(acc) for t in (q, k, v))  # [B, H, L, D]
    scores = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    return torch.matmul(scores.softmax(dim=-1), vh).transpose(1, 2).to(q.dtype)


def attention_masked(q, k, v, mask):
    """Naive attention with a boolean `mask` broadcastable to [B, H, Lq, Lk] (True = attend).

    Test reference for the grid modes (e.g. the view stream equals full attention masked to the
    same latent frame). Every query row must attend to at least one key.
    """
    acc = _accum_dtype(q.dtype)
    qh, kh, vh = (t.transpose(1, 2).to(acc) for t in (q, k, v))
    scores = torch.matmul(qh, kh.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask.to(torch.bool), float("-inf"))
    return torch.matmul(scores.softmax(dim=-1), vh).transpose(1, 2).to(q.dtype)


def chunk_sizes(batch: int, heads: int, lq: int, lk: int, budget_bytes: int) -> tuple[int, int, int]:
    """(batch elements, heads, queries) per step so one fp32 score block [b, h, q, Lk] fits the budget.

    Queries are cut first, then heads, then batch elements (a step spans several heads / batch
    elements only when whole ones fit). At least one query row of one head is always processed,
    so a single [1, 1, 1, Lk] row may exceed a tiny budget.
    """
    elems = max(1, budget_bytes // 4)
    q_block = max(1, min(lq, elems // max(lk, 1)))
    h_block = max(1, min(heads, elems // max(q_block * lk, 1))) if q_block == lq else 1
    b_block = max(1, min(batch, elems // max(h_block * q_block * lk, 1))) if h_block == heads else 1
    return b_block, h_block, q_block


def attention_chunked(q, k, v, budget_bytes: int | None = None):
    """Exact attention in blocks; extra memory ~ budget + fp32 copies of one block's K and V.

    Each step: s = (q_blk * scale) @ k^T in fp32, s -= rowmax, exp in place, out = (s @ v) / rowsum.
    bf16/fp16 inputs are upcast per block (K and V once per batch/head block, Q per query block),
    so CPU bf16 keeps an fp32 softmax. Inputs are never copied whole; the output is written
    straight into a contiguous [B, Lq, H, D] tensor.
    """
    budget = DEFAULT_CHUNK_BUDGET_BYTES if budget_bytes is None else int(budget_bytes)
    b, lq, h, d = q.shape
    lk, dv = k.shape[1], v.shape[-1]
    acc = _accum_dtype(q.dtype)
    qh, kh, vh = (t.transpose(1, 2) for t in (q, k, v))  # [B, H, L, D] views, no copy
    out = torch.empty(b, lq, h, dv, dtype=q.dtype, device=q.device)
    scale = 1.0 / math.sqrt(d)
    b_block, h_block, q_block = chunk_sizes(b, h, lq, lk, budget)
    for b0 in range(0, b, b_block):
        for h0 in range(0, h, h_block):
            bs, hs = slice(b0, b0 + b_block), slice(h0, h0 + h_block)
            # contiguous fp32 K^T / V of this block, reused by every query block below
            kt = kh[bs, hs].to(acc).transpose(-1, -2).contiguous()  # [b, h, D, Lk]
            vb = vh[bs, hs].to(acc).contiguous()                    # [b, h, Lk, Dv]
            for j in range(0, lq, q_block):
                s = torch.matmul(qh[bs, hs, j:j + q_block].to(acc) * scale, kt)
                if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
                    s = (s - s.amax(dim=-1, keepdim=True)).exp()  # autograd needs s: no in-place update
                else:
                    s.sub_(s.amax(dim=-1, keepdim=True)).exp_()
                denom = s.sum(dim=-1, keepdim=True)
                out[bs, j:j + q_block, hs] = (torch.matmul(s, vb) / denom).transpose(1, 2).to(q.dtype)
                del s
            del kt, vb
    return out


def attention_sdpa(q, k, v):
    with sdpa_priority(q, k):  # which fused SDPA kernel PyTorch tries first for this shape and GPU
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                             scale=1.0 / math.sqrt(q.shape[-1]))
    return out.transpose(1, 2)


def attention_flash_attn(q, k, v):
    # flash_attn_func takes [B, L, H, D] directly; fp16/bf16 CUDA only (checked in resolve_backend).
    out = _optional_module("flash_attn").flash_attn_func(q, k, v, dropout_p=0.0,
                                                         softmax_scale=1.0 / math.sqrt(q.shape[-1]), causal=False)
    return out[0] if isinstance(out, tuple) else out  # some builds return (out, lse)


def attention_sage(q, k, v):
    """SageAttention (INT8 Q K^T, fp16 P V) on [B, L, H, D] inputs ("NHD" in sageattention's terms).

    Why the wrapper does more than forward the call:
      * smoothing: sageattn(smooth_k=True) subtracts the key mean *in place* (`k -= km`), which
        would corrupt a caller's k (cached text keys, a view into a fused projection). Softmax is
        unchanged by a per-query constant, so q.(k - mean_k) gives the same attention; we subtract
        out of place and pass smooth_k=False.
      * its kernels index the last dimension as contiguous (asserted inside); views get a copy.
      * V goes to fp16 inside sageattn (|v| must stay below 65504; Wan's values are O(10)).
    Known bias of sageattention 1.0.x: when Lk is not a multiple of 64 its kernel loads the missing
    keys of the last block as zeros without masking them, so n_pad = (-Lk) % 64 phantom keys with
    score 0 and value 0 enter the softmax denominator: the output shrinks by at most n_pad / Lk
    (0.02 % at Lk = 32760, 0.5 % at the SynCamMaster V=2 view stream, Lk = 3120).
    """
    def last_dim_contiguous(t):
        return t if t.stride(-1) == 1 else t.contiguous()

    k = k - k.mean(dim=1, keepdim=True)  # out-of-place smooth_k (see above); [B, Lk, H, D]
    out = _optional_module("sage").sageattn(last_dim_contiguous(q), k, last_dim_contiguous(v), tensor_layout="NHD",
                                            is_causal=False, sm_scale=1.0 / math.sqrt(q.shape[-1]), smooth_k=False)
    return out[0] if isinstance(out, tuple) else out


# --------------------------------------------------------------------------------------------
# the table: a backend joins with one entry (see the module docstring)
# --------------------------------------------------------------------------------------------
def _fa3_unsupported(q) -> Optional[str]:
    return fa3.input_reason(fa3.device_capability(q.device), q.dtype, q.shape[-1])


IMPLEMENTATIONS: dict[str, Backend] = {
    "sdpa": Backend(attention_sdpa),
    "chunked": Backend(attention_chunked),
    "naive": Backend(attention_naive),
    "flash_attn3": Backend(fa3.attention_flash_attn3, package=fa3.MODULE_NAME, install=fa3.INSTALL_HINT,
                           unsupported=_fa3_unsupported, installed=fa3.installed),
    "fp8": Backend(fp8_attention.attention_fp8, package=fa3.MODULE_NAME,
                   install=f"{fa3.INSTALL_HINT}; or triton for the slower Triton fp8 kernel",
                   unsupported=fp8_attention.unsupported_reason,
                   installed=lambda: fa3.installed() or triton_available(), exact=fp8_attention.EXACT),
    "flash_attn": Backend(attention_flash_attn, package="flash_attn",
                          install="pip install flash-attn --no-build-isolation",
                          unsupported=needs_cuda_half(max_head_dim=256)),
    "sage": Backend(attention_sage, package="sageattention", install="pip install sageattention",
                    unsupported=needs_cuda_half(head_dims=SAGE_HEAD_DIMS), exact=False),
}
BACKENDS = ("auto",) + tuple(IMPLEMENTATIONS)  # the names users may choose (option lists of nodes and CLI)
# What "auto" tries, in order, per kind of device (see `auto_order`); the first installed backend that takes
# the inputs runs. Exact backends only: fp8 / sage change the output, so they are user choices, never a
# silent speed-up. On Hopper FlashAttention-2 is left out: cuDNN's SDPA kernel ran 1.6x faster (H200).
# On a CPU, PyTorch's SDPA runs its blocked flash kernel for unmasked inputs (workspace O(L), like chunked): on
# the built-in model's shapes it took 0.49-0.64x chunked's time, and a batch of the demo's grids 0.86-0.93x
# (2-core CPU, benchmarks/bench_cpu_attention.py). auto_order keeps it only where PyTorch says it picks that kernel.
AUTO_ORDER = {"cpu": ("sdpa", "chunked"), "cuda": ("flash_attn", "sdpa"), "cuda_sm90": ("flash_attn3", "sdpa")}
FALLBACK = "sdpa"  # the device's fused kernel: what runs when nothing else fits
FP8_ATTENTION_ACCURACY = fp8_attention.MEASURED_ACCURACY  # for option tooltips (loader node)
_inexact = sorted({n for order in AUTO_ORDER.values() for n in order if not IMPLEMENTATIONS[n].exact})
if _inexact:
    raise RuntimeError(f"AUTO_ORDER lists inexact attention backends {_inexact}: auto must keep the output exact")


def auto_order(q: torch.Tensor) -> tuple[str, ...]:
    """The backends `auto` tries for q's device, fastest exact first."""
    if q.device.type == "cuda" and (fa3.device_capability(q.device) or (0, 0))[0] == 9:
        return AUTO_ORDER["cuda_sm90"]
    order = AUTO_ORDER.get(q.device.type, ())
    if q.device.type == "cpu" and not cpu_sdpa_is_blocked(q.dtype, q.shape[-1]):
        order = tuple(name for name in order if name != "sdpa")   # its math kernel holds every score at once
    return order


@functools.lru_cache(maxsize=None)
def cpu_sdpa_is_blocked(dtype: torch.dtype, head_dim: int) -> bool:
    """Whether PyTorch's SDPA runs unmasked CPU inputs of this dtype and head size on its blocked flash kernel
    (bounded memory) rather than its math kernel (the full score matrix). Asked of PyTorch itself, because the
    rule moved between releases; an answer it cannot give counts as no."""
    try:
        probe = torch.zeros(1, 1, 1, head_dim, dtype=dtype)
        return int(torch._fused_sdp_choice(probe, probe, probe)) == int(SDPBackend.FLASH_ATTENTION)
    except Exception:  # a PyTorch without the private query, or a dtype it refuses
        return False


# --------------------------------------------------------------------------------------------
# backend selection
# --------------------------------------------------------------------------------------------
def _check_name(name: str) -> str:
    if name != "auto" and name not in IMPLEMENTATIONS:
        raise InputError(f"attention backend {name!r} is unknown; choose one of auto, {', '.join(IMPLEMENTATIONS)}")
    return name


@functools.lru_cache(maxsize=None)
def _optional_module(name: str):
    """The imported module behind backend `name`'s package, or None when it is not installed / broken."""
    try:
        return importlib.import_module(IMPLEMENTATIONS[name].package)
    except Exception:  # a broken CUDA extension raises OSError / RuntimeError, not only ImportError
        return None


def backend_installed(name: str) -> bool:
    _check_name(name)
    if name == "auto":
        return True
    b = IMPLEMENTATIONS[name]
    if b.installed is not None:
        return b.installed()
    return b.package is None or _optional_module(name) is not None


def available_backends() -> list[str]:
    """Backends usable in this environment (plus "auto"), in table order."""
    return [name for name in ("auto", *IMPLEMENTATIONS) if backend_installed(name)]


def require_installed(name: str) -> None:
    """Raise InputError, naming how to install it, when backend `name` cannot be imported here."""
    if not backend_installed(name):
        b = IMPLEMENTATIONS[name]
        raise InputError(
            f"attention backend {name!r} needs the {b.package!r} package, which is not importable here; "
            f"install it ({b.install}) or choose one of {', '.join(available_backends())}"
        )


def set_default_backend(name: str) -> None:
    """Process-wide default used when neither the call nor a context names a backend."""
    global _default_backend
    _check_name(name)
    require_installed(name)
    _default_backend = name


def get_default_backend() -> str:
    return _context_backend.get() or _default_backend


@contextlib.contextmanager
def attention_backend(name: Optional[str]):
    """`with attention_backend("chunked"): model(...)` runs every attention call inside on `name`;
    None keeps the surrounding choice (so a model whose `attention_backend` is None changes nothing)."""
    if name is None:
        yield
        return
    _check_name(name)
    require_installed(name)
    token = _context_backend.set(name)
    try:
        yield
    finally:
        _context_backend.reset(token)


def _unsupported_reason(name: str, q: torch.Tensor) -> str | None:
    rule = IMPLEMENTATIONS[name].unsupported
    return None if rule is None else rule(q)


def resolve_backend(q: torch.Tensor, backend: str | None = None) -> str:
    """The concrete backend that `attention` runs for query `q` and the requested `backend`."""
    name = _check_name(backend or get_default_backend())
    if name == "auto":
        for candidate in auto_order(q):
            if backend_installed(candidate) and _unsupported_reason(candidate, q) is None:
                return candidate
        return FALLBACK
    require_installed(name)
    reason = _unsupported_reason(name, q)
    if reason is not None:
        if name not in _warned:
            _warned.add(name)
            warnings.warn(f"attention backend {name!r} cannot run these inputs ({reason}); using {FALLBACK!r} instead")
        return FALLBACK
    return name


def _check_inputs(q, k, v) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        if t.dim() != 4:
            raise ValueError(f"attention: {name} must be [B, L, H, D], got shape {tuple(t.shape)}")
    if k.shape[:3] != v.shape[:3]:
        raise ValueError(f"attention: k {tuple(k.shape)} and v {tuple(v.shape)} must share [B, Lk, H]")
    if (q.shape[0], q.shape[2], q.shape[3]) != (k.shape[0], k.shape[2], k.shape[3]):
        raise ValueError(f"attention: q {tuple(q.shape)} and k {tuple(k.shape)} must share B, H and D")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"attention: q, k, v dtypes differ ({q.dtype}, {k.dtype}, {v.dtype}); cast them to one dtype")


def never_compiled(fn):
    """`fn` as torch.compiler.disable makes it, without importing torch._dynamo before torch.compile is in use.
    The decorator imports it at once, 1.3 s of the quick start on 2 CPU cores (benchmarks/bench_import_time.py);
    torch.compile imports it before it traces anything, so while it is not loaded no trace can reach `fn`. Once it
    is, calls go through torch's own lazy form of the decorator (torch._disable_dynamo, what torch uses inside
    itself; where a torch lacks it, the plain decorator, which imports torch._dynamo as before)."""
    disabled = getattr(torch, "_disable_dynamo", torch.compiler.disable)(fn)

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if "torch._dynamo" in sys.modules:
            return disabled(*args, **kwargs)
        return fn(*args, **kwargs)
    return call


# Never traced by torch.compile: a compiled block keeps exactly the backend this dispatcher picks
# (the choice reads a context variable and may call optional extension kernels).
@never_compiled
def attention(q, k, v, backend=None):
    """Multi-head attention, q [B, Lq, H, D], k/v [B, Lk, H, D] -> [B, Lq, H, D] (q.dtype)."""
    _check_inputs(q, k, v)
    return IMPLEMENTATIONS[resolve_backend(q, backend)].run(q, k, v)


# --------------------------------------------------------------------------------------------
# the fused grid mode's masked attention (docs/ARCHITECTURE.md §3.3 Grid modes, "fused")
# --------------------------------------------------------------------------------------------
FUSED_METHODS = GRID_MASK_METHODS  # auto, streams (exact, dense kernels + LSE merge), flex (FlexAttention), naive
# the dense LSE kernel (kernels/attention_lse.py) of the "streams" method for each dispatch backend;
# backends not listed (sdpa, flash_attn, sage) use PyTorch's aten kernels (cuDNN on Hopper, else flash)
LSE_KERNEL = {"flash_attn3": "fa3", "fp8": "auto", "chunked": "chunked", "naive": "chunked"}


# Not traced by torch.compile, like `attention` (Python dispatch, optional extension kernels).
@never_compiled
def fused_grid_attention(q, k, v, views: int, frames: int, tokens_per_frame: int, method: str = "auto"):
    """Attention of a whole grid, q / k / v [B, V*T*hw, H, D] (view-major: frame (view a, time t) is frame
    a*T + t), a query-key pair kept iff the two frames share the view or the time -> [B, V*T*hw, H, D].

    method (kernels/grid_mask_attention.py): "streams" exact, no mask (the temporal stream + the other views
    at the same time, merged with their log-sum-exps; FLOPs exactly the mask's); "flex" FlexAttention with
    a block mask built from the frame structure; "naive" a dense boolean mask (tests). "auto": naive when
    the dispatch backend is naive (a test's reference), else streams on that backend's kernel (LSE_KERNEL).
    Measured on an H200 (V=4, T=21, hw=1560): streams on FA3 51.2 ms, on cuDNN 59.4 ms, FlexAttention
    75.6 ms; the two attentions of `hard` take 54.6 ms.
    """
    _check_inputs(q, k, v)
    if method not in FUSED_METHODS:
        raise ValueError(f"fused attention method {method!r} is unknown; choose one of {', '.join(FUSED_METHODS)}")
    backend = resolve_backend(q)
    if method == "auto":
        method = "naive" if backend == "naive" else "streams"
    return grid_mask_attention(q, k, v, views, frames, tokens_per_frame, backend=method,
                               lse_backend=LSE_KERNEL.get(backend, "aten"))
