"""Flow-matching grid sampler (docs/ARCHITECTURE.md §5 Sampling) and novel-view video conditioning
(docs/ARCHITECTURE.md §6 Novel-view video conditioning) on tiny models."""
import numpy as np
import pytest
import torch

from camgrid.model.checks import InputError, NonFiniteError
from camgrid.model.conditioning import SourceVideo, SourceVideoError
from camgrid.model.guidance import background_composed_guidance, background_mask, composed_guidance, text_guidance
from camgrid.model.sampling import (SamplerOptions, SamplingInterrupted, base_sigmas, denoise, guided_velocity,
                                    make_noise, prepare, prepare_scheduler, sample_grid, shift_sigmas,
                                    two_scale_guidance)
from grid_helpers import tiny_model

SHAPE = (1, 2, 16, 2, 4, 4)  # B, V, C, T, H, W: 2 views, 5 video frames, 32x32 pixels


def texts(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 7, 32, generator=g), torch.randn(1, 5, 32, generator=g)


def camera(seed=0, v=2, t=2):
    return torch.randn(v, t, 12, generator=torch.Generator().manual_seed(seed)) * 0.3


def record_calls(model):
    """Wrap model.forward; returns the list that collects (x, timestep, context, source) per call."""
    calls = []
    forward = model.forward

    def spy(x, timestep, context, **kw):
        calls.append((x.clone(), timestep.clone(), context.clone(), kw.get("source")))
        return forward(x, timestep, context, **kw)

    model.forward = spy
    return calls


@pytest.fixture(scope="module")
def syncam():
    return tiny_model("syncammaster", seed=1)


def run(model, **kw):
    ctx, neg = texts()
    args = dict(mode="syncam", camera=camera(), steps=3, cfg=5.0, shift=5.0, seed=0)
    args.update(kw)
    return sample_grid(model, SHAPE, ctx, neg, **args)


# --- schedule -------------------------------------------------------------------------------------

@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
@pytest.mark.parametrize("steps,shift", [(50, 5.0), (10, 3.0), (4, 1.0)])
def test_shifted_sigma_schedule_equals_the_formula(scheduler, steps, shift):
    _, sigmas = prepare_scheduler(scheduler, steps, shift)
    base = np.linspace(1, 0, steps + 1)[:-1]
    expected = shift * base / (1 + (shift - 1) * base)
    assert len(sigmas) == steps + 1 and sigmas[-1] == 0
    # UniPC nudges sigma = 1 to 1 - 1e-6 (diffusers, to keep log(alpha) finite)
    np.testing.assert_allclose(sigmas[:-1].numpy(), expected, atol=2e-6, rtol=0)
    assert np.all(np.diff(sigmas.numpy()) < 0)


def test_model_sees_timestep_1000_sigma():
    model = tiny_model("syncammaster", seed=1)
    calls = record_calls(model)
    run(model, steps=4, cfg=1.0, scheduler="euler", shift=3.0)
    _, sigmas = prepare_scheduler("euler", 4, 3.0)
    got = torch.stack([c[1].reshape(-1)[0] for c in calls])
    torch.testing.assert_close(got, 1000 * sigmas[:-1], atol=1e-3, rtol=0)


def test_denoise_truncates_the_schedule_like_comfyui():
    full = base_sigmas(20)
    assert np.allclose(base_sigmas(10, denoise=0.5), full[-10:])
    assert np.allclose(shift_sigmas(base_sigmas(10, 0.5), 5.0), shift_sigmas(full, 5.0)[-10:])
    with pytest.raises(ValueError, match="denoise"):
        base_sigmas(10, 0.0)


# --- determinism and solvers ----------------------------------------------------------------------

def test_same_seed_same_output_different_seed_different_output(syncam):
    a, b, c = run(syncam, seed=7), run(syncam, seed=7), run(syncam, seed=8)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-2


