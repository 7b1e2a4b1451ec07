"""CamGridSampler: denoise a latent grid with the loaded DiT in one of the sync modes."""
from __future__ import annotations

import logging

from ..model.attention import BACKENDS as ESTIMATED_ATTENTION
from ..model.checks import CFG, DENOISE, SEED, SHIFT, STEPS, VIDEO_CFG, InputError
from ..model.conditioning import TEXT_LENGTH
from ..model.context_windows import describe as describe_windows
from ..model.memory import predict_peak_memory
from ..model.modes import AUTO_MODE, MODES, pick_mode
from ..model.offload import disable_block_swap, enable_block_swap
from ..model.sampling import GUIDANCE, SCHEDULERS, SamplerOptions, sample_grid
from ..model.schedules import schedule_length, unused_settings
from ..model.step_cache import SamplingStats
from . import host, latent_convert
from .sockets import EMBEDS, MODEL, SAMPLER_OPTIONS, SOURCE, WINDOWS

log = logging.getLogger("camgrid")

SYNC_MODES = ("auto",) + MODES
WAN_TEXT_DIM = 4096
MODE_NOTES = {
    "independent": "every view is its own video (no sync: the baseline)",
    "syncam": "SynCamMaster multi-view attention",
    "recam": "ReCamMaster: re-renders the source video along each view's camera path",
    "hard": "4Real-Video two-stream, hard sync (training-free with plain Wan weights)",
    "soft": "4Real-Video two-stream, soft sync (needs trained sync weights)",
    "fused": "4Real-Video-V2 fused attention over the whole grid (same view or same time; training-free)",
}


