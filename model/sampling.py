"""Flow-matching sampling of a latent grid (DESIGN §5).

The model predicts the velocity ``v = noise - x0`` of the path ``x_σ = (1 - σ)·x0 + σ·noise``.

Schedule: base sigmas ``linspace(1, 0, steps + 1)[:-1]``, shifted ``σ' = s·σ / (1 + (s - 1)·σ)``
(Wan: shift 5 at 720p, 3 at 480p), then a terminal 0; the model sees ``timestep = 1000·σ'``.
The solvers are diffusers' own, configured as diffusers' Wan pipeline does (we hand them the
unshifted base sigmas and they apply the shift):
  - "unipc": `UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
             flow_shift=s)`, order 2, bh2 (Wan's default solver). It nudges σ = 1 to 1 - 1e-6.
  - "euler": `FlowMatchEulerDiscreteScheduler(shift=s)`.
`denoise` < 1 follows ComfyUI: the schedule of `int(steps / denoise)` steps, keeping its last `steps`,
and the sampler starts from `init_latent` noised to the first kept sigma.

Guidance (the unconditional text is the negative prompt's embedding):
  - "text":      v = v(∅t) + cfg·(v(t) - v(∅t)); cfg = 1 runs one forward per step.
  - "two_scale": InstructPix2Pix with a source video (SynCamMaster used s_t 7.5, s_v 1.8):
                 v = v(∅v,∅t) + s_v·(v(v,∅t) - v(∅v,∅t)) + s_t·(v(v,t) - v(v,∅t)), s_t = cfg,
                 s_v = video_cfg. "No video" is defined in `conditioning` (zero latent for recam,
                 pure noise in the source view for replace_view / first_row).
With `batch_cfg` the guidance branches run as one forward (concatenated along B), else one each.

Noise is drawn on the CPU from `seed` and then moved, so a seed gives the same video on any device.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from .checks import check_sampling
from .conditioning import SourceVideo, SourceVideoError, noised_source, null_source_latent, replace_view

SCHEDULERS = ("unipc", "euler")
GUIDANCE = ("text", "two_scale")
NUM_TRAIN_TIMESTEPS = 1000


class SamplingInterrupted(RuntimeError):
    """Raised when the `interrupt` callback asks sampling to stop (it returned True)."""


# ---------------------------------------------------------------------------------------------
# schedule
# ---------------------------------------------------------------------------------------------

def base_sigmas(steps: int, denoise: float = 1.0) -> np.ndarray:
    """Unshifted sigmas of the steps that run: linspace(1, 0, n+1)[:-1] with n = int(steps/denoise),
    the last `steps` of them (ComfyUI's rule for denoise < 1)."""
    steps = int(steps)
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not 0.0 < float(denoise) <= 1.0:
        raise ValueError(f"denoise must be in (0, 1], got {denoise}: 1 generates from noise, smaller values "
                         "keep more of init_latent")
    total = steps if denoise >= 1.0 else max(steps, int(steps / float(denoise)))
    return np.linspace(1.0, 0.0, total + 1)[:-1][-steps:]


def shift_sigmas(sigmas, shift: float):
    """σ' = s·σ / (1 + (s - 1)·σ) (works on numpy arrays, tensors and floats)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def make_scheduler(name: str = "unipc", shift: float = 5.0):
    """A fresh diffusers flow-matching scheduler configured like diffusers' Wan pipeline."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    if name == "unipc":
        return UniPCMultistepScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction_type="flow_prediction",
                                       use_flow_sigmas=True, flow_shift=float(shift), solver_order=2,
                                       predict_x0=True, solver_type="bh2", lower_order_final=True,
                                       final_sigmas_type="zero")
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=float(shift))
    raise ValueError(f"scheduler {name!r} is not one of {SCHEDULERS}")


def prepare_scheduler(name: str = "unipc", steps: int = 50, shift: float = 5.0, denoise: float = 1.0, device=None):
    """(scheduler ready to step, sigmas float32 [steps + 1] ending in 0). sigmas[i] is the noise level
    of the latent fed to the model at step i; the model's timestep is 1000·sigmas[i]."""
    if shift <= 0:
        raise ValueError(f"shift must be > 0, got {shift} (Wan uses 3 at 480p, 5 at 720p)")
    sched = make_scheduler(name, shift)
    sched.set_timesteps(sigmas=base_sigmas(steps, denoise), device=device)
    sched.set_begin_index(0)  # step by position, not by looking timesteps up
    return sched, sched.sigmas.detach().float().cpu()


