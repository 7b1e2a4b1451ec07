"""Few-step and custom sigma schedules for the grid sampler (docs/ARCHITECTURE.md §5 Sampling).

The default schedule (`SamplerOptions.schedule == "default"`) is Wan's: `steps` shifted linspace sigmas
(model/sampling.py). This module adds the two other ways to say which noise levels the sampler visits:

  - **presets** of step-distilled Wan2.1 models, as their authors run them (`PRESETS`); a preset fixes
    the sigmas and the solver, so `steps` and `scheduler` are not used;
  - **custom sigmas**: any descending list from <= 1 down to 0 (ComfyUI's SIGMAS); they are the sigmas
    the model sees, used as given (no shift), with the sampler's `scheduler` as the solver.

The presets, with where each number comes from:

``lightx2v_4step``   LightX2V's 4-step CFG-free Wan2.1 models and LoRAs (DMD / Self-Forcing; the same
    recipe as CausVid's bidirectional few-step sampler). ModelTC/LightX2V
    `configs/distill/wan21/wan_t2v_distill_{model,lora}_4step_cfg.json`: `denoising_step_list`
    [1000, 750, 500, 250], `sample_shift` 5, `enable_cfg` false. `WanStepDistillScheduler`
    (lightx2v/models/schedulers/wan/step_distill/scheduler.py) reads the steps off the shifted 1000-entry
    training table, `σ = shift(linspace(1, 0, 1001)[:-1])[1000 - t]`, i.e. σ = shift(t / 1000):
    1.0, 0.9375, 0.8333, 0.625 at shift 5; each step predicts `x0 = x - σ·v` and re-noises it with fresh
    Gaussian noise to the next σ (`(1 - σ')·x0 + σ'·ε`), the last step returns x0. That step is diffusers'
    `FlowMatchLCMScheduler` (ComfyUI's `lcm` sampler does the same for flow models): solver "lcm".
``wrapper_distill_4step``   kijai/ComfyUI-WanVideoWrapper's `flowmatch_distill` scheduler
    (wanvideo/schedulers/__init__.py): timesteps [999, 750, 500, 250] read off the same shifted table
    (the sampler's `shift`), stepped with DiffSynth's deterministic `FlowMatchScheduler` (Euler,
    `x + (σ' - σ)·v`): solver "euler"; it starts from pure noise although σ0 = 0.9998.
``rcm_4step``   rCM (NVlabs/rcm, TurboDiffusion) Wan2.1 models: TrigFlow times t = [atan(σ_max), 1.5, 1.4,
    1.0] with σ_max 80 (TurboDiffusion's T2V default; WanVideoWrapper's `rcm` scheduler uses 120), turned
    into rectified-flow sigmas by `σ = sin t / (cos t + sin t)` as their samplers do: 0.98765, 0.93378,
    0.85290, 0.60898; the model sees timestep 1000·σ; each step is x0 then re-noise (their
    `cos t'·x0 + sin t'·ε` in TrigFlow is `(1 - σ')·x0 + σ'·ε` here): solver "lcm", no shift. They start
    from `σ0·ε` (not ε), as ComfyUI does for custom sigmas starting below 1 (an empty latent noised to σ0).

The distilled presets were trained without CFG: their recommended `cfg` is 1 (`SamplerOptions` takes it when
cfg is not given; an explicit cfg is honoured). `shift` applies to the presets defined on the 1000-step
table (5 is the published value and the default); custom sigmas and rcm_4step are used as they are.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, NamedTuple, Optional

import numpy as np
import torch

from .checks import InputError

NUM_TRAIN_TIMESTEPS = 1000
SOLVERS = ("unipc", "euler", "lcm")
DEFAULT = "default"   # Wan's shifted linspace schedule (model/sampling.py)
CUSTOM = "custom"     # SamplerOptions.sigmas
MAX_CUSTOM_SIGMAS = 1001  # a schedule of at most 1000 steps, as `steps`


@dataclass(frozen=True)
class Preset:
    """A published few-step schedule: where its sigmas come from, its solver and its guidance."""

    name: str
    solver: str                                   # "lcm" (x0 then re-noise) | "euler" | "unipc"
    timesteps: Optional[tuple] = None             # on the 1000-step training table, shifted by `shift`
    sigmas: Optional[tuple] = None                # or fixed sigmas (no shift), without the terminal 0
    cfg: float = 1.0                              # recommended guidance scale (1: CFG-distilled)
    shift: float = 5.0                            # recommended shift (used only with `timesteps`)
    scaled_start: bool = False                    # start from σ0·noise (rCM) instead of pure noise
    about: str = ""

    def base_sigmas(self) -> np.ndarray:
        """The sigmas before the solver's shift (float64): t / 1000 for table presets, else the fixed ones."""
        if self.timesteps is not None:
            return np.asarray(self.timesteps, dtype=np.float64) / NUM_TRAIN_TIMESTEPS
        return np.asarray(self.sigmas, dtype=np.float64)

    @property
    def uses_shift(self) -> bool:
        return self.timesteps is not None


