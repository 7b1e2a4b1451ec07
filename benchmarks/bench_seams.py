"""Seams of context windows on the built-in model: is the jump between consecutive decoded frames at a window
border larger than between neighbouring frames inside a window?

    python benchmarks/bench_seams.py [--seeds 0,1,2] [--modes syncam,hard] [--out table.md]

The built-in tiny model was trained on 17-frame clips (5 latent frames) at 80x48, so windows of 5 latent frames
over a 77-frame grid (20 latent frames, 4x its training length) are its analogue of 21-frame windows over a
321-frame Wan video. Every row samples the same noise (per seed) with the caption and the 4-view orbit rig of
`camgrid demo`, 20 UniPC steps, cfg 4, on the CPU:

  plain        one pass over all 20 latent frames (no windows; 4x the training length)
  cut          windows of 5 with overlap 0: 20 = 4 x 5 tiles exactly, so the four windows never share a frame:
               separate generations from one noise, the seam this measurement must be able to see
  oK fuse      windows of 5 with overlap K (spread evenly: the overlaps are at least K), fused per step
  ... stagger  the same, the windows moved every step (ContextWindows(stagger=True))

Decoded frames are [V, F, H, W, 3] in 0..1. The tiny autoencoder decodes each latent frame into 4 video frames
on its own (frames 4t-3..4t; latent 0 gives frame 0), so the comparable transitions are those between latent
frames: frame 4(t-1) -> 4t-3 for latent t-1 -> t. jump(t) = mean |difference| over views, pixels and colours.
  border    latent transitions where a window starts or ends (t = a window's start, or its stop)
  inside    the other latent transitions (both frames in the same windows)
  ratio     border / inside: about 1 means no seam; the cut row shows what a seam looks like
  worst / median   the largest latent transition over the median one, wherever it is: a seam is an outlier
The plain row reports its jumps at the cut row's borders (t = 5, 10, 15) for reference.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.context_windows import ContextWindows, spans  # noqa: E402
from camgrid.model.files import atomic_write  # noqa: E402
from camgrid.model.sampling import sample_grid  # noqa: E402
from camgrid.train.builtin import camera_embedding, load_builtin  # noqa: E402
from camgrid.train.demo import demo_rig  # noqa: E402

CAPTION = "a red sphere and a blue box"


def latent_jumps(frames: torch.Tensor) -> torch.Tensor:
    """frames [V, F, H, W, 3] -> jump[t] for the latent transition t-1 -> t (t = 1..T-1; jump[0] unused)."""
    num_latent = (frames.shape[1] - 1) // 4 + 1
    jumps = torch.zeros(num_latent)
    for t in range(1, num_latent):
        jumps[t] = (frames[:, 4 * t - 3] - frames[:, 4 * (t - 1)]).abs().mean()
    return jumps


def borders(num_latent: int, windows: ContextWindows | None) -> set[int]:
    """Latent transitions t (t-1 -> t) where a window of the static schedule starts or ends (a staggered run is
    scored at the same positions: its own borders move every step)."""
    if windows is None:
        return set()
    wins = spans(num_latent, windows.window_frames, windows.window_overlap)
    return {w.start for w in wins[1:]} | {w.stop for w in wins[:-1]}


def configs(window: int, overlaps: list[int], fuses: list[str], stagger: bool) \
        -> list[tuple[str, ContextWindows | None]]:
    rows = [("plain", None), ("cut", ContextWindows(window, 0))]
    rows += [(f"o{k} {fuse}", ContextWindows(window, k, fuse)) for k in overlaps for fuse in fuses]
    if stagger:
        rows += [(f"o{k} {fuses[0]} stagger", ContextWindows(window, k, fuses[0], stagger=True)) for k in overlaps]
    return rows


def run(args) -> list[dict]:
    model = load_builtin(device=args.device)
    rig = demo_rig(model, args.views)
    num_latent = (args.frames - 1) // 4 + 1
    shape = model.latent_shape(args.views)[:3] + (num_latent,) + model.latent_shape(args.views)[4:]
    camera = camera_embedding(rig, num_latent).to(model.device)
    ctx, neg = model.encode_prompt([CAPTION]), model.encode_prompt([""])
    cut_borders = borders(num_latent, ContextWindows(args.window, 0))
    rows = []
    for mode in args.modes:
        for seed in args.seeds:
            for name, windows in configs(args.window, args.overlaps, args.fuses, args.stagger):
                start = time.perf_counter()
                lat = sample_grid(model.dit, shape, ctx, neg, mode=mode, camera=camera[None], steps=args.steps,
                                  cfg=args.cfg, shift=model.shift, seed=seed, windows=windows)
                jumps = latent_jumps(model.decode(lat)[0])
                edge = borders(num_latent, windows) or cut_borders
                inside = [t for t in range(1, num_latent) if t not in edge]
                if not inside:
                    raise SystemExit(f"windows of {args.window} with overlap {windows.window_overlap} border every "
                                     f"latent transition of {num_latent} frames: nothing to compare; use more frames")
                border_jump = float(jumps[sorted(edge)].mean())
                inside_jump = float(jumps[inside].mean())
                every = jumps[1:]
                rows.append(dict(mode=mode, config=name, seed=seed, border=border_jump, inside=inside_jump,
                                 ratio=border_jump / inside_jump, worst_border=float(jumps[sorted(edge)].max()),
                                 worst_inside=float(jumps[inside].max()),
                                 peak=float(every.max() / every.median()), seconds=time.perf_counter() - start))
                r = rows[-1]
                print(f"  {mode} seed {seed} {name:>10}: border {r['border']:.4f} inside {r['inside']:.4f} "
                      f"ratio {r['ratio']:.2f} ({r['seconds']:.0f} s)", flush=True)
    return rows


def table(rows: list[dict], args) -> str:
    lines = [f"built-in model, {args.views} views x {args.frames} frames ({(args.frames - 1) // 4 + 1} latent), "
             f"windows of {args.window} latent frames, {args.steps} steps, cfg {args.cfg:g}, seeds "
             f"{', '.join(map(str, args.seeds))}", "",
             "| mode | config | border jump | inside jump | ratio (per seed) | worst border | worst inside | "
             "worst / median |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for mode in args.modes:
        names = list(dict.fromkeys(r["config"] for r in rows if r["mode"] == mode))
        for name in names:
            sel = [r for r in rows if r["mode"] == mode and r["config"] == name]
            mean = {k: statistics.mean(r[k] for r in sel) for k in ("border", "inside", "ratio", "peak")}
            worst_b, worst_i = max(r["worst_border"] for r in sel), max(r["worst_inside"] for r in sel)
            per_seed = ", ".join(f"{r['ratio']:.2f}" for r in sel)
            lines.append(f"| {mode} | {name} | {mean['border']:.4f} | {mean['inside']:.4f} | "
                         f"{mean['ratio']:.2f} ({per_seed}) | {worst_b:.4f} | {worst_i:.4f} | {mean['peak']:.2f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--frames", type=int, default=77, help="video frames, 4k+1 (77 = 20 latent frames)")
    ap.add_argument("--window", type=int, default=5, help="latent frames per window (the model's training length)")
    ap.add_argument("--overlaps", default="1,2", help="overlaps to compare (latent frames)")
    ap.add_argument("--fuses", default="linear", help="linear,pyramid,flat (pyramid equals linear while at most "
                    "two windows overlap a frame and overlaps stay under half a window)")
    ap.add_argument("--no-stagger", dest="stagger", action="store_false", help="skip the staggered rows")
    ap.add_argument("--modes", default="syncam")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=4.0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = ap.parse_args(argv)
    args.overlaps = [int(k) for k in args.overlaps.split(",")]
    args.fuses, args.modes = args.fuses.split(","), args.modes.split(",")
    args.seeds = [int(s) for s in args.seeds.split(",")]
    with torch.no_grad():  # not set_grad_enabled(False): main() also runs inside the test process
        text = table(run(args), args)
    print(text)
    if args.out:
        atomic_write(Path(args.out), text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
