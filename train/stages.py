"""The five stages of the built-in model's training: what each trains, on what, with which loss.

  ae      the tiny video autoencoder (train/autoencoder.py): L1 + L2 on pixels, object pixels weighed x5 (with
          cfg.ae_scale_reg, the same on the latents pooled 2x2 against the frames pooled 2x2);
  video   a single-view video DiT (variant "wan") + the tiny text encoder, flow matching (train/objective.py)
          on one view of every sample (captions dropped 10% of the time, for classifier-free guidance); with
          cfg.image_weight, that share of the loss from single frames: the clips' own, or the floor alone
          (cfg.image_source "floor", train/floor_images.py);
  syncam  SynCamMaster's modules on the frozen video DiT, initialised as the official code does (mvs_attn
          copied from self_attn, modulation_mvs from modulation[:, :3], zero projector, cam_encoder (and
          ray_encoder, with cfg.camera_rays), so
          the new model starts equal to the video one); mode "syncam" on multi-view samples;
  hard    4Real-Video's two-stream fine-tune: the WHOLE DiT (base blocks, SynCamMaster modules, hard gates;
          the soft layers too when "soft" is one of cfg.two_stream_modes) in the two-stream modes, taken in
          turn, plus an anchor loss alternating between modes "syncam" and "independent" on the same batch
          (the built-in model ships ONE DiT for every mode: the anchor keeps those two trained on the changing
          weights). New layers learn at the full rate, pre-trained weights at cfg.finetune_lr_scale of it;
  soft    the soft sync layers alone on the frozen DiT, in mode "soft".
Why this recipe (and what it scored): benchmarks/TINY_MODEL.md. Hard sync's equations:
docs/ARCHITECTURE.md §3.3 Grid modes.

Every stage starts from the models as they are, whatever ran before in this process: it first gives the
DiT the shape it needs (SynCamMaster modules, sync layers), then freezes every parameter and unfreezes
exactly its own, with the modules that hold them in train mode and the rest in eval mode. So a resumed
run trains the same parameters as an uninterrupted one.

The DiT stages draw `GridBatch`es from a `GridSource` (train/sources.py) and touch only `models.dit` (and
the text encoder, which the video stage trains): the syncam, hard and soft stages run as they are on any
GridDiT and any source of (latents, text features, cameras).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..model.checks import InputError
from ..model.dit import GridDiT
from ..model.sync import attach_sync_layers
from .builtin import TinyGridModel
from .config import TrainConfig
from .floor_images import FloorImages
from .loop import StagePlan
from .objective import flow_matching_loss, mixed_precision
from .sources import GridSource
from .text import FLOOR_WORD

SYNCAM_PARTS = ("cam_encoder", "projector", "mvs_attn", "modulation_mvs", "ray_encoder")   # those a block has
ANCHOR_MODES = ("syncam", "independent")
AE_OBJECT_WEIGHT = 4.0      # object pixels weigh 1 + this: they carry what the consistency metric measures
AE_LATENT_NOISE = 0.05      # x the latents' std: a decoder robust to slightly-off latents
AE_LATENT_PENALTY = 1e-4    # keeps the latents small
AE_STATS_BATCHES = 4


@dataclass
class StageInputs:
    models: TinyGridModel     # a stage may replace models.dit (a SynCamMaster copy of the video DiT)
    source: GridSource        # the ae stage needs a PixelSource too
    cfg: TrainConfig
    log: Callable[[str], None] = print


# -- the model's shape and trainable parameters -----------------------------------------------------------

def syncammaster_from(base: GridDiT) -> GridDiT:
    """A "syncammaster" GridDiT holding `base`'s weights, new modules initialised like the official code."""
    model = GridDiT(base.config.replace(variant="syncammaster")).to(base.device)
    _, unexpected = model.load_state_dict(base.state_dict(), strict=False)   # missing: the new modules
    assert not unexpected, unexpected
    with torch.no_grad():
        for block in model.blocks:
            block.mvs_attn.load_state_dict(block.self_attn.state_dict())
            block.modulation_mvs.copy_(block.modulation[:, :3])
            for layer in (block.projector, block.cam_encoder) + ((block.ray_encoder,) if block.has_rays else ()):
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
    return model


def ensure_syncammaster(models: TinyGridModel) -> None:
    if models.dit.variant != "syncammaster":
        models.dit = syncammaster_from(models.dit)


def ensure_sync_layers(models: TinyGridModel, rank: int) -> None:
    if not models.dit.has_sync_weights:
        attach_sync_layers(models.dit, rank=rank, hard=True, soft=True)


