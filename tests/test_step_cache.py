"""The training-free step cache (model/step_cache.py, EasyCache; docs/ARCHITECTURE.md §5 Sampling) on tiny random
models in every grid mode, its decision rule by hand, and its node / pipeline / command-line entry points."""
import math
import types

import pytest
import torch

from camgrid.model import attach_sync_layers
from camgrid.model.checks import InputError
from camgrid.model.conditioning import SourceVideo
from camgrid.model.context_windows import ContextWindows
from camgrid.model.sampling import SamplerOptions, denoise, guided_velocity, prepare, sample_grid
from camgrid.model.step_cache import EasyCache, SamplingStats, eligible_range, wrap_step
from camgrid.nodes.sampler_options import CamGridSamplerOptions
from grid_helpers import tiny_model
from test_nodes import load, models_dir, run_sampler  # noqa: F401 (fixture: tiny DiT files for the nodes)
from test_pipeline import files, pipeline  # noqa: F401 (module fixture: tiny DiT / VAE / umT5 files)

SHAPE = (1, 3, 16, 2, 4, 4)  # 3 views


def record_calls(model):
    calls = []
    forward = model.forward

    def spy(x, timestep, context, **kw):
        calls.append((x.shape, float(timestep[0])))
        return forward(x, timestep, context, **kw)

    model.forward = spy
    return calls


def mode_setup(mode):
    """(model, sample_grid keywords) of a tiny random model for `mode`."""
    variant = {"syncam": "syncammaster", "recam": "recammaster"}.get(mode, "wan")
    model = tiny_model(variant, seed=4)
    if mode == "soft":
        attach_sync_layers(model)
        for block in model.blocks:
            torch.nn.init.normal_(block.sync.soft.up.weight, std=0.05)
    kw = dict(mode=mode)
    if mode in ("syncam", "recam"):
        kw["camera"] = torch.randn(3, 2, 12, generator=torch.Generator().manual_seed(1)) * 0.3
    if mode == "recam":
        kw["source"] = SourceVideo(torch.randn(1, 16, 2, 4, 4, generator=torch.Generator().manual_seed(2)), "recam")
    return model, kw


def texts():
    g = torch.Generator().manual_seed(0)
    return torch.randn(1, 6, 32, generator=g), torch.randn(1, 4, 32, generator=g)


def run(model, kw, stats=None, **settings):
    ctx, neg = texts()
    args = dict(steps=10, cfg=4.0, seed=3, **kw)
    args.update(settings)
    return sample_grid(model, SHAPE, ctx, neg, stats=stats, **args)


MODES = ["independent", "syncam", "recam", "hard", "soft"]


@pytest.mark.parametrize("mode", MODES)
def test_threshold_zero_is_bitwise_the_uncached_sampler(mode):
    model, kw = mode_setup(mode)
    stats = SamplingStats()
    cached = run(model, kw, stats, cache="easycache", cache_threshold=0.0, cache_start=0.0)
    assert torch.equal(cached, run(model, kw)) and stats.ran == [True] * 10


@pytest.mark.parametrize("mode", MODES)
def test_a_large_threshold_skips_whole_grid_steps_inside_the_range_only(mode):
    model, kw = mode_setup(mode)
    calls = record_calls(model)
    stats = SamplingStats()
    out = run(model, kw, stats, cache="easycache", cache_threshold=10.0, cache_start=0.25, cache_end=0.8)
    assert torch.isfinite(out).all()
    # one decision per step, a plain bool, for the whole grid: every forward carries every view (and both
    # guidance branches, batched); a reused step calls the model for none of them
    assert len(stats.ran) == 10 and all(type(r) is bool for r in stats.ran)
    assert len(calls) == stats.model_steps and all(shape[0] == 2 and shape[1] == 3 for shape, _ in calls)
    first, stop = eligible_range(10, 0.25, 0.8)
    assert (first, stop) == (3, 8) and stats.skipped and set(stats.skipped) <= set(range(first, stop))
    assert stats.ran[-1] and all(stats.ran[:first])
    assert "the DiT ran" in stats.summary() and f"{stats.model_steps} of 10" in stats.summary()
    assert not torch.equal(out, run(model, kw))


