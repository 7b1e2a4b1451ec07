"""GridDiT: the Wan2.1 video DiT over a latent grid of views x time (DESIGN §3).

One model file, equations visible. Shapes:
    latent grid      x [B, V, C, T, H, W]
    per-view tokens    [(B V), (T h w), d]        the canonical layout between blocks
    view stream        [(B T), (V h w), d]        tokens of all views at the same latent frame
    time stream        [(B V), (T h w), d]        = per-view tokens

Numerics follow the Wan2.1 reference: the timestep is cast to the model dtype before a float64
sinusoid, the time embedding / modulation / gates / residual stream are float32, the linear layers
run in the model dtype. For an fp32 model all of this is plain fp32.

Speed (DESIGN §7): q/k RMSNorm + RoPE, LayerNorm + modulation and the gated residuals go through
the fused kernels of kernels/ (Triton on CUDA, their torch references elsewhere: CPU numerics are
the plain fp32 formulas); RoPE tables are cached per grid; on Hopper the SDPA kernel is picked per
shape (kernels/sdpa_select.py). Opt-in: `compile_blocks()` (torch.compile per block),
`set_row_chunks(n)` (rows of a stream in chunks of n, bounds activation memory),
`set_ffn_chunking(tokens)`.

Modes (DESIGN §3.3): independent, syncam (SynCamMaster), recam (ReCamMaster), hard / soft
(4Real-Video two-stream with hard or soft synchronisation after every block).
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels.gated_residual import gated_residual
from ..kernels.layernorm_modulate import layer_norm_modulate
from ..kernels.qk_norm_rope import qk_norm_rope
from ..kernels.sdpa_select import sdpa_priority
from .attention import attention
from .config import DiTConfig
from .rope import rope_table
from .sync import SyncLayer
from .timestep import sinusoid_embedding

MODES = ("independent", "syncam", "recam", "hard", "soft")
PLANNED_MODES = ("fused",)  # 4Real-Video-V2 joint masked attention (DESIGN §3.3, later)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype) * self.weight


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in float32 (Wan's WanLayerNorm), returning float32."""

    def forward(self, x):
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps)


@torch.compiler.disable
def attend(q, k, v, backend=None):
    """model.attention with the SDPA kernel priority for this shape; never traced by torch.compile,
    so a compiled block keeps exactly the backend the dispatcher picks."""
    with sdpa_priority(q, k):
        return attention(q, k, v, backend=backend)


def norm_heads(x, norm: RMSNorm, num_heads: int, rope=None):
    """RMSNorm(x) over the full width, viewed as heads, rotated by RoPE when `rope` = (cos, sin)."""
    cos, sin = rope if rope is not None else (None, None)
    return qk_norm_rope(x, norm.weight, cos, sin, num_heads, norm.eps)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def forward(self, x, rope, backend=None):
        n, l, d = x.shape
        x = x.to(self.q.weight.dtype)
        q = norm_heads(self.q(x), self.norm_q, self.num_heads, rope)
        k = norm_heads(self.k(x), self.norm_k, self.num_heads, rope)
        v = self.v(x).view(n, l, self.num_heads, -1)
        out = attend(q, k, v, backend)
        return self.o(out.reshape(n, l, d))


class CrossAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, eps: float = 1e-6):
        super().__init__()
        self.num_heads = num_heads
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.norm_q, self.norm_k = RMSNorm(dim, eps), RMSNorm(dim, eps)

    def context_kv(self, context):
        """k, v [B, Lc, H, D] of the text, once per batch element (shared by all its rows)."""
        b = context.shape[0]
        k = norm_heads(self.k(context), self.norm_k, self.num_heads)
        v = self.v(context).view(b, -1, self.num_heads, context.shape[-1] // self.num_heads)
        return k, v

    def forward(self, x, context, backend=None, kv=None):
        """x [N, L, d]; context [B, Lc, d] with N a multiple of B (rows of batch b are contiguous).

        kv: (k, v) from `context_kv`, already one per row of x or one per batch element (then
        `context` is not read); lets a caller that processes rows in chunks project the text once.
        """
        n, l, d = x.shape
        x = x.to(self.q.weight.dtype)
        q = norm_heads(self.q(x), self.norm_q, self.num_heads)
        k, v = kv if kv is not None else self.context_kv(context)
        rep = n // k.shape[0]
        if rep > 1:
            k, v = k.repeat_interleave(rep, 0), v.repeat_interleave(rep, 0)
        return self.o(attend(q, k, v, backend).reshape(n, l, d))


_GELU_EPILOGUE: dict = {}


def gelu_epilogue_is_tanh(device) -> bool:
    """Whether torch._addmm_activation(use_gelu=True) computes the tanh GELU on `device`.

    cuBLASLt's GELU epilogue is the tanh approximation Wan uses; other builds (torch's CPU
    kernel uses the erf GELU) must not take the fused path. Checked once per device in fp32 on
    values where the two GELUs differ by ~1e-3.
    """
    key = str(device)
    if key not in _GELU_EPILOGUE:
        with torch.no_grad():
            x = torch.linspace(-3, 3, 64 * 64, device=device).view(64, 64)
            eye = torch.eye(64, device=device)
            got = torch._addmm_activation(torch.zeros(64, device=device), x, eye, use_gelu=True)
            d_tanh = (got - F.gelu(x, approximate="tanh")).abs().max().item()
            d_erf = (got - F.gelu(x)).abs().max().item()
        _GELU_EPILOGUE[key] = d_tanh < 1e-5 < d_erf
    return _GELU_EPILOGUE[key]


def modulate(x32, shift, scale):
    return x32 * (1 + scale) + shift


class GridDiTBlock(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        dim, eps = cfg.dim, cfg.eps
        self.self_attn = SelfAttention(dim, cfg.num_heads, eps)
        self.cross_attn = CrossAttention(dim, cfg.num_heads, eps)
        self.norm1 = LayerNorm32(dim, eps=eps, elementwise_affine=False)
        self.norm2 = LayerNorm32(dim, eps=eps, elementwise_affine=False)
        self.norm3 = LayerNorm32(dim, eps=eps, elementwise_affine=True) if cfg.cross_attn_norm else nn.Identity()
        self.ffn = nn.Sequential(nn.Linear(dim, cfg.ffn_dim), nn.GELU(approximate="tanh"), nn.Linear(cfg.ffn_dim, dim))
        self.modulation = nn.Parameter(torch.randn(1, 6, dim) / dim ** 0.5)
        if cfg.variant in ("syncammaster", "recammaster"):
            self.cam_encoder = nn.Linear(12, dim)
            self.projector = nn.Linear(dim, dim)
        if cfg.variant == "syncammaster":
            self.norm_mvs = LayerNorm32(dim, eps=eps, elementwise_affine=False)
            self.modulation_mvs = nn.Parameter(torch.randn(1, 3, dim) / dim ** 0.5)
            self.mvs_attn = SelfAttention(dim, cfg.num_heads, eps)
        self.sync: Optional[SyncLayer] = None  # attached from a camgrid sync-weights file
        self.ffn_chunk_tokens: Optional[int] = None  # bound the FFN's hidden activation (memory)
        self.row_chunk: Optional[int] = None  # process at most this many rows (streams) at a time

    @property
    def has_camera(self) -> bool:
        return hasattr(self, "cam_encoder")

    def ffn_forward(self, x):
        x = x.to(self.ffn[0].weight.dtype)
        c = self.ffn_chunk_tokens
        if c is None or x.shape[1] <= c:
            return self.ffn_apply(x)
        return torch.cat([self.ffn_apply(part) for part in x.split(c, dim=1)], dim=1)

    def ffn_apply(self, x):
        """Linear, GELU(tanh), Linear. On CUDA in half precision (inference) the GELU runs in the
        first matmul's cuBLASLt epilogue (torch._addmm_activation): one pass less over the
        [L, ffn_dim] hidden activation, the largest tensor of the block."""
        up = self.ffn[0]
        fused = (x.is_cuda and type(up) is nn.Linear and x.dtype in (torch.float16, torch.bfloat16)
                 and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
                 and gelu_epilogue_is_tanh(x.device))
        if not fused:
            return self.ffn(x)
        hidden = torch._addmm_activation(up.bias, x.reshape(-1, x.shape[-1]), up.weight.t(), use_gelu=True)
        return self.ffn[2](hidden).view(*x.shape[:-1], -1)

    def cross_input(self, x):
        """norm3(x) in the linear layers' dtype. On CUDA the affine LayerNorm runs as the fused
        LN + modulation kernel: LN(x) * w + b == LN(x) * (1 + (w - 1)) + b."""
        n3 = self.norm3
        if not (x.is_cuda and isinstance(n3, LayerNorm32) and n3.weight is not None
                and not torch.compiler.is_compiling()):
            return n3(x)
        return layer_norm_modulate(x, n3.bias.float(), n3.weight.float() - 1, n3.eps, out_dtype=self.ffn[0].weight.dtype)

    def modulated(self, x, norm, shift, scale, cam=None):
        """LN(x) * (1 + scale) + shift (+ cam), in the linear layers' dtype (fused kernel on CUDA)."""
        dtype = self.ffn[0].weight.dtype
        if cam is None:
            return layer_norm_modulate(x, shift, scale, norm.eps, out_dtype=dtype)
        return (layer_norm_modulate(x, shift, scale, norm.eps, out_dtype=torch.float32) + cam).to(dtype)

    def forward(self, x, e, context, rope, cam=None, use_projector=False, backend=None):
        """One Wan block on rows x [N, L, d] (float32 residual stream); x itself is not modified.

        e: [N, 6, d] float32 timestep modulation per row (already expanded to rows).
        cam: optional [N, L, d] camera features added to the self-attention input (ReCamMaster;
             the view stream of hard/soft). use_projector: ReCamMaster's projector on the output.
        With `row_chunk` set, rows go through the block in chunks (rows are independent).
        """
        n, c = x.shape[0], self.row_chunk
        if c is None or n <= c:
            return self.forward_rows(x, e, context, rope, cam, use_projector, backend)
        out = torch.empty_like(x)
        for r0, r1, kv in self._row_chunks_with_text(n, context):
            out[r0:r1] = self.forward_rows(x[r0:r1], e[r0:r1] if e.shape[0] == n else e, None, rope,
                                           cam[r0:r1] if cam is not None else None, use_projector, backend, kv)
        return out

    def _row_chunks_with_text(self, n, context):
        """(r0, r1, kv) for each chunk of `row_chunk` of the n rows; kv is the text k/v of each row's batch
        element (rows of one batch element are contiguous), projected once per call, not once per chunk."""
        k, v = self.cross_attn.context_kv(context)
        rep = n // context.shape[0]
        for r0 in range(0, n, self.row_chunk):
            r1 = min(n, r0 + self.row_chunk)
            batch_of_row = torch.arange(r0, r1, device=k.device) // rep
            yield r0, r1, (k.index_select(0, batch_of_row), v.index_select(0, batch_of_row))

    def forward_rows(self, x, e, context, rope, cam=None, use_projector=False, backend=None, kv=None):
        s1, c1, g1, s2, c2, g2 = (self.modulation.float() + e).chunk(6, dim=1)
        y = self.self_attn(self.modulated(x, self.norm1, s1, c1, cam), rope, backend)
        if use_projector:
            y = self.projector(y)
        x = gated_residual(x, g1, y)  # out of place: the caller's x may feed the other stream too
        return self.cross_ffn(x, e, context, backend, (s2, c2, g2), kv)

    def cross_ffn(self, x, e, context, backend, mlp_mod=None, kv=None):
        """Cross-attention and FFN residuals; at inference updates x (a tensor this block owns) in place.

        With autograd recording (training) everything stays out of place: backward needs the old x."""
        s2, c2, g2 = mlp_mod if mlp_mod is not None else (self.modulation.float() + e).chunk(6, dim=1)[3:]
        inplace = not torch.is_grad_enabled()
        y = self.cross_attn(self.cross_input(x), context, backend, kv)
        x = x.add_(y) if inplace else x + y
        return gated_residual(x, g2, self.ffn_forward(self.modulated(x, self.norm2, s2, c2)), inplace=inplace)

    def forward_syncam(self, x, e, context, rope, rope_mvs, cam, grid, backend=None):
        """SynCamMaster block: self-attn, multi-view attn across views at the same frame, cross-attn, FFN.

        With `row_chunk` set, each of the three steps runs on at most that many rows of its own layout:
        time-stream rows (a view's whole video) for self-attention and cross-attention + FFN, view-stream
        rows (one latent frame of every view) for the multi-view attention."""
        b, v, t, hw = grid
        n, c = x.shape[0], self.row_chunk
        if c is not None and (n > c or b * t > c):
            return self._forward_syncam_chunked(x, e, context, rope, rope_mvs, cam, grid, backend)
        s1, c1, g1, s2, c2, g2 = (self.modulation.float() + e).chunk(6, dim=1)
        x = gated_residual(x, g1, self.self_attn(self.modulated(x, self.norm1, s1, c1), rope, backend))
        sm, cm, gm = (self.modulation_mvs.float() + e[:, :3]).chunk(3, dim=1)
        h = to_view_stream(self.modulated(x, self.norm_mvs, sm, cm, cam), b, v, t, hw)
        y = self.projector(self.mvs_attn(h, rope_mvs, backend))
        x = gated_residual(x, gm, from_view_stream(y, b, v, t, hw), inplace=not torch.is_grad_enabled())  # gm: per batch
        return self.cross_ffn(x, e, context, backend, (s2, c2, g2))

    def _forward_syncam_chunked(self, x, e, context, rope, rope_mvs, cam, grid, backend):
        """forward_syncam, row chunk by row chunk; the same result (rows are independent in every step).
        Writes into one new residual stream (in place at inference, into a second buffer under autograd).
        e is per time-stream row here ([B*V, 6, d], GridDiT._forward_syncam)."""
        b, v, t, hw = grid
        n, c, d = x.shape[0], self.row_chunk, x.shape[-1]
        mod = self.modulation.float() + e                                 # [N, 6, d]
        inplace = not torch.is_grad_enabled()
        # 1. self-attention over the frames of each view (time-stream rows)
        x1 = torch.empty_like(x)
        for r0 in range(0, n, c):
            r1 = min(n, r0 + c)
            s1, c1, g1 = mod[r0:r1, :3].chunk(3, dim=1)
            xr = x[r0:r1]
            x1[r0:r1] = gated_residual(xr, g1, self.self_attn(self.modulated(xr, self.norm1, s1, c1), rope, backend))
        # 2. multi-view attention across the views of each latent frame (view-stream rows), per batch element
        mvs = self.modulation_mvs.float() + e[:, :3]
        sm, cm, gm = (part.reshape(b, v, 1, d) for part in mvs.chunk(3, dim=1))   # per (batch, view) row
        x2 = x1 if inplace else torch.empty_like(x1)
        src, dst = x1.view(b, v, t * hw, d), x2.view(b, v, t * hw, d)
        cam_v = cam.view(b, v, t * hw, d) if cam is not None else None
        tc = min(c, t)
        for bi in range(b):
            for t0 in range(0, t, tc):
                t1 = min(t, t0 + tc)
                cols = slice(t0 * hw, t1 * hw)
                xs = src[bi, :, cols]                                      # [V, tc*hw, d]
                h = self.modulated(xs, self.norm_mvs, sm[bi], cm[bi], cam_v[bi, :, cols] if cam_v is not None else None)
                h = h.reshape(v, t1 - t0, hw, d).transpose(0, 1).reshape(t1 - t0, v * hw, d)
                y = self.projector(self.mvs_attn(h, rope_mvs, backend))
                y = y.reshape(t1 - t0, v, hw, d).transpose(0, 1).reshape(v, (t1 - t0) * hw, d)
                if inplace:
                    gated_residual(xs, gm[bi], y, inplace=True)
                else:
                    dst[bi, :, cols] = gated_residual(xs, gm[bi], y)
        # 3. cross-attention + FFN, time-stream rows
        out = x2 if inplace else torch.empty_like(x2)
        for r0, r1, kv in self._row_chunks_with_text(n, context):
            res = self.cross_ffn(x2[r0:r1], e[r0:r1], None, backend, mod[r0:r1, 3:].chunk(3, dim=1), kv)
            if not inplace:
                out[r0:r1] = res
        return out


def to_view_stream(x, b, v, t, hw):
    """[(B V), (T hw), d] -> [(B T), (V hw), d]"""
    d = x.shape[-1]
    return x.reshape(b, v, t, hw, d).transpose(1, 2).reshape(b * t, v * hw, d)


def from_view_stream(x, b, v, t, hw):
    """[(B T), (V hw), d] -> [(B V), (T hw), d]"""
    d = x.shape[-1]
    return x.reshape(b, t, v, hw, d).transpose(1, 2).reshape(b * v, t * hw, d)


class Head(nn.Module):
    def __init__(self, cfg: DiTConfig):
        super().__init__()
        self.norm = LayerNorm32(cfg.dim, eps=cfg.eps, elementwise_affine=False)
        self.head = nn.Linear(cfg.dim, cfg.out_dim * math.prod(cfg.patch_size))
        self.modulation = nn.Parameter(torch.randn(1, 2, cfg.dim) / cfg.dim ** 0.5)

    def forward(self, x, t):
        shift, scale = (self.modulation.float() + t[:, None].float()).chunk(2, dim=1)
        # the reference runs the output projection in float32
        h = layer_norm_modulate(x, shift, scale, self.norm.eps, out_dtype=torch.float32)
        return F.linear(h, self.head.weight.float(), self.head.bias.float())


class GridDiT(nn.Module):
    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = cfg = config
        self.patch_embedding = nn.Conv3d(cfg.in_dim, cfg.dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding = nn.Sequential(nn.Linear(cfg.text_dim, cfg.dim), nn.GELU(approximate="tanh"),
                                            nn.Linear(cfg.dim, cfg.dim))
        self.time_embedding = nn.Sequential(nn.Linear(cfg.freq_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))
        self.time_projection = nn.Sequential(nn.SiLU(), nn.Linear(cfg.dim, cfg.dim * 6))
        self.blocks = nn.ModuleList([GridDiTBlock(cfg) for _ in range(cfg.num_layers)])
        self.head = Head(cfg)
        self.attention_backend: Optional[str] = None  # None = model.attention's default ("auto")
        # called between blocks (ComfyUI cancel); raises to stop
        self.interrupt_check: Optional[Callable[[], None]] = None

    # --- properties -------------------------------------------------------------------------
    @property
    def variant(self) -> str:
        return self.config.variant

    @property
    def dtype(self) -> torch.dtype:
        return self.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.patch_embedding.weight.device

    @property
    def has_camera_encoder(self) -> bool:
        return self.blocks[0].has_camera

    @property
    def has_sync_weights(self) -> bool:
        return self.blocks[0].sync is not None

    def base_state_dict(self) -> dict:
        """The state dict in original Wan layout, without camgrid sync layers (saved separately)."""
        return {k: v for k, v in self.state_dict().items() if ".sync." not in k}

    def set_ffn_chunking(self, tokens: Optional[int]) -> None:
        for block in self.blocks:
            block.ffn_chunk_tokens = tokens

    def set_row_chunks(self, rows: Optional[int]) -> None:
        """Run each block on at most `rows` rows at a time (None = all at once).

        A row is one sequence of a stream: a view of the time stream, a latent frame of the view
        stream, a (view, cond/uncond) pair in batched CFG. Rows are independent, so the result is
        the same; peak activation memory shrinks to about rows/N of the block's (the residual
        stream itself stays whole). Applies to every mode; syncam's block chunks each of its steps in
        that step's own layout (time-stream rows, then view-stream rows: one latent frame of all views).
        """
        if rows is not None and (not isinstance(rows, int) or rows < 1):
            raise ValueError(f"row chunk must be a positive int or None, got {rows!r}")
        for block in self.blocks:
            block.row_chunk = rows

    def compile_blocks(self, enabled: bool = True, **compile_kwargs) -> None:
        """torch.compile every block (regional compilation; one compiled graph reused by all blocks).

        Under compilation the fused Triton kernels give way to their torch references, which
        Inductor fuses itself; attention stays outside the graphs (same backend dispatch).
        compile_kwargs go to torch.compile (default dynamic=False: the stream shapes are few and
        fixed during sampling). enabled=False restores eager blocks.
        """
        compile_kwargs.setdefault("dynamic", False)
        for block in self.blocks:
            if enabled:
                block.compile(**compile_kwargs)
            else:
                block._compiled_call_impl = None

    # --- embeddings ---------------------------------------------------------------------------
    def embed_time(self, timestep):
        """-> t [B, d] and t_mod [B, 6, d], float32 (weights upcast: these layers are tiny)."""
        t_in = timestep.to(self.dtype)  # the reference casts the timestep to the model dtype first
        s = sinusoid_embedding(self.config.freq_dim, t_in).float()
        te, tp = self.time_embedding, self.time_projection[1]
        t = F.linear(F.silu(F.linear(s, te[0].weight.float(), te[0].bias.float())), te[2].weight.float(), te[2].bias.float())
        t_mod = F.linear(F.silu(t), tp.weight.float(), tp.bias.float()).unflatten(1, (6, self.config.dim))
        return t, t_mod

    def embed_patches(self, x):
        """[N, C, T, H, W] -> tokens [N, f*h*w, d] float32, (f, h, w)."""
        pt, ph, pw = self.config.patch_size
        if x.shape[-3] % pt or x.shape[-2] % ph or x.shape[-1] % pw:
            raise ValueError(f"latent size {tuple(x.shape[-3:])} (T, H, W) is not divisible by the patch size "
                             f"{self.config.patch_size}: use an image size that is a multiple of {8 * ph} pixels")
        y = self.patch_embedding(x.to(self.dtype))
        f, h, w = y.shape[2:]
        return y.flatten(2).transpose(1, 2).float(), (f, h, w)

    def unpatchify(self, tokens, fhw):
        f, h, w = fhw
        pt, ph, pw = self.config.patch_size
        n, c = tokens.shape[0], self.config.out_dim
        u = tokens.reshape(n, f, h, w, pt, ph, pw, c)
        u = torch.einsum("nfhwpqrc->ncfphqwr", u)
        return u.reshape(n, c, f * pt, h * ph, w * pw)

    def camera_features(self, block, camera_rows, hw):
        """camera_rows [N, T, 12] -> [N, T*hw, d]: one embedding per latent frame, broadcast over pixels."""
        c = block.cam_encoder(camera_rows.to(block.cam_encoder.weight.dtype)).float()
        return c[:, :, None, :].expand(-1, -1, hw, -1).reshape(c.shape[0], -1, c.shape[-1])

    # --- forward ------------------------------------------------------------------------------
    def forward(self, x, timestep, context, mode: str = "independent", camera=None, source=None):
        """x [B, V, C, T, H, W], timestep [B] (0..1000), context [B, L, text_dim] -> velocity [B, V, C, T, H, W]."""
        if mode in PLANNED_MODES:
            raise NotImplementedError(f"mode {mode!r} (4Real-Video-V2 fused attention) is not implemented yet; "
                                      f"use one of {MODES}")
        if mode not in MODES:
            raise ValueError(f"mode {mode!r} is not one of {MODES}")
        if x.ndim != 6:
            raise ValueError(f"x must be a latent grid [B, V, C, T, H, W], got shape {tuple(x.shape)}")
        b, v, c, t_lat, hh, ww = x.shape
        if c != self.config.in_dim:
            raise ValueError(f"x has {c} latent channels, the model expects {self.config.in_dim}")
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1)
        if timestep.numel() == 1 and b > 1:
            timestep = timestep.expand(b)
        if timestep.shape[0] != b:
            raise ValueError(f"timestep has {timestep.shape[0]} entries for a batch of {b}")
        if context.ndim != 3 or context.shape[0] != b or context.shape[-1] != self.config.text_dim:
            raise ValueError(f"context must be [B={b}, L, {self.config.text_dim}], got {tuple(context.shape)}")
        if camera is not None:
            if mode in ("syncam", "recam", "hard", "soft") and (camera.ndim != 4 or tuple(camera.shape) != (b, v, t_lat, 12)):
                raise ValueError(f"camera must be [B, V, T, 12] = [{b}, {v}, {t_lat}, 12] for this latent grid, "
                                 f"got {tuple(camera.shape)}: encode the rig with one camera per view and one "
                                 "pose per latent frame")
        t, t_mod = self.embed_time(timestep)
        ctx = self.text_embedding(context.to(self.dtype))
        run = getattr(self, f"_forward_{mode}")
        out = run(x, t, t_mod, ctx, camera, source, timestep)
        return out.reshape(b, v, self.config.out_dim, *out.shape[-3:])

    def _check_interrupt(self):
        if self.interrupt_check is not None:
            self.interrupt_check()

    def _rows(self, tensor, rep):
        return tensor.repeat_interleave(rep, 0) if rep > 1 else tensor

    def _forward_independent(self, x, t, t_mod, ctx, camera, source, timestep):
        b, v = x.shape[:2]
        tokens, fhw = self.embed_patches(x.flatten(0, 1))
        rope = rope_table(range(fhw[0]), fhw[1], fhw[2], self.config.head_dim, device=tokens.device)
        e = self._rows(t_mod, v)
        for block in self.blocks:
            self._check_interrupt()
            tokens = block(tokens, e, ctx, rope, backend=self.attention_backend)
        return self.unpatchify(self.head(tokens, self._rows(t, v)), fhw)

    def _forward_syncam(self, x, t, t_mod, ctx, camera, source, timestep):
        if self.variant != "syncammaster":
            raise ValueError(f"mode 'syncam' needs SynCamMaster weights (multi-view attention 'mvs_attn'), but the "
                             f"loaded model is '{self.variant}'. Load a SynCamMaster-Wan2.1 checkpoint, or use mode "
                             "'hard' (training-free 4Real-Video sync, works with any Wan2.1 model).")
        if camera is None:
            raise ValueError("mode 'syncam' needs camera embeddings [B, V, T, 12] (CamGridCameraEncode)")
        b, v = x.shape[:2]
        tokens, (f, h, w) = self.embed_patches(x.flatten(0, 1))
        rope = rope_table(range(f), h, w, self.config.head_dim, device=tokens.device)
        rope_mvs = rope_table(range(v), h, w, self.config.head_dim, device=tokens.device)  # frame axis = view index
        e = self._rows(t_mod, v)
        cam_rows = camera.flatten(0, 1)
        for block in self.blocks:
            self._check_interrupt()
            cam = self.camera_features(block, cam_rows, h * w)
            tokens = block.forward_syncam(tokens, e, ctx, rope, rope_mvs, cam, (b, v, f, h * w), self.attention_backend)
        return self.unpatchify(self.head(tokens, self._rows(t, v)), (f, h, w))

    def _forward_recam(self, x, t, t_mod, ctx, camera, source, timestep):
        if not self.has_camera_encoder:
            raise ValueError(f"mode 'recam' needs ReCamMaster weights (a camera encoder), but the loaded model is "
                             f"'{self.variant}'. Load a ReCamMaster-Wan2.1 checkpoint.")
        if source is None:
            raise ValueError("mode 'recam' needs a source video latent [B, C, T, H, W] (CamGridSourceVideo)")
        if camera is None:
            raise ValueError("mode 'recam' needs camera embeddings [B, V, T, 12] for the target path")
        b, v, c, t_lat, hh, ww = x.shape
        if source.ndim != 5 or source.shape[0] != b or tuple(source.shape[1:]) != (c, t_lat, hh, ww):
            raise ValueError(f"source latent must be [B, C, T, H, W] = [{b}, {c}, {t_lat}, {hh}, {ww}] like the target, "
                             f"got {tuple(source.shape)}: encode the source video at the output size and frame count")
        # every target view is its own ReCamMaster sequence: cat([target, source]) along frames
        src = source.to(x.dtype)[:, None].expand(b, v, c, t_lat, hh, ww)
        seq = torch.cat([x, src], dim=3).flatten(0, 1)  # [(B V), C, 2T, H, W]
        tokens, (f2, h, w) = self.embed_patches(seq)
        rope = rope_table(range(f2), h, w, self.config.head_dim, device=tokens.device)
        e = self._rows(t_mod, v)
        cam_rows = camera.flatten(0, 1).repeat(1, 2, 1)  # the same path for both halves
        for block in self.blocks:
            self._check_interrupt()
            cam = self.camera_features(block, cam_rows, h * w)
            tokens = block(tokens, e, ctx, rope, cam=cam, use_projector=True, backend=self.attention_backend)
        out = self.unpatchify(self.head(tokens, self._rows(t, v)), (f2, h, w))
        return out[:, :, :t_lat]  # only the target half is the prediction

    def _two_stream_setup(self, x, camera):
        b, v = x.shape[:2]
        tokens, (f, h, w) = self.embed_patches(x.flatten(0, 1))
        hw = h * w
        dev = tokens.device
        rope_time = rope_table(range(f), h, w, self.config.head_dim, device=dev)
        rope_view = rope_table(range(v), h, w, self.config.head_dim, device=dev)
        cam_rows = camera.flatten(0, 1) if (camera is not None and self.has_camera_encoder) else None
        return tokens, (b, v, f, h, w, hw), rope_time, rope_view, cam_rows

    def _streams(self, block, x_view, x_time, t_mod, ctx, geo, rope_time, rope_view, cam_rows):
        """Run one block on the view stream and on the time stream (shared weights); canonical layout out."""
        b, v, f, h, w, hw = geo
        cam = self.camera_features(block, cam_rows, hw) if cam_rows is not None else None
        xv = to_view_stream(x_view, b, v, f, hw)
        cv = to_view_stream(cam, b, v, f, hw) if cam is not None else None
        yv = block(xv, self._rows(t_mod, f), ctx, rope_view, cam=cv, backend=self.attention_backend)
        yt = block(x_time, self._rows(t_mod, v), ctx, rope_time, backend=self.attention_backend)
        return from_view_stream(yv, b, v, f, hw), yt

    def _forward_hard(self, x, t, t_mod, ctx, camera, source, timestep):
        tokens, geo, rope_time, rope_view, cam_rows = self._two_stream_setup(x, camera)
        b, v, f, h, w, hw = geo
        for block in self.blocks:
            self._check_interrupt()
            y_view, y_time = self._streams(block, tokens, tokens, t_mod, ctx, geo, rope_time, rope_view, cam_rows)
            g = block.sync.gate(timestep) if (block.sync is not None and block.sync.gate is not None) else None
            if g is None:
                tokens = 0.5 * (y_view + y_time)  # training-free plain average
            else:
                g = self._rows(g, v)
                tokens = (0.5 + g) * y_view + (0.5 - g) * y_time
        return self.unpatchify(self.head(tokens, self._rows(t, v)), (f, h, w))

    def _forward_soft(self, x, t, t_mod, ctx, camera, source, timestep):
        if not (self.has_sync_weights and self.blocks[0].sync.soft is not None):
            raise ValueError("mode 'soft' needs trained soft-sync weights, and none are loaded. Load a camgrid "
                             "sync-weights file (CamGridModelLoader 'sync_weights', or load_sync_weights(model, path)), "
                             "or use mode 'hard', which works without trained weights.")
        tokens, geo, rope_time, rope_view, cam_rows = self._two_stream_setup(x, camera)
        b, v, f, h, w, hw = geo
        x_view = x_time = tokens
        e_rows = self._rows(t_mod, v)
        for block in self.blocks:
            self._check_interrupt()
            y_view, y_time = self._streams(block, x_view, x_time, t_mod, ctx, geo, rope_time, rope_view, cam_rows)
            dv, dt = block.sync.soft(y_view, y_time, e_rows)
            x_view, x_time = y_view + dv, y_time + dt
        return self.unpatchify(self.head(0.5 * (x_view + x_time), self._rows(t, v)), (f, h, w))
