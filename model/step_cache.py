"""Training-free step cache for the grid sampler (docs/ARCHITECTURE.md §5 Sampling).

    velocity = wrap_step(guided_velocity, plan, stats)        # what sample_grid does
    grid = denoise(plan, velocity=velocity)
    stats.summary()      # "step cache easycache (threshold 0.1, steps 10-48 may reuse): the DiT ran N of 50 steps"

On a step where the grid's input has changed little since the last computed step, the wrapper skips the DiT
and reuses the cached output residual instead: `v ≈ x + (v_c - x_c)`, with (x_c, v_c) the input and the
guided velocity of the last step that ran the model.

Which method, and why: **EasyCache** (H-EmbodVis/EasyCache, `EasyCache4Wan2.1/easycache_generate.py`,
"runtime-adaptive caching"). It works on the model's raw input and output only, which is exactly what a
wrapper of the sampler's step sees, and it needs no per-model calibration:
  - at every computed step after the first, the transformation rate k = mean|v - v_c| / mean|x - x_c|
    (output change over input change between the last two computed steps);
  - at a candidate step, the predicted relative output change k · mean|x - x_prev| / mean|v_c| is added to
    an accumulator; while the accumulator stays below the threshold the step reuses the cache, otherwise the
    model runs and the accumulator restarts at 0;
  - the first steps (EasyCache: 10 of 50 = `start` 0.2) and the last step always run the model.
TeaCache (ali-vilab/TeaCache, TeaCache4Wan2.1) decides from the timestep embedding through polynomials fitted
to Wan2.1 1.3B / 14B and reuses a hidden-state residual inside the DiT; MagCache (Zehong-Ma/MagCache) uses
per-step magnitude ratios measured on those same models. Both need coefficients calibrated per model, which
the built-in tiny model, SynCamMaster / ReCamMaster fine-tunes, LoRAs and distilled students do not have,
and both hook into the DiT's blocks; EasyCache needs neither.

For a grid the decision is one bool per step for the whole grid (every view, both streams of the two-stream
modes, every guidance branch), so views never drift apart. The cache wraps the guided velocity, so the CFG
branches are cached consistently: with one input x for all branches, caching each branch's residual with one
decision gives the same guided result as caching the guided one (linearity of the guidance).

Composition: the cache must be the outermost wrapper of the step (it decides per whole-grid step; a
context-window wrapper inside it splits the model calls of a step that runs). It identifies steps by their
sigma in the plan's schedule and refuses to be called twice for one step.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

from .checks import InputError, Limit, raise_problem, range_problem

CACHES = ("none", "easycache")
CACHE_LIMITS = {
    "cache_threshold": Limit(0.0, 10.0, hint="accumulated relative change allowed before the DiT runs again; "
                                             "0 = never reuse, EasyCache suggests 0.05-0.2"),
    "cache_start": Limit(0.0, 1.0, hint="fraction of the steps that always run the model first"),
    "cache_end": Limit(0.0, 1.0, hint="fraction of the steps after which the model always runs"),
}

Velocity = Callable[[Any, torch.Tensor, float], torch.Tensor]


def check_cache(cache: str, threshold, start, end, label: Callable[[str], str] = str) -> None:
    """InputError for an unknown cache or a setting outside CACHE_LIMITS (start must be below end)."""
    if cache not in CACHES:
        raise InputError(f"{label('cache')} {cache!r} is not one of {', '.join(CACHES)}")
    raise_problem(range_problem(CACHE_LIMITS, {"cache_threshold": threshold, "cache_start": start,
                                               "cache_end": end}, label))
    if start >= end:
        raise InputError(f"{label('cache_start')} ({start:g}) must be below {label('cache_end')} ({end:g}): the "
                         "steps between them may reuse the cache")


def eligible_range(steps: int, start: float, end: float) -> tuple[int, int]:
    """(first, stop): steps first <= i < stop may reuse the cache; the last step never does."""
    first = math.ceil(start * steps - 1e-9)
    stop = min(math.ceil(end * steps - 1e-9), steps - 1)
    return first, max(first, stop)


@dataclass
class SamplingStats:
    """What a sampling run did (filled by `sample_grid(..., stats=SamplingStats())` and the node's info).

    ran[i] is True when step i ran the DiT (every guidance branch of it), False when it reused the cache."""

    schedule: str = ""                                # the schedule and solver, in words
    sigmas: list = field(default_factory=list)        # the sigmas of the run (with the terminal 0)
    cache: str = "none"                               # the cache, in words
    ran: list = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.ran)

    @property
    def model_steps(self) -> int:
        return sum(self.ran)

    @property
    def skipped(self) -> list:
        return [i for i, r in enumerate(self.ran) if not r]

    def summary(self) -> str:
        lines = [self.schedule] if self.schedule else []
        skipped = self.skipped
        tail = f" (reused the cache at steps {', '.join(str(i) for i in skipped)})" if skipped else ""
        lines.append(f"{self.cache}: the DiT ran {self.model_steps} of {self.steps} steps{tail}")
        return "\n".join(lines)


class StepRecorder:
    """The step unchanged, recording that the model ran (sampling without a cache)."""

    def __init__(self, inner: Velocity, stats: SamplingStats):
        self.inner, self.stats = inner, stats

    def __call__(self, plan, x: torch.Tensor, sigma: float) -> torch.Tensor:
        v = self.inner(plan, x, sigma)
        self.stats.ran.append(True)
        return v


class EasyCache:
    """EasyCache around a step function (see the module docstring); one instance per run."""

    def __init__(self, inner: Velocity, threshold: float, start: float, end: float, stats: SamplingStats):
        self.inner, self.threshold, self.start, self.end, self.stats = inner, threshold, start, end, stats
        self._index = None           # {sigma: step index} of the plan's schedule, bound at the first call
        self._last_step = -1
        self._prev_x = None          # input of the previous step (computed or not)
        self._x_c = self._v_c = None  # input and output of the last computed step
        self._k = None               # transformation rate between the last two computed steps
        self._accumulated = 0.0

    def _step_of(self, plan, sigma: float) -> int:
        if self._index is None:
            sigmas = [float(s) for s in plan.sigmas[:-1]]
            self._index = {s: i for i, s in enumerate(sigmas)}
            self._first, self._stop = eligible_range(len(sigmas), self.start, self.end)
        step = self._index.get(float(sigma))
        if step is None or step <= self._last_step:
            raise RuntimeError("the step cache must wrap the whole sampler step, once per step (outermost: a "
                               "context-window wrapper goes inside it)")
        self._last_step = step
        return step

    def _reuse(self, x: torch.Tensor) -> bool:
        """EasyCache's decision for a candidate step: accumulate the predicted change, reuse while below."""
        if self._k is None or self._prev_x is None:
            return False
        input_change = float((x - self._prev_x).abs().mean())
        output_norm = float(self._v_c.abs().mean())
        if not (math.isfinite(input_change) and output_norm > 0.0):
            return False
        self._accumulated += self._k * input_change / output_norm
        if self._accumulated < self.threshold:
            return True
        self._accumulated = 0.0
        return False

    def __call__(self, plan, x: torch.Tensor, sigma: float) -> torch.Tensor:
        step = self._step_of(plan, sigma)
        candidate = self._first <= step < self._stop
        if not candidate:
            self._accumulated = 0.0
        if candidate and self._reuse(x):
            v = x + (self._v_c - self._x_c)
            self._prev_x = x.clone()  # copies: the solver may reuse the buffers it hands back
            self.stats.ran.append(False)
            return v
        v = self.inner(plan, x, sigma)
        if self._v_c is not None:
            input_change = float((x - self._x_c).abs().mean())
            self._k = float((v - self._v_c).abs().mean()) / input_change if input_change > 0.0 else None
        self._x_c = self._prev_x = x.clone()
        self._v_c = v.clone()
        self.stats.ran.append(True)
        return v


def describe_cache(cache: str, threshold: float, start: float, end: float, steps: int) -> str:
    if cache == "none":
        return "no step cache"
    first, stop = eligible_range(steps, start, end)
    where = f"steps {first}-{stop - 1} may reuse" if stop > first else "no step may reuse (range too short)"
    return f"step cache {cache} (threshold {threshold:g}, {where})"


def wrap_step(inner: Velocity, plan, stats: Optional[SamplingStats] = None) -> Velocity:
    """`inner` wrapped by the cache the plan's options ask for (cache, cache_threshold, cache_start, cache_end),
    recording the run in `stats`. Without a cache the step is unchanged (only recorded). Wrap the whole step:
    the cache is the outermost wrapper."""
    options = plan.options
    stats = stats if stats is not None else SamplingStats()
    stats.schedule, stats.sigmas = plan.schedule_note, [float(s) for s in plan.sigmas]
    stats.cache = describe_cache(options.cache, options.cache_threshold, options.cache_start, options.cache_end,
                                 len(plan.sigmas) - 1)
    if options.cache == "none":
        return StepRecorder(inner, stats)
    return EasyCache(inner, options.cache_threshold, options.cache_start, options.cache_end, stats)


__all__ = ["CACHES", "CACHE_LIMITS", "SamplingStats", "EasyCache", "StepRecorder", "check_cache", "eligible_range",
           "describe_cache", "wrap_step"]
