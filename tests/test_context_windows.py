"""Context windows over time and views (model/context_windows.py): schedules, fusion weights, the restricted
plans each window call sees, every mode through the sampler, and the node / CLI / API doors."""
import argparse

import pytest
import torch

from camgrid.model.checks import InputError
from camgrid.model.conditioning import SourceVideo
from camgrid.model.context_windows import (ContextWindows, add_arguments, axis_weights, from_arguments, spans,
                                           stagger_offset, window_calls, windowed_velocity)
from camgrid.model.sampling import SamplerOptions, guided_velocity, prepare, sample_grid
from camgrid.model.sync import attach_sync_layers
from grid_helpers import load_benchmark, tiny_model

B, C, H, W = 1, 16, 4, 4


def texts(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(1, 7, 32, generator=g), torch.randn(1, 5, 32, generator=g)


def rand(*shape, seed=0, scale=1.0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * scale


@pytest.fixture(scope="module")
def models():
    soft = attach_sync_layers(tiny_model("syncammaster", seed=4))
    for block in soft.blocks:  # non-trivial soft layers
        torch.nn.init.normal_(block.sync.soft.up.weight, std=0.05, generator=torch.Generator().manual_seed(1))
    return {"independent": tiny_model("wan", seed=2), "syncam": tiny_model("syncammaster", seed=1),
            "recam": tiny_model("recammaster", seed=3), "hard": tiny_model("syncammaster", seed=1), "soft": soft,
            "fused": tiny_model("wan", seed=5)}


@pytest.fixture(scope="module")
def plain_runs(models):
    """mode -> (shape, kwargs, the plain sampler's grid) of the grid `case(mode)`; made once per module."""
    runs = {}

    def get(mode):
        if mode not in runs:
            shape, kw = case(mode)
            runs[mode] = shape, kw, sample_grid(models[mode], shape, *texts(), **kw)
        return runs[mode]
    return get


def case(mode, views=None, frames=5, source=None):
    """(model key, sample_grid kwargs) for a grid of `views` x `frames` latent frames in `mode`."""
    views = views or (2 if mode == "recam" else 3)
    kw = dict(mode=mode, steps=2, cfg=3.0, shift=5.0, seed=7)
    if mode in ("syncam", "recam", "hard", "soft"):
        kw["camera"] = rand(views, frames, 12, seed=1, scale=0.3)
    if mode == "recam":
        kw["source"] = SourceVideo(rand(1, C, frames, H, W, seed=2), "recam")
    elif source is not None:
        kw["source"] = SourceVideo(rand(1, C, frames, H, W, seed=2), source, view=0 if source == "first_row" else 1)
    return (B, views, C, frames, H, W), kw


def spy(model):
    """Record (x, camera, source) of every forward of `model`."""
    calls, forward = [], model.forward

    def record(x, timestep, context, **kw):
        calls.append((x.clone(), kw.get("camera"), kw.get("source")))
        return forward(x, timestep, context, **kw)

    model.forward = record
    return calls, lambda: setattr(model, "forward", forward)


# --- schedules and weights --------------------------------------------------------------------------------

@pytest.mark.parametrize("length,size,overlap", [(41, 21, 5), (81, 21, 5), (38, 21, 6), (22, 21, 5), (17, 5, 1),
                                                 (17, 5, 2), (10, 3, 0), (257, 21, 5), (5, 5, 1), (3, 21, 5)])
def test_time_windows_cover_every_frame_with_equal_windows_and_the_overlap(length, size, overlap):
    wins = spans(length, size, overlap)
    assert wins[0].start == 0 and wins[-1].stop == length
    assert all(len(w) == min(size, length) for w in wins)          # one shape for every call
    assert all(b.start > a.start for a, b in zip(wins, wins[1:]))
    assert all(a.stop - b.start >= overlap for a, b in zip(wins, wins[1:]))
    # no more windows than a stride of (size - overlap) needs
    assert len(wins) == (1 if length <= size else -(-(length - overlap) // (size - overlap)))


@pytest.mark.parametrize("fuse", ["linear", "pyramid", "flat"])
@pytest.mark.parametrize("views,frames,windows", [
    (3, 17, ContextWindows(5, 2)), (4, 41, ContextWindows(21, 5)), (16, 9, ContextWindows(5, 1, view_window=4)),
    (7, 5, ContextWindows(None, view_window=3, view_overlap=0)), (5, 38, ContextWindows(21, 6, view_window=3))])
def test_fusion_weights_sum_to_one_per_view_and_frame(fuse, views, frames, windows):
    import dataclasses

    windows = dataclasses.replace(windows, fuse=fuse)
    total = torch.zeros(views, frames, dtype=torch.float64)
    for call in window_calls(views, frames, windows):
        assert call.weight.shape == (len(call.views), len(call.frames)) and (call.weight > 0).all()
        total[list(call.views), call.frames.start:call.frames.stop] += call.weight.double()
    torch.testing.assert_close(total, torch.ones_like(total), atol=1e-6, rtol=0)


@pytest.mark.parametrize("length,size,overlap", [(20, 5, 1), (81, 21, 5), (17, 5, 2), (22, 21, 5)])
def test_staggered_windows_move_every_step_and_still_cover_every_frame(length, size, overlap):
    windows = ContextWindows(size, overlap, stagger=True)
    offsets = [stagger_offset(windows, step) for step in range(4 * (size - overlap))]
    assert offsets[0] == 0 and set(offsets) == set(range(size - overlap))   # every offset gets its turn
    starts = set()
    for step, offset in enumerate(offsets):
        wins = spans(length, size, overlap, offset)
        assert wins[0].start == 0 and wins[-1].stop == length and all(len(w) == size for w in wins)
        assert all(a.stop - b.start >= overlap for a, b in zip(wins, wins[1:]))
        total = torch.zeros(1, length, dtype=torch.float64)
        for call in window_calls(1, length, windows, step=step):
            total[0, call.frames.start:call.frames.stop] += call.weight[0].double()
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-6, rtol=0)
        starts.add(tuple(w.start for w in wins))
    assert len(starts) > 1 or length - size <= 1   # the borders move (unless there is no room)
    assert stagger_offset(ContextWindows(size, overlap), 3) is None


def test_linear_ramps_of_two_neighbours_sum_to_one_in_their_overlap():
    wins = spans(37, 21, 5)   # windows 0..20 and 16..36: an overlap of exactly 5
    assert [(w.start, w.stop) for w in wins] == [(0, 21), (16, 37)]
    first, second = axis_weights(wins, "linear")
    torch.testing.assert_close(first[16:] + second[:5], torch.ones(5, dtype=torch.float64))
    assert (first[:16] == 1).all() and (second[5:] == 1).all()
    pyramid = axis_weights(wins, "pyramid")[0]
    assert pyramid.argmax() == 10 and pyramid[0] == pyramid[-1] == 1


def test_view_subsets_all_hold_the_anchor_and_the_source_view():
    calls = window_calls(16, 1, ContextWindows(None, view_window=4, view_overlap=1))
    subsets = [c.views for c in calls]
    assert all(s[0] == 0 and len(s) == 4 for s in subsets)             # anchor first, 4 views per call
    assert set().union(*map(set, subsets)) == set(range(16))
    calls = window_calls(9, 1, ContextWindows(None, view_window=4, view_overlap=0, anchor_view=2), keep_views=(5,))
    assert all({2, 5} <= set(c.views) and list(c.views) == sorted(c.views) for c in calls)
    # the anchor's weight is the plain average over the subsets
    anchor = [c.weight[list(c.views).index(2), 0].item() for c in calls]
    assert anchor == pytest.approx([1 / len(calls)] * len(calls))
    with pytest.raises(InputError, match="view_window 2 leaves no room"):
        window_calls(9, 1, ContextWindows(None, view_window=2), keep_views=(5,))
    with pytest.raises(InputError, match="anchor_view 9"):
        window_calls(9, 1, ContextWindows(None, view_window=3, anchor_view=9))


@pytest.mark.parametrize("kw,match", [(dict(window_frames=5, window_overlap=5), "smaller than window_frames"),
                                      (dict(fuse="cosine"), "fuse"), (dict(view_window=1), "view_window"),
                                      (dict(window_frames=0), "window_frames"), (dict(window_overlap=-1), "overlap"),
                                      (dict(anchor_view=64), "anchor_view")])
def test_bad_options_are_one_line_errors(kw, match):
    with pytest.raises(InputError, match=match):
        ContextWindows(**kw)
    with pytest.raises(InputError, match="ContextWindows"):
        SamplerOptions(windows={"window_frames": 21})


# --- the sampler: every mode ------------------------------------------------------------------------------

MODES = ["independent", "syncam", "recam", "hard", "soft", "fused"]


@pytest.mark.parametrize("mode", MODES)
def test_one_window_covering_everything_equals_the_plain_sampler_bitwise(models, plain_runs, mode):
    shape, kw, plain = plain_runs(mode)
    # windows as large as the grid (and larger): the windowed path with one call of weight 1
    for windows in (ContextWindows(5, 1, view_window=shape[1]), ContextWindows(21, 5, view_window=8)):
        assert torch.equal(sample_grid(models[mode], shape, *texts(), windows=windows, **kw), plain)


@pytest.mark.parametrize("source,mode", [("replace_view", "hard"), ("first_row", "syncam")])
def test_one_window_equals_the_plain_sampler_with_a_replaced_view_and_two_scale(models, source, mode):
    shape, kw = case(mode, source=source)
    ctx, neg = texts()
    kw.update(guidance="two_scale", video_cfg=1.5)
    plain = sample_grid(models[mode], shape, ctx, neg, **kw)
    windowed = sample_grid(models[mode], shape, ctx, neg, windows=ContextWindows(5, 2, view_window=3), **kw)
    assert torch.equal(windowed, plain)


@pytest.mark.parametrize("mode", MODES)
def test_overlapping_windows_give_finite_grids_in_every_mode(models, plain_runs, mode):
    shape, kw, plain = plain_runs(mode)
    windows = ContextWindows(3, 1, view_window=2, view_overlap=0)   # 2 time windows x 1-2 view subsets
    calls, restore = spy(models[mode])
    try:
        out = sample_grid(models[mode], shape, *texts(), windows=windows, **kw)
    finally:
        restore()
    assert out.shape == shape and torch.isfinite(out).all()
    assert all(x.shape[3] == 3 and x.shape[1] == 2 for x, _, _ in calls)   # the model only sees windows
    assert (out - plain).abs().max() > 1e-4   # the windows did change the run


@pytest.mark.parametrize("source", ["replace_view", "first_row"])
def test_a_replaced_view_is_windowed_with_the_grid_and_kept_exactly(models, source):
    shape, kw = case("hard", views=4, source=source)
    ctx, neg = texts()
    kw.update(guidance="two_scale", video_cfg=1.5)
    out = sample_grid(models["hard"], shape, ctx, neg, windows=ContextWindows(3, 1, view_window=3), **kw)
    view = kw["source"].view
    assert torch.isfinite(out).all() and torch.equal(out[:, view], kw["source"].latent.float())


def test_fused_velocity_is_the_weighted_mean_of_the_window_calls(models):
    shape, kw = case("syncam")
    ctx, neg = texts()
    kw.pop("steps"), kw.pop("cfg"), kw.pop("shift"), kw.pop("seed")
    plan = prepare(models["syncam"], shape, ctx, neg, options=SamplerOptions(cfg=3.0, seed=1), **kw)
    x, sigma = plan.x_init, 0.7
    windows = ContextWindows(3, 1)   # frames 0-2 and 2-4, overlapping on frame 2 with weights 1/2, 1/2
    fused = windowed_velocity(guided_velocity, windows)(plan, x, sigma)
    with torch.no_grad():
        v0 = guided_velocity(_restricted(plan, range(3)), x[:, :, :, 0:3], sigma)
        v1 = guided_velocity(_restricted(plan, range(2, 5)), x[:, :, :, 2:5], sigma)
    assert torch.equal(fused[:, :, :, :2], v0[:, :, :, :2]) and torch.equal(fused[:, :, :, 3:], v1[:, :, :, 1:])
    torch.testing.assert_close(fused[:, :, :, 2], 0.5 * v0[:, :, :, 2] + 0.5 * v1[:, :, :, 0], atol=1e-6, rtol=0)


def _restricted(plan, frames):
    from camgrid.model.context_windows import restrict_plan
    return restrict_plan(plan, list(range(plan.noise.shape[1])), frames)


def test_recam_windows_the_source_and_the_camera_in_step_with_the_target(models):
    shape, kw = case("recam", views=2, frames=5)
    ctx, neg = texts()
    src, cam = kw["source"].latent, kw["camera"]
    windows = ContextWindows(3, 1)
    calls, restore = spy(models["recam"])
    try:
        sample_grid(models["recam"], shape, ctx, neg, windows=windows, **kw)   # 2 steps x 2 windows, batched CFG
    finally:
        restore()
    seen = [(w.start, w.stop) for w in spans(5, 3, 1)] * 2
    assert len(calls) == len(seen)
    for (x, camera, source), (a, b) in zip(calls, seen):
        assert x.shape[3] == source.shape[2] == camera.shape[2] == b - a
        # the same source frames as the target's, for both guidance branches
        assert torch.equal(source, src[:, :, a:b].expand_as(source))
        # the whole path's embedding sliced: no window is re-referenced to its own first pose
        assert torch.equal(camera, cam[None, :, a:b].expand_as(camera))


def test_staggered_sampling_moves_the_window_calls_between_steps(models, plain_runs):
    shape, kw, plain = plain_runs("hard")
    calls, restore = spy(models["hard"])
    try:
        out = sample_grid(models["hard"], shape, *texts(), windows=ContextWindows(3, 1, stagger=True), **kw)
    finally:
        restore()
    assert torch.isfinite(out).all()
    # step 1: offset 0 -> windows 0-2, 2-4; step 2: offset 1 -> 0-2, 1-3, 3-5 clamped to 2-4
    assert [x.shape[3] for x, _, _ in calls] == [3] * 5
    first = [x for x, _, _ in calls[:2]]
    assert torch.equal(first[0][:, :, :, 2], first[1][:, :, :, 0])   # both saw frame 2 of the same x
    # one window covering everything: staggering changes nothing
    same = sample_grid(models["hard"], shape, *texts(), windows=ContextWindows(5, 1, stagger=True), **kw)
    assert torch.equal(same, plain)


def test_view_windows_give_every_call_the_anchor_and_its_reference_camera(models):
    shape, kw = case("syncam", views=5)
    ctx, neg = texts()
    cam = kw["camera"]
    calls, restore = spy(models["syncam"])
    try:
        sample_grid(models["syncam"], shape, ctx, neg, windows=ContextWindows(None, view_window=3), **kw)
    finally:
        restore()
    subsets = [(0, 1, 2), (0, 2, 3), (0, 3, 4)]
    assert len(calls) == 2 * len(subsets)
    for (x, camera, _), views in zip(calls, subsets * 2):
        assert x.shape[1] == 3 and torch.equal(camera, cam[None, list(views)].expand_as(camera))


# --- doors: options, CLI flags, pipeline ---------------------------------------------------------------------

def test_windows_are_off_by_default_everywhere():
    assert SamplerOptions().windows is None
    args = _cli([])
    assert from_arguments(args) is None
    assert ContextWindows.from_inputs(0, 5, "linear", 0, 1, 0) is None


def _cli(argv):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_make_the_windows_and_name_themselves_in_errors():
    args = _cli(["--window-frames", "21", "--window-overlap", "5", "--window-fuse", "pyramid", "--view-window", "4",
                 "--view-overlap", "1"])
    assert from_arguments(args) == ContextWindows(21, 5, "pyramid", 4, 1, 0)
    assert from_arguments(_cli(["--view-window", "4"])) == ContextWindows(None, 5, "linear", 4, 1, 0)
    assert from_arguments(_cli(["--window-frames", "21", "--window-stagger"])).stagger is True
    with pytest.raises(InputError, match="--window-overlap 21 must be smaller than --window-frames 21"):
        from_arguments(_cli(["--window-frames", "21", "--window-overlap", "21"]))
    with pytest.raises(InputError, match="--view-window"):
        from_arguments(_cli(["--view-window", "1"]))


# --- nodes: Context Windows, Sampler, Empty Latent and Source Video at any 4k+1 length -----------------------

def _nodes():
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "host"))
    from standin_pack import StandInCLIP, StandInVAE
    from camgrid.nodes.context_windows import CamGridContextWindows
    from camgrid.nodes.latent import CamGridEmptyLatent, CamGridSourceVideo
    from camgrid.nodes.rig import CamGridCameraEncode, CamGridRig
    from camgrid.nodes.sampler import CamGridSampler
    from camgrid.nodes.sockets import LoadedModel
    return argparse.Namespace(**locals())


def _loaded(model, variant):
    from camgrid.nodes.sockets import LoadedModel
    return LoadedModel(model, f"tiny {variant}", variant, "tiny", torch.float32, "sdpa")


def test_context_windows_node_checks_its_inputs_and_builds_the_options():
    n = _nodes()
    node = n.CamGridContextWindows
    spec = node.INPUT_TYPES()["required"]
    assert all(entry[1].get("tooltip") for entry in spec.values())
    assert (spec["window_frames"][1]["default"], spec["window_overlap"][1]["default"]) == (21, 5)
    assert node().build(21, 5, "linear", 0, 1, 0) == (ContextWindows(21, 5),)
    assert node().build(0, 5, "linear", 0, 1, 0) == (None,)    # both off: the plain sampler
    assert node().build(21, 5, "linear", 0, 1, 0, stagger=True) == (ContextWindows(21, 5, stagger=True),)
    assert node.VALIDATE_INPUTS(window_frames=21, window_overlap=5) is True
    assert "window_overlap" in node.VALIDATE_INPUTS(window_frames=5, window_overlap=5)
    for name, (kind, options) in spec.items():   # every input is named in VALIDATE_INPUTS: range-checked there
        if kind == "INT":
            for bad in (options["min"] - 1, options["max"] + 1):
                assert name in node.VALIDATE_INPUTS(**{name: bad}), (name, bad)
    with pytest.raises(InputError, match="view_window"):
        node().build(21, 5, "linear", 1, 1, 0)


def test_sampler_node_samples_161_frames_of_4_views_in_windows():
    n = _nodes()
    clip = n.StandInCLIP()
    latent = n.CamGridEmptyLatent().generate(4, 32, 32, 161)[0]
    assert latent["samples"].shape[:3] == (4, 16, 41)   # view-major: 4 views of 41 latent frames
    rig = n.CamGridRig().build("orbit_arc", 4, 161, 60.0, 10.0, 3.0, 1.0, 60.0, 0.0)[0]
    embeds = n.CamGridCameraEncode().encode(rig, 161, "auto", 0.0)[0]
    windows = n.CamGridContextWindows().build(21, 5, "linear", 3, 1, 0)[0]
    model = _loaded(tiny_model("syncammaster", seed=1), "syncammaster")
    out, info = n.CamGridSampler().sample(model, clip.encode_from_tokens_scheduled(clip.tokenize("a fox")),
                                          clip.encode_from_tokens_scheduled(clip.tokenize("")), latent, 1, 1, 2.0,
                                          5.0, "euler", "auto", 1.0, camera=embeds, context_windows=windows)
    assert "context windows: 3 time windows of 21 latent frames (starts 0, 10, 20)" in info
    assert "2 view subsets of up to 3 views, all with view 0" in info
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()


def test_recammaster_re_renders_a_161_frame_source_video_through_the_nodes():
    n = _nodes()
    clip, vae = n.StandInCLIP(), n.StandInVAE()
    video = torch.rand(170, 40, 48, 3, generator=torch.Generator().manual_seed(0))
    assert n.CamGridSourceVideo.VALIDATE_INPUTS(width=32, height=32, length=161, use="auto", view=0) is True
    source, fitted = n.CamGridSourceVideo().encode(video, vae, 32, 32, 161, "auto", 0, 4)
    assert fitted.shape[0] == 161 and source.latent.shape[2] == 41
    rig = n.CamGridRig().build("recammaster_arc_left", 1, 81, 0, 0, 0, 0, 60.0, 0.0)[0]
    embeds = n.CamGridCameraEncode().encode(rig, 161, "auto", 0.0)[0]   # an 81-frame path resampled to 161
    latent = n.CamGridEmptyLatent().generate(1, 32, 32, 161)[0]
    model = _loaded(tiny_model("recammaster", seed=3), "recammaster")
    out, info = n.CamGridSampler().sample(model, clip.encode_from_tokens_scheduled(clip.tokenize("a car")),
                                          clip.encode_from_tokens_scheduled(clip.tokenize("")), latent, 1, 1, 2.0,
                                          5.0, "euler", "auto", 1.0, camera=embeds, source=source,
                                          context_windows=ContextWindows(21, 5))
    assert "auto -> recam" in info and "3 time windows" in info
    assert out["samples"].shape == (1, 16, 41, 4, 4) and torch.isfinite(out["samples"]).all()


def test_lengths_are_any_4k_plus_1_up_to_the_limit():
    n = _nodes()
    for length in (85, 161, 321, 1025):
        assert n.CamGridEmptyLatent.VALIDATE_INPUTS(width=832, height=480, length=length) is True
    assert "4k+1" in n.CamGridEmptyLatent.VALIDATE_INPUTS(width=832, height=480, length=163)
    assert "1025" in n.CamGridEmptyLatent.VALIDATE_INPUTS(width=832, height=480, length=1029)


# --- command line and pipeline --------------------------------------------------------------------------

from test_pipeline import files  # noqa: E402,F401  (the tiny DiT / VAE / umT5 files, made once for this module)


def _generate(files, tmp_path, *argv):
    from camgrid.__main__ import main
    out = tmp_path / "out"
    rc = main(["generate", "--vae", str(files / "vae"), "--text-encoder", str(files / "text_encoder"),
               "--width", "16", "--height", "16", "--steps", "1", "--device", "cpu", "--scheduler", "euler",
               "--out", str(out), *argv])
    return rc, out


def test_cli_generates_in_time_and_view_windows(files, tmp_path, capsys):
    import json
    from camgrid.model.video_io import read_video
    # the tiny diffusers VAE decodes long grids slowly on 2 cores: a short grid, windows to scale
    rc, out = _generate(files, tmp_path, "--dit", str(files / "syncam.safetensors"), "--prompt", "a cat",
                        "--views", "3", "--frames", "13", "--window-frames", "2", "--window-overlap", "1",
                        "--view-window", "2", "--view-overlap", "0")
    assert rc == 0
    assert "context windows: 3 time windows of 2 latent frames (starts 0, 1, 2); 2 view subsets" in \
        capsys.readouterr().out
    frames, _ = read_video(sorted(out.glob("view*.mp4"))[2])
    assert frames.shape == (13, 16, 16, 3)
    settings = json.loads((out / "settings.json").read_text())
    assert (settings["window_frames"], settings["view_window"]) == (2, 2)


def test_cli_re_renders_a_source_video_longer_than_81_frames(files, tmp_path, capsys):
    import numpy as np
    from camgrid.model.video_io import read_video, write_video
    src = tmp_path / "source.mp4"
    write_video(src, np.random.default_rng(0).integers(0, 255, (90, 24, 24, 3), dtype=np.uint8))
    rc, out = _generate(files, tmp_path, "--dit", str(files / "recam.safetensors"), "--prompt", "a car",
                        "--rig", "recammaster_pan_left", "--frames", "85", "--source", str(src), "--window-frames",
                        "21")
    assert rc == 0
    assert "2 time windows of 21 latent frames (starts 0, 1)" in capsys.readouterr().out
    frames, _ = read_video(next(out.glob("view00*.mp4")))
    assert frames.shape == (85, 16, 16, 3)


def test_cli_window_flag_errors_are_one_line_before_loading(files, tmp_path, capsys):
    rc, _ = _generate(files, tmp_path, "--dit", str(files / "syncam.safetensors"), "--prompt", "x",
                      "--window-frames", "4", "--window-overlap", "4")
    assert rc != 0
    err = capsys.readouterr().err
    assert "--window-overlap 4 must be smaller than --window-frames 4" in err and len(err.strip().splitlines()) == 1


# --- the benchmarks keep running (smoke modes; timings are never checked) -------------------------------------

def test_bench_windows_smoke_on_cpu(tmp_path, capsys):
    import json
    assert load_benchmark("bench_windows").main(["--tiny", "--device", "cpu", "--budget", "600", "--json",
                                         str(tmp_path / "rows.json")]) == 0
    rows = json.loads((tmp_path / "rows.json").read_text())["rows"]
    assert [(r["frames"], r["calls"], r["windows"]) for r in rows] == [(9, 1, True), (17, 2, True), (33, 4, True),
                                                                     (17, 1, False), (33, 1, False)]
    assert all(r["seconds"] > 0 for r in rows)
    assert "| 33 | 9 | 3 / 1 | 4 |" in capsys.readouterr().out


def test_bench_seams_smoke_on_the_builtin_model(tmp_path, capsys):
    from camgrid.train import builtin_available
    assert builtin_available(), "the built-in model's assets/ files are part of the repository"
    bench = load_benchmark("bench_seams")
    assert bench.main(["--views", "2", "--frames", "21", "--window", "3", "--overlaps", "1", "--fuses", "linear",
                       "--seeds", "0", "--steps", "1", "--out", str(tmp_path / "seams.md")]) == 0
    table = (tmp_path / "seams.md").read_text()
    for config in ("plain", "cut", "o1 linear", "o1 linear stagger"):
        assert f"| syncam | {config} |" in table
    # the border set of a cut schedule: 6 latent frames tiled by windows of 3 -> the transition 2 -> 3
    assert bench.borders(6, bench.ContextWindows(3, 0)) == {3}