def test_noise_is_drawn_on_cpu_from_the_seed():
    n = make_noise(SHAPE, 3)
    assert torch.equal(n, torch.randn(SHAPE, generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("scheduler", ["unipc", "euler"])
def test_both_solvers_run_and_give_finite_output(syncam, scheduler):
    out = run(syncam, scheduler=scheduler, steps=4)
    assert out.shape == SHAPE and torch.isfinite(out).all()
    assert (out - make_noise(SHAPE, 0)).abs().max() > 1e-2  # it moved away from the noise


def test_unipc_and_euler_differ(syncam):
    assert (run(syncam, scheduler="unipc", steps=4) - run(syncam, scheduler="euler", steps=4)).abs().max() > 1e-4


# --- guidance -------------------------------------------------------------------------------------

def test_cfg_one_runs_one_forward_per_step():
    model = tiny_model("syncammaster", seed=1)
    calls = record_calls(model)
    run(model, steps=3, cfg=1.0)
    assert len(calls) == 3 and all(c[0].shape[0] == 1 for c in calls)


def test_batched_cfg_equals_unbatched_cfg():
    model = tiny_model("syncammaster", seed=1)
    calls = record_calls(model)
    batched = run(model, steps=3, cfg=5.0, batch_cfg=True)
    assert len(calls) == 3 and all(c[0].shape[0] == 2 for c in calls)  # cond + uncond in one forward
    calls.clear()
    unbatched = run(model, steps=3, cfg=5.0, batch_cfg=False)
    assert len(calls) == 6 and all(c[0].shape[0] == 1 for c in calls)
    torch.testing.assert_close(batched, unbatched, atol=1e-5, rtol=1e-5)


def test_cfg_changes_the_result(syncam):
    assert (run(syncam, cfg=1.0) - run(syncam, cfg=5.0)).abs().max() > 1e-3


def test_cfg_without_negative_context_is_refused(syncam):
    ctx, _ = texts()
    with pytest.raises(ValueError, match="negative_context"):
        sample_grid(syncam, SHAPE, ctx, None, mode="syncam", camera=camera(), steps=2, cfg=5.0)


class FakeModel:
    """Velocity per batch element = 10 * mean(context) + 100 * mean|source| (a known function of the inputs)."""

    def __init__(self, variant="recammaster"):
        self.variant = variant
        self.device = torch.device("cpu")
        self.config = type("Config", (), {"text_dim": 4, "in_dim": 16})()
        self.calls = []

    def __call__(self, x, timestep, context, mode=None, camera=None, source=None, interrupt=None):
        self.calls.append((x.clone(), context.clone(), None if source is None else source.clone()))
        value = 10 * context.mean(dim=(1, 2))
        if source is not None:
            value = value + 100 * source.abs().mean(dim=(1, 2, 3, 4))
        return value.view(-1, 1, 1, 1, 1, 1).expand_as(x).clone()


@pytest.mark.parametrize("batch_cfg", [True, False])
def test_two_scale_guidance_formula_with_known_velocities(batch_cfg):
    model = FakeModel()
    src = SourceVideo(torch.full((1, 16, 2, 4, 4), 3.0), "recam")
    cond, neg = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0)
    s_t, s_v = 7.5, 1.8
    # Euler, 1 step: sigma 1 -> 0, so the result is noise - v
    out = sample_grid(model, (1, 1, 16, 2, 4, 4), cond, neg, mode="recam", source=src, steps=1, cfg=s_t,
                      video_cfg=s_v, guidance="two_scale", scheduler="euler", batch_cfg=batch_cfg, seed=4)
    v_null, v_video, v_video_text = 20.0, 20.0 + 300.0, 10.0 + 300.0  # (∅,∅), (v,∅), (v,t)
    expected_v = v_null + s_v * (v_video - v_null) + s_t * (v_video_text - v_video)
    assert expected_v == pytest.approx(float(two_scale_guidance(torch.tensor(v_null), torch.tensor(v_video),
                                                                torch.tensor(v_video_text), s_v, s_t)))
    torch.testing.assert_close(out, make_noise((1, 1, 16, 2, 4, 4), 4) - expected_v, atol=1e-4, rtol=0)
    assert len(model.calls) == (1 if batch_cfg else 3)
    if not batch_cfg:  # the null-video branch gets an all-zero source latent
        assert model.calls[0][2].abs().max() == 0 and model.calls[1][2].abs().min() == 3


def test_two_scale_null_video_for_replace_view_is_pure_noise_in_that_view():
    model = FakeModel(variant="wan")
    src = SourceVideo(torch.full((1, 16, 2, 4, 4), 3.0), "replace_view", view=1)
    cond, neg = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0)
    sample_grid(model, SHAPE, cond, neg, mode="hard", source=src, steps=2, guidance="two_scale", batch_cfg=False,
                scheduler="euler", seed=5)
    noise = make_noise(SHAPE, 5)
    x_null, x_video = model.calls[0][0], model.calls[1][0]
    assert torch.equal(x_null[:, 1], noise[:, 1])                     # no information from the source
    torch.testing.assert_close(x_video[:, 1], noise[:, 1])  # step 0: sigma = 1, pure noise
    x_video_step1, sigma1 = model.calls[4][0], float(prepare_scheduler("euler", 2, 5.0)[1][1])
    torch.testing.assert_close(x_video_step1[:, 1], (1 - sigma1) * 3.0 + sigma1 * noise[:, 1])


