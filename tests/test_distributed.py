"""Several processes give the grid one process gives (docs/ARCHITECTURE.md §12 Several GPUs).

2 and 4 CPU processes joined by gloo (forked from the test process: no second import of torch) run every
mode on tiny random models, split by each strategy that applies, and compare with the same forward in
one process. Tolerance (fp32): |split - single| <= 1e-5 + 1e-5·|single| per element for one forward,
5e-5 for two sampling steps; the splits reorder sums (attention over gathered keys, other matmul
shapes), which moves the last bits only (measured up to ~1.3e-6). Each rank also records the
shapes its attention calls get and the test checks that it processed only its share.

The workers return plain numbers; the asserts run in the test process (an assert inside one rank would
leave the others waiting in a collective).
"""
from __future__ import annotations

import contextlib
import io
import os
import socket
from argparse import Namespace
from datetime import timedelta

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import importlib.util
import sys
import time
import warnings
from pathlib import Path

import camgrid.model.distributed.sequence as sequence_module
import camgrid.model.layers as layers_module
from camgrid.model.checks import InputError
from camgrid.model.distributed import (ParallelOptions, active, choose_split, cli_processes, parallel,
                                       record_comm, shard_sizes, shard_weights)
from camgrid.model.files import atomic_write, keep_files
from camgrid.model.sampling import sample_grid
from camgrid.model.sync import attach_sync_layers
from grid_helpers import randomize, tiny_model

if "fork" not in mp.get_all_start_methods():
    pytest.skip("the multi-process tests fork workers (Linux, macOS); this platform cannot fork",
                allow_module_level=True)

B, V, C, T, H, W = 1, 3, 16, 5, 4, 4        # 3 views, 5 latent frames: uneven over 2 and 4 ranks
HW = (H // 2) * (W // 2)                     # tokens per latent frame (patch 1x2x2)
HEADS, TEXT = 4, 7                           # the text length differs from every token length
ATOL = RTOL = 1e-5


# ---------------------------------------------------------------------------------------------
# running ranks
# ---------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank, world, port, fn, queue):
    # torchrun's environment, so `parallel()` finds the ranks the way it does under torchrun
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(seconds=90))
    try:
        queue.put((rank, fn(rank, world)))
    finally:
        if dist.is_initialized():   # cli_processes leaves the group itself
            dist.destroy_process_group()


def run_ranks(world: int, fn) -> list:
    """fn(rank, world) in `world` forked processes joined by gloo; each rank's return value, by rank."""
    queue = mp.get_context("fork").SimpleQueue()
    mp.start_processes(_entry, args=(world, _free_port(), fn, queue), nprocs=world, start_method="fork")
    results = dict(queue.get() for _ in range(world))
    return [results[r] for r in range(world)]


@contextlib.contextmanager
def attention_calls():
    """Record (rows, query length, heads) of every self-attention call (keys as long as the queries) and the
    query tokens of every cross-attention call (keys: the text)."""
    calls = {"self": [], "cross": []}
    original = layers_module.attention

    def recording(q, k, v, *args, **kwargs):
        if k.shape[1] == TEXT:
            calls["cross"].append(q.shape[0] * q.shape[1])
        else:
            calls["self"].append(tuple(q.shape[:3]))
        return original(q, k, v, *args, **kwargs)

    layers_module.attention = sequence_module.attention = recording
    try:
        yield calls
    finally:
        layers_module.attention = sequence_module.attention = original


# ---------------------------------------------------------------------------------------------
# the grids
# ---------------------------------------------------------------------------------------------
def _inputs(batch=B):
    g = torch.Generator().manual_seed(0)
    return dict(x=torch.randn(batch, V, C, T, H, W, generator=g), timestep=torch.tensor([500.0, 300.0][:batch]),
                context=torch.randn(batch, TEXT, 32, generator=g), camera=torch.randn(batch, V, T, 12, generator=g),
                source=torch.randn(batch, C, T, H, W, generator=g))


def _models():
    synced = attach_sync_layers(tiny_model("wan", num_heads=HEADS))
    randomize(synced, seed=3)   # non-zero hard gates and soft layers
    return {"wan": tiny_model("wan", num_heads=HEADS), "synced": synced,
            "syncammaster": tiny_model("syncammaster", num_heads=HEADS),
            "recammaster": tiny_model("recammaster", num_heads=HEADS),
            # per-token camera rays (DiTConfig.camera_rays): each rank encodes its own tokens' rays
            "syncam_rays": tiny_model("syncammaster", num_heads=HEADS, camera_rays=True),
            "recam_rays": tiny_model("recammaster", num_heads=HEADS, camera_rays=True),
            # relative poses in the view stream (DiTConfig.relative_cameras): each rank poses its own frames' rows
            "syncam_relative": tiny_model("syncammaster", num_heads=HEADS, relative_cameras=True)}


