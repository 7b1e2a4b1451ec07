"""Time to apply a rank-64 LoRA (lightx2v layout, every attention + FFN Linear of every block) to a GridDiT.

    python benchmarks/bench_lora.py                  # H200: 14B and 1.3B, bf16 and fp8, on the GPU and parked on the CPU
    python benchmarks/bench_lora.py --tiny           # the same table on a tiny model on the CPU (checks the script)
    python benchmarks/bench_lora.py --fp8-choice     # CPU: fp8 merge (dequantise, merge, requantise) vs unmerged branch

Random weights (bf16), the LoRA's tensors on the CPU in bf16 as read from a file, alpha = rank. Rows:
  floor        read + write every patched weight once (a bf16 clone on the device): the bandwidth bound
  in memory    apply_lora(model, state_dict) on a model on the device (2nd call: warm)
  from file    apply_lora(model, "lora.safetensors") (reading the file included)
  parked       the ComfyUI node path: the model on the CPU, a tensor-sharing copy patched with device=GPU
--fp8-choice prints, for a small model on the CPU, the one-time cost of merging into fp8 weights, the per-forward
cost of an unmerged LoRA branch instead, and the weight error of each (vs float32 W + delta).
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from safetensors.torch import save_file  # noqa: E402

from camgrid.model.config import get_config  # noqa: E402
from camgrid.model.dit import GridDiT  # noqa: E402
from camgrid.model.fp8 import FP8Linear, quantize_linear_weights, quantize_weight  # noqa: E402
from camgrid.model.lora import apply_lora, clone_for_patching  # noqa: E402

LINEARS = [f"{a}.{p}" for a in ("self_attn", "cross_attn") for p in "qkvo"] + ["ffn.0", "ffn.2"]


def random_model(cfg, device, dtype=torch.bfloat16, fp8=False, seed=0) -> GridDiT:
    with torch.device("meta"):
        model = GridDiT(cfg).to(dtype)
    model = model.to_empty(device=device)
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            fan_in = math.prod(p.shape[1:]) if p.ndim >= 2 else cfg.dim
            p.normal_(0.0, fan_in ** -0.5, generator=g)
    if fp8:
        quantize_linear_weights(model, fuse_gelu=False)
    return model.eval().requires_grad_(False)


def lightx2v_lora(cfg, rank=64, seed=1) -> dict:
    """diffusion_model.blocks.N.<linear>.lora_down/lora_up/alpha for every block Linear (bf16, CPU)."""
    g = torch.Generator().manual_seed(seed)
    sd, shapes = {}, {f"{a}.{p}": (cfg.dim, cfg.dim) for a in ("self_attn", "cross_attn") for p in "qkvo"}
    shapes.update({"ffn.0": (cfg.ffn_dim, cfg.dim), "ffn.2": (cfg.dim, cfg.ffn_dim)})
    for i in range(cfg.num_layers):
        for m, (out, inp) in shapes.items():
            key = f"diffusion_model.blocks.{i}.{m}"
            sd[key + ".lora_down.weight"] = (torch.randn(rank, inp, generator=g) * inp ** -0.5).bfloat16()
            sd[key + ".lora_up.weight"] = (torch.randn(out, rank, generator=g) * 0.01).bfloat16()
            sd[key + ".alpha"] = torch.tensor(float(rank), dtype=torch.bfloat16)
    return sd


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


def peak_gib(device, fn):
    if torch.device(device).type != "cuda":
        return fn(), float("nan")
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = fn()
    torch.cuda.synchronize()
    return out, (torch.cuda.max_memory_allocated() - base) / 2 ** 30


def patched_weights(model):
    return [m for n, m in model.named_modules() if n.startswith("blocks.") and n.split(".", 2)[-1] in LINEARS]


def bench_size(size, cfg, device, fp8, folder, rows):
    sd = lightx2v_lora(cfg)
    lora_gib = sum(t.numel() * t.element_size() for t in sd.values()) / 2 ** 30
    path = Path(folder) / f"{size}-rank64.safetensors"
    save_file(sd, str(path))
    model = random_model(cfg, device, fp8=fp8)
    storage = "fp8" if fp8 else "bf16"
    layers = patched_weights(model)

    def floor():
        with torch.no_grad():
            return [(m.weight_fp8 if isinstance(m, FP8Linear) else m.weight).clone() for m in layers]

    t, _ = timed(floor, device)
    rows.append((size, storage, "floor (clone patched weights)", t, float("nan"), lora_gib))
    for label in ("in memory (cold)", "in memory (warm)"):
        (t, _), peak = peak_gib(device, lambda: timed(lambda: apply_lora(model, sd, 1.0), device))
        rows.append((size, storage, label, t, peak, lora_gib))
    (t, _), peak = peak_gib(device, lambda: timed(lambda: apply_lora(model, path, -1.0), device))
    rows.append((size, storage, "from file", t, peak, lora_gib))
    if torch.device(device).type == "cuda":
        model = model.cpu()
        torch.cuda.empty_cache()
        (t, _), peak = peak_gib(device, lambda: timed(lambda: apply_lora(clone_for_patching(model), sd, 1.0,
                                                                         device=device), device))
        rows.append((size, storage, "parked on CPU, merged on GPU (node)", t, peak, lora_gib))
    del model
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def print_table(rows, device):
    name = torch.cuda.get_device_name() if torch.device(device).type == "cuda" else "CPU"
    print(f"\nrank-64 LoRA (lightx2v layout, {LINEARS} of every block) on {name}, torch {torch.__version__}\n")
    print("| model | weights | path | seconds | peak extra GiB | LoRA GiB |")
    print("|---|---|---|---:|---:|---:|")
    for size, storage, label, t, peak, lora in rows:
        print(f"| {size} | {storage} | {label} | {t:.3f} | {peak:.2f} | {lora:.3f} |")


# ---------------------------------------------------------------------------------------------
# fp8: merge vs unmerged branch (CPU)
# ---------------------------------------------------------------------------------------------
def add_branches(model, sd, strength=1.0):
    """The alternative to merging: y = layer(x) + strength * scale * up(down(x)) as forward hooks."""
    handles = []
    for name, mod in model.named_modules():
        key = f"diffusion_model.{name}"
        if key + ".lora_down.weight" not in sd:
            continue
        down = sd[key + ".lora_down.weight"].float()
        up = sd[key + ".lora_up.weight"].float() * (strength * float(sd[key + ".alpha"]) / down.shape[0])
        handles.append(mod.register_forward_hook(
            lambda m, args, out, d=down, u=up: out + F.linear(F.linear(args[0].to(d.dtype), d), u).to(out.dtype)))
    return handles


def cpu_timed(fn):
    """CPU seconds of this process (robust on a shared machine, unlike wall time), and fn's result."""
    t0 = time.process_time()
    out = fn()
    return time.process_time() - t0, out


