"""Decoding a 4-view grid with the Wan2.1 VAE: one view at a time, batched, tiled, camgrid's policy, and its options.

    python benchmarks/bench_vae.py --budget 90 --json $OUT/bench_vae.json      # H200, ~90 s
    python benchmarks/bench_vae.py --budget 150 --compile --json ...             # + a torch.compile row
    python benchmarks/bench_vae.py --tiny                                        # CPU smoke test of the script

diffusers `AutoencoderKLWan` with the Wan2.1 config and random weights, built on the GPU in bf16; one grid of
4 views x 81 frames x 480x832 (latent 4 x 16 x 21 x 60 x 104), the same latents for every row. Every row
delivers what Pipeline.decode delivers (frames [V, F, H, W, 3] float32 0..1 on the CPU) through
model/vae_decode.py's `WanVaeDecoder`, so rows differ only in how the views are decoded:

  untiled, 1 view per call     the old Pipeline.decode
  batched, all views in 1 call
  tiled, 1 view per call       diffusers' tiled_decode (256 px tiles); timed on one view, the total scaled
  policy                       DecodeOptions(): the first view alone to measure its peak, the rest batched
  policy + cudnn benchmark     DecodeOptions(cudnn_benchmark=True) (cuDNN times its 3D conv algorithms)
  policy + channels-last       DecodeOptions(channels_last=True) (channels_last_3d weights and latents)
                               (these two after a warm-up call on one view: tuning and layout change excluded,
                               except for the shapes of a batched call)
  policy + compile             (--compile) DecodeOptions(compile=True), in a child process with a time limit:
                               first decode (compile included) and a second, warm decode
Columns: seconds for all views, seconds per view, peak GPU memory above the weights and latents (GiB).
A row that would not finish inside --budget is skipped ("skipped (budget)"), never cut.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch



sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.files import atomic_write  # noqa: E402
from camgrid.model.vae_decode import DecodeOptions, WanVaeDecoder, set_conv3d_layout  # noqa: E402

GIB = 2 ** 30
FULL = dict(views=4, frames=81, height=480, width=832, dtype="bf16")
TINY = dict(views=2, frames=5, height=32, width=48, dtype="fp32")
TINY_VAE = dict(base_dim=8, dim_mult=[1, 1, 1, 1], num_res_blocks=1)     # the Wan2.1 config otherwise
DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def build(size: dict, tiny: bool, device: torch.device, seed: int = 0):
    """(random-weight AutoencoderKLWan in eval mode, normalised latents [V, 16, T, h, w]) on `device`."""
    from diffusers import AutoencoderKLWan  # the script's one heavy import; absent from camgrid's core path

    torch.manual_seed(seed)
    with torch.device(device):
        vae = AutoencoderKLWan(**(TINY_VAE if tiny else {}))
    vae = vae.to(DTYPES[size["dtype"]]).eval().requires_grad_(False)
    t, h, w = (size["frames"] - 1) // 4 + 1, size["height"] // 8, size["width"] // 8
    latents = torch.randn(size["views"], 16, t, h, w, generator=torch.Generator().manual_seed(seed)).to(device)
    return vae, latents


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device) -> tuple[float, float]:
    """(seconds, peak GiB above what was allocated before) of fn()."""
    sync(device)
    base = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    fn()
    sync(device)
    seconds = time.perf_counter() - start
    peak = (torch.cuda.max_memory_allocated(device) - base) / GIB if device.type == "cuda" else float("nan")
    return seconds, peak


def decoder(vae, options=DecodeOptions()):
    return WanVaeDecoder(vae, vae.config.latents_mean, vae.config.latents_std, options)


def main_rows(args, size, device, clock) -> list[dict]:
    vae, latents = build(size, args.tiny, device)
    views = len(latents)
    plain = decoder(vae)
    warm_up = latents[:1, :, :3]                                       # frames 0, 1, 2: every shape the cache gives
    timed(lambda: plain.decode_batch(warm_up), device)                # CUDA context, cuDNN handles
    rows = []

    def row(name, fn, views_timed=views, estimate=None):
        if estimate is not None and estimate > clock():
            rows.append(dict(row=name, status="skipped (budget)"))
            print(f"{name}: skipped (budget)", flush=True)
            return None
        seconds, peak = timed(fn, device)
        scale = views / views_timed
        rows.append(dict(row=name, seconds=seconds * scale, per_view=seconds / views_timed, peak_gib=peak,
                         views_timed=views_timed, status="ok"))
        print(f"{name}: {seconds * scale:.2f} s ({seconds / views_timed:.2f} s/view), peak +{peak:.2f} GiB",
              flush=True)
        return seconds / views_timed

    per_view = row("untiled, 1 view per call", lambda: [plain.decode_batch(latents[i:i + 1]) for i in range(views)])
    row("batched, all views in 1 call", lambda: plain.decode_batch(latents), estimate=1.2 * per_view * views)
    if args.tiny:
        vae.tile_sample_min_height = vae.tile_sample_min_width = 32     # so the tiny frames are tiled at all
        vae.tile_sample_stride_height = vae.tile_sample_stride_width = 24
    row("tiled, 1 view per call", lambda: plain.decode_tiled(latents[:1]), views_timed=1, estimate=3 * per_view)
    policy = decoder(vae)
    row("policy", lambda: policy(latents), estimate=1.2 * per_view * views)
    rows[-1]["report"] = policy.last_report.summary()
    for name, options in (("policy + cudnn benchmark", DecodeOptions(cudnn_benchmark=True)),
                          ("policy + channels-last", DecodeOptions(channels_last=True))):
        candidate = decoder(vae, options)
        if clock() > 0:
            timed(lambda: candidate.decode_with_report(warm_up), device)   # the layout change, cuDNN's tuning
        row(name, lambda: candidate(latents), estimate=1.5 * per_view * views)
        if rows[-1]["status"] == "ok":
            rows[-1]["report"] = candidate.last_report.summary()
        if options.channels_last:
            set_conv3d_layout(vae, torch.contiguous_format)             # undo for whatever runs next
    return rows


def compile_row(args, device) -> dict:
    """Child process: compile the decoder, decode twice (the first includes the compile)."""
    size = TINY if args.tiny else FULL
    vae, latents = build(size, args.tiny, device)
    compiled = decoder(vae, DecodeOptions(compile=True))
    first, _ = timed(lambda: compiled(latents), device)
    second, peak = timed(lambda: compiled(latents), device)
    return dict(row="policy + compile", seconds=second, per_view=second / len(latents), peak_gib=peak,
                first_call_s=first, report=compiled.last_report.summary(), status="ok")


def run_compile_child(args, seconds_left: float) -> dict:
    if seconds_left < 30:
        return dict(row="policy + compile", status="skipped (budget)")
    cmd = [sys.executable, str(Path(__file__).resolve()), "--compile-child"] + (["--tiny"] if args.tiny else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds_left)
    except subprocess.TimeoutExpired:
        return dict(row="policy + compile", status=f"did not finish in {seconds_left:.0f} s (compile too slow)")
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        return dict(row="policy + compile", status="failed: " + (out.stderr.strip().splitlines() or ["?"])[-1][:200])
    return json.loads(line[len("RESULT "):])


def table(rows, header) -> str:
    lines = [header, "", "| decode | s (all views) | s / view | peak GiB above weights | what ran |",
             "|---|---:|---:|---:|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| {r['row']} | | | | {r['status']} |")
            continue
        notes = [r.get("report", "")]
        if "first_call_s" in r:
            notes.append(f"first call {r['first_call_s']:.1f} s (compile included)")
        if r.get("views_timed", 0) == 1 and "tiled" in r["row"]:
            notes.append("one view timed, total scaled")
        extra = "; ".join(n for n in notes if n)
        lines.append(f"| {r['row']} | {r['seconds']:.2f} | {r['per_view']:.2f} | {r['peak_gib']:.2f} | {extra} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=90.0, help="wall-clock seconds; later rows are skipped, not cut")
    ap.add_argument("--tiny", action="store_true", help="a tiny VAE and grid on the CPU (checks the script)")
    ap.add_argument("--compile", action="store_true", help="add the torch.compile row (a child process)")
    ap.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    device = torch.device("cpu" if args.tiny or not torch.cuda.is_available() else "cuda")
    if args.compile_child:
        print("RESULT " + json.dumps(compile_row(args, device)), flush=True)
        return
    start = time.perf_counter()
    clock = lambda: args.budget - (time.perf_counter() - start)  # noqa: E731 - seconds left
    size = TINY if args.tiny else FULL
    rows = main_rows(args, size, device, clock)
    if args.compile:
        if device.type == "cuda":
            torch.cuda.empty_cache()                                   # the child process needs the memory
        rows.append(run_compile_child(args, clock()))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    header = (f"AutoencoderKLWan ({'tiny' if args.tiny else 'Wan2.1'} config, random weights, {size['dtype']}) on "
              f"{name}, torch {torch.__version__}: {size['views']} views x {size['frames']} frames x "
              f"{size['height']}x{size['width']}; total {time.perf_counter() - start:.0f} s")
    print(table(rows, header))
    if args.json:
        atomic_write(args.json, json.dumps(dict(header=header, rows=rows), indent=1))


if __name__ == "__main__":
    main()
