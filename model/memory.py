"""Predict the peak GPU memory of one GridDiT forward (docs/ARCHITECTURE.md §7 Attention and memory), with a
breakdown.

    est = predict_peak_memory("wan-1.3b", views=8, frames=81, height=480, width=832, mode="hard")
    int(est)         -> bytes (est is an int)
    est.breakdown    -> {"weights": ..., "states": ..., "block_transient": ..., "attention_workspace": ...,
                         "rope": ..., "io": ...}
    est.gib          -> float

The weights term is exact: a meta-device GridDiT of the config is built and its tensors counted
(fp8 layers at 1 byte per weight + float32 scales; block swap keeps two swapped blocks' Linear
weights resident). The activation terms count the tensors alive at the two peaks of a block —
the self-attention (q, k, v plus the fp32 RoPE temporaries) and the FFN (its two hidden
activations) — on top of the float32 residual-stream states each mode keeps alive across the
block (they are listed per mode below, read off model/dit.py). `benchmarks/bench_memory.py`
checks the prediction against torch.cuda.max_memory_allocated; benchmarks/MEMORY.md has the table.
If dit.py's data flow changes (fused kernels, fewer fp32 copies), update the counts here and rerun it.

Units: R = 4·dim bytes (one fp32 residual row), A = act_bytes·dim (one row in the compute dtype),
F = act_bytes·ffn_dim. "Tokens" N = rows of one stream = B·V·T·h·w (B·V·2T·h·w for recam).
"""
from __future__ import annotations

import math
from typing import Optional, Union

import torch

from .attention import BACKENDS, DEFAULT_CHUNK_BUDGET_BYTES
from .config import DiTConfig, get_config
from .dit import GridDiT
from .fp8 import QUANTIZABLE
from .modes import MODES

GIB = 2**30

# Counts read off model/dit.py (fused LayerNorm+modulation writing bf16, fused q/k norm+RoPE, gated
# residuals out of place for the block input and in place after). fp32 token states alive at a block's
# FFN peak, the block input included (in R):
#   independent: block input, x after self-attn (owned by the block, updated in place after)   -> 2
#   recam / syncam: + the block's camera features (a loop local)                              -> 3
#   hard:        tokens (input of both streams), view-stream input copy, view-stream output,
#                x of the time-stream block                                                    -> 4
#   soft:        hard's 4 plus the second stream state                                         -> 5
#   fused:       as independent (one stream; the block's camera features add 1 with a camera encoder) -> 2
STATES_AT_FFN = {"independent": 2, "recam": 3, "syncam": 3, "hard": 4, "soft": 5, "fused": 2}
# at the self-attention peak (before the residual): input (+ camera features, + the fp32 LN output and
# its sum with the camera features for recam / syncam); hard / soft as above without the block's own x
STATES_AT_ATTN = {"independent": 1, "recam": 3, "syncam": 3, "hard": 3, "soft": 4, "fused": 1}
# fused with a camera encoder (SynCamMaster / ReCamMaster weights): + the camera features at both peaks,
# + the fp32 LN output they are added to at the attention peak (as recam / syncam)
FUSED_CAMERA_STATES = {"ffn": 1, "attn": 2}
# compute-dtype rows at the FFN peak: its input and output (plus the two [tokens, ffn_dim] hiddens)
ROWS_AT_FFN = {"independent": 2, "recam": 2, "syncam": 2, "hard": 2, "soft": 2, "fused": 2}
# at the self-attention peak: modulated input, q before its norm, q, k, v, attention output
ATTN_ROWS, ROPE_TEMP_BYTES_PER_DIM = 6, 0
# fp32 states alive while a block's result replaces its input / the streams are merged
# (hard: tokens, view-stream input and output, the time-stream output, the re-laid-out view output)
MERGE_STATES = {"independent": 2, "recam": 3, "syncam": 3, "hard": 5, "soft": 6, "fused": 2}
TWO_STREAM_LAYOUTS = ("hard", "soft", "syncam")  # modes that also run view-stream rows [(B T), (V hw)]


class MemoryEstimate(int):
    """Predicted peak bytes (an int) with `.breakdown` (bytes per term) and `.gib`."""

    breakdown: dict

    def __new__(cls, breakdown: dict):
        obj = super().__new__(cls, int(sum(breakdown.values())))
        obj.breakdown = dict(breakdown)
        return obj

    @property
    def gib(self) -> float:
        return int(self) / GIB

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.2f}" for k, v in self.breakdown.items())
        return f"{self.gib:.2f} GiB ({parts})"


