"""Flow-matching sampling of a latent grid (docs/ARCHITECTURE.md §5 Sampling).

The model predicts the velocity ``v = noise - x0`` of the path ``x_σ = (1 - σ)·x0 + σ·noise``.

Schedule: base sigmas ``linspace(1, 0, steps + 1)[:-1]``, shifted ``σ' = s·σ / (1 + (s - 1)·σ)``
(Wan: shift 5 at 720p, 3 at 480p), then a terminal 0; the model sees ``timestep = 1000·σ'``.
The solvers are diffusers' own, configured as diffusers' Wan pipeline does (we hand them the
unshifted base sigmas and they apply the shift):
  - "unipc": `UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True,
             flow_shift=s)`, order 2, bh2 (Wan's default solver). It nudges σ = 1 to 1 - 1e-6.
  - "euler": `FlowMatchEulerDiscreteScheduler(shift=s)`.
  - "lcm":   `FlowMatchLCMScheduler(shift=s)`: x0 = x - σ·v, re-noised with fresh noise to the next σ (the step
             of the distilled few-step models). Its noise comes from a CPU stream derived from `seed`.
Few-step presets of distilled models and custom sigmas: model/schedules.py (`schedule=`, `sigmas=`).
A training-free step cache: model/step_cache.py (`cache=`), wrapping the step as described below.
`denoise` < 1 follows ComfyUI: the schedule of `int(steps / denoise)` steps, keeping its last `steps`,
and the sampler starts from `init_latent` noised to the first kept sigma.

Guidance (the unconditional text is the negative prompt's embedding):
  - "text":      v = v(∅t) + cfg·(v(t) - v(∅t)); cfg = 1 runs one forward per step.
  - "two_scale": InstructPix2Pix with a source video (SynCamMaster used s_t 7.5, s_v 1.8):
                 v = v(∅v,∅t) + s_v·(v(v,∅t) - v(∅v,∅t)) + s_t·(v(v,t) - v(v,∅t)), s_t = cfg,
                 s_v = video_cfg. "No video" is defined in `conditioning` (zero latent for recam,
                 pure noise in the source view for replace_view / first_row).
  - composed:    with `compose_cfg` > 0 and `compose_context` (a second prompt), text guidance gains the
                 conjunction term of Liu et al. 2022 ("Compositional Visual Generation with Composable Diffusion
                 Models"): v = v(∅t) + cfg·(v(t) - v(∅t)) + compose_cfg·(v(t2) - v(∅t)), one more branch, on
                 the guided steps with compose_min_sigma <= sigma <= compose_max_sigma. Below
                 compose_background_sigma the term acts only on the background, the latent pixels where v(t2)
                 agrees with v(t) (model/guidance.py background_mask): a composed "floor" then sets the floor's
                 texture and leaves the objects, which only t draws, alone. Composing the built-in model's word for the
                 bare floor draws its objects at their size, but its views agree less, so the shipped model does
                 not (benchmarks/TINY_MODEL.md, "The floor composed into the guidance").
With `batch_cfg` the guidance branches run as one forward (concatenated along B), else one each.
`cfg_max_sigma` < 1 limits text guidance to the steps at or below that noise level (Kynkaenniemi et al. 2024,
"Applying guidance in a limited interval"): guidance at the highest noise levels, where the layout is set,
inflates the objects (benchmarks/TINY_MODEL.md, "Guidance in a limited interval"); the steps above it run the
text branch alone (one forward), and two_scale keeps its video scale there with s_t = 1.

Noise is drawn on the CPU from `seed` and then moved, so a seed gives the same video on any device.

How a run is put together (each piece can be used or replaced on its own):
    options = SamplerOptions(steps=30, cfg=5.0)              the knobs, checked once (model/checks.py)
    plan = prepare(model, shape, context, negative, mode=..., camera=..., options=options)
    grid = denoise(plan, velocity=guided_velocity, callback=...)
`sample_grid` is these three lines. `guided_velocity(plan, x, sigma)` is one step's guided prediction:
a step cache or a context-window sampler wraps it (`velocity=wrapper(guided_velocity)`) and the loop
stays the same; it checks every prediction for NaN / inf, whoever made it.
"""
from __future__ import annotations

import dataclasses
import numbers
from dataclasses import InitVar, dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np
import torch