def test_source_noise_scale_holds_the_given_view_below_the_grid_noise_level():
    """SourceVideo(noise_scale=s): the given view is fed at s·σ (0: the clean source) while the other views are
    denoised as usual; the finished grid still holds the source itself there. Out-of-range scales are refused."""
    for scale in (0.5, 0.0):
        model = FakeModel(variant="wan")
        src = SourceVideo(torch.full((1, 16, 2, 4, 4), 3.0), "replace_view", view=1, noise_scale=scale)
        out = sample_grid(model, SHAPE, torch.ones(1, 3, 4), None, mode="hard", source=src, steps=2, cfg=1.0,
                          scheduler="euler", seed=5)
        noise, sigma1 = make_noise(SHAPE, 5), float(prepare_scheduler("euler", 2, 5.0)[1][1])
        s1 = scale * sigma1
        torch.testing.assert_close(model.calls[0][0][:, 1], (1 - scale) * 3.0 + scale * noise[:, 1])   # σ = 1
        torch.testing.assert_close(model.calls[1][0][:, 1], (1 - s1) * 3.0 + s1 * noise[:, 1])
        torch.testing.assert_close(model.calls[1][0][:, 0], noise[:, 0] + (sigma1 - 1) * 10.0)   # an Euler step
        assert torch.equal(out[:, 1], torch.full_like(out[:, 1], 3.0))
    for bad in (-0.1, 1.5, float("nan"), "half"):
        with pytest.raises(SourceVideoError, match="noise_scale"):
            SourceVideo(torch.zeros(1, 16, 2, 4, 4), "replace_view", noise_scale=bad)


def test_two_scale_without_source_is_refused(syncam):
    with pytest.raises(ValueError, match="two_scale"):
        run(syncam, guidance="two_scale")


# --- denoise, callbacks, interrupt -----------------------------------------------------------------

def test_denoise_below_one_starts_from_the_noised_init_latent():
    model = tiny_model("syncammaster", seed=1)
    calls = record_calls(model)
    init = torch.randn(SHAPE, generator=torch.Generator().manual_seed(9))
    out = run(model, steps=3, cfg=1.0, denoise=0.4, init_latent=init, seed=2)
    _, sigmas = prepare_scheduler("unipc", 3, 5.0, denoise=0.4)
    s0 = float(sigmas[0])
    assert s0 < 0.99
    torch.testing.assert_close(calls[0][0], (1 - s0) * init + s0 * make_noise(SHAPE, 2))
    assert (out - init).abs().mean() < (run(model, steps=3, cfg=1.0, seed=2) - init).abs().mean()
    with pytest.raises(ValueError, match="init_latent"):
        run(model, denoise=0.5)


def test_callback_reports_every_step_with_a_clean_prediction(syncam):
    seen = []
    run(syncam, steps=3, callback=lambda step, total, x0: seen.append((step, total, tuple(x0.shape))))
    assert seen == [(1, 3, SHAPE), (2, 3, SHAPE), (3, 3, SHAPE)]


def test_interrupt_stops_sampling_between_steps():
    model = tiny_model("syncammaster", seed=1)
    calls = record_calls(model)
    state = {"steps": 0}

    def cb(step, total, x0):
        state["steps"] = step

    with pytest.raises(SamplingInterrupted):
        run(model, steps=10, callback=cb, interrupt=lambda: state["steps"] >= 2)
    assert len(calls) == 2 and state["steps"] == 2
    assert not hasattr(model, "interrupt_check")  # a callback argument, never a model attribute


def test_interrupt_is_checked_between_blocks():
    model = tiny_model("syncammaster", seed=1)
    checks = {"n": 0}

    class Cancelled(Exception):
        pass

    def interrupt():
        checks["n"] += 1
        if checks["n"] == 3:  # 1 = before step 0, 2 = before block 0, 3 = before block 1
            raise Cancelled

    with pytest.raises(Cancelled):
        run(model, steps=5, interrupt=interrupt)
    assert checks["n"] == 3


# --- novel-view conditioning ----------------------------------------------------------------------

@pytest.mark.parametrize("how,view,mode", [("replace_view", 1, "syncam"), ("replace_view", 0, "hard"),
                                           ("first_row", 0, "syncam")])