def _trigflow_to_flow(t: float) -> float:
    return math.sin(t) / (math.cos(t) + math.sin(t))


PRESETS = {p.name: p for p in (
    Preset("lightx2v_4step", "lcm", timesteps=(1000, 750, 500, 250),
           about="LightX2V / Self-Forcing 4-step CFG-free Wan2.1 (distilled models and LoRAs)"),
    Preset("wrapper_distill_4step", "euler", timesteps=(999, 750, 500, 250),
           about="WanVideoWrapper's flowmatch_distill: the 4 distilled timesteps stepped with Euler"),
    Preset("rcm_4step", "lcm", sigmas=tuple(_trigflow_to_flow(t) for t in (math.atan(80.0), 1.5, 1.4, 1.0)),
           scaled_start=True, about="rCM (NVlabs / TurboDiffusion) 4-step Wan2.1, sigma_max 80"),
)}
SCHEDULES = (DEFAULT,) + tuple(PRESETS) + (CUSTOM,)


@dataclass(frozen=True)
class Schedule:
    """A resolved schedule: what `prepare` hands the diffusers solver and how the run starts.

    base_sigmas:  the sigmas of the steps that run, before the solver's shift (float64, no terminal 0);
    shift:        the shift the solver applies to them (1.0: used as given);
    scaled_start: start from σ0·noise (a schedule that begins below σ = 1 without an init latent)."""

    name: str
    solver: str
    base_sigmas: np.ndarray
    shift: float
    scaled_start: bool
    note: str


