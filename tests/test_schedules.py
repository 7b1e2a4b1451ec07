"""Few-step presets of distilled Wan models, custom sigmas and the "lcm" solver (model/schedules.py,
docs/ARCHITECTURE.md §5 Sampling), checked against the published formulas re-implemented here."""
import math

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from camgrid.model import load_grid_dit
from camgrid.model.checks import InputError
from camgrid.model.sampling import SamplerOptions, make_noise, prepare, prepare_schedule, sample_grid
from camgrid.model.schedules import PRESETS, check_sigmas, parse_sigmas, renoise_generator, schedule_length
from camgrid.model.step_cache import SamplingStats
from grid_helpers import tiny_config, tiny_model
from test_cli_errors import _one_line_error, files, generate_args, no_loading  # noqa: F401 (fixtures)

SHAPE = (1, 2, 16, 2, 4, 4)


class LinearModel:
    """Velocity v = a·x + b·timestep/1000 (+ c·mean(context) per batch element): a known function of the inputs."""

    def __init__(self, a=0.3, b=0.5, c=1.0):
        self.a, self.b, self.c = a, b, c
        self.variant = "wan"
        self.device = torch.device("cpu")
        self.config = type("Config", (), {"text_dim": 4, "in_dim": 16})()
        self.calls = []

    def __call__(self, x, timestep, context, mode=None, camera=None, source=None, interrupt=None):
        self.calls.append((x.clone(), timestep.clone()))
        ctx = context.mean(dim=(1, 2)).view(-1, 1, 1, 1, 1, 1)
        return self.a * x + self.b * timestep.view(-1, 1, 1, 1, 1, 1) / 1000 + self.c * ctx


def text(value=1.0):
    return torch.full((1, 3, 4), value)


# --- the presets are their authors' numbers -------------------------------------------------------------------

def lightx2v_sigmas(step_list, shift):
    """LightX2V WanStepDistillScheduler.set_denoising_timesteps, re-implemented (float32 like theirs)."""
    sigmas = torch.linspace(1.0, 0.0, 1001)[:-1]
    sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
    return sigmas[[1000 - t for t in step_list]]


@pytest.mark.parametrize("name, steps", [("lightx2v_4step", [1000, 750, 500, 250]),
                                         ("wrapper_distill_4step", [999, 750, 500, 250])])
@pytest.mark.parametrize("shift", [5.0, 8.0])
def test_table_presets_read_the_shifted_1000_step_table(name, steps, shift):
    prepared = prepare_schedule(SamplerOptions(schedule=name, shift=shift))
    torch.testing.assert_close(prepared.sigmas[:-1], lightx2v_sigmas(steps, shift), atol=2e-6, rtol=0)
    assert prepared.sigmas[-1] == 0 and prepared.solver == PRESETS[name].solver


def test_lightx2v_model_timesteps_are_the_published_ones():
    model = LinearModel()
    sample_grid(model, SHAPE, text(), None, schedule="lightx2v_4step", seed=1)
    seen = [float(t[0]) for _, t in model.calls]
    assert seen == pytest.approx([1000.0, 937.5, 833.3333, 625.0], abs=1e-3)  # σ·1000 at shift 5


def test_rcm_sigmas_are_trigflow_times_converted_and_start_from_scaled_noise():
    times = [math.atan(80.0), 1.5, 1.4, 1.0]
    expected = [math.sin(t) / (math.cos(t) + math.sin(t)) for t in times] + [0.0]
    prepared = prepare_schedule(SamplerOptions(schedule="rcm_4step", shift=3.0))  # shift has no effect here
    torch.testing.assert_close(prepared.sigmas, torch.tensor(expected), atol=1e-6, rtol=0)
    model = LinearModel()
    sample_grid(model, SHAPE, text(), None, schedule="rcm_4step", seed=2)
    torch.testing.assert_close(model.calls[0][0], make_noise(SHAPE, 2) * expected[0])  # TurboDiffusion: σ0·noise