def test_replaced_view_follows_the_noised_source_and_ends_equal_to_it(how, view, mode):
    model = tiny_model("syncammaster", seed=1)
    calls = record_calls(model)
    src = torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(11))
    out = run(model, mode=mode, steps=3, cfg=1.0, seed=3, source=SourceVideo(src, how, view))
    assert torch.equal(out[:, view], src)
    _, sigmas = prepare_scheduler("unipc", 3, 5.0)
    noise = make_noise(SHAPE, 3)
    for i, call in enumerate(calls):
        s = float(sigmas[i])
        torch.testing.assert_close(call[0][:, view], (1 - s) * src + s * noise[:, view])
    other = 1 - view
    free = run(tiny_model("syncammaster", seed=1), mode=mode, steps=3, cfg=1.0, seed=3)
    assert (out[:, other] - free[:, other]).abs().max() > 1e-4  # the source steers the other view


def test_recam_passes_the_source_to_the_model():
    model = tiny_model("recammaster", seed=2)
    calls = record_calls(model)
    src = torch.randn(1, 16, 2, 4, 4)
    out = run(model, mode="recam", steps=2, cfg=5.0, source=SourceVideo(src, "recam"))
    assert out.shape == SHAPE and torch.isfinite(out).all()
    assert all(torch.equal(c[3], torch.cat([src, src])) for c in calls)


def test_source_validation_errors_name_the_fix(syncam):
    good = torch.zeros(1, 16, 2, 4, 4)
    with pytest.raises(SourceVideoError, match="frame count"):
        run(syncam, source=SourceVideo(torch.zeros(1, 16, 3, 4, 4), "replace_view"))
    with pytest.raises(SourceVideoError, match="out of range"):
        run(syncam, source=SourceVideo(good, "replace_view", view=2))
    with pytest.raises(SourceVideoError, match="ReCamMaster"):
        run(syncam, mode="recam", source=SourceVideo(good, "recam"))
    with pytest.raises(SourceVideoError, match="recam"):
        run(tiny_model("recammaster"), mode="recam")
    with pytest.raises(SourceVideoError, match="view 0"):
        SourceVideo(good, "first_row", view=1)
    with pytest.raises(SourceVideoError, match="how"):
        SourceVideo(good, "overlay")


# --- options, limits and non-finite numbers ---------------------------------------------------------

@pytest.mark.parametrize("settings,match", [
    (dict(cfg=float("nan")), "cfg must be a number between 0 and 30, got nan"),
    (dict(cfg=1e6), r"cfg must be a number between 0 and 30, got 1e\+06"), (dict(cfg=-1.0), "cfg must be a number"),
    (dict(video_cfg=float("inf")), "video_cfg must be a number between"),
    (dict(shift=float("nan")), "shift must be a number between"), (dict(shift=0.0), "shift must be a number between 0.01 and 100"),
    (dict(shift=-2.0), "shift must be"), (dict(steps=0), "steps must be a whole number between 1 and 1000"),
    (dict(steps=1001), "steps must be a whole number between"), (dict(steps=2.5), "steps must be a whole number"),
    (dict(denoise=0.0), "denoise must be a number between 0.01 and 1"), (dict(denoise=float("nan")), "denoise must be"),
    (dict(steps=1000, denoise=1e-9), "denoise must be a number between 0.01 and 1"),
    (dict(seed=-1), "seed must be a whole number between"), (dict(scheduler="ddim"), "scheduler 'ddim'"),
    (dict(guidance="both"), "guidance 'both'"), (dict(text_length=0), "text_length"),
])
def test_sampler_settings_are_range_checked_before_anything_runs(settings, match):
    with pytest.raises(InputError, match=match):
        SamplerOptions(**settings)
    model = FakeModel(variant="wan")
    with pytest.raises(InputError, match=match):
        sample_grid(model, SHAPE, torch.ones(1, 3, 4), torch.ones(1, 3, 4), mode="hard", **settings)
    assert model.calls == []


def test_sampler_limits_are_the_shared_ones():
    # one statement of each limit: the sampler checks model/checks.py's, the node's widgets show them
    from camgrid.model import checks

    assert SamplerOptions(label=checks.cli_flag).steps == 50
    with pytest.raises(InputError, match="--video-cfg must be"):
        SamplerOptions(video_cfg=-1.0, label=checks.cli_flag)
    for name, limit in checks.SAMPLING_LIMITS.items():
        with pytest.raises(InputError, match=name):
            SamplerOptions(**{name: limit.high + (1 if limit.integer else 0.5)})
    # the longest schedule denoise < 1 can cut from is bounded by the limits themselves
    assert int(checks.STEPS.high / checks.DENOISE.low) <= 100_000
    options = SamplerOptions(steps=3)
    assert SamplerOptions.build(options) is options   # made once, checked once


