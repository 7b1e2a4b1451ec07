"""GridDiT: the Wan2.1 video DiT over a latent grid of views x time (docs/ARCHITECTURE.md §3 The model).

One model, equations visible (the block's are in model/block.py). Shapes:
    latent grid      x [B, V, C, T, H, W]
    per-view tokens    [(B V), (T h w), d]        the canonical layout between blocks (= time stream)
    view stream        [(B T), (V h w), d]        tokens of all views at the same latent frame

Numerics follow the Wan2.1 reference: the timestep is cast to the model dtype before a float64
sinusoid, the time embedding / modulation / gates / residual stream are float32, the linear layers
run in the model dtype, the head's projection in float32. For an fp32 model all of this is plain fp32.

How a forward runs: `forward` checks the request once (`check_request`: shapes, what the mode needs,
finite values), embeds timestep and text, collects everything in a `GridInputs`, enters the model's
attention backend (one `attention_backend(...)` context for the whole forward) and calls the mode's
function from `GridDiT.MODE_FORWARDS`. Inside, every block computes the text keys / values once
(`CrossAttention.text_kv`) and shares them by all rows of all streams.

Adding a mode: write `_forward_<name>(self, inp: GridInputs) -> output patches [(B V), C, T, H, W]`
(embed with `embed_grid`, loop `for block in self._blocks(inp)`, finish with `head_out`), add it to
`MODE_FORWARDS` (and its name to `modes.MODES`, the list nodes and the CLI offer), and state what it needs
from the weights in `modes.mode_problem` and from the inputs in `_check_mode`.

Speed (docs/ARCHITECTURE.md §7 Attention and memory): q/k RMSNorm + RoPE, LayerNorm + modulation and
the gated residuals go through the fused kernels of kernels/ (Triton on CUDA, their torch references
elsewhere: CPU numerics are the plain fp32 formulas); RoPE tables are cached per grid. Opt-in:
`compile_blocks()` (torch.compile per block), `set_row_chunks(n)` (rows of a stream in chunks of n,
bounds activation memory), `set_ffn_chunk(tokens)`. Training: `set_gradient_checkpointing(True)` recomputes
each block step (a block, or in hard / soft both streams of a block and their merge) in backward instead of
keeping its activations; every mode runs its block steps through `_step`.

Modes (docs/ARCHITECTURE.md §3.3 Grid modes): independent, syncam (SynCamMaster), recam (ReCamMaster),
hard / soft (4Real-Video two-stream with hard or soft synchronisation after every block), fused
(4Real-Video-V2: one attention over the whole grid masked to same view or same time).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from ..kernels.layernorm_modulate import layer_norm_modulate
from ..kernels.rope import rope_cos_sin
from .attention import FUSED_METHODS, attention_backend, fused_grid_attention
from .block import GridDiTBlock, TokenGrid, from_view_stream, per_row, to_view_stream
from .camera.encoding import extrinsics_rays
from .checks import InputError, raise_problem, require_finite
from .config import DiTConfig
from .distributed import gathered, run_mode
from .layers import LayerNorm32
from .modes import MODES, mode_problem
from .relative_pose_attention import ViewPoses, pose_matrices
from .timestep import sinusoid_embedding

# modes that read camera embeddings (when the model has a camera encoder)
CAMERA_INPUT_MODES = ("syncam", "recam", "hard", "soft", "fused")


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


@dataclass
class GridInputs:
    """One forward's inputs, checked and embedded once by `GridDiT.forward`; every mode reads them here."""

    x: torch.Tensor                       # latent grid [B, V, C, T, H, W]
    timestep: torch.Tensor                # [B], 0..1000
    t: torch.Tensor                       # [B, d] float32 time embedding (the head's modulation)
    t_mod: torch.Tensor                   # [B, 6, d] float32 timestep projection (the blocks' modulation)
    context: torch.Tensor                 # [B, Lc, d] embedded text, model dtype
    camera: Optional[torch.Tensor] = None  # [B, V, T, 12] relative extrinsics
    source: Optional[torch.Tensor] = None  # [B, C, T, H, W] clean source-video latent (recam)
    interrupt: Optional[Callable[[], None]] = None  # called before every block; raises to stop


