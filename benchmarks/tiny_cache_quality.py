"""What the step cache costs in quality on the built-in model (issue 13: at 50 steps, >= 1.8x fewer DiT steps with
the reprojection error within 10 % of the uncached sampler).

    python benchmarks/tiny_cache_quality.py --scenes 16 --modes hard --thresholds 0.1,0.2 [--device cuda]

For every mode: the built-in teacher samples one grid per held-out scene (train/tables.py's held-out scenes, the
same noise in every row) with 50 UniPC steps and guidance 3, once without the cache and once per EasyCache
threshold; each row reports how many of the 50 steps ran the DiT (over all batches), the reprojection error
(median / mean, pooled over observations; train/evaluate.py), the found-rate and the pixel PSNR against the
uncached grid. Prints a markdown table; --json writes the rows too.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.files import atomic_write  # noqa: E402
from camgrid.model.step_cache import SamplingStats  # noqa: E402
from camgrid.train.builtin import load_builtin  # noqa: E402
from camgrid.train.evaluate import summarise  # noqa: E402
from camgrid.train.tables import HeldOut, psnr  # noqa: E402

STEPS, CFG = 50, 3.0


def run_row(model, held: HeldOut, mode: str, batch: int, seed: int, cache: dict) -> tuple[torch.Tensor, dict]:
    """Frames of every held-out scene and the row's numbers (DiT steps summed over batches)."""
    frames, ran, total = [], 0, 0
    t0 = time.time()
    for start in range(0, len(held.captions), batch):
        rows = slice(start, start + batch)
        stats = SamplingStats()
        lat = model.generate_latents(held.captions[rows], held.cameras[rows], mode=mode, steps=STEPS, cfg=CFG,
                                     scheduler="unipc", seed=seed + start, stats=stats, **cache)
        frames.append(model.decode(lat))
        ran, total = ran + stats.model_steps, total + len(stats.ran)
    frames = torch.cat(frames)
    summary = summarise(held.metrics(frames))
    return frames, {"dit_steps": ran / max(1, total) * STEPS, "seconds": time.time() - t0,
                    "reproj_px_median": summary["reproj_px_median"], "reproj_px": summary["reproj_px"],
                    "found": summary["found"], "observations": summary["observations"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenes", type=int, default=16)
    p.add_argument("--modes", default="hard")
    p.add_argument("--thresholds", default="0.1,0.2")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="the rows so far, rewritten after every row")
    p.add_argument("--budget", type=float, default=None,
                   help="wall seconds; once spent, the rows not yet started are skipped (said in the output)")
    args = p.parse_args()
    t_start = time.time()
    model = load_builtin(device=args.device)
    held = HeldOut(load_builtin(device="cpu"), args.scenes, 4, 0)
    rows = []
    for mode in args.modes.split(","):
        reference = None
        for threshold in [None] + [float(t) for t in args.thresholds.split(",")]:
            if args.budget is not None and time.time() - t_start > args.budget:
                print(f"{mode} {threshold}: skipped, --budget {args.budget:g} s spent", flush=True)
                continue
            cache = {} if threshold is None else {"cache": "easycache", "cache_threshold": threshold}
            frames, row = run_row(model, held, mode, args.batch, args.seed, cache)
            reference = frames if reference is None else reference
            row.update(mode=mode, cache="off" if threshold is None else f"easycache {threshold:g}",
                       psnr_vs_uncached=None if threshold is None else psnr(frames, reference))
            rows.append(row)
            print(f"{mode} {row['cache']}: {row['dit_steps']:.1f} DiT steps, {row['seconds']:.0f} s", flush=True)
            if args.json:
                atomic_write(args.json, json.dumps({"args": vars(args), "rows": rows}, indent=1))
    held.close()
    print(f"\nbuilt-in teacher, {args.scenes} held-out scenes x 4 views, {STEPS} UniPC steps, guidance {CFG:g}, "
          f"device {args.device}\n")
    print("| mode | cache | DiT steps of 50 | fewer DiT steps | reproj px median / mean | found | observations | "
          "PSNR vs uncached |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        base = next(b for b in rows if b["mode"] == r["mode"] and b["cache"] == "off")
        median = "n/a" if r["reproj_px_median"] is None else f"{r['reproj_px_median']:.2f} / {r['reproj_px']:.2f}"
        change = "" if r is base or base["reproj_px_median"] in (None, 0) or r["reproj_px_median"] is None else \
            f" ({100 * (r['reproj_px_median'] / base['reproj_px_median'] - 1):+.0f} %)"
        print(f"| {r['mode']} | {r['cache']} | {r['dit_steps']:.1f} | {STEPS / r['dit_steps']:.2f}x | {median}{change} | "
              f"{r['found']:.2f} | {r['observations']} | "
              f"{'ref.' if r['psnr_vs_uncached'] is None else format(r['psnr_vs_uncached'], '.1f') + ' dB'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
