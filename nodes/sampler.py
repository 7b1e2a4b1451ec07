"""CamGridSampler: denoise a latent grid with the loaded DiT in one of the sync modes."""
from __future__ import annotations

import logging

import torch

from ..model.conditioning import TEXT_LENGTH
from ..model.dit import MODES
from ..model.modes import AUTO_MODE, pick_mode
from ..model.sampling import GUIDANCE, SCHEDULERS, sample_grid
from . import host, latent_convert
from .optional import block_swap_functions
from .sockets import EMBEDS, MODEL, SOURCE

log = logging.getLogger("camgrid")

SYNC_MODES = ("auto",) + MODES
WAN_TEXT_DIM = 4096
CAMERA_MODES = ("syncam", "recam")  # modes that cannot run without camera embeddings
MODE_NOTES = {
    "independent": "every view is its own video (no sync: the baseline)",
    "syncam": "SynCamMaster multi-view attention",
    "recam": "ReCamMaster: re-renders the source video along each view's camera path",
    "hard": "4Real-Video two-stream, hard sync (training-free with plain Wan weights)",
    "soft": "4Real-Video two-stream, soft sync (needs trained sync weights)",
}


def _model_bytes(model: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def _activation_bytes(grid_shape, model, branches: int) -> int:
    """A rough upper estimate of the activations of one forward (tokens x width x a few buffers)."""
    b, v, c, t, h, w = grid_shape
    tokens = b * v * t * (h // 2) * (w // 2) * branches
    return tokens * model.config.dim * 4 * 12


class CamGridSampler:
    """Samples all views (and all frames) of a grid together."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From CamGrid Model Loader."}),
                "positive": ("CONDITIONING", {"tooltip": "The prompt, shared by all views (CLIP Text Encode with "
                             "a CLIP loaded as type wan: umt5_xxl)."}),
                "negative": ("CONDITIONING", {"tooltip": "The negative prompt (the CFG 'unconditional' branch)."}),
                "latent": ("LATENT", {"tooltip": "The grid to fill: CamGrid Empty Latent (views, size, length)."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                 "tooltip": "Noise seed. The noise is drawn on the CPU, so a seed gives the same "
                                 "video on any GPU."}),
                "steps": ("INT", {"default": 50, "min": 1, "max": 1000, "tooltip": "Denoising steps (Wan uses 50; "
                          "20-30 is a fair preview)."}),
                "cfg": ("FLOAT", {"default": 5.0, "min": 0.0, "max": 30.0, "step": 0.1, "round": 0.01, "tooltip":
                        "Text guidance scale; 1 skips the negative branch (twice as fast)."}),
                "shift": ("FLOAT", {"default": 5.0, "min": 0.01, "max": 100.0, "step": 0.1, "tooltip": "Flow "
                          "shift of the noise schedule (Wan: 5 at 720p and for most 480p use, 3 also works at "
                          "480p). Higher spends more steps at high noise."}),
                "scheduler": (list(SCHEDULERS), {"default": "unipc", "tooltip": "unipc: Wan's default solver. "
                              "euler: plain flow-matching Euler."}),
                "sync_mode": (list(SYNC_MODES), {"default": "auto", "tooltip": "How the views are kept "
                              "consistent. auto: from the model (SynCamMaster -> syncam, ReCamMaster -> recam, "
                              "plain Wan -> hard). independent: no sync. hard: 4Real-Video two-stream with "
                              "averaging (any Wan2.1). soft: learned sync (needs sync weights)."}),
                "denoise": ("FLOAT", {"default": 1.0, "min": 0.01, "max": 1.0, "step": 0.01, "tooltip": "1 "
                            "generates from noise; lower keeps more of the input latent (video-to-video)."}),
            },
            "optional": {
                "camera": (EMBEDS, {"tooltip": "Camera embeddings (CamGrid Camera Encode), one camera per view. "
                           "Required by syncam and recam; used by hard / soft when the model has a camera "
                           "encoder (SynCamMaster weights)."}),
                "source": (SOURCE, {"tooltip": "An input video (CamGrid Source Video): re-rendered by ReCamMaster "
                           "(recam) or fixed as one view of the grid (replace_view / first_row)."}),
                "guidance": (list(GUIDANCE), {"default": "text", "tooltip": "text: classic CFG. two_scale: with a "
                             "source video, separate video (video_cfg) and text (cfg) guidance as SynCamMaster "
                             "did (3 model passes per step)."}),
                "video_cfg": ("FLOAT", {"default": 1.8, "min": 0.0, "max": 30.0, "step": 0.1, "tooltip":
                              "two_scale: how strongly the output follows the source video (SynCamMaster: 1.8)."}),
                "batch_cfg": ("BOOLEAN", {"default": True, "tooltip": "Run the guidance branches as one batch "
                              "(faster, more memory). Turn off if you run out of VRAM."}),
            },
        }

    RETURN_TYPES = ("LATENT", "STRING")
    RETURN_NAMES = ("latent", "info")
    FUNCTION = "sample"
    CATEGORY = "CamGrid/sampling"
    DESCRIPTION = "Generates every view of a multi-camera grid together; 'info' says which sync mode ran."

    @classmethod
    def VALIDATE_INPUTS(cls, sync_mode=None, scheduler=None, guidance=None, steps=None, denoise=None, cfg=None):
        if sync_mode is not None and sync_mode not in SYNC_MODES:
            return f"sync_mode {sync_mode!r} is not one of {', '.join(SYNC_MODES)}"
        if scheduler is not None and scheduler not in SCHEDULERS:
            return f"scheduler {scheduler!r} is not one of {', '.join(SCHEDULERS)}"
        if guidance is not None and guidance not in GUIDANCE:
            return f"guidance {guidance!r} is not one of {', '.join(GUIDANCE)}"
        if steps is not None and not 1 <= steps <= 1000:
            return f"steps must be between 1 and 1000, got {steps}"
        if denoise is not None and not 0.0 < denoise <= 1.0:
            return f"denoise must be in (0, 1], got {denoise}"
        if cfg is not None and cfg < 0:
            return f"cfg must be >= 0, got {cfg}"
        if guidance == "two_scale" and sync_mode == "independent":
            return ("guidance two_scale weighs a source video against the text; it needs a source and a synced "
                    "mode (auto, syncam, recam, hard, soft), not independent")
        return True

    def sample(self, model, positive, negative, latent, seed, steps, cfg, shift, scheduler, sync_mode, denoise,
               camera=None, source=None, guidance="text", video_cfg=1.8, batch_cfg=True):
        dit = model.model
        variant = model.variant
        mode = pick_mode(variant, sync_mode)
        info = [f"sync mode {sync_mode} -> {mode} ({MODE_NOTES[mode]}); model {model.name} is {variant}"
                if sync_mode == "auto" else f"sync mode {mode} ({MODE_NOTES[mode]}); model {model.name} is {variant}"]
        if sync_mode == "auto":
            log.info("camgrid: sync mode auto -> %s (model variant %s)", mode, variant)

        raw = latent_convert.latent_to_grid(latent)
        b, v, c, t, h, w = raw.shape
        info.append(f"{v} views x {b} batch, latent {t} frames x {h} x {w}")
        cam = self._camera(camera, dit, variant, mode, v, t, info)
        src = self._source(source, mode, info)
        # the library checks the rest (latent channels, text width, soft needs sync weights, two_scale needs a source)
        context = latent_convert.conditioning_to_context(positive, "positive", None)
        negative_context = latent_convert.conditioning_to_context(negative, "negative", None)
        # Wan (umT5, 4096-d) was trained on prompts padded to 512 zero tokens; other encoders keep their length
        text_length = TEXT_LENGTH if dit.config.text_dim == WAN_TEXT_DIM else None
        init = latent_convert.normalize(raw, channel_dim=2) if denoise < 1.0 else None

        branches = 3 if guidance == "two_scale" else (2 if cfg != 1.0 else 1)
        device = host.torch_device()
        reporter = host.ProgressReporter(steps, desc="camgrid sampling")
        grid = None
        self._to_device(model, device, _model_bytes(dit) + _activation_bytes(raw.shape, dit, branches if batch_cfg else 1))
        try:
            grid = sample_grid(dit, raw.shape, context, negative_context, mode=mode, camera=cam, source=src,
                               steps=steps, cfg=cfg, shift=shift, scheduler=scheduler, seed=seed, denoise=denoise,
                               init_latent=init, guidance=guidance, video_cfg=video_cfg, batch_cfg=batch_cfg,
                               text_length=text_length, callback=lambda step, total, x0: reporter.update(step, x0),
                               interrupt=host.check_interrupted)
            grid = grid.float().cpu()
        finally:
            reporter.close()
            self._offload(model)
        out = latent_convert.grid_to_latent(latent_convert.denormalize(grid, channel_dim=2), mode=mode, variant=variant,
                                     names=list(camera.rig.names) if camera is not None else None)
        text = "\n".join(info)
        log.info("camgrid: %s", text.replace("\n", "; "))
        return out, text

    # -- pieces ------------------------------------------------------------------------------------
    @staticmethod
    def _camera(camera, dit, variant, mode, v, t, info):
        if camera is None:
            if mode in CAMERA_MODES:
                raise ValueError(f"sync mode {mode} needs camera embeddings: connect CamGrid Camera Encode to "
                                 "'camera'")
            info.append("no camera input: views differ only through the sync mode")
            return None
        if camera.kind != "relative":
            raise ValueError(f"camera encoding {camera.kind!r}: the supported models take relative extrinsics; set "
                             "encoding to relative in CamGrid Camera Encode")
        if camera.num_views != v:
            raise ValueError(f"the camera rig has {camera.num_views} cameras ({', '.join(camera.rig.names)}) but the "
                             f"latent has {v} views: set views to {camera.num_views} in CamGrid Empty Latent, or "
                             "use a rig with as many cameras as views")
        if not dit.has_camera_encoder:
            info.append(f"camera input ignored: a {variant} model has no camera encoder (views are tied together by "
                        f"the {mode} sync, not steered to the rig)")
            return None
        convention, reference, scale = camera.rule_for(variant)
        info.append(f"cameras: {', '.join(camera.rig.names)}; {convention} rule (reference {reference}, "
                    f"{scale:g} units per metre)")
        return camera.relative(variant, t)

    @staticmethod
    def _source(source, mode, info):
        if source is None:
            return None
        source = source.resolve(mode)
        view = f" (view {source.view})" if source.how == "replace_view" else ""
        info.append(f"source video used as {source.how}{view}")
        return source

    @staticmethod
    def _to_device(model, device, bytes_needed):
        host.free_memory_for(bytes_needed, device)
        swap = block_swap_functions()
        if model.block_swap and swap is not None:
            swap[0](model.model, model.block_swap, device)
        else:
            model.model.to(device)

    @staticmethod
    def _offload(model):
        swap = block_swap_functions()
        offload = host.offload_device()
        if model.block_swap and swap is not None:
            swap[1](model.model, offload)
        model.model.to(offload)
        host.soft_empty_cache()


__all__ = ["CamGridSampler", "AUTO_MODE", "SYNC_MODES"]