def test_options_object_and_keyword_settings_are_the_same_run(syncam):
    ctx, neg = texts()
    opts = SamplerOptions(steps=3, cfg=4.0, seed=2)
    a = sample_grid(syncam, SHAPE, ctx, neg, mode="syncam", camera=camera(), options=opts)
    b = sample_grid(syncam, SHAPE, ctx, neg, mode="syncam", camera=camera(), steps=3, cfg=4.0, seed=2)
    c = sample_grid(syncam, SHAPE, ctx, neg, mode="syncam", camera=camera(), options=opts, cfg=1.0)
    assert torch.equal(a, b) and not torch.equal(a, c)
    with pytest.raises(TypeError, match="stepz"):
        sample_grid(syncam, SHAPE, ctx, neg, mode="syncam", camera=camera(), stepz=3)


@pytest.mark.parametrize("name", ["context", "negative_context", "camera", "noise", "init_latent", "source"])
def test_non_finite_inputs_are_refused_where_they_enter(name):
    model = FakeModel(variant="wan")
    ctx, neg, cam = torch.ones(1, 3, 4), torch.ones(1, 3, 4), torch.zeros(2, 2, 12)
    noise, init, src = make_noise(SHAPE, 0), torch.zeros(SHAPE), torch.zeros(1, 16, 2, 4, 4)
    bad = {"context": ctx, "negative_context": neg, "camera": cam, "noise": noise, "init_latent": init, "source": src}[name]
    bad.view(-1)[1] = float("nan") if name != "camera" else float("inf")
    with pytest.raises(NonFiniteError, match=name.replace("_", ".") if name != "source" else "source video latent"):
        sample_grid(model, noise, ctx, neg, mode="hard", camera=cam, init_latent=init, denoise=0.5, steps=2,
                    source=SourceVideo(src, "replace_view"))
    assert model.calls == []


def test_a_non_finite_prediction_stops_sampling_at_once_naming_the_causes():
    model = tiny_model("syncammaster", seed=1)
    with torch.no_grad():
        model.blocks[1].ffn[2].weight[0, 0] = float("nan")  # one bad weight, as in a damaged file
    calls = record_calls(model)
    seen = []
    with pytest.raises(NonFiniteError, match=r"step 1/3 .*non-finite weight.*float16 overflow.*cfg \(5\)"):
        run(model, steps=3, callback=lambda *a: seen.append(a))
    assert len(calls) == 1 and seen == []


def test_text_length_pads_both_prompts_once_with_zero_tokens():
    model = tiny_model("syncammaster", seed=1)
    calls = record_calls(model)
    ctx, neg = texts()  # 7 and 5 tokens
    out = run(model, steps=2, text_length=12)
    assert all(c[2].shape[1] == 12 for c in calls)
    assert torch.equal(calls[0][2][:1, :7], ctx) and calls[0][2][:1, 7:].abs().max() == 0
    unpadded = run(tiny_model("syncammaster", seed=1), steps=2)  # zero tokens change the result (Wan trained on them)
    ctx12, neg12 = (torch.nn.functional.pad(t, (0, 0, 0, 12 - t.shape[1])) for t in (ctx, neg))
    by_hand = sample_grid(tiny_model("syncammaster", seed=1), SHAPE, ctx12, neg12, mode="syncam", camera=camera(),
                          steps=2, cfg=5.0, shift=5.0, seed=0)
    assert torch.equal(out, by_hand) and not torch.equal(out, unpadded)  # padding by hand: the same grid


# --- the step function: what a step cache or a context-window sampler wraps --------------------------------

def test_guided_velocity_wrapped_by_a_step_cache(syncam):
    """denoise(plan, velocity=wrapper(guided_velocity)) is the extension point: a pass-through wrapper gives
    sample_grid's grid bit for bit; a cache that reuses the previous prediction skips the DiT on that step."""
    ctx, neg = texts()
    opts = SamplerOptions(steps=4, cfg=5.0, seed=3)
    plain = sample_grid(syncam, SHAPE, ctx, neg, mode="syncam", camera=camera(), options=opts)

    def pass_through(inner):
        def step(plan, x, sigma):
            sigmas.append(sigma)
            return inner(plan, x, sigma)
        return step

    sigmas = []
    plan = prepare(syncam, SHAPE, ctx, neg, mode="syncam", camera=camera(), options=opts)
    assert torch.equal(denoise(plan, velocity=pass_through(guided_velocity)), plain)
    assert sigmas == [float(s) for s in plan.sigmas[:-1]]

    def reuse_every_other(inner):
        cache = {}

        def step(plan, x, sigma):
            if cache and len(sigmas) % 2:
                sigmas.append(sigma)
                return cache["v"]
            sigmas.append(sigma)
            cache["v"] = inner(plan, x, sigma)
            return cache["v"]
        return step

    sigmas = []
    calls = record_calls(syncam)
    try:
        cached = denoise(prepare(syncam, SHAPE, ctx, neg, mode="syncam", camera=camera(), options=opts),
                         velocity=reuse_every_other(guided_velocity))
    finally:
        del syncam.forward  # drop the spy: the fixture is shared
    assert len(calls) == 2 and len(sigmas) == 4  # batched CFG: one forward per computed step
    assert cached.shape == plain.shape and torch.isfinite(cached).all() and not torch.equal(cached, plain)


