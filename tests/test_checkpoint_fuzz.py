"""Fuzzing the weight loaders (issue 12): truncated, mutated, lying and random checkpoint and sync-weights files.

For every generated file (all under 1 MB) each public loader - load_grid_dit, describe, read_state_dict,
load_sync_weights - either loads it or raises a camgrid error (CamGridError); nothing else escapes. Each call
stays within loose resource bounds (peak resident memory growth 200 MB, CPU time 5 s: loose so that a busy
machine never trips them, tight enough to catch a small file that builds a huge model), and a model that loads
holds only finite weights. Deterministic (derandomized, no example database); about 20 s on one CI core.
"""
import io
import json
import time
from contextlib import contextmanager

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st
from safetensors.torch import save as safetensors_bytes

from camgrid.model import GridDiT, get_config
from camgrid.model.checkpoint import load_grid_dit, describe, read_state_dict, save_grid_dit
from camgrid.model.checks import CamGridError
from camgrid.model.sync import attach_sync_layers, load_sync_weights, sync_state_dict
from grid_helpers import randomize

MAX_PEAK_BYTES = 200 * 2 ** 20
MAX_CPU_SECONDS = 5.0
HEADS = 2


def fuzz(examples):
    return settings(derandomize=True, database=None, deadline=None, max_examples=examples, print_blob=False,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# --- resource bounds -----------------------------------------------------------------------------
def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field))


def _reset_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (peak resident memory) to the current resident size


@contextmanager
def bounded(what):
    """Peak resident memory growth (Linux: VmHWM after resetting it) and process CPU time of the block."""
    _reset_peak()
    base, cpu = _status("VmRSS"), time.process_time()
    yield
    peak, spent = _status("VmHWM") - base, time.process_time() - cpu
    assert peak < MAX_PEAK_BYTES, f"{what}: resident memory grew by {peak / 2 ** 20:.0f} MiB"
    assert spent < MAX_CPU_SECONDS, f"{what}: {spent:.1f} s of CPU time"


# --- the files mutated ---------------------------------------------------------------------------
CONFIG = get_config("tiny", dim=8, ffn_dim=16, num_heads=HEADS, num_layers=2, text_dim=8, freq_dim=8, in_dim=4,
                    out_dim=4, variant="syncammaster")


def _model():
    return randomize(GridDiT(CONFIG), seed=0)


def _torch_bytes(obj, legacy=False):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def _build_corpus(folder):
    model = _model()
    save_grid_dit(model, folder / "dit.safetensors")
    sd = {k: v.contiguous() for k, v in model.base_state_dict().items()}
    sync = {k: v.contiguous() for k, v in sync_state_dict(attach_sync_layers(_model(), rank=3)).items()}
    files = {"dit.safetensors": (folder / "dit.safetensors").read_bytes(),
             "dit.pt": _torch_bytes(sd), "dit_legacy.pt": _torch_bytes(sd, legacy=True),
             "sync.safetensors": safetensors_bytes(sync), "sync.pt": _torch_bytes(sync)}
    assert all(len(b) < 2 ** 20 for b in files.values())
    return files, sd, sync


class Corpus(dict):
    """The files mutated and a folder to write cases into (short repr: hypothesis prints its arguments)."""

    def __repr__(self):
        return "<corpus>"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    files, sd, sync = _build_corpus(folder)
    # warm up: lazy imports and first-use allocations are not the loaders' cost
    for name in files:
        path = folder / f"warm_{name}"
        path.write_bytes(files[name])
        check_loaders(path)
    return Corpus(folder=folder, files=files, sd=sd, sync=sync, count=[0])


def _write(corpus, suffix, data):
    corpus["count"][0] += 1
    path = corpus["folder"] / f"case{corpus['count'][0]}{suffix}"
    path.write_bytes(data)
    return path


def _suffix(name):
    return name[name.index("."):]