def test_presets_recommend_cfg_one_and_an_explicit_cfg_wins():
    assert SamplerOptions(schedule="lightx2v_4step").cfg == 1.0
    assert SamplerOptions.build(schedule="lightx2v_4step").cfg == 1.0
    assert SamplerOptions(schedule="lightx2v_4step", cfg=2.5).cfg == 2.5
    assert (SamplerOptions().cfg, SamplerOptions().shift) == (5.0, 5.0)  # the default schedule: Wan's values
    # options given: their (resolved) cfg stays unless set again
    assert SamplerOptions.build(SamplerOptions(), schedule="lightx2v_4step").cfg == 5.0


def test_cfg_one_skips_the_negative_branch_entirely():
    model = LinearModel()
    out = sample_grid(model, SHAPE, text(), None, schedule="lightx2v_4step", seed=0)  # negative None is fine
    assert len(model.calls) == 4 and all(x.shape[0] == 1 for x, _ in model.calls) and torch.isfinite(out).all()
    model.calls.clear()
    sample_grid(model, SHAPE, text(), text(2.0), schedule="lightx2v_4step", cfg=3.0, seed=0)
    assert len(model.calls) == 4 and all(x.shape[0] == 2 for x, _ in model.calls)  # cond + uncond batched
    with pytest.raises(InputError, match="negative_context"):
        sample_grid(model, SHAPE, text(), None, schedule="lightx2v_4step", cfg=3.0)


# --- the solvers step as their authors' code does -------------------------------------------------------------

def by_hand(model, sigmas, noise, seed, renoise, x_init=None):
    """The LightX2V step_post loop (renoise=True) or DiffSynth's FlowMatchScheduler Euler loop, by hand."""
    x = noise.clone() if x_init is None else x_init
    g = renoise_generator(seed)
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        v = model(x, torch.full((1,), 1000 * s), text())
        if renoise:
            x0 = x - s * v
            x = (1 - s_next) * x0 + s_next * torch.randn(x.shape, generator=g, dtype=torch.float32)
        else:
            x = x + (s_next - s) * v
    return x


@pytest.mark.parametrize("name, renoise", [("lightx2v_4step", True), ("wrapper_distill_4step", False)])
def test_preset_steps_equal_the_reference_loop(name, renoise):
    sigmas = prepare_schedule(SamplerOptions(schedule=name)).sigmas
    noise = make_noise(SHAPE, 7)
    out = sample_grid(LinearModel(), noise, text(), None, schedule=name, seed=7)
    torch.testing.assert_close(out, by_hand(LinearModel(), sigmas, noise, 7, renoise), atol=1e-5, rtol=1e-5)


def test_lcm_renoising_is_seeded_and_never_repeats_the_initial_noise():
    run = lambda seed: sample_grid(LinearModel(), SHAPE, text(), None, schedule="lightx2v_4step", seed=seed)
    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))
    first_draw = torch.randn(SHAPE, generator=renoise_generator(3))
    assert not torch.allclose(first_draw, make_noise(SHAPE, 3))


def test_denoise_below_one_keeps_the_last_steps_of_a_preset():
    init = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1))
    full = prepare_schedule(SamplerOptions(schedule="lightx2v_4step")).sigmas
    opts = SamplerOptions(schedule="lightx2v_4step", denoise=0.5, seed=5)
    assert schedule_length(opts.schedule, opts.sigmas, opts.steps, opts.denoise) == 2
    plan = prepare(LinearModel(), SHAPE, text(), None, options=opts, init_latent=init)
    torch.testing.assert_close(plan.sigmas, full[-3:])
    torch.testing.assert_close(plan.x_init, (1 - full[2]) * init + full[2] * make_noise(SHAPE, 5))


# --- custom sigmas ------------------------------------------------------------------------------------------