def test_source_auto_is_decided_by_the_mode():
    lat = torch.zeros(1, 16, 2, 4, 4)
    assert SourceVideo(lat, "auto").resolve("recam").how == "recam"
    assert SourceVideo(lat, "auto", view=1).resolve("hard") == SourceVideo(lat, "replace_view", view=1)
    model = FakeModel(variant="wan")
    out = sample_grid(model, SHAPE, torch.ones(1, 3, 4), None, mode="hard", cfg=1.0, steps=1, scheduler="euler",
                      source=SourceVideo(torch.full((1, 16, 2, 4, 4), 3.0), "auto", view=1))
    assert torch.equal(out[:, 1], torch.full((1, 16, 2, 4, 4), 3.0))  # replace_view: the view is the source


@pytest.mark.parametrize("batch_cfg", [True, False])
def test_cfg_max_sigma_guides_only_the_steps_at_or_below_it(batch_cfg):
    """Euler, shift 1, 2 steps: sigma 1 (above 0.8: the text branch alone, one forward) then 0.5 (guided)."""
    model = FakeModel("wan")
    cond, neg = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0)
    shape, cfg = (1, 1, 16, 2, 4, 4), 3.0
    out = sample_grid(model, shape, cond, neg, mode="independent", steps=2, shift=1.0, cfg=cfg, cfg_max_sigma=0.8,
                      scheduler="euler", batch_cfg=batch_cfg, seed=4)
    v_text, v_guided = 10.0, 20.0 + cfg * (10.0 - 20.0)
    torch.testing.assert_close(out, make_noise(shape, 4) - 0.5 * v_text - 0.5 * v_guided, atol=1e-4, rtol=0)
    first, rest = model.calls[0], model.calls[1:]
    assert first[1].shape[0] == 1 and float(first[1].mean()) == 1.0          # the text branch only
    assert len(rest) == (1 if batch_cfg else 2) and sum(c[1].shape[0] for c in rest) == 2
    everywhere = sample_grid(FakeModel("wan"), shape, cond, neg, mode="independent", steps=2, shift=1.0, cfg=cfg,
                             scheduler="euler", seed=4)
    torch.testing.assert_close(everywhere, make_noise(shape, 4) - v_guided, atol=1e-4, rtol=0)


def test_cfg_max_sigma_keeps_two_scales_video_guidance():
    model = FakeModel()
    src = SourceVideo(torch.full((1, 16, 2, 4, 4), 3.0), "recam")
    cond, neg = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0)
    out = sample_grid(model, (1, 1, 16, 2, 4, 4), cond, neg, mode="recam", source=src, steps=1, cfg=7.5,
                      video_cfg=1.8, guidance="two_scale", scheduler="euler", seed=4, cfg_max_sigma=0.5)
    v_null, v_video, v_video_text = 20.0, 320.0, 310.0     # at sigma 1 > 0.5: s_t = 1, s_v = 1.8 stays
    expected_v = float(two_scale_guidance(torch.tensor(v_null), torch.tensor(v_video), torch.tensor(v_video_text),
                                          1.8, 1.0))
    torch.testing.assert_close(out, make_noise((1, 1, 16, 2, 4, 4), 4) - expected_v, atol=1e-4, rtol=0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_cfg_max_sigma_outside_0_1_is_refused(bad):
    with pytest.raises(InputError, match="cfg_max_sigma"):
        SamplerOptions(cfg=3.0, cfg_max_sigma=bad)


@pytest.mark.parametrize("batch_cfg", [True, False])
def test_a_composed_prompt_adds_its_own_guidance_term(batch_cfg):
    """Liu et al.'s conjunction: v = v(∅) + cfg·(v(t) - v(∅)) + compose_cfg·(v(t2) - v(∅)), the composed prompt as
    a third branch (one batched forward, or three); cfg = 1 with a composed prompt still runs the negative."""
    cond, neg, comp = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0), torch.full((1, 3, 4), 0.5)
    shape = (1, 1, 16, 2, 4, 4)
    for cfg, weight in ((3.0, 0.7), (1.0, 2.0)):
        model = FakeModel("wan")
        out = sample_grid(model, shape, cond, neg, mode="independent", steps=1, cfg=cfg, compose_cfg=weight,
                          compose_context=comp, scheduler="euler", batch_cfg=batch_cfg, seed=4)
        v_cond, v_uncond, v_comp = 10.0, 20.0, 5.0
        expected_v = v_uncond + cfg * (v_cond - v_uncond) + weight * (v_comp - v_uncond)
        torch.testing.assert_close(out, make_noise(shape, 4) - expected_v, atol=1e-4, rtol=0)
        assert sum(c[1].shape[0] for c in model.calls) == 3 and len(model.calls) == (1 if batch_cfg else 3)
    plain = sample_grid(FakeModel("wan"), shape, cond, neg, mode="independent", steps=1, cfg=3.0, compose_cfg=0.0,
                        compose_context=comp, scheduler="euler", seed=4)   # weight 0: the prompt is not run
    torch.testing.assert_close(plain, make_noise(shape, 4) - (20.0 + 3.0 * (10.0 - 20.0)), atol=1e-4, rtol=0)