@dataclass
class TwoStreams:
    """What the view stream and the time stream of hard / soft share across blocks."""

    tokens: torch.Tensor                  # [(B V), (T h w), d] float32
    grid: TokenGrid
    rope_time: tuple                      # frame axis = latent frame
    rope_view: tuple                      # frame axis = view index
    e_time: torch.Tensor                  # [(B V), 6, d] timestep projection per time-stream row
    e_view: torch.Tensor                  # [(B T), 6, d] per view-stream row
    camera_rows: Optional[torch.Tensor]   # [(B V), T, 12] when the model has a camera encoder
    view_poses: Optional[ViewPoses] = None   # the view stream's, with DiTConfig.relative_cameras and cameras


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
        self.attention_backend: Optional[str] = None  # entered once per forward; None = model.attention's default
        self.fused_attention = "auto"  # the fused mode's masked-attention method (set_fused_attention)
        self.gradient_checkpointing = False           # set_gradient_checkpointing

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

    @property
    def has_soft_sync(self) -> bool:
        """Whether trained soft-sync layers are loaded (mode soft needs them)."""
        return self.has_sync_weights and self.blocks[0].sync.soft is not None

    def add_ray_encoders(self) -> None:
        """Turn DiTConfig.camera_rays on: every block with a camera encoder gets a zero-initialised ray encoder,
        so the model's outputs are unchanged until it is trained (a variant without camera encoder gets them
        when it is given one)."""
        self.config = self.config.replace(camera_rays=True)
        for block in self.blocks:
            if block.has_camera and not block.has_rays:
                ref = block.cam_encoder.weight
                block.ray_encoder = nn.Linear(6, self.config.dim, device=ref.device, dtype=ref.dtype)
                nn.init.zeros_(block.ray_encoder.weight)
                nn.init.zeros_(block.ray_encoder.bias)
                block.ray_encoder.requires_grad_(ref.requires_grad)

    def base_state_dict(self) -> dict:
        """The state dict in original Wan layout, without camgrid sync layers (saved separately)."""
        return {k: v for k, v in self.state_dict().items() if ".sync." not in k}

    # --- memory and speed settings (set once, read by every block) -----------------------------
    def set_row_chunks(self, rows: Optional[int]) -> None:
        """Run each block step on at most `rows` rows at a time (None = all at once).

        A row is one sequence of a stream: a view of the time stream, a latent frame of the view
        stream, a (view, cond/uncond) pair in batched CFG. Rows are independent, so the result is
        the same; peak activation memory shrinks to about rows/N of the block's (the residual
        stream itself stays whole). Applies to every mode; syncam's block chunks each of its steps in
        that step's own layout (time-stream rows, then view-stream rows: one latent frame of all views).
        """
        for block in self.blocks:
            block.row_chunks = _positive_or_none(rows, "row_chunks")

    def set_ffn_chunk(self, tokens: Optional[int]) -> None:
        """Run the FFN on at most `tokens` tokens of a row at a time (None = all at once): bounds its
        [tokens, ffn_dim] hidden activation, the largest tensor of a block."""
        for block in self.blocks:
            block.ffn_chunk = _positive_or_none(tokens, "ffn_chunk")

    def set_fused_attention(self, method: str = "auto") -> None:
        """How the fused mode computes its masked grid attention (model.attention.fused_grid_attention):
        "auto" / "streams" (exact, dense FA3 / cuDNN / chunked kernels merged by log-sum-exp; the fastest
        measured), "flex" (FlexAttention block mask, compiled on CUDA), "naive" (dense mask; tests only)."""
        if method not in FUSED_METHODS:
            raise InputError(f"fused attention method must be one of {', '.join(FUSED_METHODS)}, got {method!r}")
        self.fused_attention = method
    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Training: keep only each block step's inputs and recompute the step in backward (torch.utils.checkpoint,
        non-reentrant). A step is what a mode does per block: one block call, or in hard / soft both streams and
        their merge, so the two-stream intermediates (the view-stream copy, y_view, y_time) are never kept."""
        self.gradient_checkpointing = bool(enabled)

    def _step(self, fn, *args, **kwargs):
        """One block step of a mode: fn(*args, **kwargs), checkpointed when training with checkpointing on."""
        if self.gradient_checkpointing and torch.is_grad_enabled():
            return checkpoint(fn, *args, use_reentrant=False, **kwargs)
        return fn(*args, **kwargs)

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
        y = self.patch_embedding(x.to(self.dtype))
        f, h, w = y.shape[2:]
        return y.flatten(2).transpose(1, 2).float(), (f, h, w)

    def embed_grid(self, x):
        """Latent grid [B, V, C, T, H, W] -> per-view tokens [(B V), (f h w), d] float32 and their TokenGrid."""
        tokens, (f, h, w) = self.embed_patches(x.flatten(0, 1))
        return tokens, TokenGrid(x.shape[0], x.shape[1], f, h, w)

    def unpatchify(self, tokens, fhw):
        f, h, w = fhw
        pt, ph, pw = self.config.patch_size
        n, c = tokens.shape[0], self.config.out_dim
        u = tokens.reshape(n, f, h, w, pt, ph, pw, c)
        u = torch.einsum("nfhwpqrc->ncfphqwr", u)
        return u.reshape(n, c, f * pt, h * ph, w * pw)

    def head_out(self, tokens, t, grid: TokenGrid):
        """Per-view tokens -> output patches [(B V), C, T, H, W] (float32)."""
        return self.unpatchify(self.head(tokens, per_row(t, grid.views)), (grid.frames, grid.height, grid.width))

    def camera_features(self, block, camera_rows, grid: TokenGrid):
        """camera_rows [N, T, 12] -> [N, T*hw, d]: one embedding per latent frame, broadcast over the pixels, plus
        (a block with a ray encoder) one per token from the Plücker ray through its pixel (DiTConfig.camera_rays)."""
        c = block.cam_encoder(camera_rows.to(block.cam_encoder.weight.dtype)).float()
        c = c[:, :, None, :].expand(-1, -1, grid.hw, -1)
        if block.has_rays:
            rays = extrinsics_rays(camera_rows, grid.height, grid.width)           # [N, T, hw, 6]
            c = c + block.ray_encoder(rays.to(block.ray_encoder.weight.dtype)).float()
        return c.reshape(c.shape[0], -1, c.shape[-1])

    def multiview_positions(self, camera_rows, grid: TokenGrid, device):
        """(rope, poses) of the multi-view attention's view-stream rows: RoPE over the view index and no poses,
        or (DiTConfig.relative_cameras) every view at position 0 and the views' pose matrices
        (model/relative_pose_attention.py pose_matrices)."""
        if not self.config.relative_cameras:
            return self.rope(grid.views, grid, device), None
        poses = None if camera_rows is None else pose_matrices(camera_rows, grid.batch, grid.views)
        return self.rope([0] * grid.views, grid, device), poses   # no cameras: nothing tells the views apart

    def rope(self, frames, grid: TokenGrid, device):
        """(cos, sin) for rows of `frames` x grid.height x grid.width tokens (frames: a count or positions)."""
        return rope_cos_sin(frames, grid.height, grid.width, self.config.head_dim, device=device)

    # --- forward ------------------------------------------------------------------------------
    def forward(self, x, timestep, context, mode: str = "independent", camera=None, source=None, *,
                interrupt: Optional[Callable[[], None]] = None):
        """x [B, V, C, T, H, W], timestep [B] (0..1000), context [B, L, text_dim] -> velocity [B, V, C, T, H, W].

        camera [B, V, T, 12] (syncam, recam; hard / soft with a camera encoder), source [B, C, T, H, W]
        (recam). interrupt: called before every block (e.g. ComfyUI's cancel); it raises to stop.
        """
        timestep = self.check_request(x, timestep, context, mode, camera, source)
        t, t_mod = self.embed_time(timestep)
        ctx = self.text_embedding(context.to(self.dtype))
        inputs = GridInputs(x, timestep, t, t_mod, ctx, camera, source, interrupt)
        with attention_backend(self.attention_backend):
            # MODE_FORWARDS[mode], split over the ranks inside distributed.parallel() (docs/ARCHITECTURE.md §12 Several GPUs)
            out = run_mode(self, mode, inputs)
        return out.reshape(x.shape[0], x.shape[1], self.config.out_dim, *out.shape[-3:])

    def check_request(self, x, timestep, context, mode, camera=None, source=None) -> torch.Tensor:
        """Refuse, with the fix, a forward this model cannot run; returns the timestep as [B].

        The model's boundary: every check on a forward's inputs is made here, once per forward."""
        self._check_mode(mode, camera, source)
        cfg = self.config
        if x.ndim != 6:
            raise InputError(f"x must be a latent grid [B, V, C, T, H, W], got shape {tuple(x.shape)}")
        b, v, c, t_lat, hh, ww = x.shape
        if c != cfg.in_dim:
            raise InputError(f"the latent has {c} channels but the model expects {cfg.in_dim}: make the latent for "
                             f"this model (Wan2.1: 16 channels, e.g. CamGrid Empty Latent)")
        pt, ph, pw = cfg.patch_size
        if t_lat % pt or hh % ph or ww % pw:
            raise InputError(f"latent size {(t_lat, hh, ww)} (T, H, W) is not divisible by the patch size "
                             f"{cfg.patch_size}: use an image size that is a multiple of {8 * ph} pixels")
        timestep = torch.as_tensor(timestep, device=x.device).reshape(-1)
        if timestep.numel() == 1 and b > 1:
            timestep = timestep.expand(b)
        if timestep.shape[0] != b:
            raise InputError(f"timestep has {timestep.shape[0]} entries for a batch of {b}")
        if context.ndim != 3 or context.shape[0] != b or context.shape[-1] != cfg.text_dim:
            raise InputError(f"context must be [B={b}, L, {cfg.text_dim}], got {tuple(context.shape)}: encode the "
                             "prompt with the model's text encoder (umT5 for Wan2.1: CLIP Loader type 'wan')")
        camera_shape = None if camera is None else tuple(camera.shape)
        if mode in CAMERA_INPUT_MODES and camera_shape not in (None, (b, v, t_lat, 12)):
            raise InputError(f"camera must be [B, V, T, 12] = [{b}, {v}, {t_lat}, 12] for this latent grid, got "
                             f"{camera_shape}: encode the rig with one camera per view and one pose per latent frame")
        if mode == "recam" and (source.ndim != 5 or source.shape[0] != b or tuple(source.shape[1:]) != (c, t_lat, hh, ww)):
            raise InputError(f"source latent must be [B, C, T, H, W] = [{b}, {c}, {t_lat}, {hh}, {ww}] like the target, "
                             f"got {tuple(source.shape)}: encode the source video at the output size and frame count")
        require_finite("the latent x", x, "check the noise / init latent it came from")
        require_finite("timestep", timestep, "pass timesteps in 0..1000")
        require_finite("context", context, "the text features are broken: re-encode the prompt")
        require_finite("camera", camera, "the rig's poses give non-finite embeddings (a NaN pose, or distances "
                       "too large for float32): check the rig")
        require_finite("source", source, "re-encode the source video")
        return timestep

    def _check_mode(self, mode, camera, source) -> None:
        """What the mode needs from the model (the rule of model/modes.py) and from the inputs; errors name the fix."""
        if mode not in self.MODE_FORWARDS:
            raise InputError(f"mode {mode!r} is not one of {tuple(self.MODE_FORWARDS)}")
        raise_problem(mode_problem(mode, self.variant, self.has_soft_sync))
        if mode in ("syncam", "recam") and camera is None:
            raise InputError(f"mode {mode!r} needs camera embeddings [B, V, T, 12] for its views' camera paths "
                             "(CamGrid Camera Encode)")
        if mode == "recam" and source is None:
            raise InputError("mode 'recam' needs a source video latent [B, C, T, H, W] (CamGrid Source Video)")

    def _blocks(self, inp: GridInputs):
        """The blocks in order; the interrupt callback runs before each one. A block whose weights are sharded
        over ranks (distributed.shard_weights) has them gathered while the caller uses it."""
        for block in self.blocks:
            if inp.interrupt is not None:
                inp.interrupt()
            with gathered(block):
                yield block

    # --- the modes: each takes the GridInputs and returns output patches [(B V), C, T, H, W] --------
    def _forward_independent(self, inp: GridInputs):
        """Every view is its own video (the baseline): the plain Wan forward on time-stream rows."""
        tokens, grid = self.embed_grid(inp.x)
        rope = self.rope(grid.frames, grid, tokens.device)
        e = per_row(inp.t_mod, grid.views)
        for block in self._blocks(inp):
            tokens = self._step(block, tokens, e, block.cross_attn.text_kv(inp.context), rope)
        return self.head_out(tokens, inp.t, grid)

    def _forward_syncam(self, inp: GridInputs):
        """SynCamMaster: every block adds multi-view attention across the views of each latent frame
        (RoPE frame axis = view index), fed with the camera embedding."""
        tokens, grid = self.embed_grid(inp.x)
        rope = self.rope(grid.frames, grid, tokens.device)
        e = per_row(inp.t_mod, grid.views)
        camera_rows = inp.camera.flatten(0, 1)
        rope_mvs, poses = self.multiview_positions(camera_rows, grid, tokens.device)
        for block in self._blocks(inp):
            tokens = self._step(self._syncam_step, block, tokens, e, inp, rope, rope_mvs, camera_rows, grid, poses)
        return self.head_out(tokens, inp.t, grid)

    def _forward_recam(self, inp: GridInputs):
        """ReCamMaster: every target view is its own sequence cat([target, source]) along frames (RoPE frame
        index 0..2T-1); the camera path (the same for both halves) enters the self-attention input and the
        projector its output. Only the target half is the prediction."""
        x = inp.x
        b, v, c, t_lat, hh, ww = x.shape
        seq = torch.cat([x, inp.source.to(x.dtype)[:, None].expand(b, v, c, t_lat, hh, ww)], dim=3)
        tokens, grid = self.embed_grid(seq)
        rope = self.rope(grid.frames, grid, tokens.device)
        e = per_row(inp.t_mod, v)
        camera_rows = inp.camera.flatten(0, 1).repeat(1, 2, 1)
        for block in self._blocks(inp):
            tokens = self._step(self._recam_step, block, tokens, e, inp, rope, camera_rows, grid)
        return self.head_out(tokens, inp.t, grid)[:, :, :t_lat]

    def _forward_hard(self, inp: GridInputs):
        """4Real-Video hard sync: both streams start from the same tokens and merge after every block,
        x = (1/2 + g) * y_view + (1/2 - g) * y_time (g = 0 without sync weights: the plain average)."""
        s = self._two_streams(inp)
        tokens = s.tokens
        for block in self._blocks(inp):
            tokens = self._step(self._hard_step, block, tokens, inp, s)
        return self.head_out(tokens, inp.t, s.grid)

    def _forward_soft(self, inp: GridInputs):
        """4Real-Video soft sync: the streams keep their own states, exchanging (dv, dt) = SoftSync(y_view,
        y_time) after every block; the head reads their average."""
        s = self._two_streams(inp)
        x_view = x_time = s.tokens
        for block in self._blocks(inp):
            x_view, x_time = self._step(self._soft_step, block, x_view, x_time, inp, s)
        return self.head_out(0.5 * (x_view + x_time), inp.t, s.grid)

    def _forward_fused(self, inp: GridInputs):
        """4Real-Video-V2 fused attention (arXiv 2506.18839), training-free, no new parameters: every block's
        self-attention runs once over all V*T latent frames of a batch element, a token pair kept iff the two
        frames share the view or the time, RoPE frame index view*T + time; cross-attention and FFN run once
        on the per-view tokens. V = 1 is `independent`; T = 1 is `independent` on the video whose frames
        are the views (frame index = view).

        Camera: with a camera encoder (SynCamMaster / ReCamMaster weights) and camera embeddings, each
        block's cam_encoder(camera[view, time]) is added to the self-attention input of that frame's tokens,
        LN(x) * (1 + scale) + shift + cam, exactly as `hard` adds it to its view stream's attention input
        (no projector, as in hard). Why there: hard feeds the camera only to the attention that mixes views;
        the fused attention is the one attention and it mixes views, so it gets it, for every token (hard's
        time stream sees no camera; here the same-view pairs see their own view's embedding too)."""
        tokens, grid = self.embed_grid(inp.x)
        camera_rows = inp.camera.flatten(0, 1) if inp.camera is not None and self.has_camera_encoder else None
        poses = None
        if self.config.relative_cameras:   # the views differ by their poses only: RoPE index = time, in every view
            rope = self.rope(list(range(grid.frames)) * grid.views, grid, tokens.device)
            if camera_rows is not None:
                poses = pose_matrices(camera_rows, grid.batch, grid.views, layout="grid")
        else:   # view-major frames: frame (view a, time t) is the (a*T + t)-th, so its RoPE index is its position
            rope = self.rope(grid.views * grid.frames, grid, tokens.device)
        e = per_row(inp.t_mod, grid.views)
        method = self.fused_attention

        def attend(q, k, v):
            return fused_grid_attention(q, k, v, grid.views, grid.frames, grid.hw, method)

        for block in self._blocks(inp):
            cam = self.camera_features(block, camera_rows, grid) if camera_rows is not None else None
            tokens = self._step(block.forward_fused, tokens, e, block.cross_attn.text_kv(inp.context), rope, attend,
                                grid, cam, poses)
        return self.head_out(tokens, inp.t, grid)

    # --- the block steps of the modes (what `_step` checkpoints) -------------------------------------
    def _syncam_step(self, block, tokens, e, inp: GridInputs, rope, rope_mvs, camera_rows, grid: TokenGrid,
                     poses=None):
        cam = self.camera_features(block, camera_rows, grid)
        return block.forward_syncam(tokens, e, block.cross_attn.text_kv(inp.context), rope, rope_mvs, cam, grid,
                                    poses)

    def _recam_step(self, block, tokens, e, inp: GridInputs, rope, camera_rows, grid: TokenGrid):
        cam = self.camera_features(block, camera_rows, grid)
        return block(tokens, e, block.cross_attn.text_kv(inp.context), rope, cam=cam, use_projector=True)

    def _hard_step(self, block, tokens, inp: GridInputs, s: TwoStreams):
        y_view, y_time = self._run_streams(block, tokens, tokens, inp, s)
        gate = block.sync.gate if block.sync is not None else None
        if gate is None:
            return 0.5 * (y_view + y_time)  # training-free plain average
        g = per_row(gate(inp.timestep), s.grid.views)
        return (0.5 + g) * y_view + (0.5 - g) * y_time

    def _soft_step(self, block, x_view, x_time, inp: GridInputs, s: TwoStreams):
        y_view, y_time = self._run_streams(block, x_view, x_time, inp, s)
        dv, dt = block.sync.soft(y_view, y_time, s.e_time)
        return y_view + dv, y_time + dt

    def _two_streams(self, inp: GridInputs) -> TwoStreams:
        tokens, grid = self.embed_grid(inp.x)
        use_camera = inp.camera is not None and self.has_camera_encoder
        camera_rows = inp.camera.flatten(0, 1) if use_camera else None
        rope_view, poses = self.multiview_positions(camera_rows, grid, tokens.device)
        return TwoStreams(tokens, grid, rope_time=self.rope(grid.frames, grid, tokens.device), rope_view=rope_view,
                          e_time=per_row(inp.t_mod, grid.views), e_view=per_row(inp.t_mod, grid.frames),
                          camera_rows=camera_rows, view_poses=poses)

    def _run_streams(self, block, x_view, x_time, inp: GridInputs, s: TwoStreams):
        """One block on the view stream and on the time stream (shared weights, one text k/v); both out
        in the canonical layout. The camera embedding enters the view stream's self-attention input."""
        text = block.cross_attn.text_kv(inp.context)
        cam = self.camera_features(block, s.camera_rows, s.grid) if s.camera_rows is not None else None
        cam_view = to_view_stream(cam, s.grid) if cam is not None else None
        y_view = block(to_view_stream(x_view, s.grid), s.e_view, text, s.rope_view, cam=cam_view, poses=s.view_poses)
        y_time = block(x_time, s.e_time, text, s.rope_time)
        return from_view_stream(y_view, s.grid), y_time

    # mode name -> its forward (dispatch table; see "Adding a mode" in the module docstring)
    MODE_FORWARDS = {
        "independent": _forward_independent,
        "syncam": _forward_syncam,
        "recam": _forward_recam,
        "hard": _forward_hard,
        "soft": _forward_soft,
        "fused": _forward_fused,
    }


def _positive_or_none(value, name: str) -> Optional[int]:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise InputError(f"{name} must be a positive int or None, got {value!r}")
    return value
