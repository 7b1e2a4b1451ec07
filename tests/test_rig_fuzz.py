"""Property-based fuzzing of every rig input surface (docs/ARCHITECTURE.md §4 Cameras): random JSON, mutations
of valid rigs in each supported format, random and mutated file bytes, huge numbers, the rig nodes' numbers.

Properties, for every input:
  - the only exceptions out of `load_rig`, `rig_from_dict` and the Load Rig / Rig / Camera Encode nodes are
    camgrid's own (`CamGridError`: CameraRigError, InputError), and their message is one line;
  - an accepted rig is finite and encodes, draws and ray-casts to finite values;
  - no input costs more than ~2 s of CPU or ~200 MB of memory (loose bounds: an interval timer on the
    process's CPU time and the peak resident set, reset through /proc/self/clear_refs on Linux; elsewhere
    tracemalloc bounds the Python-side allocations).
Hypothesis runs derandomized with a fixed example count, so the suite is deterministic and takes seconds.
"""
import contextlib
import json
import math
import signal
import tracemalloc
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from camgrid.model.camera import (CameraRig, from_opencv_c2w, load_rig, orbit_arc, plucker_rays, recammaster_trajectory,
                                  relative_extrinsics, rig_from_dict, rig_to_dict)
from camgrid.model.camera.geometry import UNREAL_WORLD_TO_CV
from camgrid.model.camera.limits import (AMPLITUDE, AZIMUTH_SPAN_DEG, DISTANCE_M, ELEVATION_DEG, HFOV_DEG, RIG_FRAMES,
                                         STEP_M, VIEWS)
from camgrid.model.checks import FRAMES, CamGridError
from camgrid.model.rig_preview import draw_rig
from camgrid.nodes.rig import CamGridCameraEncode, CamGridLoadRig, CamGridRig

CPU_SECONDS = 2.0
MEMORY_BYTES = 200e6
FUZZ = settings(derandomize=True, max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
LINUX_PEAK_RESET = Path("/proc/self/clear_refs").exists()


class OverBudget(Exception):
    pass


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


@contextlib.contextmanager
def budget(what: str):
    """Fail when the block uses more than CPU_SECONDS of CPU time or MEMORY_BYTES of extra memory."""
    def over(signum, frame):
        raise OverBudget(f"{what}: more than {CPU_SECONDS} s of CPU")

    previous = signal.signal(signal.SIGPROF, over)
    if LINUX_PEAK_RESET:
        Path("/proc/self/clear_refs").write_text("5")   # the peak resident set restarts from the current one
        start = _status_bytes("VmRSS")
    else:
        tracemalloc.start()
    signal.setitimer(signal.ITIMER_PROF, CPU_SECONDS)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)
        if LINUX_PEAK_RESET:
            growth = _status_bytes("VmHWM") - start
        else:
            growth = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
    assert growth < MEMORY_BYTES, f"{what}: {growth / 1e6:.0f} MB"


def check_accepted(rig: CameraRig) -> None:
    """An accepted rig is finite and everything downstream of it stays finite."""
    assert isinstance(rig, CameraRig)
    assert torch.isfinite(rig.c2w).all() and torch.isfinite(rig.intrinsics).all()
    assert torch.isfinite(relative_extrinsics(rig, 100.0)).all()
    assert torch.isfinite(plucker_rays(rig, 2, 3, reference="first_pose", translation_scale=100.0)).all()
    draw_rig(rig, size=(128, 64))