# (mode, model, inputs it takes, strategy)
CASES = [("independent", "wan", (), "views"), ("independent", "wan", (), "sequence"),
         ("recam", "recammaster", ("camera", "source"), "views"),
         ("recam", "recammaster", ("camera", "source"), "sequence"),
         ("syncam", "syncammaster", ("camera",), "streams"), ("hard", "wan", (), "streams"),
         ("hard", "synced", (), "streams"), ("hard", "syncammaster", ("camera",), "streams"),
         ("soft", "synced", (), "streams"), ("recam", "recam_rays", ("camera", "source"), "sequence"),
         ("syncam", "syncam_rays", ("camera",), "streams"), ("hard", "syncam_rays", ("camera",), "streams"),
         ("syncam", "syncam_relative", ("camera",), "streams"), ("hard", "syncam_relative", ("camera",), "streams")]


def _forward(model, mode, inp, uses):
    return model(inp["x"], inp["timestep"], inp["context"], mode=mode, **{k: inp[k] for k in uses})


def _compare_forwards(rank, world, cases, batch=B, split_batch=False, models=None):
    """Per case: (max |split - single|, within tolerance, split description, attention calls)."""
    models, inp, out = models or _models(), _inputs(batch), []
    with torch.no_grad():
        for mode, name, uses, strategy in cases:
            if strategy == "views" and V < world:
                continue
            single = _forward(models[name], mode, inp, uses)
            with parallel(strategy=strategy, split_batch=split_batch) as ctx, attention_calls() as calls:
                split = _forward(models[name], mode, inp, uses)
            out.append(((mode, name, strategy), (split - single).abs().max().item(),
                        torch.allclose(split, single, rtol=RTOL, atol=ATOL), ctx.last_split.describe(), calls))
    return out


def _expected_self_attention(strategy, mode, rank, world, batch=B):
    """The (rows, query length, heads) each self-attention call of `rank` must have: only its share."""
    views, frames, heads = (shard_sizes(n, world)[rank] for n in (V, T, HEADS))
    tokens = T * HW * (2 if mode == "recam" else 1)
    if strategy == "views":
        return {(batch * views, tokens, HEADS)}
    if strategy == "sequence":   # the whole sequence, this rank's heads
        return {(batch * V, tokens, heads)}
    shares = {(batch * views, T * HW, HEADS), (batch * frames, V * HW, HEADS)}   # time stream, view stream
    return {s for s in shares if s[0] > 0}


def _check_shares(results, world):
    for rank, per_rank in enumerate(results):
        for (mode, name, strategy), diff, close, described, calls in per_rank:
            assert close, f"rank {rank}: {mode}/{name} split by {strategy} differs from one process by {diff:.2e}"
            assert f"{strategy} over {world}" in described
            assert set(calls["self"]) == _expected_self_attention(strategy, mode, rank, world), (rank, mode, strategy)
            if strategy == "sequence":   # every per-token step runs on this rank's tokens only
                tokens = T * HW * (2 if mode == "recam" else 1)
                assert set(calls["cross"]) == {B * V * shard_sizes(tokens, world)[rank]}


# ---------------------------------------------------------------------------------------------
# the choice of split (no processes)
# ---------------------------------------------------------------------------------------------
def test_shard_sizes_are_even_then_uneven():
    assert shard_sizes(6, 2) == [3, 3]
    assert shard_sizes(5, 4) == [2, 1, 1, 1]
    assert shard_sizes(3, 4) == [1, 1, 1, 0]