def freeze(models: TinyGridModel) -> None:
    """Every module in eval mode, no parameter trainable."""
    for module in (models.ae, models.text, models.dit):
        if module is not None:
            module.eval().requires_grad_(False)


# -- the stages -------------------------------------------------------------------------------------------

def multiview_loss(dit, source: GridSource, cfg: TrainConfig, modes) -> torch.Tensor:
    """The flow-matching losses of one multi-view batch in each of `modes`, summed."""
    batch = source.grid_batch(cfg.batch)
    with mixed_precision(cfg.device, cfg.amp):
        first, *rest = [flow_matching_loss(dit, batch.latents, batch.context, cfg.training_shift, mode=mode,
                                           camera=batch.cameras, given_view_share=cfg.given_view_share)
                        for mode in modes]
    return sum(rest, first)


def pixel_loss(rec: torch.Tensor, frames: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((rec - frames).abs() * weight).mean() + ((rec - frames) ** 2 * weight).mean()


def half_size(z: torch.Tensor) -> torch.Tensor:
    """Latents [N, C, T, h, w] averaged over 2x2 latent pixels."""
    return F.avg_pool3d(z, kernel_size=(1, 2, 2))


def half_size_frames(frames: torch.Tensor) -> torch.Tensor:
    """Frames [N, F, H, W, c] averaged over 2x2 pixels."""
    n, f, h, w, c = frames.shape
    pooled = F.avg_pool2d(frames.permute(0, 1, 4, 2, 3).reshape(n * f, c, h, w), 2)
    return pooled.reshape(n, f, c, h // 2, w // 2).permute(0, 1, 3, 4, 2)


def plan_ae(s: StageInputs) -> StagePlan:
    ae, source, n = s.models.ae, s.source, s.cfg.batch
    if not hasattr(source, "pixel_batch"):
        raise InputError(f"stage ae trains the autoencoder on pixels, which {type(source).__name__} does not have: "
                         "run it on the synthetic scenes (no source), or leave it out of the stages")
    freeze(s.models)
    ae.train().requires_grad_(True)
    bf16 = torch.device(s.cfg.device).type == "cuda"
    scale_reg = s.cfg.ae_scale_reg

    def step(_):
        frames, masks = source.pixel_batch(n)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            z = ae.encode_raw(frames)
            z = z + AE_LATENT_NOISE * z.detach().std() * torch.randn_like(z)
            rec = ae.decode_raw(z).float()
            # scale equivariance: the latents pooled 2x must decode to the frames pooled 2x, which keeps the
            # latents' fine detail out of flat regions (a latent space a DiT can model; benchmarks/TINY_MODEL.md)
            rec_half = ae.decode_raw(half_size(z)).float() if scale_reg else None
        z = z.float()
        w = 1.0 + AE_OBJECT_WEIGHT * masks[..., None].float()
        loss = pixel_loss(rec, frames, w) + AE_LATENT_PENALTY * z.pow(2).mean()
        if scale_reg:
            loss = loss + scale_reg * pixel_loss(rec_half, half_size_frames(frames), half_size_frames(w))
        return loss

    @torch.no_grad()
    def finish():
        """Latent statistics for the DiT's normalised latents, and the reconstruction quality."""
        batches = [source.pixel_batch(min(64, n))[0] for _ in range(AE_STATS_BATCHES)]
        ae.measure_latent_stats(batches)
        rec = ae.decode(ae.encode(batches[0]))
        psnr = -10 * math.log10(float((rec - batches[0]).pow(2).mean()) + 1e-12)
        s.log(f"autoencoder reconstruction: {psnr:.1f} dB PSNR")

    return StagePlan("ae", step, [{"params": list(ae.parameters())}], {"ae": ae}, s.cfg.ae_lr, s.cfg.budget("ae"),
                     finish)


def plan_video(s: StageInputs) -> StagePlan:
    dit, text, cfg = s.models.dit, s.models.text, s.cfg
    freeze(s.models)
    dit.train().requires_grad_(True)
    text.train().requires_grad_(True)

    n = cfg.batch * cfg.views
    floor = None
    if cfg.image_weight and cfg.image_source == "floor":
        floor = FloorImages(s.models.ae.encode, cfg.data_style, cfg.height, cfg.width, cfg.seed, cfg.device)
        s.log(f"stage video: {cfg.image_weight:g} of the loss from {len(floor)} single frames of the floor alone, "
              f"captioned {FLOOR_WORD!r}")
    elif cfg.image_weight:
        s.log(f"stage video: {cfg.image_weight:g} of the loss from single frames (other clips' first latent frame)")

    # with the clips' own frames, one draw of twice the clips: the second half gives only its first latent frame,
    # which a causal autoencoder (ours, Wan's) encodes from the first frame alone: an image's latent
    own_frames = bool(cfg.image_weight) and floor is None

    def step(_):
        batch = s.source.grid_batch(2 * n if own_frames else n, single_view=True)
        with mixed_precision(cfg.device, cfg.amp):
            loss = flow_matching_loss(dit, batch.latents[:n], batch.context[:n], cfg.training_shift)
            if not cfg.image_weight:
                return loss
            if floor is None:
                images, context = batch.latents[n:, :, :, :1], batch.context[n:]
            else:   # never the empty caption: that stays guidance's "any scene"; one caption, encoded once
                images, context = floor.batch(n), text.encode([FLOOR_WORD]).expand(n, -1, -1)
            image_loss = flow_matching_loss(dit, images, context, cfg.training_shift)
        return (1.0 - cfg.image_weight) * loss + cfg.image_weight * image_loss

    params = list(dit.parameters()) + list(text.parameters())
    return StagePlan("video", step, [{"params": params}], {"dit": dit, "text": text}, cfg.lr, cfg.budget("video"),
                     ema_decay=cfg.ema)


def plan_syncam(s: StageInputs) -> StagePlan:
    ensure_syncammaster(s.models)
    dit = s.models.dit
    freeze(s.models)
    dit.train()
    for block in dit.blocks:
        for name in SYNCAM_PARTS:
            if hasattr(block, name):
                getattr(block, name).requires_grad_(True)
    rays = [p for block in dit.blocks if block.has_rays for p in block.ray_encoder.parameters()]
    ray_ids = {id(p) for p in rays}
    groups = [{"params": [p for p in dit.parameters() if id(p) not in ray_ids]},
              {"params": rays, "lr_scale": s.cfg.ray_lr_scale}]
    return StagePlan("syncam", lambda _: multiview_loss(dit, s.source, s.cfg, ("syncam",)),
                     groups, {"dit": dit}, s.cfg.lr, s.cfg.budget("syncam"), ema_decay=s.cfg.ema)


def plan_hard(s: StageInputs) -> StagePlan:
    cfg = s.cfg
    ensure_syncammaster(s.models)
    ensure_sync_layers(s.models, cfg.sync_rank)
    dit, two_stream = s.models.dit, cfg.two_stream_modes
    freeze(s.models)
    dit.train().requires_grad_(True)
    for block in dit.blocks:   # unused in mode hard: trained in the soft stage unless soft is a two-stream mode
        block.sync.soft.requires_grad_("soft" in two_stream)
    new_layers = [p for block in dit.blocks for p in block.sync.parameters()]
    new_ids = {id(p) for p in new_layers}
    pretrained = [p for p in dit.parameters() if id(p) not in new_ids]

    def step(i: int):
        # two-stream modes in turn; the anchor changes every full turn, so every pairing of the two occurs
        mode = two_stream[i % len(two_stream)]
        anchor = ANCHOR_MODES[(i // len(two_stream)) % len(ANCHOR_MODES)]
        return multiview_loss(dit, s.source, cfg, (mode, anchor))

    groups = [{"params": new_layers, "lr_scale": 1.0}, {"params": pretrained, "lr_scale": cfg.finetune_lr_scale}]
    return StagePlan("hard", step, groups, {"dit": dit}, cfg.lr, cfg.budget("hard"), ema_decay=cfg.ema)


def plan_soft(s: StageInputs) -> StagePlan:
    ensure_syncammaster(s.models)
    ensure_sync_layers(s.models, s.cfg.sync_rank)
    dit = s.models.dit
    freeze(s.models)
    dit.train()
    for block in dit.blocks:
        block.sync.soft.requires_grad_(True)
    return StagePlan("soft", lambda _: multiview_loss(dit, s.source, s.cfg, ("soft",)),
                     [{"params": list(dit.parameters())}], {"dit": dit}, s.cfg.lr, s.cfg.budget("soft"),
                     ema_decay=s.cfg.ema)


STAGE_PLANS: dict[str, Callable[[StageInputs], StagePlan]] = {
    "ae": plan_ae, "video": plan_video, "syncam": plan_syncam, "hard": plan_hard, "soft": plan_soft}