def parse_sigmas(text: str, what: str = "sigmas") -> tuple:
    """'1, 0.9375, 0.83, 0.625, 0' -> a tuple of floats (commas and/or spaces), checked by `check_sigmas`."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    values = []
    for part in parts:
        try:
            values.append(float(part))
        except ValueError:
            raise InputError(f"{what}: {part[:20]!r} is not a number; write descending sigmas separated by commas, "
                             "e.g. 1, 0.9375, 0.8333, 0.625, 0") from None
    return check_sigmas(values, what)


def check_sigmas(sigmas, what: str = "sigmas") -> tuple:
    """Custom sigmas as a tuple of floats: 2..1001 finite values in [0, 1], strictly decreasing, the last 0."""
    if isinstance(sigmas, str):
        return parse_sigmas(sigmas, what)
    if isinstance(sigmas, torch.Tensor):
        sigmas = sigmas.detach().double().cpu().reshape(-1).tolist()
    elif isinstance(sigmas, np.ndarray):
        sigmas = sigmas.astype(np.float64).reshape(-1).tolist()
    try:
        values = list(sigmas)
    except TypeError:
        raise InputError(f"{what} must be a list of numbers (descending, ending in 0), got {type(sigmas).__name__}") \
            from None
    if not 2 <= len(values) <= MAX_CUSTOM_SIGMAS:
        raise InputError(f"{what} must hold 2 to {MAX_CUSTOM_SIGMAS} values (one more than the steps, the last 0), "
                         f"got {len(values)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
            raise InputError(f"{what} must be finite numbers in [0, 1] (flow-matching noise levels), got {v!r}")
    values = [float(v) for v in values]
    if any(b >= a for a, b in zip(values, values[1:])):
        raise InputError(f"{what} must be strictly decreasing (from high noise to 0), got "
                         f"{', '.join(f'{v:g}' for v in values[:8])}{' ...' if len(values) > 8 else ''}")
    if values[-1] != 0.0:
        raise InputError(f"{what} must end in 0 (the clean video), got last value {values[-1]:g}: append 0")
    return tuple(values)


def check_schedule(schedule: str, sigmas) -> tuple[str, Optional[tuple]]:
    """(schedule name, checked sigmas or None): sigmas alone mean 'custom'; a preset takes no sigmas."""
    if schedule not in SCHEDULES:
        raise InputError(f"schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
    if sigmas is not None:
        if schedule not in (DEFAULT, CUSTOM):
            raise InputError(f"schedule {schedule!r} has its own sigmas: pass sigmas with schedule 'custom' "
                             "(or no schedule), or drop them")
        return CUSTOM, check_sigmas(sigmas)
    if schedule == CUSTOM:
        raise InputError("schedule 'custom' needs sigmas: a descending list ending in 0, e.g. 1, 0.9375, 0.8333, "
                         "0.625, 0")
    return schedule, None


def recommended(schedule: str) -> tuple[Optional[float], Optional[float]]:
    """(cfg, shift) a preset is published with; (None, None) for the default and custom schedules."""
    preset = PRESETS.get(schedule)
    return (preset.cfg, preset.shift) if preset else (None, None)


def _kept_count(n: int, denoise: float) -> int:
    return n if denoise >= 1.0 else max(1, round(n * denoise))


def _kept(base: np.ndarray, denoise: float) -> np.ndarray:
    """denoise < 1 on a fixed schedule: its last max(1, round(n·denoise)) steps (the first ones are skipped)."""
    return base[-_kept_count(len(base), denoise):]


def schedule_length(schedule: str, sigmas: Optional[tuple], steps: int, denoise: float) -> int:
    """The number of steps a (checked) schedule runs: `steps` for the default one."""
    if schedule == DEFAULT:
        return steps
    n = len(sigmas) - 1 if schedule == CUSTOM else len(PRESETS[schedule].base_sigmas())
    return _kept_count(n, denoise)


def unused_settings(schedule: str, sigmas: Optional[tuple], steps: int, scheduler: str, cfg: float) -> list:
    """Lines for the sampler's info: the settings a preset or custom sigmas do not use, and a cfg other than
    the preset's recommendation."""
    if schedule == DEFAULT:
        return []
    if schedule == CUSTOM:
        return [f"steps {steps} and shift not used: the custom sigmas ({len(sigmas) - 1} steps) are used as given"]
    preset, lines = PRESETS[schedule], []
    n = len(preset.base_sigmas())
    if steps != n:
        lines.append(f"steps {steps} not used: {preset.name} has {n} steps")
    if scheduler != preset.solver:
        lines.append(f"scheduler {scheduler} not used: {preset.name} steps with {preset.solver}")
    if cfg != preset.cfg:
        lines.append(f"cfg {cfg:g}: {preset.name} was distilled to run at cfg {preset.cfg:g} (no negative branch); "
                     f"a higher cfg runs the negative prompt too (twice the work) and tends to overcook")
    return lines