def test_custom_sigmas_are_used_as_given_with_the_chosen_solver():
    given = [1.0, 0.7, 0.4, 0.1, 0.0]
    for scheduler in ("euler", "lcm"):
        prepared = prepare_schedule(SamplerOptions(sigmas=given, scheduler=scheduler, shift=3.0))
        torch.testing.assert_close(prepared.sigmas, torch.tensor(given))  # no shift applied
        assert prepared.solver == scheduler
    noise = make_noise(SHAPE, 2)
    out = sample_grid(LinearModel(), noise, text(), None, sigmas=given, scheduler="euler", cfg=1.0, seed=2)
    torch.testing.assert_close(out, by_hand(LinearModel(), given, noise, 2, False), atol=1e-5, rtol=1e-5)
    unipc = sample_grid(LinearModel(), noise, text(), None, sigmas=torch.tensor(given), cfg=1.0, seed=2)
    assert torch.isfinite(unipc).all() and not torch.allclose(unipc, out)


def test_custom_sigmas_below_one_start_from_scaled_noise_like_comfyui():
    model = LinearModel()
    sample_grid(model, SHAPE, text(), None, sigmas="0.8, 0.3, 0", scheduler="euler", cfg=1.0, seed=4)
    torch.testing.assert_close(model.calls[0][0], 0.8 * make_noise(SHAPE, 4))
    assert [float(t[0]) for _, t in model.calls] == pytest.approx([800.0, 300.0])


BAD_SIGMAS = {
    "not decreasing": ([1.0, 0.5, 0.5, 0.0], "strictly decreasing"),
    "increasing": ([0.0, 0.5, 1.0], "strictly decreasing"),
    "no final zero": ([1.0, 0.5, 0.1], "end in 0"),
    "above one": ([14.6, 1.0, 0.0], "in [0, 1]"),
    "negative": ([1.0, -0.1], "in [0, 1]"),
    "nan": ([1.0, float("nan"), 0.0], "finite"),
    "inf": ([float("inf"), 0.0], "finite"),
    "one value": ([0.0], "2 to"),
    "too many": (list(np.linspace(1, 0, 1002)), "2 to"),
    "text junk": ("1, 0.5, zero", "not a number"),
    "not a list": (3.0, "list of numbers"),
}


@pytest.mark.parametrize("case", list(BAD_SIGMAS))
def test_bad_custom_sigmas_are_refused_with_the_fix(case):
    value, expected = BAD_SIGMAS[case]
    with pytest.raises(InputError, match="sigmas") as info:
        SamplerOptions(sigmas=value)
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_schedule_and_sigmas_combinations():
    assert SamplerOptions(sigmas=(1.0, 0.0)).schedule == "custom"
    assert parse_sigmas("1 0.5,0.25 , 0") == (1.0, 0.5, 0.25, 0.0)
    assert check_sigmas(torch.tensor([1.0, 0.0], dtype=torch.float64)) == (1.0, 0.0)
    with pytest.raises(InputError, match="has its own sigmas"):
        SamplerOptions(schedule="lightx2v_4step", sigmas=(1.0, 0.0))
    with pytest.raises(InputError, match="needs sigmas"):
        SamplerOptions(schedule="custom")
    with pytest.raises(InputError, match="not one of"):
        SamplerOptions(schedule="lightning_8step")
    with pytest.raises(InputError, match="scheduler"):
        SamplerOptions(scheduler="dpm++")


# --- modes, and distilled checkpoints load as a DiT ---------------------------------------------------------

@pytest.mark.parametrize("variant, mode", [("wan", "independent"), ("syncammaster", "syncam"), ("wan", "hard")])
def test_presets_run_in_the_grid_modes(variant, mode):
    model = tiny_model(variant, seed=1)
    cam = torch.randn(2, 2, 12, generator=torch.Generator().manual_seed(0)) * 0.3
    stats = SamplingStats()
    out = sample_grid(model, SHAPE, torch.randn(1, 5, 32), None, mode=mode, camera=cam if mode == "syncam" else None,
                      schedule="lightx2v_4step", stats=stats)
    assert torch.isfinite(out).all() and stats.steps == 4 and "lightx2v_4step" in stats.summary()