def _dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def weight_bytes(config: DiTConfig, dtype=torch.bfloat16, fp8: bool = False, block_swap: int = 0,
                 scaling: str = "per_channel") -> int:
    """Bytes of the model's tensors on the GPU (exact for GridDiT as built by model/dit.py)."""
    with torch.device("meta"):
        model = GridDiT(config)
    wb = _dtype_bytes(dtype)
    total, swapped_per_block = 0, [0] * config.num_layers
    for mod_name, mod in model.named_modules():
        for name, t in list(mod.named_parameters(recurse=False)) + list(mod.named_buffers(recurse=False)):
            quantized = fp8 and name == "weight" and QUANTIZABLE.match(mod_name) is not None
            if quantized:
                n = t.numel() + 4 * (t.shape[0] if scaling == "per_channel" else 1)
            else:
                n = t.numel() * (wb if t.is_floating_point() else t.element_size())
            total += n
            parts = mod_name.split(".")
            if block_swap and parts[0] == "blocks" and isinstance(mod, torch.nn.Linear):
                swapped_per_block[int(parts[1])] += n
    if block_swap:
        swapped = swapped_per_block[:block_swap]
        total -= sum(swapped) - sum(sorted(swapped)[-min(2, block_swap):])  # current + prefetched block
    return total


def latent_grid(frames: int, height: int, width: int, patch=(1, 2, 2), vae_stride=(4, 8, 8)):
    """(latent frames T, token rows h, token cols w) for a video of `frames` x height x width pixels."""
    if (frames - 1) % vae_stride[0]:
        raise ValueError(f"frames must be 4k+1 (Wan VAE), got {frames}")
    t = (frames - 1) // vae_stride[0] + 1
    cell_h, cell_w = vae_stride[1] * patch[1], vae_stride[2] * patch[2]
    if height % cell_h or width % cell_w:
        raise ValueError(f"height/width must be multiples of {cell_h}/{cell_w}, got {height}x{width}")
    return t // patch[0], height // cell_h, width // cell_w


def fused_attention_workspace(attention: str, heads: int, dim: int, tokens: int, views: int, act_bytes: int) -> int:
    """Extra bytes of the fused mode's exact "streams" attention (model.attention.fused_grid_attention) beyond
    q / k / v / out, for `tokens` tokens of grids of `views` views. Read off kernels/grid_mask_attention.py:
    while the view part runs: the temporal part's output, the other views' keys and values gathered per
    frame (2 (V-1) rows each) and the view part's output; while merging: both outputs, one fp32 working
    copy and the result (the result is the attention output itself, counted by the caller). Plus each
    part's fp32 log-sum-exp and its dense kernel's own workspace."""
    a = act_bytes * dim
    view_phase = (1 + 2 * (views - 1) + 1) * a
    merge_phase = 2 * a + 4 * dim
    dense = attention_workspace("chunked" if attention == "chunked" else "sdpa", heads, dim, tokens, tokens)
    return max(view_phase, merge_phase) * tokens + 2 * 4 * heads * tokens + dense


def attention_workspace(attention: str, heads: int, dim: int, tokens: int, seq_len: int) -> int:
    """Bytes an attention backend needs beyond q / k / v / out for `tokens` queries in sequences of `seq_len`."""
    if attention == "chunked":
        return DEFAULT_CHUNK_BUDGET_BYTES + 2 * 4 * dim * seq_len  # score block + fp32 K/V of one sequence
    if attention == "naive":  # the full fp32 score matrix of every sequence
        return 4 * heads * seq_len * tokens
    # fused kernels (sdpa, flash_attn3, fp8, flash_attn, sage; auto on a GPU): fp32 LSE per head and query
    return 4 * heads * tokens


