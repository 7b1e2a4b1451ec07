"""CamGridSamplerOptions: few-step schedules, custom sigmas, the step cache and the noise levels that get text
guidance, for CamGrid Sampler's optional `options` input (docs/ARCHITECTURE.md §5 Sampling).

A node of its own, as ComfyUI core feeds SIGMAS / SAMPLER sockets to SamplerCustom and WanVideoWrapper feeds
`cache_args` to its sampler: these are advanced settings, and the sampler's widget list stays short. What the
options mean (and where the presets' numbers come from): model/schedules.py, model/step_cache.py.
"""
from __future__ import annotations

from ..model.checks import CFG_MAX_SIGMA, raise_problem
from ..model.sampling import SamplerOptions
from ..model.schedules import CUSTOM, PRESETS, SCHEDULES, parse_sigmas, check_sigmas
from ..model.step_cache import CACHE_LIMITS, CACHES, check_cache
from .sockets import SAMPLER_OPTIONS

PRESET_NOTES = "; ".join(f"{p.name}: {p.about} ({p.solver}, cfg {p.cfg:g})" for p in PRESETS.values())
EXAMPLE_SIGMAS = "1.0, 0.9375, 0.8333, 0.625, 0.0"


def options_problem(schedule=None, cache=None, cache_start=None, cache_end=None):
    """The message for a combination the widgets cannot express, or None (None values: fed by links)."""
    if schedule is not None and schedule not in SCHEDULES:
        return f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}"
    if cache is not None and cache not in CACHES:
        return f"cache {cache!r} is not one of {', '.join(CACHES)}"
    for name, value in (("cache_start", cache_start), ("cache_end", cache_end)):
        problem = CACHE_LIMITS[name].problem(name, value) if value is not None else None
        if problem:
            return problem
    if cache_start is not None and cache_end is not None and cache_start >= cache_end:
        return f"cache_start ({cache_start:g}) must be below cache_end ({cache_end:g})"
    return None


class CamGridSamplerOptions:
    """Fast generation settings for CamGrid Sampler: checked here, applied by the sampler."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "schedule": (list(SCHEDULES), {"default": "default", "tooltip": "default: the sampler's steps, "
                             "shift and scheduler (Wan's schedule). A preset fixes the sigmas and the solver of a "
                             "step-distilled model (load its weights or LoRA too; set the sampler's cfg to 1): "
                             f"{PRESET_NOTES}. custom: the sigmas below."}),
                "sigmas": ("STRING", {"default": EXAMPLE_SIGMAS, "tooltip": "schedule custom: the noise levels the "
                           "model sees, descending from at most 1 to 0, separated by commas; used as given (no "
                           "shift), solved with the sampler's scheduler. Ignored by the other schedules."}),
                "cache": (list(CACHES), {"default": "none", "tooltip": "easycache: skip the DiT on steps where the "
                          "grid changed little and reuse its last output residual (training-free; decided for the "
                          "whole grid, so views never drift apart). 'info' says how many steps ran the model."}),
                "cache_threshold": ("FLOAT", CACHE_LIMITS["cache_threshold"].widget(default=0.1, step=0.01,
                                    tooltip="How much predicted change may accumulate before the DiT runs again: "
                                    "higher skips more steps (faster, less faithful). 0 never skips.")),
                "cache_start": ("FLOAT", CACHE_LIMITS["cache_start"].widget(default=0.2, step=0.01,
                                tooltip="Fraction of the steps that always run the model first (they set the "
                                "layout; EasyCache uses 0.2).")),
                "cache_end": ("FLOAT", CACHE_LIMITS["cache_end"].widget(default=1.0, step=0.01,
                              tooltip="Fraction of the steps after which the model always runs (the last step "
                              "always does).")),
                "cfg_max_sigma": ("FLOAT", CFG_MAX_SIGMA.widget(default=1.0, step=0.05,
                                  tooltip="Text guidance (the sampler's cfg) only at noise levels at or below this "
                                  "(1: every step). The first, noisiest steps set the layout, and guidance there "
                                  "makes objects larger than the prompt's; 0.8 leaves them unguided (and runs one "
                                  "model pass instead of two on them).")),
            },
            "optional": {
                "sigmas_in": ("SIGMAS", {"tooltip": "schedule custom: ComfyUI SIGMAS from another node (e.g. a "
                              "scheduler node on a flow model: values in [0, 1], ending in 0); replaces the text."}),
            },
        }

    RETURN_TYPES = (SAMPLER_OPTIONS,)
    RETURN_NAMES = ("options",)
    FUNCTION = "build"
    CATEGORY = "CamGrid/sampling"
    DESCRIPTION = ("Few-step schedules of distilled models, custom sigmas and a training-free step cache for "
                   "CamGrid Sampler (connect to its 'options' input).")

    @classmethod
    def VALIDATE_INPUTS(cls, schedule=None, cache=None, cache_start=None, cache_end=None):
        # cache_start / cache_end are named for their order rule, so their limits are checked here too
        return options_problem(schedule, cache, cache_start, cache_end) or True

    def build(self, schedule, sigmas, cache, cache_threshold, cache_start, cache_end, cfg_max_sigma=1.0,
              sigmas_in=None):
        raise_problem(options_problem(schedule, cache, cache_start, cache_end))
        check_cache(cache, cache_threshold, cache_start, cache_end)
        custom = None
        if schedule == CUSTOM:
            custom = check_sigmas(sigmas_in, "sigmas_in") if sigmas_in is not None else parse_sigmas(sigmas)
        settings = dict(schedule=schedule, sigmas=custom, cache=cache, cache_threshold=cache_threshold,
                        cache_start=cache_start, cache_end=cache_end, cfg_max_sigma=cfg_max_sigma)
        SamplerOptions(**settings)  # every rule checked once, here, before the sampler runs
        return (settings,)


__all__ = ["CamGridSamplerOptions"]
