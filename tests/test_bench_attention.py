"""benchmarks/bench_attention.py keeps running: its --tiny --device cpu smoke mode, whose CPU rows must
run and agree with the fp32 reference (the CUDA-only rows report n/a). Timings are not checked."""
import importlib.util
import sys
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_attention.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_attention", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_bench_attention_smoke_on_cpu(tmp_path, capsys):
    bench = _load_bench()
    results = bench.main(["--tiny", "--device", "cpu", "--reps", "1", "--json", str(tmp_path / "out.json")])
    assert (tmp_path / "out.json").is_file()
    table = capsys.readouterr().out
    assert "fused grid attention" in table and "n/a (CUDA only)" in table
    by_row = {(r["row"], r.get("label")): r for r in results["kernels"]}
    sdpa = [r for (name, _), r in by_row.items() if name == "SDPA (PyTorch's choice)"]
    assert sdpa and all(r["status"] == "ok" and r["rel_err"] < 0.01 for r in sdpa)
    simulated = [r for (name, _), r in by_row.items() if name.startswith("simulated")]
    assert simulated and all(r["status"] == "ok" and r["rel_err"] < 0.1 for r in simulated)
    fused = {r["row"]: r for r in results["fused"]}
    for name in ("fused: exact LSE streams, chunked torch", "fused: FlexAttention 128 blocks, unpadded",
                 "fused: FlexAttention 128 blocks, frame-padded"):
        assert fused[name]["status"] == "ok" and fused[name]["rel_err"] < 0.01, fused[name]
    assert fused["hard: time + view stream, SDPA (cuDNN on GPU)"]["status"] == "ok"
    assert fused["joint: dense attention over all tokens"]["status"] == "ok"


def test_bench_cpu_attention_rows_run_and_agree_with_fp64(tmp_path, capsys):
    """benchmarks/bench_cpu_attention.py (what `auto` picks on a CPU): both backends run the quick start's
    shapes and match fp64 attention to fp32 precision; the sampling section is left out (--modes "")."""
    spec = importlib.util.spec_from_file_location("bench_cpu_attention", BENCH.parent / "bench_cpu_attention.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--reps", "1", "--modes", "", "--json", str(tmp_path / "cpu.json")]) == 0
    assert torch.is_grad_enabled()   # the benchmark left the caller's autograd on (later tests train)
    out = capsys.readouterr().out
    assert "auto picks sdpa" in out and out.count("| ") > 3 * len(bench.DEMO_SHAPES)
    import json
    record = json.loads((tmp_path / "cpu.json").read_text())
    assert len(record["shapes"]) == len(bench.DEMO_SHAPES) and record["sampling"] == []
    for row in record["shapes"]:
        assert row["chunked_max_err"] < 1e-5 and row["sdpa_max_err"] < 1e-5
