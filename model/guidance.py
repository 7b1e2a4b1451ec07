"""Classifier-free guidance: how the branches' predictions combine, and the branches' text and source inputs
(model/sampling.py's module docstring gives the formulas; `guided_velocity` there runs them)."""
from __future__ import annotations

from typing import Optional

import torch

from .checks import InputError, require_finite
from .conditioning import SourceVideo, null_source_latent, pad_text


def text_guidance(v_cond: torch.Tensor, v_uncond: torch.Tensor, cfg: float) -> torch.Tensor:
    return v_uncond + cfg * (v_cond - v_uncond)


def two_scale_guidance(v_null: torch.Tensor, v_video: torch.Tensor, v_video_text: torch.Tensor,
                       video_cfg: float, text_cfg: float) -> torch.Tensor:
    """InstructPix2Pix: v(∅,∅) + s_v·(v(v,∅) - v(∅,∅)) + s_t·(v(v,t) - v(v,∅))."""
    return v_null + video_cfg * (v_video - v_null) + text_cfg * (v_video_text - v_video)


def composed_guidance(v_cond: torch.Tensor, v_uncond: torch.Tensor, v_composed: torch.Tensor, cfg: float,
                      compose_cfg: float) -> torch.Tensor:
    """Text guidance and a composed prompt's conjunction term (Liu et al. 2022):
    v(∅) + cfg·(v(t) - v(∅)) + compose_cfg·(v(t2) - v(∅))."""
    return text_guidance(v_cond, v_uncond, cfg) + compose_cfg * (v_composed - v_uncond)


def background_mask(v_cond: torch.Tensor, v_composed: torch.Tensor, tau: float) -> torch.Tensor:
    """[B, V, 1, T, H, W] float, 1 where the composed prompt's prediction agrees with the prompt's: the latent
    pixels whose difference (the channels' norm of v(t) - v(t2)) is at most `tau` times its median over the
    frame. What the prompt draws and the composed prompt does not (an object, where t2 asks for the bare floor)
    differs most; the background both draw differs in its texture only. The median is the frame's own, so the
    noise level, which scales both predictions' difference from the clean estimate alike, drops out."""
    d = (v_cond.float() - v_composed.float()).pow(2).sum(2).sqrt()         # [B, V, T, H, W]
    median = d.flatten(-2).median(-1).values[..., None, None]
    return (d <= tau * median).to(v_cond.dtype)[:, :, None]


def background_composed_guidance(v_cond: torch.Tensor, v_uncond: torch.Tensor, v_composed: torch.Tensor, cfg: float,
                                 compose_cfg: float, tau: float) -> torch.Tensor:
    """`composed_guidance` with the conjunction term only on the background (`background_mask`): the composed
    prompt sets the background's texture and leaves what only the prompt draws to the prompt."""
    keep = background_mask(v_cond, v_composed, tau)
    return text_guidance(v_cond, v_uncond, cfg) + compose_cfg * keep * (v_composed - v_uncond)


def batched_context(ctx, b: int, name: str, text_dim: int, device) -> torch.Tensor:
    ctx = torch.as_tensor(ctx)
    if ctx.ndim == 2:
        ctx = ctx[None]
    if ctx.ndim != 3 or ctx.shape[-1] != text_dim or ctx.shape[0] not in (1, b) or ctx.shape[1] < 1:
        raise InputError(f"{name} must be text features [B, L, {text_dim}] (B = 1 or {b}, L >= 1), got "
                         f"{tuple(ctx.shape)}: encode the prompt with the model's text encoder (umT5 for Wan2.1: "
                         "CLIP Loader type 'wan')")
    require_finite(name, ctx, "the text features are broken: re-encode the prompt")
    return ctx.to(device=device, dtype=torch.float32).expand(b, -1, -1)


def guidance_texts(context, negative_context, compose_context, b: int, text_dim: int, options, device):
    """(context, negative or None, composed or None) as [B, L, text_dim] float32, padded with zero tokens to one
    length (at least options.text_length): the guidance branches batch them."""
    ctx = batched_context(context, b, "context", text_dim, device)
    if not options.uses_negative:
        return pad_text(ctx, options.text_length or 0), None, None
    if negative_context is None:
        needs = f"cfg = {options.cfg}" if options.cfg != 1.0 or options.compose_cfg == 0 else \
            f"compose_cfg = {options.compose_cfg}"
        raise InputError(f"{needs} needs negative_context (the negative / empty prompt's features); "
                         "pass it, or use cfg = 1 and compose_cfg = 0")
    neg = batched_context(negative_context, b, "negative_context", text_dim, device)
    comp = None
    if options.compose_cfg > 0:
        if compose_context is None:
            raise InputError(f"compose_cfg = {options.compose_cfg} needs compose_context (the composed prompt's "
                             "features); pass it, or use compose_cfg = 0")
        comp = batched_context(compose_context, b, "compose_context", text_dim, device)
    length = max([options.text_length or 0] + [t.shape[1] for t in (ctx, neg, comp) if t is not None])
    return pad_text(ctx, length), pad_text(neg, length), None if comp is None else pad_text(comp, length)


def guidance_branches(options, ctx, neg, comp, source: Optional[SourceVideo], src):
    """(texts, sources) of the guidance branches, in the order `guided_velocity` combines them."""
    recam = src if (source is not None and source.how == "recam") else None
    if options.guidance == "two_scale":
        null = null_source_latent(src) if recam is not None else None
        return [neg, neg, ctx], [null, recam, recam]
    if comp is not None:
        return [ctx, neg, comp], [recam, recam, recam]
    if options.uses_negative:
        return [ctx, neg], [recam, recam]
    return [ctx], [recam]