# --- the property ------------------------------------------------------------------------------
LOADERS = {
    "read_state_dict": read_state_dict,
    "describe": lambda p: describe(p, num_heads=HEADS),
    "load_grid_dit": lambda p: load_grid_dit(p, num_heads=HEADS),
    "load_sync_weights": lambda p: load_sync_weights(_model(), p),
}


def _note(outcome):
    """Count outcomes for `pytest --hypothesis-show-statistics` (a no-op outside a hypothesis test)."""
    try:
        event(outcome)
    except InvalidArgument:
        pass


def check_loaders(path):
    assert path.stat().st_size < 2 ** 20
    outcomes = {}
    for name, load in LOADERS.items():
        with bounded(f"{name}({path.name})"):
            try:
                result = load(path)
            except CamGridError as exc:
                assert str(exc) and "\n" not in str(exc), f"{name}: a camgrid error should be one line: {exc}"
                outcomes[name] = "refused"
                _note(f"{name}: {str(exc).split(': ', 1)[-1][:40]}")
                continue
        if isinstance(result, torch.nn.Module):  # non-finite weights are refused, never loaded
            assert all(torch.isfinite(p.float()).all() for p in result.parameters() if p.is_floating_point())
        outcomes[name] = "loaded"
        _note(f"{name}: loaded")
    path.unlink()
    return outcomes


def test_unmodified_files_load(corpus):
    for name, data in corpus["files"].items():
        outcome = check_loaders(_write(corpus, _suffix(name), data))
        expected = "load_sync_weights" if name.startswith("sync") else "load_grid_dit"
        assert outcome[expected] == "loaded" and outcome["read_state_dict"] == "loaded", (name, outcome)


FILE_NAMES = st.sampled_from(["dit.safetensors", "dit.pt", "dit_legacy.pt", "sync.safetensors", "sync.pt"])


@fuzz(100)
@given(name=FILE_NAMES, data=st.data())
def test_truncated_files(corpus, name, data):
    blob = corpus["files"][name]
    cut = data.draw(st.integers(0, len(blob) - 1), label="cut")
    outcome = check_loaders(_write(corpus, _suffix(name), blob[:cut]))
    assert set(outcome.values()) == {"refused"}, outcome  # every truncation loses data


@fuzz(150)
@given(name=FILE_NAMES, data=st.data())
def test_mutated_bytes(corpus, name, data):
    blob = bytearray(corpus["files"][name])
    region = data.draw(st.sampled_from([len(blob), min(len(blob), 1024)]), label="region")  # all, or the header
    for _ in range(data.draw(st.integers(1, 12), label="count")):
        blob[data.draw(st.integers(0, region - 1))] = data.draw(st.integers(0, 255))
    check_loaders(_write(corpus, _suffix(name), bytes(blob)))


# --- lying .safetensors headers ------------------------------------------------------------------
def _split_safetensors(blob):
    n = int.from_bytes(blob[:8], "little")
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def _join_safetensors(header, payload, length_delta=0):
    raw = json.dumps(header).encode()
    return ((len(raw) + length_delta) % 2 ** 64).to_bytes(8, "little") + raw + payload


BIG_INTS = st.one_of(st.integers(-3, 70), st.sampled_from([2 ** 31, 2 ** 40, 2 ** 63 - 1, 10 ** 12]))
JSON_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), BIG_INTS, st.floats(allow_nan=False),
                                     st.text(max_size=8)),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                         max_size=4), max_leaves=12)
DTYPE_NAMES = st.sampled_from(["F32", "F16", "BF16", "F64", "F8_E4M3", "F8_E5M2", "I64", "I8", "U8", "BOOL",
                               "C64", "F4", "f16", "", "XYZ"])
NEW_KEYS = st.sampled_from(["blocks.9999.x", "blocks.x.foo", "blocks.2.ffn.0.weight", "img_emb.proj.weight",
                            "blocks.0.sync.gate.proj.weight", "blocks.1", "blocks.", "model.diffusion_model.head.modulation",
                            "blocks.00.ffn.0.weight", "blocks.1.sync.soft.down.weight", "scaled_fp8",
                            "blocks.0.ffn.0.scale_weight"])