def resolve(schedule: str, sigmas: Optional[tuple], scheduler: str, shift: float, denoise: float) -> Schedule:
    """The Schedule of a preset or custom sigmas (the default schedule is built by model/sampling.py)."""
    if schedule == CUSTOM:
        base = _kept(np.asarray(sigmas[:-1], dtype=np.float64), denoise)
        return Schedule(CUSTOM, scheduler, base, 1.0, bool(base[0] < 1.0),
                        f"custom sigmas ({len(base)} steps, used as given), solver {scheduler}")
    preset = PRESETS[schedule]
    base = _kept(preset.base_sigmas(), denoise)
    used_shift = shift if preset.uses_shift else 1.0
    if preset.uses_shift:
        shift_note = f"shift {shift:g}" + ("" if shift == preset.shift else f" (published with {preset.shift:g})")
    else:
        shift_note = "fixed sigmas (shift not used)"
    note = f"schedule {preset.name}: {preset.about}; solver {preset.solver}, {shift_note}"
    return Schedule(preset.name, preset.solver, base, used_shift, preset.scaled_start, note)


# ---------------------------------------------------------------------------------------------
# the solvers (diffusers', configured like diffusers' Wan pipeline) and a fixed schedule made ready
# ---------------------------------------------------------------------------------------------

def make_scheduler(name: str = "unipc", shift: float = 5.0):
    """A fresh diffusers flow-matching solver: "unipc" (Wan's default, order 2, bh2), "euler", or "lcm"
    (x0 prediction then re-noising: the step of the distilled few-step models)."""
    # diffusers is imported here, not at module level: it takes seconds and only sampling needs it
    from diffusers import FlowMatchEulerDiscreteScheduler, FlowMatchLCMScheduler, UniPCMultistepScheduler

    if name == "unipc":
        return UniPCMultistepScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, prediction_type="flow_prediction",
                                       use_flow_sigmas=True, flow_shift=float(shift), solver_order=2,
                                       predict_x0=True, solver_type="bh2", lower_order_final=True,
                                       final_sigmas_type="zero")
    if name == "euler":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=float(shift))
    if name == "lcm":
        return FlowMatchLCMScheduler(num_train_timesteps=NUM_TRAIN_TIMESTEPS, shift=float(shift))
    raise InputError(f"scheduler {name!r} is not one of {SOLVERS}")


def renoise_generator(seed: int) -> torch.Generator:
    """The CPU generator of the "lcm" solver's fresh noise: a stream of its own derived from `seed` (numpy
    SeedSequence), so it never repeats the initial noise and a seed gives the same video on any device."""
    derived = int(np.random.SeedSequence([int(seed), 1]).generate_state(1, np.uint64)[0])
    return torch.Generator(device="cpu").manual_seed(derived)


class PreparedSchedule(NamedTuple):
    scheduler: Any            # the diffusers solver, ready to step
    sigmas: torch.Tensor      # float32 [n + 1], ending in 0
    solver: str               # "unipc" | "euler" | "lcm"
    note: str                 # the schedule and solver, in words
    scaled_start: bool        # start from σ0·noise (a schedule that begins below 1)


def prepare_fixed(schedule: str, sigmas: Optional[tuple], scheduler: str, shift: float, denoise: float,
                  device=None) -> PreparedSchedule:
    """A preset's or custom sigmas' solver, ready to step (the default schedule: sampling.prepare_scheduler)."""
    chosen = resolve(schedule, sigmas, scheduler, shift, denoise)
    solver = make_scheduler(chosen.solver, chosen.shift)
    solver.set_timesteps(sigmas=chosen.base_sigmas, device=device)
    solver.set_begin_index(0)  # step by position, not by looking timesteps up
    return PreparedSchedule(solver, solver.sigmas.detach().float().cpu(), chosen.solver, chosen.note,
                            chosen.scaled_start)


__all__ = ["PRESETS", "SCHEDULES", "DEFAULT", "CUSTOM", "Preset", "Schedule", "check_sigmas", "parse_sigmas",
           "check_schedule", "recommended", "resolve", "schedule_length", "unused_settings", "SOLVERS",
           "make_scheduler", "renoise_generator",
           "PreparedSchedule", "prepare_fixed"]