def test_a_composed_prompt_is_refused_without_its_features_or_with_two_scale():
    cond, neg = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0)
    with pytest.raises(InputError, match="compose_context"):
        sample_grid(FakeModel("wan"), (1, 1, 16, 2, 4, 4), cond, neg, mode="independent", steps=1, compose_cfg=0.5)
    with pytest.raises(InputError, match="compose_cfg = 0.5 needs negative_context"):
        sample_grid(FakeModel("wan"), (1, 1, 16, 2, 4, 4), cond, None, mode="independent", steps=1, cfg=1.0,
                    compose_cfg=0.5, compose_context=cond)
    with pytest.raises(InputError, match="compose_cfg"):
        SamplerOptions(cfg=3.0, compose_cfg=0.5, guidance="two_scale")
    for bad in (-0.1, 11.0, float("nan")):
        with pytest.raises(InputError, match="compose_cfg"):
            SamplerOptions(cfg=3.0, compose_cfg=bad)


def test_a_composed_prompt_joins_only_the_steps_that_cfg_max_sigma_guides():
    """Euler, shift 1, 2 steps: sigma 1 runs the text branch alone, sigma 0.5 the three branches."""
    cond, neg, comp = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0), torch.full((1, 3, 4), 0.5)
    shape, cfg, weight = (1, 1, 16, 2, 4, 4), 3.0, 0.7
    model = FakeModel("wan")
    out = sample_grid(model, shape, cond, neg, mode="independent", steps=2, shift=1.0, cfg=cfg, cfg_max_sigma=0.8,
                      compose_cfg=weight, compose_context=comp, scheduler="euler", seed=4)
    v_guided = 20.0 + cfg * (10.0 - 20.0) + weight * (5.0 - 20.0)
    torch.testing.assert_close(out, make_noise(shape, 4) - 0.5 * 10.0 - 0.5 * v_guided, atol=1e-4, rtol=0)
    assert [c[1].shape[0] for c in model.calls] == [1, 3]


@pytest.mark.parametrize("batch_cfg", [True, False])
@pytest.mark.parametrize("window, composed_first", [({"compose_min_sigma": 0.8}, True),
                                                    ({"compose_max_sigma": 0.8}, False)])
def test_the_compose_window_composes_only_its_guided_steps(batch_cfg, window, composed_first):
    """Euler, shift 1, 2 steps (sigma 1, then 0.5): compose_min_sigma 0.8 composes the first, compose_max_sigma 0.8
    the second; the other step runs text guidance's two branches (the batched forward takes the first two
    branches' texts)."""
    cond, neg, comp = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0), torch.full((1, 3, 4), 0.5)
    shape, cfg, weight = (1, 1, 16, 2, 4, 4), 3.0, 0.7
    model = FakeModel("wan")
    out = sample_grid(model, shape, cond, neg, mode="independent", steps=2, shift=1.0, cfg=cfg, compose_cfg=weight,
                      compose_context=comp, scheduler="euler", batch_cfg=batch_cfg, seed=4, **window)
    v_text = 20.0 + cfg * (10.0 - 20.0)
    v_composed = v_text + weight * (5.0 - 20.0)
    first, second = (v_composed, v_text) if composed_first else (v_text, v_composed)
    torch.testing.assert_close(out, make_noise(shape, 4) - 0.5 * first - 0.5 * second, atol=1e-4, rtol=0)
    sizes = [c[1].shape[0] for c in model.calls]
    assert sizes == (([3, 2] if composed_first else [2, 3]) if batch_cfg else [1, 1, 1, 1, 1])