class CamGridSampler:
    """Samples all views (and all frames) of a grid together.

    Checked here: only what the node alone can see (the camera socket against the latent). The sampling
    numbers are checked once, by the library's `SamplerOptions` (made first, before any work; the widgets
    show the same limits of model/checks.py); the latent's channels, the prompt's width and the mode's needs
    (camera, source, sync weights) once, by `sample_grid` and the model.
    """

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL, {"tooltip": "From CamGrid Model Loader."}),
                "positive": ("CONDITIONING", {"tooltip": "The prompt, shared by all views (CLIP Text Encode with "
                             "a CLIP loaded as type wan: umt5_xxl)."}),
                "negative": ("CONDITIONING", {"tooltip": "The negative prompt (the CFG 'unconditional' branch)."}),
                "latent": ("LATENT", {"tooltip": "The grid to fill: CamGrid Empty Latent (views, size, length)."}),
                "seed": ("INT", SEED.widget(default=0, control_after_generate=True, tooltip="Noise seed. The "
                         "noise is drawn on the CPU, so a seed gives the same video on any GPU.")),
                "steps": ("INT", STEPS.widget(default=50, tooltip="Denoising steps (Wan uses 50; 20-30 is a fair "
                          "preview).")),
                "cfg": ("FLOAT", CFG.widget(default=5.0, step=0.1, round=0.01, tooltip="Text guidance scale; 1 "
                        "skips the negative branch (twice as fast).")),
                "shift": ("FLOAT", SHIFT.widget(default=5.0, step=0.1, tooltip="Flow shift of the noise schedule "
                          "(Wan: 5 at 720p and for most 480p use, 3 also works at 480p). Higher spends more steps "
                          "at high noise.")),
                "scheduler": (list(SCHEDULERS), {"default": "unipc", "tooltip": "unipc: Wan's default solver. "
                              "euler: plain flow-matching Euler. lcm: predict the clean video, then re-noise to "
                              "the next level (the step of distilled few-step models)."}),
                "sync_mode": (list(SYNC_MODES), {"default": "auto", "tooltip": "How the views are kept "
                              "consistent. auto: from the model (SynCamMaster -> syncam, ReCamMaster -> recam, "
                              "plain Wan -> hard). independent: no sync. hard: 4Real-Video two-stream with "
                              "averaging (any Wan2.1). soft: learned sync (needs sync weights). fused: "
                              "4Real-Video-V2, one attention over all views and frames (a token sees its own "
                              "view and the other views at its time; any Wan2.1, never chosen by auto)."}),
                "denoise": ("FLOAT", DENOISE.widget(default=1.0, step=0.01, tooltip="1 generates from noise; "
                            "lower keeps more of the input latent (video-to-video).")),
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
                "video_cfg": ("FLOAT", VIDEO_CFG.widget(default=1.8, step=0.1, tooltip="two_scale: how strongly "
                              "the output follows the source video (SynCamMaster: 1.8).")),
                "batch_cfg": ("BOOLEAN", {"default": True, "tooltip": "Run the guidance branches as one batch "
                              "(faster, more memory). Turn off if you run out of VRAM."}),
                "context_windows": (WINDOWS, {"tooltip": "CamGrid Context Windows: sample videos longer than 81 "
                                    "frames (or rigs larger than one pass) in overlapping windows, with the memory "
                                    "of one window. Not connected: one pass over the whole grid."}),
                "options": (SAMPLER_OPTIONS, {"tooltip": "From CamGrid Sampler Options: a few-step schedule of a "
                            "distilled model, custom sigmas, or the step cache."}),
            },
        }

    RETURN_TYPES = ("LATENT", "STRING")
    RETURN_NAMES = ("latent", "info")
    FUNCTION = "sample"
    CATEGORY = "CamGrid/sampling"
    DESCRIPTION = "Generates every view of a multi-camera grid together; 'info' says which sync mode ran."

    @classmethod
    def VALIDATE_INPUTS(cls, sync_mode=None, guidance=None):
        # Only inputs with a rule ComfyUI cannot state are named here: ComfyUI skips its own list and min/max
        # checks for a named input, so the numbers keep the widgets' limits (model/checks.py).
        if sync_mode is not None and sync_mode not in SYNC_MODES:
            return f"sync_mode {sync_mode!r} is not one of {', '.join(SYNC_MODES)}"
        if guidance is not None and guidance not in GUIDANCE:
            return f"guidance {guidance!r} is not one of {', '.join(GUIDANCE)}"
        if guidance == "two_scale" and sync_mode == "independent":
            return ("guidance two_scale weighs a source video against the text; it needs a source and a synced "
                    "mode (auto, syncam, recam, hard, soft, fused), not independent")
        return True

    def sample(self, model, positive, negative, latent, seed, steps, cfg, shift, scheduler, sync_mode, denoise,
               camera=None, source=None, guidance="text", video_cfg=1.8, batch_cfg=True, options=None,
               context_windows=None):
        dit = model.model
        # Wan (umT5, 4096-d) was trained on prompts padded to 512 zero tokens; other encoders keep their length
        text_length = TEXT_LENGTH if dit.config.text_dim == WAN_TEXT_DIM else None
        # the library's check of the numbers, before the progress bar takes `steps` and the model moves to the GPU;
        # `options` (CamGrid Sampler Options: schedule, sigmas, step cache) joins the widgets' settings
        settings = SamplerOptions(steps=steps, cfg=cfg, shift=shift, scheduler=scheduler, seed=seed, denoise=denoise,
                                  guidance=guidance, video_cfg=video_cfg, batch_cfg=batch_cfg, text_length=text_length,
                                  windows=context_windows, **dict(options or {}))
        mode = pick_mode(model.variant, sync_mode)
        raw = latent_convert.latent_to_grid(latent)
        b, v, _, t, h, w = raw.shape
        chosen = f"sync mode {sync_mode} -> {mode}" if sync_mode == "auto" else f"sync mode {mode}"
        info = [f"{chosen} ({MODE_NOTES[mode]}); model {model.name} is {model.variant}",
                f"{v} views x {b} batch, latent {t} frames x {h} x {w}"]
        cam = self._camera(camera, model, mode, v, t, info)
        src = self._source(source, mode, info)
        if context_windows is not None:
            keep = (src.view,) if src is not None and src.replaces_a_view else ()
            info.append(describe_windows(context_windows, v, t, keep))
        context = latent_convert.conditioning_to_context(positive, "positive")
        negative_context = latent_convert.conditioning_to_context(negative, "negative")
        init = latent_convert.normalize(raw, channel_dim=2) if settings.denoise < 1.0 else None

        info += unused_settings(settings.schedule, settings.sigmas, steps, scheduler, cfg)
        stats = SamplingStats()
        reporter = host.ProgressReporter(schedule_length(settings.schedule, settings.sigmas, steps, denoise),
                                         desc="camgrid sampling")
        try:
            self._to_device(model, self._bytes_needed(model, raw.shape, mode, settings))
            grid = sample_grid(dit, raw.shape, context, negative_context, mode=mode, camera=cam, source=src,
                               init_latent=init, options=settings,
                               callback=lambda step, total, x0: reporter.update(step, x0),
                               interrupt=host.check_interrupted, stats=stats)
            grid = grid.float().cpu()
        finally:
            reporter.close()
            self._offload(model)
        out = latent_convert.grid_to_latent(latent_convert.denormalize(grid, channel_dim=2), mode=mode,
                                            variant=model.variant,
                                            names=list(camera.rig.names) if camera is not None else None)
        text = "\n".join(info + stats.summary().splitlines())
        log.info("camgrid: %s", text.replace("\n", "; "))
        return out, text

    # -- pieces ------------------------------------------------------------------------------------
    @staticmethod
    def _camera(camera, model, mode, views, latent_frames, info):
        """The [V, T, 12] embedding for this model, or None (no camera input, or a model without a camera
        encoder). A missing camera where the mode needs one is the model's error to report."""
        if camera is None:
            info.append("no camera input: views differ only through the sync mode")
            return None
        if camera.num_views != views:
            raise InputError(f"the camera rig has {camera.num_views} cameras ({', '.join(camera.rig.names)}) but "
                             f"the latent has {views} views: set views to {camera.num_views} in CamGrid Empty "
                             "Latent, or use a rig with as many cameras as views")
        if not model.model.has_camera_encoder:
            info.append(f"camera input ignored: a {model.variant} model has no camera encoder (views are tied "
                        f"together by the {mode} sync, not steered to the rig)")
            return None
        convention, reference, scale = camera.rule_for(model.variant)
        info.append(f"cameras: {', '.join(camera.rig.names)}; {convention} rule (reference {reference}, "
                    f"{scale:g} units per metre)")
        return camera.relative(model.variant, latent_frames)

    @staticmethod
    def _source(source, mode, info):
        if source is None:
            return None
        source = source.resolve(mode)
        view = f" (view {source.view})" if source.how == "replace_view" else ""
        noise = f" at {source.noise_scale:g} of the noise level" if source.replaces_a_view and source.noise_scale != 1 else ""
        info.append(f"source video used as {source.how}{view}{noise}")
        return source

    @staticmethod
    def _bytes_needed(model, grid_shape, mode, options: SamplerOptions) -> int:
        """Device memory to ask the host for: model/memory.py's prediction of the peak of one forward (of one
        window's views and frames with context windows)."""
        b, v, _, t, h, w = grid_shape
        if options.windows is not None:
            t = min(t, options.windows.window_frames or t)
            v = min(v, options.windows.view_window or v)
        branches = 3 if options.guidance == "two_scale" else (2 if options.uses_negative else 1)
        attention = model.attention if model.attention in ESTIMATED_ATTENTION else "auto"
        # rounded up to the DiT's 2x2 patches: an odd latent size is the model's error to report, not ours
        return int(predict_peak_memory(model.model.config, views=v, frames=4 * (t - 1) + 1, height=8 * (h + h % 2),
                                       width=8 * (w + w % 2), mode=mode, dtype=model.dtype,
                                       fp8=model.weight_storage != "default", block_swap=model.block_swap,
                                       ffn_chunk=model.ffn_chunk or None, row_chunks=model.row_chunks or None,
                                       attention=attention, cfg_batch=b * (branches if options.batch_cfg else 1)))

    @staticmethod
    def _to_device(model, bytes_needed):
        device = host.torch_device()
        host.free_memory_for(bytes_needed, device)
        if model.block_swap:
            enable_block_swap(model.model, model.block_swap, device)
        else:
            model.model.to(device)

    @staticmethod
    def _offload(model):
        offload = host.offload_device()
        if model.block_swap:
            disable_block_swap(model.model, offload)
        model.model.to(offload)
        host.soft_empty_cache()


__all__ = ["CamGridSampler", "AUTO_MODE", "SYNC_MODES"]