def _count(outcome: str) -> None:
    """Tally accepted/refused inputs in hypothesis' statistics (pytest --hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(outcome)


def must_be_clean(call, what: str):
    """call() under the budget: a rig (checked) or a one-line CamGridError; anything else fails the test."""
    with budget(what):
        try:
            result = call()
        except CamGridError as exc:
            assert "\n" not in str(exc), str(exc)
            _count(f"{what}: refused")
            return None
    _count(f"{what}: accepted")
    if isinstance(result, tuple):
        result = result[0]
    check_accepted(result)
    return result


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------

IDENT = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"
KEYS = ["format", "version", "convention", "matrix", "units", "target", "views", "cameras", "matrices", "names",
        "intrinsics", "layout", "name", "c2w", "w2c", "frame0", "frame1", "frame00", "frame30000000",
        "frame100000000000", "frame" + "9" * 40, "cam01"]
WORDS = ["camgrid.rig", "opencv", "opengl", "blender", "OpenGL", "c2w", "w2c", "m", "cm", "mm", "frames", "views",
         "", IDENT, "[nan 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]", "[1e999 0 0 0]", "[1 0 0] [0 1 0]", "1", "API_KEY=x"]
HUGE = [10 ** 400, -10 ** 400, 2 ** 63, 2 ** 64 + 1, 1e308, -1e308, 1e300, 1e39, 1e-320, 5e-324, 0.0, -0.0,
        float("nan"), float("inf"), -float("inf")]

leaves = (st.none() | st.booleans() | st.integers() | st.sampled_from(HUGE)
          | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.sampled_from(WORDS))
json_values = st.recursive(leaves, lambda children: st.lists(children, max_size=5)
                           | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5),
                           max_leaves=30)


def unreal_strings(c2w: torch.Tensor) -> list:
    """OpenCV c2w [F, 4, 4] (metres) -> Unreal row-vector strings (centimetres): the inverse of the importer."""
    c = torch.linalg.inv(UNREAL_WORLD_TO_CV) @ c2w
    c[..., :3, 3] *= 100.0
    c[..., :3, 1] *= -1.0
    unreal = torch.empty_like(c)
    unreal[..., [1, 2, 0, 3]] = c
    rows = unreal.transpose(-1, -2)
    return [" ".join("[" + " ".join(repr(float(x)) for x in row) + "]" for row in m) for m in rows]


@st.composite
def valid_rigs(draw):
    """(format name, JSON-ready dict, the rig it encodes) in each supported format."""
    views, frames = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if draw(st.booleans()):
        rig = orbit_arc(views, draw(st.floats(0, 180)), draw(st.floats(-60, 60)), draw(st.floats(0.5, 20)),
                        num_frames=frames)
    else:
        rig = recammaster_trajectory(draw(st.sampled_from(["pan_left", "arc_right", "zoom_in"])), num_frames=frames)
    conv = draw(st.sampled_from(["opencv", "opengl", "blender"]))
    kind = draw(st.sampled_from(["c2w", "w2c"]))
    fmt = draw(st.sampled_from(["schema", "unreal", "cameras", "matrices", "views_as_lists"]))
    mats = from_opencv_c2w(rig.c2w, conv, kind)
    if fmt == "schema":
        data = rig_to_dict(rig, conv, kind)
    elif fmt == "unreal":
        data = {f"frame{f}": {name: unreal_strings(rig.c2w[v])[f] for v, name in enumerate(rig.names)}
                for f in range(rig.num_frames)}
    elif fmt == "cameras":
        data = {"convention": conv, "matrix": kind, "cameras": {n: mats[v].tolist() for v, n in enumerate(rig.names)}}
    elif fmt == "matrices":
        data = {"convention": conv, "matrix": kind, "matrices": mats.tolist(), "names": list(rig.names)}
    else:
        data = {"convention": conv, "matrix": kind, "views": [mats[v].tolist() for v in range(rig.num_views)]}
    return fmt, data, rig


def mutated(value, data, depth: int = 0):
    """A copy of a JSON value with one random change somewhere inside it."""
    descend = depth < 6 and isinstance(value, (dict, list)) and len(value) > 0 and data.draw(st.booleans())
    if descend and isinstance(value, dict):
        key = data.draw(st.sampled_from(sorted(value, key=str)))
        action = data.draw(st.sampled_from(["into", "into", "delete", "rename"]))
        out = dict(value)
        if action == "delete":
            del out[key]
        elif action == "rename":
            out[data.draw(st.sampled_from(KEYS))] = out.pop(key)
        else:
            out[key] = mutated(value[key], data, depth + 1)
        return out
    if descend:
        i = data.draw(st.integers(0, len(value) - 1))
        action = data.draw(st.sampled_from(["into", "into", "delete", "duplicate"]))
        out = list(value)
        if action == "delete":
            del out[i]
        elif action == "duplicate":
            out.insert(i, out[i])
        else:
            out[i] = mutated(value[i], data, depth + 1)
        return out
    if isinstance(value, (int, float)) and not isinstance(value, bool) and data.draw(st.booleans()):
        factor = data.draw(st.sampled_from(HUGE + [-1, 2, 1e-9, 1e9]))
        try:
            return value * factor
        except OverflowError:
            return factor
    return data.draw(json_values)


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------

@settings(FUZZ, max_examples=60)
@given(valid_rigs())
def test_every_format_round_trips(case):
    fmt, data, rig = case
    loaded = must_be_clean(lambda: load_rig(json.loads(json.dumps(data))), fmt)
    assert loaded is not None, f"a valid {fmt} rig was refused"
    assert loaded.num_views == rig.num_views and loaded.num_frames == rig.num_frames
    if fmt == "unreal":   # the importer sorts cameras by name; the strings round to 17 digits
        order = sorted(range(rig.num_views), key=lambda v: rig.names[v])
        torch.testing.assert_close(loaded.c2w, rig.c2w[order], rtol=0, atol=1e-9)
    else:
        torch.testing.assert_close(loaded.c2w, rig.c2w, rtol=0, atol=1e-9)


@FUZZ
@given(json_values)
def test_random_json_is_refused_cleanly(value):
    must_be_clean(lambda: load_rig(value), "load_rig(random JSON)")
    if isinstance(value, dict):
        must_be_clean(lambda: rig_from_dict(value), "rig_from_dict(random JSON)")


@settings(FUZZ, max_examples=150)
@given(valid_rigs(), st.data())
def test_mutated_valid_rigs_load_or_are_refused_cleanly(case, data):
    fmt, rig_data, _ = case
    value = rig_data
    for _ in range(data.draw(st.integers(1, 3))):
        value = mutated(value, data)
    must_be_clean(lambda: load_rig(value), f"load_rig(mutated {fmt})")


@pytest.fixture(scope="module")
def rig_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("rig_fuzz")


def _file_bytes(draw_data, rig_data) -> bytes:
    """Serialized rig JSON, then truncated, flipped, spliced or re-encoded."""
    raw = json.dumps(rig_data).encode()
    action = draw_data.draw(st.sampled_from(["truncate", "flip", "splice", "encode", "random"]))
    if action == "truncate":
        return raw[:draw_data.draw(st.integers(0, len(raw)))]
    if action == "flip":
        i = draw_data.draw(st.integers(0, len(raw) - 1))
        return raw[:i] + bytes([raw[i] ^ draw_data.draw(st.integers(1, 255))]) + raw[i + 1:]
    if action == "splice":
        i = draw_data.draw(st.integers(0, len(raw)))
        return raw[:i] + draw_data.draw(st.binary(max_size=40)) + raw[i:]
    if action == "encode":
        text = json.dumps(rig_data, ensure_ascii=False)
        return text.encode(draw_data.draw(st.sampled_from(["utf-16", "utf-16-le", "utf-32", "utf-8-sig", "latin-1"])),
                           errors="replace")
    return draw_data.draw(st.binary(max_size=400))


@FUZZ
@given(valid_rigs(), st.data())
def test_rig_files_and_the_load_rig_node(rig_folder, case, data):
    fmt, rig_data, _ = case
    path = rig_folder / "fuzz.json"
    path.write_bytes(_file_bytes(data, rig_data))
    must_be_clean(lambda: load_rig(path), f"load_rig(file from {fmt})")
    cameras = data.draw(st.sampled_from(["", "0", "-1", "cam01", "7", "0, 0", "١", "9" * 30, "x,,y"]))
    frames = data.draw(st.sampled_from([0, 1, 5, 81, -3, 10 ** 9]))
    verdict = CamGridLoadRig.VALIDATE_INPUTS(rig_file="", frames=frames, path=str(path), allow_any_path=True)
    assert verdict is True or isinstance(verdict, str)
    node = CamGridLoadRig()
    must_be_clean(lambda: node.load("", cameras, frames, path=str(path), allow_any_path=True), "Load Rig node")


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10 ** 6, 10 ** 6), st.sampled_from(HUGE))


def node_number(limit, most: int | None = None):
    """Mostly inside the input's limit (so that rigs get built; integers up to `most`), else anything."""
    inside = st.integers(int(limit.low), most or int(limit.high)) if limit.integer else st.floats(limit.low, limit.high)
    return st.tuples(st.integers(0, 5), inside, numbers).map(lambda pick: pick[1] if pick[0] < 5 else pick[2])