from .checks import CFG_MAX_SIGMA, COMPOSE_BACKGROUND_SIGMA, COMPOSE_BACKGROUND_TAU, COMPOSE_CFG, COMPOSE_MAX_SIGMA, \
    COMPOSE_MIN_SIGMA, DENOISE, SHIFT, STEPS, InputError, NonFiniteError, check_sampling, require_finite
from .conditioning import SourceVideo, SourceVideoError, noised_source, replace_view
from .context_windows import ContextWindows, windowed_velocity
from .guidance import background_composed_guidance, composed_guidance, guidance_branches, guidance_texts, \
    text_guidance, two_scale_guidance
from .modes import source_problem
from .schedules import DEFAULT as DEFAULT_SCHEDULE, SOLVERS, PreparedSchedule, check_schedule, make_scheduler, \
    prepare_fixed, recommended, renoise_generator
from .step_cache import SamplingStats, check_cache, wrap_step

SCHEDULERS = SOLVERS
GUIDANCE = ("text", "two_scale")
NUM_TRAIN_TIMESTEPS = 1000

class SamplingInterrupted(RuntimeError):
    """Raised when the `interrupt` callback asks sampling to stop (it returned True)."""


# ---------------------------------------------------------------------------------------------
# options and their checks
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamplerOptions:
    """The sampler's settings, checked once when made (see the module docstring for their meaning).

    steps, denoise:  steps that run; denoise < 1 refines `init_latent` (ComfyUI's rule).
    cfg:             text guidance scale (s_t of two_scale); 1 skips the negative branch. None: 5, or the
                     schedule preset's recommendation (1 for the CFG-distilled presets).
    cfg_max_sigma:   text guidance only at noise levels sigma <= this (1: every step; see the module docstring).
    compose_cfg:     the weight of the composed prompt (`compose_context`; see the module docstring); 0: none.
                     It joins text guidance, so only on the steps that cfg_max_sigma guides, and of those only
                     on the steps whose sigma lies in [compose_min_sigma, compose_max_sigma] (0 and 1: all of them);
                     on those below compose_background_sigma only on the background, as compose_background_tau
                     defines it (model/guidance.py background_mask).
    shift:           flow shift of the schedule (None: 5, or the preset's).   scheduler: "unipc" | "euler" | "lcm".
    guidance:        "text" | "two_scale" (needs a source video; s_v = video_cfg).
    batch_cfg:       run the guidance branches as one forward.   seed: the noise seed.
    text_length:     pad both prompts with zero tokens to at least this many (Wan's umT5: TEXT_LENGTH = 512).
    windows:         context windows over time / views (model/context_windows.py); None = one pass over the grid.
                     `sample_grid` applies them; a caller of `denoise` passes
                     velocity=windowed_velocity(guided_velocity, options.windows) itself.
    Fast generation (model/schedules.py, model/step_cache.py):
    schedule:        "default" (steps, shift, scheduler) | a preset of schedules.PRESETS (fixes sigmas and solver;
                     steps and scheduler unused) | "custom" (with sigmas).
    sigmas:          custom schedule: descending sigmas in [0, 1] ending in 0, used as given (no shift).
    cache:           "none" | "easycache"; cache_threshold, cache_start, cache_end (fractions of the steps).
    """

    steps: int = 50
    cfg: Optional[float] = None
    cfg_max_sigma: float = 1.0
    compose_cfg: float = 0.0
    compose_min_sigma: float = 0.0
    compose_max_sigma: float = 1.0
    compose_background_sigma: float = 0.0
    compose_background_tau: float = 2.0
    shift: Optional[float] = None
    scheduler: str = "unipc"
    seed: int = 0
    denoise: float = 1.0
    guidance: str = "text"
    video_cfg: float = 1.8
    batch_cfg: bool = True
    text_length: Optional[int] = None
    # context windows: how one step is split into model calls (model/context_windows.py)
    windows: Optional[ContextWindows] = None
    # -- fast generation: few-step / custom schedules and the step cache ---------------------------------
    schedule: str = DEFAULT_SCHEDULE
    sigmas: Optional[tuple] = None
    cache: str = "none"
    cache_threshold: float = 0.1
    cache_start: float = 0.2
    cache_end: float = 1.0

    label: InitVar[Callable[[str], str]] = str  # how a refusal names a setting (the command line: its flags)

    def __post_init__(self, label):
        self._resolve_fast_generation(label)   # cfg / shift left as None take the schedule's values first
        # the settings' limits are model/checks.py's (the node's widgets and the CLI show the same ranges)
        checked = check_sampling(label, steps=self.steps, cfg=self.cfg, video_cfg=self.video_cfg, shift=self.shift,
                                 denoise=self.denoise, seed=self.seed)
        checked["cfg_max_sigma"] = CFG_MAX_SIGMA.check(label("cfg_max_sigma"), self.cfg_max_sigma)
        checked["compose_cfg"] = COMPOSE_CFG.check(label("compose_cfg"), self.compose_cfg)
        checked["compose_min_sigma"] = COMPOSE_MIN_SIGMA.check(label("compose_min_sigma"), self.compose_min_sigma)
        checked["compose_max_sigma"] = COMPOSE_MAX_SIGMA.check(label("compose_max_sigma"), self.compose_max_sigma)
        checked["compose_background_sigma"] = COMPOSE_BACKGROUND_SIGMA.check(label("compose_background_sigma"),
                                                                             self.compose_background_sigma)
        checked["compose_background_tau"] = COMPOSE_BACKGROUND_TAU.check(label("compose_background_tau"),
                                                                         self.compose_background_tau)
        if checked["compose_min_sigma"] > checked["compose_max_sigma"]:
            raise InputError(f"{label('compose_min_sigma')} {checked['compose_min_sigma']} is above "
                             f"{label('compose_max_sigma')} {checked['compose_max_sigma']}: no step would get the "
                             f"composed prompt; give a lowest noise level at most the highest")
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        if self.scheduler not in SCHEDULERS:
            raise InputError(f"{label('scheduler')} {self.scheduler!r} is not one of {SCHEDULERS}")
        if self.guidance not in GUIDANCE:
            raise InputError(f"{label('guidance')} {self.guidance!r} is not one of {GUIDANCE}")
        if self.compose_cfg > 0 and self.guidance != "text":
            raise InputError(f"{label('compose_cfg')} composes a second prompt into text guidance; guidance "
                             f"{self.guidance!r} weighs a source video instead: use compose_cfg = 0 with it")
        if self.text_length is not None and (isinstance(self.text_length, bool) or
                                             not isinstance(self.text_length, numbers.Integral) or self.text_length < 1):
            raise InputError(f"text_length must be a positive number of tokens or None, got {self.text_length!r}")
        if self.windows is not None and not isinstance(self.windows, ContextWindows):
            raise InputError(f"windows must be a ContextWindows (model/context_windows.py) or None, got "
                             f"{type(self.windows).__name__}")

    def _resolve_fast_generation(self, label: Callable[[str], str]) -> None:
        """Checks schedule / sigmas / cache, and fills cfg and shift left as None (the preset's or 5)."""
        schedule, sigmas = check_schedule(self.schedule, self.sigmas)
        check_cache(self.cache, self.cache_threshold, self.cache_start, self.cache_end, label)
        cfg, shift = recommended(schedule)
        for name, value in (("schedule", schedule), ("sigmas", sigmas),
                            ("cfg", self.cfg if self.cfg is not None else (cfg if cfg is not None else 5.0)),
                            ("shift", self.shift if self.shift is not None else (shift if shift is not None else 5.0)),
                            ("cache_threshold", float(self.cache_threshold)),
                            ("cache_start", float(self.cache_start)), ("cache_end", float(self.cache_end))):
            object.__setattr__(self, name, value)

    @property
    def uses_negative(self) -> bool:
        """Whether the negative prompt's branch runs (two_scale always, text guidance when cfg != 1 or a prompt
        is composed)."""
        return self.guidance == "two_scale" or self.cfg != 1.0 or self.compose_cfg > 0

    @classmethod
    def build(cls, options: Optional["SamplerOptions"] = None, **settings) -> "SamplerOptions":
        """`options` (default: the defaults) with `settings` replaced; unknown names are refused. Options that
        are already made and get no new settings are used as they are (they were checked when made). Without
        `options`, cfg and shift not given follow the schedule (a preset's recommendation)."""
        unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unknown sampler setting(s) {unknown}; the settings are "
                            f"{[f.name for f in dataclasses.fields(cls)]}")
        if options is not None and not settings:
            return options
        return dataclasses.replace(options, **settings) if options is not None else cls(**settings)