def test_automatic_split():
    auto = ParallelOptions()
    # CFG branches batched: one branch per rank, nothing to exchange inside the model
    assert choose_split("hard", 2, 4, 12, 2, auto).describe() == "batch over 2 groups; none over 1 rank(s) per group"
    assert choose_split("hard", 2, 4, 12, 4, auto) == choose_split("syncam", 2, 4, 12, 4, auto)
    assert choose_split("hard", 2, 4, 12, 4, auto).inner == "streams"
    assert choose_split("hard", 1, 4, 40, 8, auto).inner == "streams"
    assert choose_split("independent", 1, 4, 12, 2, auto).inner == "views"
    assert choose_split("recam", 1, 3, 12, 2, auto).inner == "sequence"        # 3 views do not split evenly
    assert choose_split("independent", 1, 1, 12, 8, auto).inner == "sequence"  # one long video
    assert choose_split("independent", 1, 3, 1, 2, auto).inner == "views"      # too few heads for sequence
    assert choose_split("independent", 1, 1, 4, 8, auto).inner == "replicate"
    assert choose_split("fused", 1, 4, 12, 2, auto).inner == "replicate"       # no parallel forward yet
    assert choose_split("hard", 2, 4, 12, 2, ParallelOptions(split_batch=False)).inner == "streams"
    assert choose_split("hard", 3, 4, 12, 2, ParallelOptions(split_batch=True)).batch_groups == 2
    assert choose_split("independent", 1, 4, 12, 2, ParallelOptions("sequence")).inner == "sequence"


@pytest.mark.parametrize("options, args, words", [
    (dict(strategy="ring"), None, "not one of"),
    (dict(strategy="streams"), ("independent", 1, 4, 12, 2), "cannot split mode 'independent'"),
    (dict(strategy="views"), ("recam", 1, 1, 12, 2), "at least one view per rank"),
    (dict(strategy="batch"), ("hard", 1, 4, 12, 2), "at least as many batch items"),
])
def test_impossible_splits_are_refused(options, args, words):
    with pytest.raises(InputError, match=words):
        choose_split(*args, ParallelOptions(**options)) if args else ParallelOptions(**options)


def test_one_process_runs_as_before():
    models, inp = _models(), _inputs()
    with torch.no_grad():
        before = _forward(models["synced"], "soft", inp, ())
        with parallel() as ctx:
            assert ctx is None and active() is None
            after = _forward(models["synced"], "soft", inp, ())
    assert torch.equal(before, after)


def test_dropped_files_do_not_appear(tmp_path):
    keep_files(False)
    try:
        atomic_write(tmp_path / "sub" / "x.txt", "rank 1")
    finally:
        keep_files(True)
    assert not (tmp_path / "sub").exists()
    atomic_write(tmp_path / "y.txt", "rank 0")
    assert (tmp_path / "y.txt").read_text() == "rank 0"