@pytest.mark.parametrize("threshold, start, end",
                         [(0.05, 0.0, 1.0), (0.3, 0.1, 0.9), (2.0, 0.5, 0.6), (10.0, 0.0, 0.05)])
def test_skipped_steps_never_leave_the_range(threshold, start, end):
    model, kw = mode_setup("hard")
    stats = SamplingStats()
    run(model, kw, stats, steps=20, cache="easycache", cache_threshold=threshold, cache_start=start, cache_end=end)
    first, stop = eligible_range(20, start, end)
    assert all(first <= i < stop for i in stats.skipped) and stats.ran[-1]


def test_unbatched_cfg_branches_are_skipped_together():
    model, kw = mode_setup("hard")
    calls = record_calls(model)
    stats = SamplingStats()
    run(model, kw, stats, batch_cfg=False, cache="easycache", cache_threshold=10.0)
    assert stats.skipped and len(calls) == 2 * stats.model_steps  # cond and uncond: both or neither


def test_few_step_schedules_rarely_skip():
    """4 steps: the first two run (the transformation rate needs two), the last always runs."""
    model, kw = mode_setup("hard")
    for threshold in (0.1, 10.0):
        stats = SamplingStats()
        out = run(model, kw, stats, schedule="lightx2v_4step", cfg=None, cache="easycache", cache_threshold=threshold,
                  cache_start=0.0)
        assert torch.isfinite(out).all() and stats.steps == 4 and stats.ran[:2] == [True, True] and stats.ran[3]


# --- the decision rule, by hand (EasyCache4Wan2.1's easycache_forward) --------------------------------------

def test_easycache_decision_and_reuse_follow_the_published_rule():
    sigmas = torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2, 0.0])
    plan = types.SimpleNamespace(sigmas=sigmas)
    xs = [torch.full((2, 3), v) for v in (1.0, 2.0, 2.5, 2.75, 3.5)]
    vs = [torch.full((2, 3), v) for v in (10.0, 13.0, 0.0, 0.0, 20.0)]  # outputs of the steps that run
    ran = []

    def inner(_plan, x, sigma):
        i = int(round((1.0 - sigma) / 0.2))
        ran.append(i)
        return vs[i]

    stats = SamplingStats()
    cache = EasyCache(inner, threshold=0.2, start=0.0, end=1.0, stats=stats)
    outs = [cache(plan, xs[i], float(sigmas[i])) for i in range(5)]
    # steps 0, 1 run (no rate yet); k = |13-10| / |2-1| = 3
    # step 2: 3 * |2.5-2| / |13| = 0.115 < 0.2 -> reuse: v = x + (v1 - x1) = 2.5 + 11
    # step 3: 0.115 + 3 * 0.25 / 13 = 0.173 < 0.2 -> reuse; step 4 is the last: runs
    assert ran == [0, 1, 4] and stats.ran == [True, True, False, False, True]
    assert torch.equal(outs[2], torch.full((2, 3), 13.5)) and torch.equal(outs[3], torch.full((2, 3), 13.75))
    stats2 = SamplingStats()
    strict = EasyCache(inner, threshold=0.15, start=0.0, end=1.0, stats=stats2)
    ran.clear()
    for i in range(5):
        strict(plan, xs[i], float(sigmas[i]))
    assert stats2.ran == [True, True, False, True, True]  # 0.115 < 0.15, then 0.173 >= 0.15 runs and resets


def test_eligible_range_is_easycache_default_at_50_steps():
    assert eligible_range(50, 0.2, 1.0) == (10, 49)  # EasyCache: ret_steps 10, the last step always runs
    assert eligible_range(4, 0.0, 1.0) == (0, 3)
    assert eligible_range(10, 0.9, 1.0) == (9, 9)  # nothing left after keeping the last step