LIES = st.one_of(
    st.tuples(st.just("dtype"), DTYPE_NAMES),
    st.tuples(st.just("shape"), st.lists(BIG_INTS, max_size=6)),
    st.tuples(st.just("data_offsets"), st.lists(BIG_INTS, max_size=3)),
    st.tuples(st.just("drop_field"), st.sampled_from(["dtype", "shape", "data_offsets"])),
    st.tuples(st.just("new_key"), NEW_KEYS, st.lists(st.integers(0, 9), max_size=4)),
    st.tuples(st.just("config_field"), st.sampled_from(sorted(json.loads(CONFIG.to_json()))), JSON_VALUES),
    st.tuples(st.just("config"), st.one_of(st.just("{}"), st.just("not json"), JSON_VALUES.map(json.dumps))),
    st.tuples(st.just("metadata"), JSON_VALUES),
)


def tell_lie(header, index, lie):
    """Apply one lie to the header of the index-th tensor (or to the metadata)."""
    kind, *args = lie
    key = sorted(k for k in header if k != "__metadata__")[index % (len(header) - 1)]
    entry = header[key]
    if kind in ("dtype", "shape", "data_offsets"):
        entry[kind] = args[0]
    elif kind == "drop_field":
        entry.pop(args[0], None)
    elif kind == "new_key":
        header[args[0]] = dict(entry, shape=args[1])
    elif kind == "metadata":
        header["__metadata__"] = args[0]
    else:
        meta = header["__metadata__"] if isinstance(header.get("__metadata__"), dict) else {}
        if kind == "config_field":
            config = json.loads(CONFIG.to_json())
            config[args[0]] = args[1]
            meta["camgrid.config"] = json.dumps(config)
        else:
            meta["camgrid.config"] = args[0]
        header["__metadata__"] = meta


@fuzz(250)
@given(name=st.sampled_from(["dit.safetensors", "sync.safetensors"]),
       lies=st.lists(st.tuples(st.integers(0, 200), LIES), min_size=1, max_size=3),
       length_delta=st.sampled_from([0, 0, 0, -1, 1, 10 ** 6, -(10 ** 3)]))
def test_lying_safetensors_headers(corpus, name, lies, length_delta):
    header, payload = _split_safetensors(corpus["files"][name])
    header.setdefault("__metadata__", {})
    for index, lie in lies:
        tell_lie(header, index, lie)
    check_loaders(_write(corpus, ".safetensors", _join_safetensors(header, payload, length_delta)))


# --- random torch files -------------------------------------------------------------------------
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int8, torch.bool,
          torch.complex64, torch.float8_e4m3fn, torch.float8_e5m2]


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 6), max_size=4))
    t = torch.randn(shape)
    if draw(st.booleans()) and t.numel():
        t.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf"), 1e30]))
    t = t.to(draw(st.sampled_from(DTYPES)))
    if draw(st.integers(0, 5)) == 0 and t.numel() == 1:
        t = t.reshape(()).expand(draw(st.integers(2, 10 ** 6)), 64)  # stride 0: few bytes stored, many declared
    return t


VALUES = st.recursive(st.one_of(tensors(), st.none(), st.integers(), st.text(max_size=5), st.floats()),
                      lambda inner: st.dictionaries(st.text(max_size=6), inner, max_size=3) | st.lists(inner, max_size=3),
                      max_leaves=8)
KEYS = st.one_of(st.sampled_from(["patch_embedding.weight", "blocks.0.ffn.0.weight", "head.head.weight",
                                  "state_dict", "model", "blocks.0.sync.gate.proj.weight", "blocks.x.y",
                                  "blocks.7.self_attn.q.weight"]), st.text(max_size=10), st.integers(-2, 2))


