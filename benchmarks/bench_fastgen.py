#!/usr/bin/env python
"""End-to-end time of one multi-view grid, text encoding and VAE decoding included (issue 13 item 5):
the 50-step CFG baseline against a 4-step distilled schedule and against the step cache, in the same run.

    python benchmarks/bench_fastgen.py --budget 200 --cache-threshold 0.1          # H200: hard + syncam
    python benchmarks/bench_fastgen.py --tiny --device cpu                          # CPU smoke test of the script

Workload: 4 views x 81 frames x 832x480 (latent 21 x 60 x 104 per view), random weights:
  DiT      Wan2.1 1.3B (GridDiT, bf16): variant wan for mode hard, syncammaster for mode syncam
  text     umT5-XXL encoder, bf16: transformers `UMT5EncoderModel` with the config of Wan2.1's text encoder
           (d_model 4096, d_ff 10240, d_kv 64, 64 heads, 24 layers, vocab 256384, gated-gelu, 32 relative
           buckets / max distance 128); prompts padded to 512 tokens as the pipeline does. The tokenizer is a
           stand-in (no vocabulary file on the device) that returns token ids and a mask: tokenizing (~1 ms)
           is not timed.
  VAE      diffusers `AutoencoderKLWan` with its default config (= Wan2.1's), float32 as the pipeline runs it by
           default (--vae-dtype bfloat16 / --decode-channels-last: the CLI's faster options, in every row),
           decoding all 4 views through `Pipeline.decode` (whatever that does today).
Everything goes through camgrid's own `Pipeline.generate` (encode prompts, rig and camera, `sample_grid`,
decode), so the numbers are those of the library path.

Rows, per mode (ratios against the baseline of the same mode, same run):
  baseline   50 steps, UniPC, CFG 5 (two branches batched)        COMPOSED from measured parts (see below)
  4-step     schedule lightx2v_4step, CFG 1                        MEASURED WHOLE: one timed generate() call
  cache      50 steps CFG 5 + easycache at --cache-threshold       COMPOSED from measured parts
A full 50-step CFG grid takes ~5 min per mode on an H200 (6.1 s per step), more than the device budget, so the
50-step rows are composed from parts measured in this run, each printed:
  t_text     umT5 time of the positive prompt (timed inside the 4-step run) + of the negative (timed alone)
  t_decode   `Pipeline.decode` of the 4 views (timed inside the 4-step run, after one untimed full-size decode)
  t_other    what the 4-step run spent outside text, decode and its 4 DiT steps (prepare, rig, noise, solver)
  t_cfg      median of --timed-steps warm sampler steps with CFG 5 (the real `denoise` loop: DiT + solver),
             after one warm-up step
  t_skip     median time of a step that reuses the cache, on the full-size grid (the real EasyCache and loop)
  n_dit      DiT steps the cache runs out of 50: --cache-steps N (or hard=N,syncam=M), taken from a trained model
             (benchmarks/tiny_cache_quality.py on the built-in model, at the threshold it recommends), or else a proxy run of
             the same random model, mode and threshold on a small grid (4 views x 17 frames x 416x240). Random weights never
             settle into a smooth trajectory, so the proxy typically runs all 50 steps: it measures nothing about
             the cache's benefit on a real model; use --cache-steps for the table.
  baseline = t_text + 50 t_cfg + t_decode + t_other;   cache = t_text + n_dit t_cfg + (50 - n_dit) t_skip + ...
The DiT step time does not depend on the schedule's values, only on the shapes, so t_cfg is exact for the
50-step rows; what composing leaves out is the warm-up / clock-boost drift of a 5-minute run.

Budget: `--budget SECONDS` (wall time from the start of the script). The essentials (both modes' CFG steps and
4-step runs) run first, then the proxy runs; a piece whose estimate does not fit is skipped and the table says
so. Measured on an H200 (benchmarks/RESULTS.md): 110-125 s for both modes with --cache-steps (setup with the
full-size warm-up decodes 26-32 s; per mode ~30 s of CFG steps with warm-ups, ~20-25 s for the 4-step run).

Device: needs diffusers (not installed there) — carry the repository's `.whl/` and run
    pip install --no-index --no-deps --target /tmp/site .whl/diffusers-*.whl && export PYTHONPATH=/tmp/site
transformers is on the device.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
import types
from pathlib import Path

import torch



try:
    import diffusers  # noqa: F401,E402
except ImportError:
    sys.exit("bench_fastgen needs diffusers: carry .whl/ and run `pip install --no-index --no-deps --target "
             "/tmp/site .whl/diffusers-*.whl && export PYTHONPATH=/tmp/site` first")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.config import get_config  # noqa: E402
from camgrid.model.dit import GridDiT  # noqa: E402
from camgrid.model.files import atomic_write  # noqa: E402
from camgrid.model.pipeline import Pipeline  # noqa: E402
from camgrid.model.sampling import SamplerOptions, denoise, prepare  # noqa: E402
from camgrid.model.step_cache import EasyCache, SamplingStats  # noqa: E402

PROMPT = "a red fox trots through fresh snow between pine trees, soft morning light"
NEGATIVE = "blurry, low quality, static"
MODE_VARIANT = {"hard": "wan", "syncam": "syncammaster", "independent": "wan"}


# ---------------------------------------------------------------------------------------------
# random components
# ---------------------------------------------------------------------------------------------

def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fill_random(module, seed, std=None):
    """normal(0, std or fan_in^-0.5) for every weight, 1 for norm weights: finite, O(1) activations."""
    g = torch.Generator(device=next(module.parameters()).device).manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.fill_(1.0)
                continue
            scale = std if std is not None else (math.prod(p.shape[1:]) if p.ndim >= 2 else p.shape[0]) ** -0.5
            p.normal_(0.0, scale, generator=g)
    return module


def random_dit(size, variant, device, dtype):
    cfg = get_config(size, variant=variant)
    with torch.device("meta"):
        model = GridDiT(cfg)
    model = model.to(dtype).to_empty(device=device)
    return fill_random(model, seed=0).eval().requires_grad_(False)


def random_text_encoder(tiny, device, dtype):
    from transformers import UMT5Config, UMT5EncoderModel

    if tiny:
        cfg = UMT5Config(vocab_size=256, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
                         relative_attention_num_buckets=8, relative_attention_max_distance=16)
    else:  # Wan2.1 text_encoder/config.json (umT5-XXL encoder)
        cfg = UMT5Config(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                         relative_attention_num_buckets=32, relative_attention_max_distance=128,
                         feed_forward_proj="gated-gelu", dense_act_fn="gelu_new", layer_norm_epsilon=1e-6,
                         tie_word_embeddings=False)
    with torch.device("meta"):
        model = UMT5EncoderModel(cfg)
    model = model.to(dtype).to_empty(device=device)
    return fill_random(model, seed=1, std=0.02).eval().requires_grad_(False)


def random_vae(tiny, device, dtype=torch.float32):
    from diffusers import AutoencoderKLWan

    with torch.device(device):
        vae = AutoencoderKLWan(base_dim=8, dim_mult=[1, 1, 1, 1], num_res_blocks=1) if tiny else AutoencoderKLWan()
    return vae.to(dtype).eval().requires_grad_(False)


class StandInTokenizer:
    """What Pipeline.encode_prompt needs of a tokenizer: ids and a mask of `max_length` (no vocabulary file here)."""

    def __init__(self, vocab_size):
        self.vocab_size = vocab_size

    def __call__(self, texts, max_length, **_):
        g = torch.Generator().manual_seed(len(texts[0]))
        ids = torch.randint(2, self.vocab_size, (len(texts), max_length), generator=g)
        mask = torch.zeros_like(ids)
        for i, t in enumerate(texts):
            mask[i, : min(max_length, 2 * len(t.split()) + 1)] = 1
        return types.SimpleNamespace(input_ids=ids * mask, attention_mask=mask)


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------

class Budget:
    def __init__(self, seconds):
        self.seconds, self.t0, self.skipped = seconds, time.perf_counter(), []

    def elapsed(self):
        return time.perf_counter() - self.t0

    def allows(self, estimate, what):
        if self.elapsed() + estimate <= self.seconds:
            return True
        self.skipped.append(f"{what} (needs ~{estimate:.0f} s, {self.seconds - self.elapsed():.0f} s left)")
        print(f"  budget: skipped {self.skipped[-1]}", flush=True)
        return False


class TimedPipeline:
    """A Pipeline whose encode_prompt / decode calls and sampler steps are timed (device-synchronised)."""

    def __init__(self, pipe):
        self.pipe, self.device = pipe, pipe.device
        self.text = self.decode = 0.0
        self.steps = []  # wall time of each sampler step (from the previous step's end, or from the last encode)
        self._mark = None
        self.decoding = True
        self._encode, self._decode = pipe.encode_prompt, pipe.decode
        pipe.encode_prompt, pipe.decode = self._timed_encode, self._timed_decode

    def _now(self):
        sync(self.device)
        return time.perf_counter()

    def _timed_encode(self, prompts):
        t0 = self._now()
        out = self._encode(prompts)
        self._mark = self._now()
        self.text += self._mark - t0
        return out

    def _timed_decode(self, grid):
        t0 = self._now()
        out = self._decode(grid) if self.decoding else None
        self.decode += self._now() - t0
        return out

    def step_done(self, step, total, _x0):
        now = self._now()
        self.steps.append(now - self._mark)
        self._mark = now

    def generate(self, decoding=True, **kw):
        """(wall seconds of one generate call, its SamplingStats); text / decode / steps accumulate here."""
        self.decoding = decoding
        self.text = self.decode = 0.0
        self.steps = []
        t0 = self._now()
        self.pipe.generate(PROMPT, NEGATIVE, callback=self.step_done, **kw)
        return self._now() - t0, self.pipe.last_stats


def skipped_step_time(pipe, size_kw, mode, steps=10):
    """Median wall time of a step that reuses the cache, on the full-size grid: the real EasyCache and denoise loop,
    with a stand-in for the two steps that must compute (their DiT time is not what is measured here)."""
    model = pipe.model
    options = SamplerOptions(steps=steps, cfg=5.0)  # the cache is applied below, with an unreachable threshold
    ctx = torch.zeros(1, 16, model.config.text_dim, device=pipe.device)
    t_lat = (size_kw["frames"] - 1) // 4 + 1
    shape = (1, size_kw["views"], model.config.in_dim, t_lat, size_kw["height"] // 8, size_kw["width"] // 8)
    plan = prepare(model, shape, ctx, ctx, mode=mode, options=options)
    stats, marks = SamplingStats(), []
    cache = EasyCache(lambda plan, x, sigma: 0.5 * x, 1e9, 0.0, 1.0, stats)
    sync(pipe.device)
    marks.append(time.perf_counter())

    def mark(*_):
        sync(pipe.device)
        marks.append(time.perf_counter())

    denoise(plan, velocity=cache, callback=mark)
    gaps = [b - a for a, b in zip(marks, marks[1:])]
    reused = [g for g, ran in zip(gaps, stats.ran) if not ran][1:]  # the first reuse pays for warm-up
    return statistics.median(reused) if reused else float("nan")


# ---------------------------------------------------------------------------------------------
# the benchmark
# ---------------------------------------------------------------------------------------------

def measure_mode(tp, mode, size_kw, args, budget, est):
    """CFG step time, then the 4-step run measured whole. Returns the measured parts."""
    r = {"mode": mode}
    cfg_cost = (1 + args.timed_steps) * est["cfg"] + est["text"]
    if not budget.allows(cfg_cost, f"{mode}: CFG steps"):
        return None
    _, _ = tp.generate(decoding=False, mode=mode, steps=1 + args.timed_steps, cfg=5.0, **size_kw)
    r["t_cfg_all"] = tp.steps
    r["t_cfg"] = statistics.median(tp.steps[1:])
    r["t_text_cfg"] = tp.text  # positive + negative
    est["cfg"] = r["t_cfg"]
    # one CFG-free step first: the batch-1 shapes are new (attention plans, kernels)
    tp.generate(decoding=False, mode=mode, steps=1, cfg=1.0, **size_kw)
    whole_cost = est["text"] + 4 * est["cfg"] / 2 + est["decode"]
    if not budget.allows(whole_cost, f"{mode}: 4-step run"):
        return r
    wall, stats = tp.generate(decoding=True, mode=mode, schedule="lightx2v_4step", **size_kw)
    r.update(t_4step=wall, t4_text=tp.text, t_decode=tp.decode, t4_steps=tp.steps, t4_stats=stats.summary())
    r["t_nocfg"] = statistics.median(tp.steps[1:]) if len(tp.steps) > 1 else tp.steps[0]
    r["t_other"] = max(0.0, wall - tp.text - tp.decode - sum(tp.steps))
    est["decode"], est["text"] = tp.decode, tp.text
    return r


def latent_tokens(size_kw):
    return size_kw["views"] * ((size_kw["frames"] - 1) // 4 + 1) * (size_kw["height"] // 16) * (size_kw["width"] // 16)


def proxy_cache_steps(tp, r, size_kw, args, budget):
    """DiT steps that the cache runs out of 50 on a small grid (same model, mode, schedule, threshold)."""
    mode = r["mode"]
    given = args.cache_steps.get(mode, args.cache_steps.get("*"))
    if given is not None:
        return given, "given (--cache-steps)"
    small = dict(views=4, width=32, height=32, frames=5) if args.tiny else dict(views=4, width=416, height=240,
                                                                                 frames=17)
    estimate = 50 * r["t_cfg"] * latent_tokens(small) / latent_tokens(size_kw) + 5  # + warm-up of new shapes
    if not budget.allows(estimate, f"{mode}: cache proxy run"):
        return None, "not measured (budget)"
    _, stats = tp.generate(decoding=False, mode=mode, steps=50, cfg=5.0, cache="easycache",
                           cache_threshold=args.cache_threshold, cache_start=args.cache_start,
                           cache_end=args.cache_end, **small)
    where = f"{small['views']} views x {small['frames']} frames x {small['width']}x{small['height']}"
    return stats.model_steps, (f"proxy run on random weights ({where}; not representative of a trained model: "
                               f"pass --cache-steps): {stats.summary().splitlines()[-1]}")


def compose(r, n_dit, steps=50):
    """The composed 50-step rows (seconds) from the measured parts of one mode."""
    fixed = r["t_text_full"] + r["t_decode"] + r["t_other"]
    rows = {"baseline": fixed + steps * r["t_cfg"]}
    if n_dit is not None:
        rows["cache"] = fixed + n_dit * r["t_cfg"] + (steps - n_dit) * r["t_skip"]
    return rows


def table(results, args):
    lines = ["| mode | row | steps | DiT steps | total s | vs baseline | how |", "|---|---|---|---|---|---|---|"]
    for r in results:
        base = r.get("baseline")
        parts = (f"t_text {r['t_text_full']:.2f} + 50 x t_cfg {r['t_cfg']:.3f} + t_decode {r['t_decode']:.2f} + "
                 f"t_other {r['t_other']:.2f}") if base else ""
        if base:
            lines.append(f"| {r['mode']} | baseline: 50 steps UniPC, CFG 5 | 50 | 50 | {base:.1f} | 1.00x | composed: "
                         f"{parts} |")
        if "t_4step" in r:
            ratio = f"{base / r['t_4step']:.1f}x faster" if base else "-"
            lines.append(f"| {r['mode']} | lightx2v_4step, CFG 1 | 4 | 4 | {r['t_4step']:.1f} | {ratio} | measured "
                         f"whole (text {r['t4_text']:.2f}, 4 steps {sum(r['t4_steps']):.2f}, decode "
                         f"{r['t_decode']:.2f}) |")
        if r.get("cache") is not None:
            lines.append(f"| {r['mode']} | 50 steps CFG 5 + easycache {args.cache_threshold:g} | 50 | {r['n_dit']} | "
                         f"{r['cache']:.1f} | {base / r['cache']:.2f}x faster | composed: as baseline with "
                         f"{r['n_dit']} x t_cfg + {50 - r['n_dit']} x t_skip {r['t_skip'] * 1e3:.1f} ms; DiT steps "
                         f"{r['n_dit_source']} |")
        elif base:
            lines.append(f"| {r['mode']} | 50 steps CFG 5 + easycache {args.cache_threshold:g} | 50 | - | - | - | "
                         f"{r.get('n_dit_source', 'not measured')} |")
    return "\n".join(lines)


def cache_steps_arg(text: str) -> dict:
    """'23' -> {'*': 23} (every mode); 'hard=23,syncam=22' -> per mode."""
    if "=" not in text:
        return {"*": int(text)}
    return {mode.strip(): int(n) for mode, n in (part.split("=", 1) for part in text.split(","))}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--budget", type=float, default=200.0, help="wall seconds for the whole script (default 200)")
    p.add_argument("--modes", default="hard,syncam", help="comma-separated grid modes (hard, syncam)")
    p.add_argument("--cache-threshold", type=float, default=0.1, help="easycache threshold of the cache row")
    p.add_argument("--cache-start", type=float, default=0.2)
    p.add_argument("--cache-end", type=float, default=1.0)
    p.add_argument("--cache-steps", type=cache_steps_arg, default={},
                   help="DiT steps of 50 the cache runs (e.g. from the tiny-model table) instead of the proxy run: "
                        "N for every mode, or MODE=N,MODE=N")
    p.add_argument("--timed-steps", type=int, default=2, help="timed CFG steps per mode after one warm-up step")
    p.add_argument("--vae-dtype", default="float32", choices=("float32", "bfloat16"),
                   help="the VAE's dtype in every row (the CLI's --vae-dtype; float32 is the library default)")
    p.add_argument("--decode-channels-last", action="store_true",
                   help="channels-last-3d decoding in every row (the CLI's --decode-channels-last)")
    p.add_argument("--tiny", action="store_true", help="tiny random components and grid (checks the script on a CPU)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write the results here")
    return p.parse_args(argv)


def build_pipelines(args, modes, device, dtype, size_kw) -> dict:
    """{mode: TimedPipeline} sharing one random umT5 and VAE, one random DiT per mode; kernels warmed up."""
    t0 = time.perf_counter()
    text_encoder = random_text_encoder(args.tiny, device, dtype)
    vae = random_vae(args.tiny, device, getattr(torch, args.vae_dtype))
    tokenizer = StandInTokenizer(text_encoder.config.vocab_size)
    size = "tiny" if args.tiny else "wan-1.3b"
    pipes = {m: TimedPipeline(Pipeline(random_dit(size, MODE_VARIANT[m], device, dtype), vae, text_encoder, tokenizer,
                                       device=device, log=lambda *_: None)) for m in modes}
    for tp in pipes.values():
        tp.pipe.decode_options = dataclasses.replace(tp.pipe.decode_options, channels_last=args.decode_channels_last)
    first = pipes[modes[0]].pipe
    first.encode_prompt(PROMPT)
    # every pipeline decodes one full-size grid of zeros first, untimed: the first decode of a shape pays for
    # CUDA/cuDNN first-call work and for the decode policy's one-view memory probe (model/vae_decode.py), which
    # a user pays once per session, not per grid; the DiT steps are warmed the same way (see measure_mode)
    t_lat = (size_kw["frames"] - 1) // 4 + 1
    for m, tp in pipes.items():
        t1 = time.perf_counter()
        tp.pipe.decode(torch.zeros(size_kw["views"], vae.config.z_dim, t_lat, size_kw["height"] // 8,
                                   size_kw["width"] // 8, device=device))
        sync(device)
        print(f"  warm-up decode ({m}): {time.perf_counter() - t1:.2f} s", flush=True)
    sync(device)
    print(f"  setup (random umT5, VAE, {len(modes)} DiTs, warm-up): {time.perf_counter() - t0:.1f} s", flush=True)
    return pipes


def finish_mode(tp, r, size_kw, args, budget):
    """The remaining parts of one mode (negative prompt, skipped-step time, cache proxy) and its composed rows."""
    t0 = tp._now()
    tp.pipe.encode_prompt(NEGATIVE)
    r["t_text_full"] = r["t4_text"] + (tp._now() - t0)
    r["t_skip"] = skipped_step_time(tp.pipe, size_kw, r["mode"])
    r["n_dit"], r["n_dit_source"] = proxy_cache_steps(tp, r, size_kw, args, budget)
    r.update(compose(r, r["n_dit"]))


def main(argv=None):
    args = parse_args(argv)
    budget = Budget(args.budget)
    device = torch.device(args.device)
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    size_kw = dict(views=4, width=64, height=64, frames=9) if args.tiny else dict(views=4, width=832, height=480,
                                                                                  frames=81)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    print(f"bench_fastgen: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}, torch "
          f"{torch.__version__}, diffusers {diffusers.__version__}; {'tiny' if args.tiny else '1.3B'} DiT "
          f"{str(dtype)[6:]}, {size_kw['views']} views x {size_kw['frames']} frames x "
          f"{size_kw['width']}x{size_kw['height']}; VAE {args.vae_dtype}"
          f"{', channels-last decode' if args.decode_channels_last else ''}; budget {args.budget:g} s", flush=True)
    pipes = build_pipelines(args, modes, device, dtype, size_kw)
    # rough first estimates (H200, issue 13), replaced by measurements as they come in
    est = {"cfg": 0.1 if args.tiny else 7.0, "text": 1.0, "decode": 1.0 if args.tiny else 25.0}
    results = []
    for m in modes:  # the essentials of every mode first
        print(f"mode {m}: CFG steps and the 4-step run", flush=True)
        r = measure_mode(pipes[m], m, size_kw, args, budget, est)
        if r is None:
            continue
        results.append(r)
        print(f"  t_cfg {r['t_cfg']:.3f} s/step (steps {', '.join(f'{t:.3f}' for t in r['t_cfg_all'])})", flush=True)
        if "t_4step" in r:
            print(f"  4-step run {r['t_4step']:.2f} s (text {r['t4_text']:.2f}, decode {r['t_decode']:.2f}, steps "
                  f"{', '.join(f'{t:.3f}' for t in r['t4_steps'])})", flush=True)
    for r in results:
        if "t_4step" in r:
            finish_mode(pipes[r["mode"]], r, size_kw, args, budget)
    print()
    print(table(results, args))
    if budget.skipped:
        print("\nskipped for the budget: " + "; ".join(budget.skipped))
    print(f"\nwall time {budget.elapsed():.1f} s (budget {args.budget:g} s)")
    if args.json:
        atomic_write(Path(args.json), json.dumps({"args": vars(args), "results": results}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
