"""Distil the built-in model's autoencoder decoder into a tiny preview decoder (model/preview_decoder.py).

    python -m camgrid.train.preview_decoder          # -> assets/camgrid-tiny-preview-decoder.safetensors

Teacher: the decoder of whatever autoencoder the built-in model ships (`load_builtin().ae`, or the one in
`--builtin DIR`, a `camgrid train --out` folder), used only through its public `encode` / `decode`, so a
retrained or redesigned autoencoder needs no change here: rerun this one command after retraining it
(tests/test_preview_decoder.py fails while the shipped decoder was distilled from another teacher).
Student: `PreviewDecoder`, its spatial and temporal strides read off the teacher's latents and frames.
Data: synthetic scenes from synth/ (not the built-in model's training seed), encoded by the teacher; every
view also once more with its latent degraded (blurred, shrunk towards zero or noised), decoded by the
teacher too, because a sampler's early x0 estimates look like that and the preview must follow the
teacher there as well. Loss: mean squared error against the teacher's frames.
Report: PSNR against the teacher's frames on held-out scenes, for the student and for the best linear
latent -> RGB map fitted on the same training latents (what the live previews used before), upsampled to
full resolution; and CPU time of the teacher's and the student's decode of one grid.
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ..model.files import atomic_save
from ..model.preview_decoder import BUILTIN_PREVIEW_DECODER_FILE, PreviewDecoder, module_fingerprint, \
    save_preview_decoder
from ..synth.dataset import SyntheticMultiViewDataset
from .builtin import ASSETS_DIR, load_builtin
from .fit_preview import fit

HELD_OUT_SCENES = 12


@torch.no_grad()
def degrade(z: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of: a spatial blur, a shrink towards zero, added noise (what early x0 estimates look like)."""
    kind = int(torch.randint(3, (), generator=generator))
    amount = float(torch.rand((), generator=generator))
    if kind == 0:
        blurred = F.avg_pool3d(z, (1, 3, 3), stride=1, padding=(0, 1, 1), count_include_pad=False)
        return torch.lerp(z, blurred, 0.5 + 0.5 * amount)
    if kind == 1:
        return z * (0.4 + 0.5 * amount)
    return z + torch.randn(z.shape, generator=generator) * (0.1 + 0.4 * amount)


@torch.no_grad()
def distillation_pairs(ae, dataset, indices, degraded: bool, seed: int = 0):
    """(latents [N, C, T, h, w], teacher frames [N, F, H, W, 3], clean [N] bool) of every view of the given
    scenes, with `degraded`: each view a second time with a degraded latent (clean False)."""
    generator = torch.Generator().manual_seed(seed)
    latents, frames, clean = [], [], []
    for i in indices:
        z = ae.encode(dataset[i]["videos"]).float().cpu()
        for x, is_clean in ([(z, True), (degrade(z, generator), False)] if degraded else [(z, True)]):
            latents.append(x)
            frames.append(ae.decode(x).float().cpu())
            clean.append(torch.full((len(x),), is_clean))
    return torch.cat(latents), torch.cat(frames), torch.cat(clean)


def strides(latents: torch.Tensor, frames: torch.Tensor) -> tuple[int, int]:
    """(spatial, temporal) strides of the teacher, read off one latent and its frames."""
    spatial = frames.shape[-3] // latents.shape[-2]                             # frame height / latent height
    temporal = (frames.shape[1] - 1) // max(1, latents.shape[2] - 1)
    if spatial * latents.shape[-2] != frames.shape[-3] or spatial & (spatial - 1):
        raise ValueError(f"the teacher's spatial stride is not a power of two ({tuple(latents.shape)} -> "
                         f"{tuple(frames.shape)}): PreviewDecoder upsamples in 2x stages")
    return spatial, temporal


def frame_groups(frames: torch.Tensor, stride: int) -> torch.Tensor:
    """Frames [N, F, H, W, 3] -> per latent frame its group of `stride` frames [N*T, stride, H, W, 3]; the first
    latent frame's group is its one frame repeated (the causal first frame: only the last copy is shown)."""
    padded = torch.cat([frames[:, :1].expand(-1, stride - 1, -1, -1, -1), frames], 1)
    return padded.unflatten(1, (-1, stride)).flatten(0, 1)


def train_student(student, latents, targets, steps: int, batch: int, lr: float, seed: int, log=print) -> None:
    """Adam with a cosine learning-rate decay on batches of single latent frames drawn at random (the student
    decodes each latent frame on its own, so a whole view per sample would only cost more per step)."""
    generator = torch.Generator().manual_seed(seed)
    inputs = latents.transpose(1, 2).flatten(0, 1)                               # [N*T, C, h, w]
    groups = frame_groups(targets, student.temporal_stride)                      # [N*T, s, H, W, 3]
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    student.train()
    running, start = None, time.time()
    for step in range(1, steps + 1):
        pick = torch.randint(len(inputs), (batch,), generator=generator)
        loss = F.mse_loss(student.groups(inputs[pick]), groups[pick])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step % max(1, steps // 10) == 0 or step == steps:
            log(f"step {step}/{steps}  mse {running:.5f}  ({-10 * math.log10(max(running, 1e-12)):.1f} dB)  "
                f"{time.time() - start:.0f} s")
    student.eval()


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a.detach().float() - b.detach().float()) ** 2).mean().clamp(min=1e-12)))