# ---------------------------------------------------------------------------------------------
# schedule
# ---------------------------------------------------------------------------------------------

def base_sigmas(steps: int, denoise: float = 1.0) -> np.ndarray:
    """Unshifted sigmas of the steps that run: linspace(1, 0, n+1)[:-1] with n = int(steps/denoise),
    the last `steps` of them (ComfyUI's rule for denoise < 1)."""
    steps, denoise = STEPS.check("steps", steps), DENOISE.check("denoise", denoise)
    total = steps if denoise >= 1.0 else max(steps, int(steps / denoise))
    return np.linspace(1.0, 0.0, total + 1)[:-1][-steps:]


def shift_sigmas(sigmas, shift: float):
    """σ' = s·σ / (1 + (s - 1)·σ) (works on numpy arrays, tensors and floats)."""
    return shift * sigmas / (1 + (shift - 1) * sigmas)


def prepare_scheduler(name: str = "unipc", steps: int = 50, shift: float = 5.0, denoise: float = 1.0, device=None):
    """(scheduler ready to step, sigmas float32 [steps + 1] ending in 0). sigmas[i] is the noise level
    of the latent fed to the model at step i; the model's timestep is 1000·sigmas[i]."""
    sched = make_scheduler(name, SHIFT.check("shift", shift))
    sched.set_timesteps(sigmas=base_sigmas(steps, denoise), device=device)
    sched.set_begin_index(0)  # step by position, not by looking timesteps up
    return sched, sched.sigmas.detach().float().cpu()


