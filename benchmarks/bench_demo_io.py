"""The quick-start demo's decode and video writing on the CPU, each way it can run.

    python benchmarks/bench_demo_io.py [--repeats 5]

Decode: the built-in autoencoder decoding one mode's 8 grids (4 views, 5 latent frames each: what the demo decodes
six times), its convolutions in the default layout and in channels-last (TinyVideoAE.use_channels_last, what
load_builtin sets on a CPU). Videos: the demo's 35 clips (7 folders x 5 clips, 17 frames of 320x192 after its 4x
enlargement) written one after another and VIDEO_WRITERS at a time (train/demo.py _write_videos). Each pair runs
alternately, so drift in the machine's load hits both; the table gives the medians and their ratio. The clips are
the model's own decoded frames, not noise (noise costs x264 more than pictures do).
"""
import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model import host_allocator   # noqa: E402
from camgrid.train import demo   # noqa: E402
from camgrid.train.builtin import load_builtin   # noqa: E402


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    host_allocator.keep_freed_memory()   # as `python -m camgrid demo` runs
    torch.manual_seed(0)
    model = load_builtin(student=True)   # on the CPU: channels-last already
    default = load_builtin(student=True)
    default.ae.to(memory_format=torch.contiguous_format).channels_last = False
    latents = torch.randn(demo.DEMO_GRIDS, 4, *model.latent_shape(4)[2:])
    with torch.no_grad():
        frames = model.decode(latents)
        drift = (default.decode(latents) - frames).abs().max().item()
    folders = 7   # ground truth, view 0 given, four modes, two passes
    rows = {"decode, contiguous": [], "decode, channels-last": [], "35 clips, one at a time": [],
            f"35 clips, {demo.VIDEO_WRITERS} at a time": []}
    with tempfile.TemporaryDirectory() as out, torch.no_grad():
        for r in range(args.repeats + 1):   # the first round warms up and is not counted
            times = [timed(lambda: default.decode(latents)), timed(lambda: model.decode(latents))]
            one = [(Path(out, f"a{r}", str(k)), frames[k]) for k in range(folders)]
            many = [(Path(out, f"b{r}", str(k)), frames[k]) for k in range(folders)]
            writers = demo.VIDEO_WRITERS
            try:
                demo.VIDEO_WRITERS = 1
                times.append(timed(lambda: demo._write_videos(one, 8.0)))
            finally:
                demo.VIDEO_WRITERS = writers
            times.append(timed(lambda: demo._write_videos(many, 8.0)))
            if r:
                for key, t in zip(rows, times):
                    rows[key].append(t)
    print(f"CPU threads {torch.get_num_threads()}, {args.repeats} repeats; decode outputs differ by at most {drift:.1e}")
    print("| step | median s | runs s | ratio to the first of its pair |\n|---|---:|---|---:|")
    keys = list(rows)
    for i, key in enumerate(keys):
        base = statistics.median(rows[keys[i - i % 2]])
        med = statistics.median(rows[key])
        print(f"| {key} | {med:.2f} | {' '.join(f'{t:.2f}' for t in rows[key])} | {med / base:.2f} |")


if __name__ == "__main__":
    main()