@fuzz(150)
@given(data=st.data(), base=st.sampled_from(["none", "dit", "sync"]), legacy=st.booleans())
def test_random_torch_files(corpus, data, base, legacy):
    content = {} if base == "none" else dict(corpus["sd" if base == "dit" else "sync"])
    for _ in range(data.draw(st.integers(0 if base != "none" else 1, 4), label="edits")):
        key = data.draw(st.one_of(KEYS, st.sampled_from(sorted(content, key=str) or ["x"])), label="key")
        if data.draw(st.booleans(), label="delete") and key in content:
            del content[key]
        else:
            content[key] = data.draw(VALUES, label="value")
    wrapped = data.draw(st.sampled_from([content, {"state_dict": content}, [content], 3]), label="wrapping")
    check_loaders(_write(corpus, data.draw(st.sampled_from([".pt", ".ckpt", ".pth"])), _torch_bytes(wrapped, legacy)))


# --- sync-weights files -------------------------------------------------------------------------
@fuzz(120)
@given(data=st.data(), torch_file=st.booleans())
def test_damaged_sync_weights(corpus, data, torch_file):
    sd = dict(corpus["sync"])
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        key = data.draw(st.sampled_from(sorted(sd)), label="key")
        edit = data.draw(st.sampled_from(["delete", "shape", "dtype", "nan", "add", "rank"]), label="edit")
        if edit == "delete" and len(sd) > 1:
            del sd[key]
        elif edit == "shape":
            sd[key] = torch.zeros(data.draw(st.lists(st.integers(0, 9), max_size=3)))
        elif edit == "dtype":
            sd[key] = sd[key].to(data.draw(st.sampled_from(DTYPES[1:8])))
        elif edit == "nan" and sd[key].is_floating_point() and sd[key].numel():
            sd[key] = sd[key].clone().view(-1).index_fill(0, torch.tensor([0]), float("nan")).view(sd[key].shape)
        elif edit == "add":
            sd[data.draw(st.sampled_from(["blocks.2.sync.gate.proj.weight", "blocks.0.sync.extra", "blocks.1.sync",
                                          "blocks.a.sync.gate.proj.weight", "patch_embedding.weight"]))] = torch.zeros(3)
        elif edit == "rank":  # one block with another rank
            block = data.draw(st.integers(0, 1))
            rank = data.draw(st.integers(1, 5))
            for part, shape in (("down.weight", (rank, 16)), ("down.bias", (rank,)), ("up.weight", (16, rank))):
                sd[f"blocks.{block}.sync.soft.{part}"] = torch.zeros(shape)
    sd = {k: v.contiguous() for k, v in sd.items()}
    blob = _torch_bytes(sd) if torch_file else safetensors_bytes(sd)
    check_loaders(_write(corpus, ".pt" if torch_file else ".safetensors", blob))


# --- random bytes -------------------------------------------------------------------------------
PREFIXES = [b"", b"PK\x03\x04", b"\x80\x02", b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19", b"\x40\x00\x00\x00\x00\x00\x00\x00{",
            b"\xff\xff\xff\xff\xff\xff\xff\x7f{", b"<html>", b"\x00" * 8]


@fuzz(100)
@given(prefix=st.sampled_from(PREFIXES), body=st.binary(max_size=3000),
       suffix=st.sampled_from([".safetensors", ".pt", ".ckpt", ".pth", ".bin"]))
def test_random_bytes(corpus, prefix, body, suffix):
    path = _write(corpus, suffix, prefix + body)
    for name in ("read_state_dict", "load_grid_dit"):
        try:
            LOADERS[name](path)
        except CamGridError as exc:
            # random bytes are damaged files, not code: never reported as needing unsafe unpickling
            assert "unsafe unpickling" not in str(exc), exc
    check_loaders(path)


def test_the_memory_bound_is_live():
    with pytest.raises(AssertionError, match="resident memory grew"):
        with bounded("allocation"):
            torch.ones(100 * 2 ** 20)  # 400 MiB, touched
