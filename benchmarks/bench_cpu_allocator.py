"""The quick-start demo on the CPU with and without model/host_allocator.py (glibc keeps freed tensors' memory).

    python benchmarks/bench_cpu_allocator.py [--repeats 3] [--grids 8]

Runs `python -m camgrid demo` alternately with CAMGRID_KEEP_FREED_MEMORY=0 (glibc's defaults) and =1 (the
default), `--repeats` times each, and prints each run's wall, user and system seconds, minor page faults and peak
memory, then the medians and their ratios. The outputs are the same either way (the allocator moves no numbers).
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def one_run(keep: bool, grids: int) -> dict:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "CAMGRID_KEEP_FREED_MEMORY": "1" if keep else "0"}
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "camgrid", "demo", "--out", out, "--grids", str(grids)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"the demo failed:\n{proc.stderr.read().decode()[-2000:]}")
    return {"wall": wall, "user": usage.ru_utime, "sys": usage.ru_stime, "faults": usage.ru_minflt,
            "peak_mb": usage.ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--grids", type=int, default=8, help="grids per mode (the demo's default: 8)")
    args = p.parse_args()
    runs = {False: [], True: []}
    print("| run | host allocator | wall s | user s | sys s | minor faults | peak MB |\n|---|---|---:|---:|---:|---:|---:|")
    for i in range(args.repeats):
        for keep in (False, True):          # alternating, so drift in the machine's load hits both
            r = one_run(keep, args.grids)
            runs[keep].append(r)
            print(f"| {i} | {'kept' if keep else 'glibc defaults'} | {r['wall']:.1f} | {r['user']:.1f} | "
                  f"{r['sys']:.1f} | {r['faults']} | {r['peak_mb']:.0f} |", flush=True)
    med = {keep: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for keep, rs in runs.items()}
    print(f"\nmedians of {args.repeats} runs each ({os.cpu_count()} CPUs):\n")
    print("| | glibc defaults | kept | kept / defaults |\n|---|---:|---:|---:|")
    for key, label in (("wall", "wall s"), ("user", "user s"), ("sys", "sys s"), ("faults", "minor faults"),
                       ("peak_mb", "peak MB")):
        a, b = med[False][key], med[True][key]
        print(f"| {label} | {a:.1f} | {b:.1f} | {b / a:.2f} |")


if __name__ == "__main__":
    main()