# ---------------------------------------------------------------------------------------------
# several processes
# ---------------------------------------------------------------------------------------------
def _two_ranks(rank, world):
    models = _models()
    forwards = _compare_forwards(rank, world, CASES, models=models)
    # sampling: batched CFG (auto: cond on rank 0, uncond on rank 1) and separate branches (streams)
    inp, sampled = _inputs(), []
    kw = dict(mode="syncam", camera=inp["camera"], steps=2, cfg=3.0, seed=1)
    with torch.no_grad():
        for batch_cfg in (True, False):
            single = sample_grid(models["syncammaster"], (1, V, C, T, H, W), inp["context"], -inp["context"],
                                 batch_cfg=batch_cfg, **kw)
            with parallel() as ctx, record_comm() as comm:
                split = sample_grid(models["syncammaster"], (1, V, C, T, H, W), inp["context"], -inp["context"],
                                    batch_cfg=batch_cfg, **kw)
            sampled.append(((split - single).abs().max().item(), ctx.last_split.describe(), comm.calls,
                            split.sum().item()))
    # with autograd recording the forward is not split (collectives carry no gradients), and says so
    with parallel(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trained = _forward(models["wan"], "hard", inp, ())
    whole = trained.requires_grad and any("autograd is recording" in str(w.message) for w in caught)
    return forwards, sampled, whole


def test_two_processes_give_the_grid_of_one():
    results = run_ranks(2, _two_ranks)
    _check_shares([forwards for forwards, _, _ in results], 2)
    assert [whole for *_, whole in results] == [True, True]
    for rank, (_, sampled, _) in enumerate(results):
        (diff_cfg, how_cfg, calls_cfg, sum_cfg), (diff_streams, how_streams, calls_streams, _) = sampled
        assert diff_cfg <= 5e-5 and diff_streams <= 5e-5, (rank, diff_cfg, diff_streams)
        assert how_cfg.startswith("batch over 2 groups") and calls_cfg == 2       # one all-gather per step
        assert "streams over 2" in how_streams and calls_streams > 2 * 2 * 2      # exchanges in every block
        assert sum_cfg == results[0][1][0][3]                                   # every rank has the same grid


def _four_ranks(rank, world):
    models = _models()
    forwards = _compare_forwards(rank, world, CASES, models=models)   # rank 3 owns no view (3 views)
    # batched CFG on 4 ranks: two groups of two, each splitting its branch by streams
    cfg = _compare_forwards(rank, world, [("hard", "synced", (), "auto")], batch=2, split_batch=None, models=models)
    # weights sharded over the 4 ranks (FSDP2), blocks gathered one at a time
    shard_weights(models["synced"])
    shard_weights(models["syncammaster"])
    local = models["synced"].blocks[0].ffn[0].weight.to_local().shape
    sharded = _compare_forwards(rank, world, [c for c in CASES if c[1] in ("synced", "syncammaster")], models=models)
    return forwards, cfg, sharded, tuple(local)


def test_four_processes_uneven_shares_and_sharded_weights():
    results = run_ranks(4, _four_ranks)
    _check_shares([forwards for forwards, *_ in results], 4)
    _check_shares([sharded for *_, sharded, _ in results], 4)
    ffn = tiny_model("wan").blocks[0].ffn[0].weight.shape
    for rank, (_, cfg, _, local) in enumerate(results):
        (_, diff, close, described, calls), = cfg
        assert close, (rank, diff)
        assert described == "batch over 2 groups; streams over 2 rank(s) per group"
        # this rank's group holds one batch item (one CFG branch); its streams split V=3 / T=5 over 2 ranks
        views, frames = shard_sizes(V, 2)[rank % 2], shard_sizes(T, 2)[rank % 2]
        assert set(calls["self"]) == {(views, T * HW, HEADS), (frames, V * HW, HEADS)}
        assert local == (ffn[0] // 4, ffn[1])   # each rank keeps a quarter of every block weight


def _command_line(rank, world):
    """cli_processes, as `python -m camgrid` enters it under torchrun: parallel forwards, rank 0 alone prints
    and keeps files."""
    folder = os.environ["CAMGRID_TEST_OUT"]
    out, inp = io.StringIO(), _inputs()
    args = Namespace(device="cpu")
    with contextlib.redirect_stdout(out):
        with cli_processes(args):
            split_here = active() is not None
            with torch.no_grad():
                grid = sample_grid(_models()["wan"], (1, V, C, T, H, W), inp["context"], mode="hard", steps=2, cfg=1.0)
            print(f"rank {rank} done")
            atomic_write(os.path.join(folder, f"written_by_{rank}.txt"), "x")
    return split_here, out.getvalue(), args.device, grid.numpy()   # numpy: a tensor would go by shared memory


def test_command_line_ranks(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMGRID_TEST_OUT", str(tmp_path))
    with torch.no_grad():
        inp = _inputs()
        single = sample_grid(_models()["wan"], (1, V, C, T, H, W), inp["context"], mode="hard", steps=2, cfg=1.0)
    results = run_ranks(2, _command_line)
    assert [r[0] for r in results] == [True, True]
    assert [r[1] for r in results] == ["rank 0 done\n", ""]
    assert [r[2] for r in results] == ["cpu", "cpu"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["written_by_0.txt"]
    for _, _, _, grid in results:
        torch.testing.assert_close(torch.from_numpy(grid), single, rtol=0, atol=5e-5)


def _bench_rows(rank, world):
    spec = importlib.util.spec_from_file_location(
        "bench_distributed", Path(__file__).resolve().parents[1] / "benchmarks" / "bench_distributed.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = bench
    spec.loader.exec_module(bench)
    args = Namespace(tiny=True, device="cpu", dtype=torch.float32, frames=9, width=64, height=32, steps=1, reps=1,
                     strategy="auto", shard=False, deadline=time.time() + 3600)
    return bench.worker(args)


def test_bench_distributed_worker_runs_on_cpu():
    """benchmarks/bench_distributed.py's per-GPU-count worker, on 2 gloo ranks with its tiny model (timings
    are not checked; the launcher around it is the same code with torch.distributed.run)."""
    rows = run_ranks(2, _bench_rows)
    assert [len(r) for r in rows] == [4, 4]
    by_row = {r["row"]: r for r in rows[0]}
    assert all(r["status"] == "ok" and r["seconds"] > 0 for r in by_row.values()), by_row
    assert "streams over 2" in by_row["14B V=4 forward"]["split"]
    assert 0 < by_row["14B V=4 forward"]["comm_share"] <= 1
    assert by_row["14B V=4 sampling"]["split"].startswith("batch over 2 groups")   # CFG branches, one per rank