def test_the_cache_must_be_the_outermost_wrapper_and_composes_with_one_inside():
    model, kw = mode_setup("hard")
    ctx, neg = texts()
    opts = SamplerOptions(steps=8, cfg=4.0, seed=3, cache="easycache", cache_threshold=10.0, cache_start=0.0)
    seen = []

    def windows(inner):  # stands in for a context-window wrapper: splits a step's work, here over views
        def step(plan, x, sigma):
            seen.append(sigma)
            return torch.cat([inner(plan, x[:, :2], sigma)[:, :2], inner(plan, x, sigma)[:, 2:]], dim=1)
        return step

    plan = prepare(model, SHAPE, ctx, neg, options=opts, **kw)
    stats = SamplingStats()
    out = denoise(plan, velocity=wrap_step(windows(guided_velocity), plan, stats))
    assert torch.isfinite(out).all() and len(seen) == stats.model_steps < 8  # the inner wrapper only on computed steps

    inside_out = wrap_step(guided_velocity, prepare(model, SHAPE, ctx, neg, options=opts, **kw))

    def per_window(plan, x, sigma):  # the wrong way round: the cache called once per window of one step
        return torch.cat([inside_out(plan, x[:, :2], sigma), inside_out(plan, x[:, 2:], sigma)], dim=1)

    with pytest.raises(RuntimeError, match="outermost"):
        denoise(prepare(model, SHAPE, ctx, neg, options=opts, **kw), velocity=per_window)


@pytest.mark.parametrize("settings, match", [(dict(cache="teacache"), "cache"),
                                             (dict(cache_threshold=-0.1), "cache_threshold"),
                                             (dict(cache_threshold=math.nan), "cache_threshold"),
                                             (dict(cache_start=0.5, cache_end=0.5), "cache_start"),
                                             (dict(cache_end=1.5), "cache_end")])
def test_cache_settings_are_checked_when_made(settings, match):
    with pytest.raises(InputError, match=match):
        SamplerOptions(**settings)


# --- node, pipeline, command line ---------------------------------------------------------------------------

def test_options_node_feeds_the_sampler(monkeypatch, models_dir):  # noqa: F811
    from camgrid.nodes import host
    from camgrid.nodes.sampler import CamGridSampler

    model, _ = load("wan")
    totals = []
    real = host.ProgressReporter

    class Spy(real):
        def __init__(self, total, *a, **k):
            totals.append(total)
            super().__init__(total, *a, **k)

    monkeypatch.setattr(host, "ProgressReporter", Spy)
    options = CamGridSamplerOptions().build("lightx2v_4step", "", "easycache", 0.1, 0.0, 1.0)[0]
    _, info = run_sampler(model, camera=False, steps=30, cfg=1.0, options=options)
    assert totals == [4] and "schedule lightx2v_4step" in info and "of 4 steps" in info
    assert "steps 30 not used" in info and "scheduler euler not used" in info
    custom = CamGridSamplerOptions().build("custom", "1, 0.5, 0", "none", 0.1, 0.2, 1.0)[0]
    assert custom["sigmas"] == (1.0, 0.5, 0.0)
    _, info = run_sampler(model, camera=False, steps=30, cfg=2.0, options=custom)
    assert "ran 2 of 2 steps" in info and "custom sigmas" in info
    from_socket = CamGridSamplerOptions().build("custom", "junk", "none", 0.1, 0.2, 1.0,
                                                sigmas_in=torch.tensor([0.9, 0.2, 0.0]))[0]
    assert from_socket["sigmas"] == pytest.approx((0.9, 0.2, 0.0))
    with pytest.raises(InputError, match="sigmas"):
        CamGridSamplerOptions().build("custom", "1, 0.5", "none", 0.1, 0.2, 1.0)
    interval = CamGridSamplerOptions().build("default", "", "none", 0.1, 0.2, 1.0, cfg_max_sigma=0.8)[0]
    assert interval["cfg_max_sigma"] == 0.8
    calls = record_calls(model.model)
    run_sampler(model, camera=False, steps=4, cfg=2.0, options=interval)
    # shift 5: sigmas 1, 0.94, 0.83 run the text branch alone, 0.63 both branches in one forward
    assert [(shape[0], round(t / 1000, 2)) for shape, t in calls] == [(1, 1.0), (1, 0.94), (1, 0.83), (2, 0.62)]
    with pytest.raises(InputError, match="cfg_max_sigma"):
        CamGridSamplerOptions().build("default", "", "none", 0.1, 0.2, 1.0, cfg_max_sigma=1.2)
    assert "cache_start" in CamGridSamplerOptions.VALIDATE_INPUTS(cache_start=0.9, cache_end=0.1)
    assert "cache_end" in CamGridSamplerOptions.VALIDATE_INPUTS(cache_end=1.5)
    assert CamGridSamplerOptions.VALIDATE_INPUTS(schedule="rcm_4step", cache="easycache") is True
    assert "options" in CamGridSampler.INPUT_TYPES()["optional"]