def fp8_choice(threads):
    torch.set_num_threads(threads)
    cfg = get_config("wan-1.3b").replace(dim=512, ffn_dim=1536, num_heads=4, num_layers=4, text_dim=64, freq_dim=64)
    sd = lightx2v_lora(cfg, rank=64)
    ref = random_model(cfg, "cpu", torch.float32)
    exact = {}
    for name, mod in ref.named_modules():
        if f"diffusion_model.{name}.lora_down.weight" in sd:
            d, u = sd[f"diffusion_model.{name}.lora_down.weight"].float(), sd[f"diffusion_model.{name}.lora_up.weight"].float()
            exact[name] = (mod.weight.detach().clone(), mod.weight.detach() + u @ d)

    def err(get):
        num = sum(((get(n) - e) ** 2).sum() for n, (_, e) in exact.items())
        return math.sqrt(num / sum((e ** 2).sum() for _, e in exact.values()))

    def deq(q, s):
        return q.float() * (s[:, None] if s.ndim else s)

    merged = random_model(cfg, "cpu", torch.float32, fp8=True)
    apply_lora(random_model(cfg, "cpu", torch.float32, fp8=True), sd, 1.0)  # warm-up
    t_merge, _ = cpu_timed(lambda: apply_lora(merged, sd, 1.0))
    mods = dict(merged.named_modules())
    e_after = err(lambda n: deq(mods[n].weight_fp8, mods[n].scale_weight))
    e_before = err(lambda n: deq(*quantize_weight(exact[n][1])))
    e_branch = err(lambda n: deq(*quantize_weight(exact[n][0])) + (exact[n][1] - exact[n][0]))

    x = torch.randn(1, 2, 16, 2, 16, 16)
    ctx, ts = torch.randn(1, 32, cfg.text_dim), torch.tensor([500.0])
    plain = random_model(cfg, "cpu", torch.float32, fp8=True)
    with torch.no_grad():
        plain(x, ts, ctx)  # warm-up
        t_plain = min(cpu_timed(lambda: plain(x, ts, ctx))[0] for _ in range(3))
        add_branches(plain, sd)
        plain(x, ts, ctx)
        t_branch = min(cpu_timed(lambda: plain(x, ts, ctx))[0] for _ in range(3))
    forwards = 100  # 50 steps x 2 CFG branches
    print(f"\nfp8 weights + rank-64 LoRA, {cfg.num_layers}-block {cfg.dim}-wide DiT, CPU seconds ({threads} thread(s)), "
          f"one forward = 2 views x 2 latent frames x 16x16 latent (512 tokens)\n")
    print("| way | one-time CPU s | extra CPU s per forward | per 50-step CFG sample | weight error vs fp32 W+dW |")
    print("|---|---:|---:|---:|---:|")
    print(f"| merge before quantising (Q(W+dW)) | - | 0 | 0 | {e_before:.4f} |")
    print(f"| merge after: dequantise, merge, requantise (apply_lora) | {t_merge:.3f} | 0 | 0 | {e_after:.4f} |")
    print(f"| unmerged branch (Q(W) + up@down) | 0 | {t_branch - t_plain:.4f} | {forwards * (t_branch - t_plain):.2f} "
          f"| {e_branch:.4f} |")
    print(f"\n(forward without LoRA: {t_plain:.4f} s, with the branch: {t_branch:.4f} s)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny config on the CPU (checks the script)")
    ap.add_argument("--fp8-choice", action="store_true", help="CPU table: fp8 merge vs unmerged LoRA branch")
    ap.add_argument("--sizes", default="wan-14b,wan-1.3b")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for --fp8-choice")
    args = ap.parse_args()
    if args.fp8_choice:
        fp8_choice(args.threads)
        return
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    sizes = ["tiny"] if args.tiny else args.sizes.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in sizes:
            for fp8 in (False, True):
                bench_size(size, get_config(size), device, fp8, folder, rows)
    print_table(rows, device)


if __name__ == "__main__":
    main()
