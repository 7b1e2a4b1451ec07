"""What importing camgrid costs with and without torch._dynamo (model/attention.py never_compiled).

    python benchmarks/bench_import_time.py [--repeats 7]

`@torch.compiler.disable`, which the attention dispatcher had before never_compiled, imports torch._dynamo when
it decorates; never_compiled leaves it unloaded until torch.compile is in use. Each run is a fresh Python process
that imports what `python -m camgrid demo` imports (camgrid.train.demo, which loads camgrid.nodes), once as
camgrid is ("lazy") and once with `import torch._dynamo` first ("eager": what the decorator did), alternating so
that drift in the machine's load hits both. Prints every run's wall seconds, then the medians and their ratio.
"""
import argparse
import statistics
import subprocess
import sys
import time

IMPORTS = {"lazy": "import camgrid.train.demo",
           "eager": "import torch._dynamo; import camgrid.train.demo"}


def one_run(code: str) -> float:
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"the import failed:\n{run.stderr[-2000:]}")
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    one_run(IMPORTS["lazy"])   # warm the file cache and the bytecode, so the first timed run is not an outlier
    times = {name: [] for name in IMPORTS}
    print("| run | " + " | ".join(f"{name} s" for name in IMPORTS) + " |\n|---|" + "---:|" * len(IMPORTS))
    for i in range(args.repeats):
        for name, code in IMPORTS.items():
            times[name].append(one_run(code))
        print(f"| {i + 1} | " + " | ".join(f"{times[name][-1]:.2f}" for name in IMPORTS) + " |")
    lazy, eager = (statistics.median(times[name]) for name in ("lazy", "eager"))
    print(f"| median | {lazy:.2f} | {eager:.2f} |\n\nlazy / eager: {lazy / eager:.2f} "
          f"({eager - lazy:.2f} s saved per start)")


if __name__ == "__main__":
    main()