def test_pipeline_generate_and_cli_flags(files, tmp_path):  # noqa: F811
    pipe, _ = pipeline(files)
    frames = pipe.generate("a cat walks on the beach", views=2, width=32, height=32, frames=5, steps=8, seed=1,
                           cache="easycache", cache_threshold=10.0, cache_start=0.0)
    assert torch.isfinite(frames).all() and pipe.last_stats.skipped
    pipe.generate("a cat", views=2, width=32, height=32, frames=5, schedule="lightx2v_4step", seed=1)
    assert pipe.last_stats.steps == 4 and pipe.last_stats.model_steps == 4

    from camgrid.__main__ import main
    out = tmp_path / "out"
    argv = ["generate", "--dit", str(files / "syncam.safetensors"), "--vae", str(files / "vae"), "--text-encoder",
            str(files / "text_encoder"), "--tokenizer", str(files / "tokenizer"), "--prompt", "a cat", "--views", "2",
            "--width", "32", "--height", "32", "--frames", "5", "--device", "cpu", "--out", str(out),
            "--sigmas", "1,0.6,0.3,0", "--scheduler", "euler", "--cfg", "1", "--cache", "easycache",
            "--cache-threshold", "0.1", "--cache-start", "0.1", "--cache-end", "0.9"]
    assert main(argv) == 0 and (out / "grid.mp4").is_file()


def test_the_cache_decides_once_per_step_for_all_context_windows():
    """Windows split one step into several model calls; the cache sits outside them (model/sampling.py's
    `sample_grid`), so a skipped step runs none of the windows and a run step runs all of them."""
    model, kw = mode_setup("hard")
    ctx, neg = texts()
    shape = (1, 3, 16, 5, 4, 4)   # 5 latent frames: windows of 3 overlapping by 1 -> 2 windows per step
    windows = ContextWindows(window_frames=3, window_overlap=1)
    base = dict(steps=10, cfg=4.0, seed=3, windows=windows, **kw)
    windowed = sample_grid(model, shape, ctx, neg, **base)
    stats = SamplingStats()
    same = sample_grid(model, shape, ctx, neg, stats=stats, cache="easycache", cache_threshold=0.0, cache_start=0.0,
                       **base)
    assert torch.equal(windowed, same) and stats.model_steps == 10
    calls = record_calls(model)
    stats = SamplingStats()
    out = sample_grid(model, shape, ctx, neg, stats=stats, cache="easycache", cache_threshold=10.0, **base)
    assert torch.isfinite(out).all() and stats.skipped
    assert len(calls) == 2 * stats.model_steps and all(s[3] == 3 for s, _ in calls)   # every window, 3 frames