@settings(FUZZ, max_examples=150)
@given(st.sampled_from(sorted(CamGridRig.INPUT_TYPES()["required"]["preset"][0])), node_number(VIEWS),
       node_number(RIG_FRAMES, most=129), node_number(AZIMUTH_SPAN_DEG), node_number(ELEVATION_DEG), node_number(DISTANCE_M),
       node_number(STEP_M), node_number(HFOV_DEG), node_number(AMPLITUDE))
def test_rig_node_numbers(preset, views, frames, azimuth_span, elevation, radius, spacing, hfov, amplitude):
    inputs = dict(preset=preset, views=views, frames=frames, azimuth_span=azimuth_span, elevation=elevation,
                  radius=radius, spacing=spacing, hfov=hfov, amplitude=amplitude)
    with budget("CamGridRig.VALIDATE_INPUTS"):
        verdict = CamGridRig.VALIDATE_INPUTS(**inputs)
    assert verdict is True or isinstance(verdict, str)
    rig = must_be_clean(lambda: CamGridRig().build(**inputs), "CamGridRig.build")
    if verdict is True:   # what validation lets through, the node builds
        assert rig is not None, inputs
    if rig is None:
        return
    length, scale = 1 + 4 * (views % 5), radius    # a random translation scale too
    verdict = CamGridCameraEncode.VALIDATE_INPUTS(length=length, translation_scale=scale)
    assert verdict is True or isinstance(verdict, str)
    with budget("CamGridCameraEncode.encode"):
        try:
            embeds, _ = CamGridCameraEncode().encode(rig, length, "syncammaster", scale, "relative")
        except CamGridError:
            assert verdict is not True, "Camera Encode refused what its validation accepted"
            return
    assert verdict is True and torch.isfinite(embeds.relative("syncammaster")).all()


def test_the_largest_rig_the_limits_allow_fits_the_budget():
    """64 views x MAX_FRAMES frames (the largest preset grid) builds, encodes and is refused one frame later."""
    inputs = dict(preset="orbit_arc", views=VIEWS.high, frames=RIG_FRAMES.high, azimuth_span=360.0, elevation=89.0,
                  radius=1000.0, spacing=0.0, hfov=179.0, amplitude=0.0)
    assert CamGridRig.VALIDATE_INPUTS(**inputs) is True
    rig = must_be_clean(lambda: CamGridRig().build(**inputs), "the largest rig")
    assert (rig.num_views, rig.num_frames) == (VIEWS.high, RIG_FRAMES.high)
    with budget("encoding the largest rig"):   # for the longest video a grid may have
        embeds, _ = CamGridCameraEncode().encode(rig, FRAMES.high, "syncammaster", 100.0, "relative")
    assert torch.isfinite(embeds.relative("syncammaster")).all()
    assert "frames" in CamGridRig.VALIDATE_INPUTS(**{**inputs, "frames": RIG_FRAMES.high + 1})