def _block_transient(cfg: DiTConfig, mode: str, n: int, act: int, views: int, t: int, cfg_batch: int,
                     ffn_chunk: Optional[int], row_chunks: Optional[int]) -> int:
    """Peak bytes a block holds beyond its input: the FFN or attention step's temporaries (shrunk by row
    chunks), or the two-stream merge, whichever is larger."""
    d, f = cfg.dim, cfg.ffn_dim
    R, A, Fb = 4 * d, act * d, act * f
    # FFN hidden: two [tokens, ffn_dim] tensors (linear out, GELU out); chunked: per chunk, plus the
    # chunk outputs and their concatenation (2 rows of the compute dtype)
    if ffn_chunk and ffn_chunk < n:
        ffn_hidden = 2 * Fb * min(ffn_chunk, n) + 2 * A * n
    else:
        ffn_hidden = 2 * Fb * n
    camera = mode == "fused" and cfg.variant in ("syncammaster", "recammaster")
    states_ffn = STATES_AT_FFN[mode] + (FUSED_CAMERA_STATES["ffn"] if camera else 0)
    states_attn = STATES_AT_ATTN[mode] + (FUSED_CAMERA_STATES["attn"] if camera else 0)
    ffn_peak = (states_ffn - 1) * R * n + ROWS_AT_FFN[mode] * A * n + ffn_hidden
    attn_peak = (states_attn - 1) * R * n + (ATTN_ROWS * A + ROPE_TEMP_BYTES_PER_DIM * d) * n
    block_transient = max(ffn_peak, attn_peak)
    if row_chunks:
        # GridDiT.set_row_chunks(n): a block runs n rows (sequences) at a time into a preallocated output;
        # the stream states stay whole, the per-row temporaries shrink
        seqs = cfg_batch * min(views, t) if mode in TWO_STREAM_LAYOUTS else cfg_batch * views
        frac = min(1.0, row_chunks / seqs)
        per_row = ROWS_AT_FFN[mode] * A * n + ffn_hidden + R * n  # the block's own x
        block_transient = int(block_transient - per_row + frac * per_row + R * n)
    merge = (MERGE_STATES[mode] - 1) * R * n
    if merge > block_transient:
        block_transient = merge
    return block_transient


def predict_peak_memory(config: Union[DiTConfig, str], views: int, frames: int, height: int, width: int,
                        mode: str = "independent", dtype=torch.bfloat16, fp8: bool = False, block_swap: int = 0,
                        ffn_chunk: Optional[int] = None, row_chunks: Optional[int] = None,
                        attention: str = "sdpa", cfg_batch: int = 1, text_len: int = 512) -> MemoryEstimate:
    """Peak bytes of one forward of GridDiT at this configuration (see the module docstring).

    views V, frames (video frames, 4k+1), height x width (pixels); cfg_batch: batch rows per forward
    (2 when cond and uncond run batched); ffn_chunk: tokens per FFN chunk (GridDiT.set_ffn_chunk);
    row_chunks: rows (sequences) per block call (GridDiT.set_row_chunks; shrinks the block temporaries,
    not the stream states); attention: the backend (sdpa / flash_attn / sage keep O(N) workspace)."""
    cfg = get_config(config) if isinstance(config, str) else config
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if attention not in BACKENDS:
        raise ValueError(f"attention must be one of {BACKENDS}, got {attention!r}")
    if views < 1 or cfg_batch < 1:
        raise ValueError(f"views and cfg_batch must be >= 1, got {views}, {cfg_batch}")
    t, h, w = latent_grid(frames, height, width, cfg.patch_size)
    hw = h * w
    frames_per_seq = 2 * t if mode == "recam" else t
    n = cfg_batch * views * frames_per_seq * hw  # rows of one stream
    act = _dtype_bytes(dtype)
    d, heads = cfg.dim, cfg.num_heads
    R = 4 * d

    block_transient = _block_transient(cfg, mode, n, act, views, t, cfg_batch, ffn_chunk, row_chunks)
    states = R * n  # the block input (the residual stream)

    seq_len = max(frames_per_seq, views) * hw if mode in TWO_STREAM_LAYOUTS else frames_per_seq * hw
    if mode == "fused":
        seq_len = views * t * hw  # one whole-grid row per batch element
        workspace = fused_attention_workspace(attention, heads, d, n, views, act)
    else:
        workspace = attention_workspace(attention, heads, d, n, seq_len)

    # RoPE tables (fp32 cos + sin, [L, head_dim/2] each) per stream layout (fused: V*T frames); text; latent in/out
    rope_frames = views * t if mode == "fused" else frames_per_seq
    rope = 4 * cfg.head_dim * rope_frames * hw + (4 * cfg.head_dim * views * hw if mode in TWO_STREAM_LAYOUTS else 0)
    latent_cells = cfg_batch * views * t * hw * math.prod(cfg.patch_size)
    io = 4 * (cfg.in_dim + 2 * cfg.out_dim) * latent_cells + cfg_batch * text_len * (cfg.text_dim + 2 * d) * act
    return MemoryEstimate({
        "weights": weight_bytes(cfg, dtype, fp8, block_swap),
        "states": states,
        "block_transient": block_transient,
        "attention_workspace": workspace,
        "rope": rope,
        "io": io,
    })