def test_the_compose_settings_are_checked():
    for bad in (-0.1, 1.5):
        with pytest.raises(InputError, match="compose_min_sigma"):
            SamplerOptions(cfg=3.0, compose_cfg=0.5, compose_min_sigma=bad)
        with pytest.raises(InputError, match="compose_max_sigma"):
            SamplerOptions(cfg=3.0, compose_cfg=0.5, compose_max_sigma=bad)
        with pytest.raises(InputError, match="compose_background_sigma"):
            SamplerOptions(cfg=3.0, compose_cfg=0.5, compose_background_sigma=bad)
    with pytest.raises(InputError, match="compose_min_sigma 0.8 is above compose_max_sigma 0.5"):
        SamplerOptions(cfg=3.0, compose_cfg=0.5, compose_min_sigma=0.8, compose_max_sigma=0.5)
    with pytest.raises(InputError, match="compose_background_tau"):
        SamplerOptions(cfg=3.0, compose_cfg=0.5, compose_background_tau=0.5)


def test_background_mask_leaves_out_what_only_the_prompt_draws():
    """The composed prompt differs from the prompt by a texture everywhere and by an object in a 2x2 patch: the
    mask is 0 on the patch and 1 elsewhere, whatever the scale of the difference (the noise level's)."""
    g = torch.Generator().manual_seed(0)
    v_cond = torch.randn(1, 2, 8, 3, 6, 10, generator=g)
    texture = 0.1 * torch.randn(1, 2, 8, 3, 6, 10, generator=g)
    v_comp = v_cond + texture
    v_comp[..., 2:4, 5:7] += 3.0
    expected = torch.ones(1, 2, 1, 3, 6, 10)
    expected[..., 2:4, 5:7] = 0
    for scale in (1.0, 0.01):
        mask = background_mask(scale * v_cond, scale * v_comp, tau=2.0)
        assert torch.equal(mask, expected)
    v_uncond = torch.zeros_like(v_cond)
    out = background_composed_guidance(v_cond, v_uncond, v_comp, 3.0, 0.7, tau=2.0)
    everywhere = composed_guidance(v_cond, v_uncond, v_comp, 3.0, 0.7)
    inside = expected.expand_as(out).bool()
    torch.testing.assert_close(out[inside], everywhere[inside])
    torch.testing.assert_close(out[~inside], text_guidance(v_cond, v_uncond, 3.0)[~inside])


class ObjectFakeModel(FakeModel):
    """FakeModel, and the composed prompt (mean context 0.5) draws something else at the latent pixel (0, 0)."""

    def __call__(self, x, timestep, context, mode=None, camera=None, source=None, interrupt=None):
        out = super().__call__(x, timestep, context, mode, camera, source, interrupt)
        composed = context.mean(dim=(1, 2)) == 0.5
        out[composed, ..., 0, 0] += 50.0
        return out


@pytest.mark.parametrize("batch_cfg", [True, False])
def test_compose_background_sigma_keeps_the_composed_term_off_what_only_the_prompt_draws(batch_cfg):
    """Euler, shift 1, 2 steps: at sigma 1 the composed term acts everywhere, at sigma 0.5 (below
    compose_background_sigma 0.8) everywhere but at the pixel where the composed prompt's prediction differs."""
    cond, neg, comp = torch.ones(1, 3, 4), torch.full((1, 3, 4), 2.0), torch.full((1, 3, 4), 0.5)
    shape, cfg, weight = (1, 1, 16, 2, 4, 4), 3.0, 0.7
    out = sample_grid(ObjectFakeModel("wan"), shape, cond, neg, mode="independent", steps=2, shift=1.0, cfg=cfg,
                      compose_cfg=weight, compose_background_sigma=0.8, compose_context=comp, scheduler="euler",
                      batch_cfg=batch_cfg, seed=4)
    v_text = 20.0 + cfg * (10.0 - 20.0)
    v_floor, v_object = v_text + weight * (5.0 - 20.0), v_text + weight * (55.0 - 20.0)
    expected = make_noise(shape, 4) - 0.5 * v_floor - 0.5 * v_floor
    expected[..., 0, 0] = make_noise(shape, 4)[..., 0, 0] - 0.5 * v_object - 0.5 * v_text
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=0)