def prepare_schedule(options: SamplerOptions, device=None) -> PreparedSchedule:
    """The options' schedule: the default one (`prepare_scheduler`), a preset or custom sigmas
    (model/schedules.py), with its solver."""
    o = options
    if o.schedule == DEFAULT_SCHEDULE:
        sched, sigmas = prepare_scheduler(o.scheduler, o.steps, o.shift, o.denoise, device)
        note = f"default schedule: {len(sigmas) - 1} steps, shift {o.shift:g}, solver {o.scheduler}"
        return PreparedSchedule(sched, sigmas, o.scheduler, note, False)
    return prepare_fixed(o.schedule, o.sigmas, o.scheduler, o.shift, o.denoise, device)


def make_noise(shape: Sequence[int], seed: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Gaussian noise drawn on the CPU from `seed`, then moved: identical on every device."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(tuple(int(s) for s in shape), generator=g, dtype=torch.float32).to(device=device, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# preparation: everything a run needs, made once
# ---------------------------------------------------------------------------------------------

@dataclass
class SamplingPlan:
    """One run's prepared inputs (`prepare`). Used by one run only: its scheduler keeps state.

    The guidance branches are fixed by the options: two_scale runs (null video, no text), (video, no text),
    (video, text); text CFG runs (text), (no text), and (composed text) with compose_cfg; cfg = 1 runs (text).
    `texts` / `sources` hold each branch's text features and recam source latent; `batched` the same
    concatenated once for batch_cfg.
    Context windows cut the per-view / per-frame fields with `context_windows.restrict_plan`: a new field
    indexed by view or latent frame must be cut there too.
    """

    model: Any
    mode: str
    options: SamplerOptions
    noise: torch.Tensor                        # [B, V, C, T, H, W] float32 on the model's device
    x_init: torch.Tensor                       # the latent fed to step 0
    scheduler: Any
    sigmas: torch.Tensor                       # float32 [steps + 1], ending in 0
    texts: list                                # per branch: [B, L, text_dim]
    sources: list                              # per branch: recam source latent [B, C, T, H, W] or None
    camera: Optional[torch.Tensor]             # [B, V, T, 12]
    source: Optional[SourceVideo]              # resolved (how is never "auto")
    source_latent: Optional[torch.Tensor]      # [B, C, T, H, W] on the model's device
    interrupt: Optional[Callable[[], None]]    # raises to stop; checked before every step and block
    batched: Optional[tuple] = None            # (texts, sources, camera) concatenated over the branches
    schedule_note: str = ""                    # the schedule and solver, in words
    step_kwargs: dict = dataclasses.field(default_factory=dict)  # extra solver.step arguments ("lcm": generator)

    def predict(self, xs: list, timestep: torch.Tensor) -> list:
        """The model's velocity for each branch's latent xs[i] (with the branch's text and source)."""
        b, n = xs[0].shape[0], len(xs)
        kw = dict(mode=self.mode, interrupt=self.interrupt)
        if self.batched is not None and n > 1:   # the first n branches (a composed prompt may sit a step out)
            texts, sources, camera = (None if t is None else t[:b * n] for t in self.batched)
            out = self.model(torch.cat(xs), timestep.expand(b * n), texts, camera=camera, source=sources, **kw)
            return list(out.float().chunk(n))
        return [self.model(x, timestep.expand(b), text, camera=self.camera, source=src, **kw).float()
                for x, text, src in zip(xs, self.texts, self.sources)]

    def condition(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """x with the conditioned view (replace_view / first_row) set to the source noised to sigma."""
        if self.source is None or not self.source.replaces_a_view:
            return x
        view = self.source.view
        return replace_view(x, view, noised_source(self.source_latent, self.noise[:, view],
                                                   sigma * self.source.noise_scale))

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        """A clean grid with the conditioned view set to the source itself."""
        if self.source is None or not self.source.replaces_a_view:
            return x
        return replace_view(x, self.source.view, self.source_latent)

    def check_interrupt(self) -> None:
        if self.interrupt is not None:
            self.interrupt()


def _batched_camera(camera, b: int, v: int, t: int, device) -> Optional[torch.Tensor]:
    if camera is None:
        return None
    camera = torch.as_tensor(camera)
    if camera.ndim == 3:
        camera = camera[None]
    if camera.ndim != 4 or tuple(camera.shape[1:]) != (v, t, 12) or camera.shape[0] not in (1, b):
        raise InputError(f"camera must be [V, T, 12] or [B, V, T, 12] = [{b}, {v}, {t}, 12] for this grid, got "
                         f"{tuple(camera.shape)}: encode the rig with relative_extrinsics(..., num_latent_frames={t}) "
                         f"using {v} views")
    require_finite("camera", camera, "the rig's poses give non-finite embeddings (a NaN pose, or distances too large "
                   "for float32): check the rig")
    return camera.to(device=device, dtype=torch.float32).expand(b, -1, -1, -1)


def _source_video(source, mode: str) -> Optional[SourceVideo]:
    """The `source` argument as a SourceVideo with its use decided (a bare latent means recam)."""
    if isinstance(source, torch.Tensor):
        if mode != "recam":
            raise SourceVideoError("a bare source latent means ReCamMaster conditioning (mode 'recam'); for other "
                                   "modes wrap it: SourceVideo(latent, how='replace_view', view=k)")
        source = SourceVideo(source, "recam")
    if source is None and source_problem(mode, None):
        raise SourceVideoError(source_problem(mode, None))
    return None if source is None else source.resolve(mode)


def prepare(model, shape_or_noise: Union[Sequence[int], torch.Tensor], context, negative_context=None, *,
            mode: str = "independent", camera=None, source: Union[SourceVideo, torch.Tensor, None] = None,
            init_latent: Optional[torch.Tensor] = None, options: Optional[SamplerOptions] = None,
            interrupt: Optional[Callable[[], None]] = None, compose_context=None) -> SamplingPlan:
    """Check a run's inputs (the sampler's boundary; the model checks its own at every forward) and prepare
    them: noise, source, batched text / camera per guidance branch, schedule and the starting latent.
    compose_context: the composed prompt's features (used with options.compose_cfg > 0)."""
    options = options or SamplerOptions()
    device = model.device
    if isinstance(shape_or_noise, torch.Tensor):
        require_finite("the noise", shape_or_noise, "pass Gaussian noise, or a shape and a seed")
        noise = shape_or_noise.to(device=device, dtype=torch.float32)
    else:
        noise = make_noise(shape_or_noise, options.seed, device)
    if noise.ndim != 6:
        raise InputError(f"the latent grid must be [B, V, C, T, H, W], got shape {tuple(noise.shape)}")
    b, v, c, t, h, w = noise.shape

    source = _source_video(source, mode)
    src = None
    if source is not None:
        source.check(model, noise.shape, mode)
        src = source.batched(b, device)
    if options.guidance == "two_scale" and source is None:
        raise InputError("guidance 'two_scale' weighs a source video against text; without a source use "
                         "guidance='text' (ComfyUI: connect CamGrid Source Video to 'source')")

    ctx, neg, comp = guidance_texts(context, negative_context, compose_context, b, model.config.text_dim, options,
                                    device)
    cam = _batched_camera(camera, b, v, t, device)

    schedule = prepare_schedule(options, device)
    sched, sigmas = schedule.scheduler, schedule.sigmas
    if init_latent is not None:
        init = torch.as_tensor(init_latent).to(device=device, dtype=torch.float32)
        if init.shape != noise.shape:
            raise InputError(f"init_latent shape {tuple(init.shape)} differs from the grid {tuple(noise.shape)}")
        require_finite("init_latent", init, "the latent to refine is broken: make it again")
        x_init = noised_source(init, noise, float(sigmas[0]))
    elif options.denoise < 1.0:
        raise InputError(f"denoise = {options.denoise} < 1 refines an existing latent: pass init_latent (or use "
                         "denoise = 1)")
    elif schedule.scaled_start:  # a schedule that starts below 1: an empty latent noised to σ0 (ComfyUI, rCM)
        x_init = noise * float(sigmas[0])
    else:
        x_init = noise.clone()  # σ0 = 1 (UniPC: 1 - 1e-6): pure noise, as diffusers' Wan pipeline starts

    texts, sources = guidance_branches(options, ctx, neg, comp, source, src)
    batched = None
    if options.batch_cfg and len(texts) > 1:
        n = len(texts)
        batched = (torch.cat(texts), torch.cat(sources) if sources[0] is not None else None,
                   cam.repeat(n, 1, 1, 1) if cam is not None else None)
    step_kwargs = {"generator": renoise_generator(options.seed)} if schedule.solver == "lcm" else {}
    return SamplingPlan(model, mode, options, noise, x_init, sched, sigmas, texts, sources, cam, source, src,
                        interrupt, batched, schedule_note=schedule.note, step_kwargs=step_kwargs)


# ---------------------------------------------------------------------------------------------
# one step and the loop
# ---------------------------------------------------------------------------------------------

def guided_velocity(plan: SamplingPlan, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """The guided velocity at noise level `sigma` for the grid x [B, V, C, T, H, W]: the model's prediction
    for each guidance branch (one batched forward with batch_cfg), combined by the plan's guidance."""
    o = plan.options
    timestep = torch.full((1,), NUM_TRAIN_TIMESTEPS * sigma, device=x.device, dtype=torch.float32)
    text_guided = sigma <= o.cfg_max_sigma
    if o.guidance == "two_scale":
        x_null = x
        if plan.source.replaces_a_view:  # "no video": the source view carries its pure noise
            x_null = replace_view(x, plan.source.view, plan.noise[:, plan.source.view])
        v_null, v_video, v_video_text = plan.predict([x_null, x, x], timestep)
        return two_scale_guidance(v_null, v_video, v_video_text, o.video_cfg, o.cfg if text_guided else 1.0)
    if o.uses_negative and text_guided:
        if o.compose_cfg > 0 and o.compose_min_sigma <= sigma <= o.compose_max_sigma:
            v_cond, v_uncond, v_composed = plan.predict([x, x, x], timestep)
            if sigma < o.compose_background_sigma:
                return background_composed_guidance(v_cond, v_uncond, v_composed, o.cfg, o.compose_cfg,
                                                    o.compose_background_tau)
            return composed_guidance(v_cond, v_uncond, v_composed, o.cfg, o.compose_cfg)
        v_cond, v_uncond = plan.predict([x, x], timestep)
        return text_guidance(v_cond, v_uncond, o.cfg)
    return plan.predict([x], timestep)[0]


Velocity = Callable[[SamplingPlan, torch.Tensor, float], torch.Tensor]


def denoise(plan: SamplingPlan, velocity: Velocity = guided_velocity,
            callback: Optional[Callable[[int, int, torch.Tensor], None]] = None) -> torch.Tensor:
    """Run the plan's schedule: per step, `velocity(plan, x, sigma)` and one solver step. Returns the clean grid.

    Every prediction is checked (one isfinite per step): a NaN / inf stops the run at once with the likely
    causes, instead of decoding a black video."""
    x, sigmas, sched = plan.x_init, plan.sigmas, plan.scheduler
    total = len(sigmas) - 1
    with torch.no_grad():
        for i in range(total):
            plan.check_interrupt()
            sigma = float(sigmas[i])
            x = plan.condition(x, sigma)
            vel = velocity(plan, x, sigma)
            if not bool(torch.isfinite(vel).all()):
                raise NonFiniteError(
                    f"the model's prediction at step {i + 1}/{total} (sigma {sigma:.4f}, mode {plan.mode}) is not finite "
                    f"(NaN or inf). Likely causes: a non-finite weight in the DiT, sync-weights or LoRA file; float16 "
                    f"overflow (use bfloat16 or float32); an extreme cfg ({plan.options.cfg:g})")
            x0 = x - sigma * vel
            x = sched.step(vel, sched.timesteps[i], x, return_dict=False, **plan.step_kwargs)[0].float()
            if callback is not None:
                callback(i + 1, total, plan.finish(x0))
    return plan.finish(x)


def sample_grid(model, shape_or_noise: Union[Sequence[int], torch.Tensor], context: torch.Tensor,
                negative_context: Optional[torch.Tensor] = None, *, mode: str = "independent",
                camera: Optional[torch.Tensor] = None, source: Union[SourceVideo, torch.Tensor, None] = None,
                init_latent: Optional[torch.Tensor] = None, compose_context: Optional[torch.Tensor] = None,
                callback: Optional[Callable[[int, int, torch.Tensor], None]] = None,
                interrupt: Optional[Callable[[], Optional[bool]]] = None,
                options: Optional[SamplerOptions] = None, stats: Optional[SamplingStats] = None,
                **settings) -> torch.Tensor:
    """Sample a latent grid [B, V, C, T, H, W] (float32, on the model's device).

    shape_or_noise: the grid shape (noise drawn from `seed` on the CPU) or a noise tensor of that shape.
    context / negative_context: text features [B or 1, L, text_dim] (negative: the uncond branch;
        may be None only with cfg = 1 and text guidance).
    mode: the GridDiT mode ("independent", "syncam", "recam", "hard", "soft").
    camera: [V, T, 12] or [B, V, T, 12] relative extrinsics (syncam / recam / hard, soft with a camera encoder).
    source: a `SourceVideo` (recam / replace_view / first_row / auto); a bare latent tensor means recam.
    init_latent: the latent that denoise < 1 refines.
    compose_context: a second prompt's features [B or 1, L, text_dim], composed into text guidance with weight
        compose_cfg (see the module docstring).
    callback(step, total, x0_pred): after every step (step counts from 1), with the predicted clean grid.
    interrupt(): checked before every step and every DiT block; it raises to stop, or returns True
        to raise `SamplingInterrupted`.
    options / settings: a `SamplerOptions`, and / or its fields by name (steps=, cfg=, shift=, scheduler=,
        seed=, denoise=, guidance=, video_cfg=, batch_cfg=, text_length=, windows=, cfg_max_sigma=, compose_cfg=,
        compose_min_sigma=, compose_max_sigma=, compose_background_sigma=, compose_background_tau=; schedule=,
        sigmas=, cache=, cache_threshold=, cache_start=, cache_end=).
    stats: a `SamplingStats` to fill: the schedule that ran, and which steps ran the DiT (`stats.summary()`).
    """
    options = SamplerOptions.build(options, **settings)

    def check_interrupt():
        if interrupt is not None and interrupt():
            raise SamplingInterrupted("sampling was interrupted")

    plan = prepare(model, shape_or_noise, context, negative_context, mode=mode, camera=camera, source=source,
                   init_latent=init_latent, options=options, compose_context=compose_context,
                   interrupt=check_interrupt if interrupt is not None else None)
    velocity = guided_velocity
    if options.windows is not None:  # context windows split each step's model calls and fuse them
        velocity = windowed_velocity(velocity, options.windows)
    # the step cache is the outermost wrapper of the step: one decision per whole-grid step (model/step_cache.py)
    return denoise(plan, velocity=wrap_step(velocity, plan, stats), callback=callback)