def make_noise(shape: Sequence[int], seed: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Gaussian noise drawn on the CPU from `seed`, then moved: identical on every device."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(int(s) for s in shape), generator=g, dtype=torch.float32).to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# guidance
# ---------------------------------------------------------------------------------------------

def text_guidance(v_cond: torch.Tensor, v_uncond: torch.Tensor, cfg: float) -> torch.Tensor:
    return v_uncond + cfg * (v_cond - v_uncond)


def two_scale_guidance(v_null: torch.Tensor, v_video: torch.Tensor, v_video_text: torch.Tensor,
                       video_cfg: float, text_cfg: float) -> torch.Tensor:
    """InstructPix2Pix: v(∅,∅) + s_v·(v(v,∅) - v(∅,∅)) + s_t·(v(v,t) - v(v,∅))."""
    return v_null + video_cfg * (v_video - v_null) + text_cfg * (v_video_text - v_video)


def _pad_tokens(ctx: torch.Tensor, length: int) -> torch.Tensor:
    # zero tokens are what Wan's text encoder gives for padding, so padding changes nothing
    return F.pad(ctx, (0, 0, 0, length - ctx.shape[1])) if ctx.shape[1] < length else ctx


def _batched_context(ctx: torch.Tensor, b: int, name: str, text_dim: int, device) -> torch.Tensor:
    ctx = torch.as_tensor(ctx)
    if ctx.ndim == 2:
        ctx = ctx[None]
    if ctx.ndim != 3 or ctx.shape[-1] != text_dim or ctx.shape[0] not in (1, b):
        raise ValueError(f"{name} must be text features [B, L, {text_dim}] (B = 1 or {b}), got {tuple(ctx.shape)}: "
                         "encode the prompt with the model's text encoder (umT5 for Wan)")
    return ctx.to(device=device, dtype=torch.float32).expand(b, -1, -1)


def _batched_camera(camera, b: int, v: int, t: int, device) -> Optional[torch.Tensor]:
    if camera is None:
        return None
    camera = torch.as_tensor(camera)
    if camera.ndim == 3:
        camera = camera[None]
    if camera.ndim != 4 or tuple(camera.shape[1:]) != (v, t, 12) or camera.shape[0] not in (1, b):
        raise ValueError(f"camera must be [V, T, 12] or [B, V, T, 12] = [{b}, {v}, {t}, 12] for this grid, got "
                         f"{tuple(camera.shape)}: encode the rig with relative_extrinsics(..., num_latent_frames={t}) "
                         f"using {v} views")
    return camera.to(device=device, dtype=torch.float32).expand(b, -1, -1, -1)


# ---------------------------------------------------------------------------------------------
# the sampler
# ---------------------------------------------------------------------------------------------

def sample_grid(model, shape_or_noise: Union[Sequence[int], torch.Tensor], context: torch.Tensor,
                negative_context: Optional[torch.Tensor] = None, *, mode: str = "independent",
                camera: Optional[torch.Tensor] = None, source: Union[SourceVideo, torch.Tensor, None] = None,
                steps: int = 50, cfg: float = 5.0, shift: float = 5.0, scheduler: str = "unipc", seed: int = 0,
                denoise: float = 1.0, init_latent: Optional[torch.Tensor] = None, guidance: str = "text",
                video_cfg: float = 1.8, callback: Optional[Callable[[int, int, torch.Tensor], None]] = None,
                interrupt: Optional[Callable[[], Optional[bool]]] = None, batch_cfg: bool = True) -> torch.Tensor:
    """Sample a latent grid [B, V, C, T, H, W] (float32, on the model's device).

    shape_or_noise: the grid shape (noise drawn from `seed` on the CPU) or a noise tensor of that shape.
    context / negative_context: text features [B or 1, L, text_dim] (negative: the uncond branch;
        may be None only with cfg = 1 and text guidance).
    mode: the GridDiT mode ("independent", "syncam", "recam", "hard", "soft").
    camera: [V, T, 12] or [B, V, T, 12] relative extrinsics (syncam / recam / hard, soft with a camera encoder).
    source: a `SourceVideo` (recam / replace_view / first_row); a bare latent tensor means recam.
    denoise, init_latent: denoise < 1 starts from init_latent noised to the first sigma kept.
    guidance: "text" or "two_scale" (needs a source; s_t = cfg, s_v = video_cfg).
    callback(step, total, x0_pred): after every step (step counts from 1), with the predicted clean grid.
    interrupt(): checked before every step and between DiT blocks; it raises to stop, or returns True
        to raise `SamplingInterrupted`.
    """
    check_sampling(steps=steps, cfg=cfg, video_cfg=video_cfg, shift=shift, denoise=denoise, seed=seed)
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler {scheduler!r} is not one of {SCHEDULERS}")
    if guidance not in GUIDANCE:
        raise ValueError(f"guidance {guidance!r} is not one of {GUIDANCE}")
    device = model.device
    cfg_model = model.config

    if isinstance(shape_or_noise, torch.Tensor):
        noise = shape_or_noise.to(device=device, dtype=torch.float32)
    else:
        noise = make_noise(shape_or_noise, seed, device)
    if noise.ndim != 6:
        raise ValueError(f"the latent grid must be [B, V, C, T, H, W], got shape {tuple(noise.shape)}")
    b, v, c, t, h, w = noise.shape

    if isinstance(source, torch.Tensor):
        if mode != "recam":
            raise SourceVideoError("a bare source latent means ReCamMaster conditioning (mode 'recam'); for other "
                                   "modes wrap it: SourceVideo(latent, how='replace_view', view=k)")
        source = SourceVideo(source, "recam")
    if mode == "recam" and source is None:
        raise SourceVideoError("mode 'recam' re-renders an input video: pass source=SourceVideo(latent, 'recam')")
    if source is not None:
        source.check(model, noise.shape, mode)
        src = source.batched(b, device)
    if guidance == "two_scale" and source is None:
        raise ValueError("guidance 'two_scale' weighs a source video against text; without a source use "
                         "guidance='text'")

    ctx = _batched_context(context, b, "context", cfg_model.text_dim, device)
    use_uncond = guidance == "two_scale" or cfg != 1.0
    if use_uncond:
        if negative_context is None:
            raise ValueError(f"cfg = {cfg} needs negative_context (the negative / empty prompt's features); "
                             "pass it, or use cfg = 1")
        neg = _batched_context(negative_context, b, "negative_context", cfg_model.text_dim, device)
        length = max(ctx.shape[1], neg.shape[1])
        ctx, neg = _pad_tokens(ctx, length), _pad_tokens(neg, length)
    cam = _batched_camera(camera, b, v, t, device)

    sched, sigmas = prepare_scheduler(scheduler, steps, shift, denoise, device)
    if init_latent is not None:
        init = torch.as_tensor(init_latent).to(device=device, dtype=torch.float32)
        if init.shape != noise.shape:
            raise ValueError(f"init_latent shape {tuple(init.shape)} differs from the grid {tuple(noise.shape)}")
        x = noised_source(init, noise, float(sigmas[0]))
    elif denoise < 1.0:
        raise ValueError(f"denoise = {denoise} < 1 refines an existing latent: pass init_latent (or use denoise = 1)")
    else:
        x = noise.clone()  # σ0 = 1 (UniPC: 1 - 1e-6): pure noise, as diffusers' Wan pipeline starts

    def check_interrupt():
        if interrupt is not None and interrupt():
            raise SamplingInterrupted("sampling was interrupted")

    def forward(branches, timestep):
        """branches: list of (x, context, source latent or None) -> list of velocities."""
        n = len(branches)
        if batch_cfg and n > 1:
            xs = torch.cat([br[0] for br in branches])
            cs = torch.cat([br[1] for br in branches])
            ss = torch.cat([br[2] for br in branches]) if branches[0][2] is not None else None
            cams = cam.repeat(n, 1, 1, 1) if cam is not None else None
            out = model(xs, timestep.expand(b * n), cs, mode=mode, camera=cams, source=ss).float()
            return list(out.chunk(n))
        return [model(bx, timestep.expand(b), bc, mode=mode, camera=cam, source=bs).float() for bx, bc, bs in branches]

    total = len(sigmas) - 1
    previous_check = getattr(model, "interrupt_check", None)
    model.interrupt_check = check_interrupt if interrupt is not None else previous_check
    try:
        with torch.no_grad():
            for i in range(total):
                check_interrupt()
                sigma = float(sigmas[i])
                if source is not None and source.replaces_a_view:
                    x = replace_view(x, source.view, noised_source(src, noise[:, source.view], sigma))
                timestep = torch.full((1,), NUM_TRAIN_TIMESTEPS * sigma, device=device, dtype=torch.float32)
                recam_src = src if (source is not None and source.how == "recam") else None
                if guidance == "two_scale":
                    if source.how == "recam":
                        x_null, src_null = x, null_source_latent(src)
                    else:  # the source view carries no information: its pure noise
                        x_null, src_null = replace_view(x, source.view, noise[:, source.view]), None
                    v_null, v_video, v_text = forward([(x_null, neg, src_null), (x, neg, recam_src),
                                                       (x, ctx, recam_src)], timestep)
                    vel = two_scale_guidance(v_null, v_video, v_text, video_cfg, cfg)
                elif use_uncond:
                    v_cond, v_uncond = forward([(x, ctx, recam_src), (x, neg, recam_src)], timestep)
                    vel = text_guidance(v_cond, v_uncond, cfg)
                else:
                    vel = forward([(x, ctx, recam_src)], timestep)[0]
                x0 = x - sigma * vel
                x = sched.step(vel, sched.timesteps[i], x, return_dict=False)[0].float()
                if callback is not None:
                    if source is not None and source.replaces_a_view:
                        x0 = replace_view(x0, source.view, src)
                    callback(i + 1, total, x0)
    finally:
        model.interrupt_check = previous_check
    if source is not None and source.replaces_a_view:
        x = replace_view(x, source.view, src)  # the conditioned view is the source itself
    return x