# The key names of an original-layout Wan2.1 T2V DiT file (Wan-AI's release, ComfyUI's repack with a prefix):
# what LightX2V's distilled full models (`wan2.1_t2v_14b_lightx2v_4step.safetensors`, loaded by its
# WanDistillModel with the same WanPreWeights / WanTransformerWeights as the base model) and Kijai's distilled
# repacks carry.
WAN21_GLOBAL_KEYS = [
    "patch_embedding.weight", "patch_embedding.bias",
    "text_embedding.0.weight", "text_embedding.0.bias", "text_embedding.2.weight", "text_embedding.2.bias",
    "time_embedding.0.weight", "time_embedding.0.bias", "time_embedding.2.weight", "time_embedding.2.bias",
    "time_projection.1.weight", "time_projection.1.bias",
    "head.head.weight", "head.head.bias", "head.modulation",
]
WAN21_BLOCK_KEYS = (
    ["modulation", "norm3.weight", "norm3.bias", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias"]
    + [f"{attn}.{p}.{w}" for attn in ("self_attn", "cross_attn") for p in "qkvo" for w in ("weight", "bias")]
    + [f"{attn}.{n}.weight" for attn in ("self_attn", "cross_attn") for n in ("norm_q", "norm_k")]
)


@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_a_distilled_full_model_in_wan_layout_loads_as_a_dit(tmp_path, prefix):
    config = tiny_config("wan")
    shapes = {k: v.shape for k, v in tiny_model("wan").state_dict().items()}
    keys = WAN21_GLOBAL_KEYS + [f"blocks.{i}.{k}" for i in range(config.num_layers) for k in WAN21_BLOCK_KEYS]
    assert sorted(keys) == sorted(shapes)  # the released names are exactly GridDiT's
    g = torch.Generator().manual_seed(0)
    sd = {prefix + k: (torch.randn(shapes[k], generator=g) * 0.1).to(torch.bfloat16) for k in keys}
    save_file(sd, str(tmp_path / "distilled.safetensors"))
    model = load_grid_dit(tmp_path / "distilled.safetensors", num_heads=config.num_heads)
    assert model.variant == "wan"
    torch.testing.assert_close(model.state_dict()["blocks.1.ffn.2.weight"].float(),
                               sd[prefix + "blocks.1.ffn.2.weight"].float())
    out = sample_grid(model, SHAPE, torch.randn(1, 5, 32), None, mode="hard", schedule="lightx2v_4step")
    assert torch.isfinite(out).all()


# --- the command line -----------------------------------------------------------------------------------------

FAST_REPRODUCERS = {
    "bad sigmas text": (["--sigmas", "1,0.5,x"], "--sigmas"),
    "sigmas not ending in 0": (["--sigmas", "1,0.5"], "--sigmas"),
    "preset with sigmas": (["--schedule", "lightx2v_4step", "--sigmas", "1,0"], "own sigmas"),
    "cache start after end": (["--cache", "easycache", "--cache-start", "0.9", "--cache-end", "0.5"], "--cache-start"),
    "cache threshold nan": (["--cache", "easycache", "--cache-threshold", "nan"], "--cache-threshold"),
}


@pytest.mark.parametrize("case", list(FAST_REPRODUCERS))
def test_fast_generation_flags_are_checked_before_loading(case, files, tmp_path, capsys, no_loading):  # noqa: F811
    extra, expected = FAST_REPRODUCERS[case]
    err = _one_line_error(capsys, generate_args(files, tmp_path / "out", *extra))
    assert expected in err and err.startswith("camgrid generate: error: "), err