def linear_preview_frames(latents: torch.Tensor, factors, bias, spatial: int, temporal: int) -> torch.Tensor:
    """What a linear latent -> RGB preview shows, at full resolution: each latent pixel's colour over its
    spatial x spatial patch and its group of frames (the first latent frame: one frame)."""
    rgb = ((latents.movedim(1, -1).double() @ factors + bias).clamp(-1, 1) + 1) / 2       # [N, T, h, w, 3]
    rgb = rgb.repeat_interleave(spatial, 2).repeat_interleave(spatial, 3)
    return torch.cat([rgb[:, :1], rgb[:, 1:].repeat_interleave(temporal, 1)], 1).float()


def best_of(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@torch.no_grad()
def compare(student, ae, train_latents, train_frames, held_latents, held_frames, spatial, temporal) -> dict:
    """Held-out PSNR (student, linear map) against the teacher, and CPU seconds to decode a 4-view grid."""
    factors, bias = fit(train_latents.movedim(1, -1).reshape(-1, train_latents.shape[1]).double(),
                        latent_pixel_colours(train_frames, spatial, temporal))
    report = {"psnr_student_db": round(psnr(student(held_latents), held_frames), 2),
              "psnr_linear_db": round(psnr(linear_preview_frames(held_latents, factors, bias, spatial, temporal),
                                           held_frames), 2),
              "held_out_views": int(len(held_latents))}
    grid = held_latents[:4]
    report["cpu_threads"] = torch.get_num_threads()
    report["teacher_grid_s"] = round(best_of(lambda: ae.decode(grid)), 4)
    report["student_grid_s"] = round(best_of(lambda: student(grid)), 4)
    report["teacher_first_frame_s"] = round(best_of(lambda: ae.decode(grid[:, :, :1])), 4)
    report["student_first_frame_s"] = round(best_of(lambda: student(grid[:, :, :1])), 4)
    return report


def latent_pixel_colours(frames: torch.Tensor, spatial: int, temporal: int) -> torch.Tensor:
    """[N, F, H, W, 3] -> [N*T*h*w, 3]: each latent pixel's mean colour (its patch, its group of frames)."""
    n, f, h, w, _ = frames.shape
    groups = frames[:, 1:].reshape(n, (f - 1) // temporal, temporal, h, w, 3).mean(2)
    per_latent_frame = torch.cat([frames[:, :1], groups], 1)
    pooled = F.avg_pool2d(per_latent_frame.permute(0, 1, 4, 2, 3).flatten(0, 1), spatial)
    return pooled.reshape(n, -1, 3, h // spatial, w // spatial).permute(0, 1, 3, 4, 2).reshape(-1, 3).double()


def scene_pairs(ae, args) -> dict:
    """Training and held-out (latents, frames, clean) of `args.scenes` scenes, rendered and decoded by the teacher,
    or read from `args.cache` when it holds the same teacher, scenes and seed (rendering is the slow part)."""
    key = {"teacher": module_fingerprint(ae), "scenes": args.scenes, "held_out": HELD_OUT_SCENES, "seed": args.seed}
    if args.cache and Path(args.cache).is_file():
        cached = torch.load(args.cache, weights_only=True)
        if cached.get("key") == key:
            print(f"scenes read from {args.cache}")
            return cached
    dataset = SyntheticMultiViewDataset(length=args.scenes + HELD_OUT_SCENES, seed=args.seed)
    start = time.time()
    pairs = {"key": key,
             "train": distillation_pairs(ae, dataset, range(args.scenes), degraded=True, seed=args.seed),
             "held": distillation_pairs(ae, dataset, range(args.scenes, args.scenes + HELD_OUT_SCENES), degraded=False)}
    print(f"{len(pairs['train'][0])} training views, {len(pairs['held'][0])} held-out views rendered and decoded by "
          f"the teacher in {time.time() - start:.0f} s")
    if args.cache:
        atomic_save(args.cache, lambda tmp: torch.save(pairs, tmp))
    return pairs


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--builtin", default=None, help="folder of the built-in model's files (default: assets/)")
    parser.add_argument("--out", default=str(ASSETS_DIR / BUILTIN_PREVIEW_DECODER_FILE), help="preview decoder file to write")
    parser.add_argument("--scenes", type=int, default=40, help="synthetic scenes to distil on")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=16, help="latent frames per step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--widths", default="32,32,16", help="feature widths, latent resolution first")
    parser.add_argument("--seed", type=int, default=7, help="dataset seed (not the built-in model's training data)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    parser.add_argument("--cache", default=None, help="file that keeps the rendered, teacher-decoded scenes for the "
                        "next run (reused when teacher, scenes and seed match)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    ae = load_builtin(args.builtin).ae
    pairs = scene_pairs(ae, args)
    (latents, frames, clean), (held_latents, held_frames, _) = pairs["train"], pairs["held"]
    spatial, temporal = strides(latents, frames)
    widths = [int(w) for w in args.widths.split(",")]
    if 2 ** (len(widths) - 1) != spatial:
        widths = (widths + [widths[-1]] * 8)[:int(math.log2(spatial)) + 1]   # one width per 2x stage
    torch.manual_seed(args.seed)
    student = PreviewDecoder(latents.shape[1], widths, temporal)
    train_student(student, latents, frames, args.steps, args.batch, args.lr, args.seed)
    report = compare(student, ae, latents[clean], frames[clean], held_latents, held_frames, spatial, temporal)
    report.update(scenes=args.scenes, steps=args.steps, params=sum(p.numel() for p in student.parameters()))
    print(report)
    path = save_preview_decoder(student, Path(args.out), module_fingerprint(ae), report)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
    return report


if __name__ == "__main__":
    main()
