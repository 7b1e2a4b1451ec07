"""Does the built-in model draw a sphere where its caption says sphere, and a box where it says box?

    python benchmarks/tiny_shape_accuracy.py [DIR ...] [--scenes 24] [--train-scenes 64] [--mode syncam] [--steps N]
                                             [--seed 0] [--student] [--cfg G ...]

The judge is a small CNN that tells a sphere from a box by one object's silhouette and shading (a 16x16 crop of
its colour mask and brightness, synth/metric.py's colour segmentation). It is trained per model folder on that
model's autoencoder round trip of ground-truth renders (the training distribution, the model's scene style), so
it sees the same blur as the generated frames; its accuracy on held-out round trips is the ceiling. Then each
held-out scene's caption and rig are generated, and every usable object (found, whole, apart from the others;
synth/metric.py Detections.usable) in frames 0, 8 and 16 of every view is judged against the shape the caption
gives its colour. "Mixed" counts only scenes whose objects have different shapes: there the words alone do not
say which object is which (benchmarks/TINY_MODEL.md, "The model does not bind shapes to colours"), and a model
that draws one shape for everything scores about 0.5. CPU: about 5 min a folder at 24 scenes (the teacher's
20 steps are most of it). --seed draws other held-out scenes and other noise (the judge stays the same), so a
difference between models can be checked on a second sample. --student judges the few-step student's grids
(what the quick start shows; the folder's LoRA), with the same judge.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.synth.metric import largest_components, object_centroids, segment_colours  # noqa: E402
from camgrid.synth.render import render  # noqa: E402
from camgrid.synth.scenes import SHAPES  # noqa: E402
from camgrid.train.builtin import load_builtin  # noqa: E402

TRAIN_SEED, HELD_OUT_SEED, NOISE_SEED = 4242, 4343, 5
JUDGED_FRAMES = (0, 8, 16)
CROP = 16
MIN_PIXELS = 20


def crops(frames: torch.Tensor, colours):
    """Crops of every usable object in frames [V, F, H, W, 3] (JUDGED_FRAMES only): ([N, 2, CROP, CROP] of mask and
    brightness, the object's index into `colours` [N])."""
    frames = frames[:, [f for f in JUDGED_FRAMES if f < frames.shape[1]]]
    det = object_centroids(frames, colours, min_pixels=MIN_PIXELS)
    labels = segment_colours(frames, colours)
    bright = frames.amax(-1)
    h, w = frames.shape[2:4]
    out, which = [], []
    for k, v, f in det.usable.nonzero().tolist():
        mask = largest_components((labels[v, f] == k)[None])[0]   # the pixels the detection measured
        ys, xs = mask.nonzero(as_tuple=True)
        cy, cx = (ys.min() + ys.max()).item() / 2, (xs.min() + xs.max()).item() / 2
        half = max(ys.max() - ys.min(), xs.max() - xs.min()).item() / 2 + 1.5
        # a square window around the object, sampled to CROP x CROP (outside the frame: zeros)
        grid_y = (torch.linspace(cy - half, cy + half, CROP) + 0.5) / h * 2 - 1
        grid_x = (torch.linspace(cx - half, cx + half, CROP) + 0.5) / w * 2 - 1
        grid = torch.stack(torch.meshgrid(grid_y, grid_x, indexing="ij")[::-1], -1)[None]
        planes = torch.stack([mask.float(), bright[v, f] * mask])[None]
        out.append(F.grid_sample(planes, grid, align_corners=False)[0])
        which.append(k)
    if not out:
        return torch.zeros(0, 2, CROP, CROP), torch.zeros(0, dtype=torch.long)
    return torch.stack(out), torch.tensor(which)


def judge() -> nn.Module:
    return nn.Sequential(nn.Conv2d(2, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(32 * (CROP // 4) ** 2, len(SHAPES)))


def labelled_crops(frames_per_scene, scenes):
    """All crops of the scenes' frames with their true shape indices, and whether each scene's shapes differ."""
    xs, ys, mixed = [], [], []
    for frames, scene in zip(frames_per_scene, scenes):
        colours = [o.colour for o in scene.objects]
        c, k = crops(frames, colours)
        xs.append(c)
        ys.append(torch.tensor([SHAPES.index(scene.objects[i].shape) for i in k.tolist()], dtype=torch.long))
        mixed.append(torch.full((len(k),), len({o.shape for o in scene.objects}) > 1))
    return torch.cat(xs), torch.cat(ys), torch.cat(mixed)


def round_trips(model, data, count):
    scenes, rigs, frames = [], [], []
    for i in range(count):
        scene, rig = data.scene_and_rig(i)
        with torch.no_grad():
            x = render(scene, rig, model.height, model.width).clamp(0, 1)
            frames.append(model.ae.decode(model.ae.encode(x)).cpu())
        scenes.append(scene)
        rigs.append(rig)
    return scenes, rigs, frames


def train_judge(x, y, steps: int = 400, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = judge()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x), (128,), generator=g)
        loss = F.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def accuracy(net, x, y, mask=None) -> tuple[float, int]:
    if mask is not None:
        x, y = x[mask], y[mask]
    if len(y) == 0:
        return float("nan"), 0
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean()), len(y)


def sphere_share(net, x) -> float:
    """The share of crops the judge calls a sphere (what a model draws when it draws one shape for all)."""
    if len(x) == 0:
        return float("nan")
    with torch.no_grad():
        return float((net(x).argmax(1) == SHAPES.index("sphere")).float().mean())


def measure(model, scenes: int = 24, train_scenes: int = 64, mode: str = "syncam", steps=None, seed: int = 0,
            cfgs=(None,)) -> list[dict]:
    """One result per guidance in `cfgs` (None: the model's own), all judged by one judge on the same held-out
    scenes and noise."""
    train_scenes_, _, train_frames = round_trips(model, model.scenes(train_scenes, TRAIN_SEED), train_scenes)
    x, y, _ = labelled_crops(train_frames, train_scenes_)
    if len(y) < 2 * MIN_PIXELS:
        raise ValueError(f"only {len(y)} usable objects in {train_scenes} scenes at {model.height}x{model.width}: "
                         f"too few to train the judge (objects need {MIN_PIXELS} pixels); give more --train-scenes")
    net = train_judge(x, y)
    held_scenes, held_rigs, held_frames = round_trips(model, model.scenes(scenes, HELD_OUT_SEED + seed), scenes)
    gx, gy, gmixed = labelled_crops(held_frames, held_scenes)
    truth = {"train_crops": len(y), "truth": accuracy(net, gx, gy), "truth_mixed": accuracy(net, gx, gy, gmixed)}
    cams = torch.stack([model.camera_embedding(r) for r in held_rigs])
    results = []
    for cfg in cfgs:
        with torch.no_grad():
            lat = model.generate_latents([s.caption for s in held_scenes], cams, mode, steps=steps, cfg=cfg,
                                        seed=NOISE_SEED + seed)
        px, py, pmixed = labelled_crops(list(model.decode(lat)), held_scenes)
        results.append({**truth, "cfg": model.sampling["cfg"] if cfg is None else cfg,
                        "generated": accuracy(net, px, py), "generated_mixed": accuracy(net, px, py, pmixed),
                        "generated_sphere_share": sphere_share(net, px)})
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", default=[None], help="model folders (default: the shipped assets/)")
    p.add_argument("--scenes", type=int, default=24)
    p.add_argument("--train-scenes", type=int, default=64)
    p.add_argument("--mode", default="syncam")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="held-out scenes and noise: 0 is the recorded sample")
    p.add_argument("--student", action="store_true", help="generate with the folder's few-step student")
    p.add_argument("--cfg", type=float, nargs="+", default=[None], metavar="G",
                   help="guidance values to generate with, a row each (default: the model's own)")
    args = p.parse_args()
    print(f"shape accuracy ({args.scenes} held-out scenes x 4 views, frames {JUDGED_FRAMES}, mode {args.mode}; "
          f"the judge trained on {args.train_scenes} scenes' round trips; seed {args.seed}"
          f"{'; the few-step student' if args.student else ''})\n")
    print("| folder | guidance | round trip: all | round trip: mixed | generated: all | generated: mixed "
          "| generated judged sphere |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for folder in args.models:
        model = load_builtin(folder, student=args.student)
        for r in measure(model, args.scenes, args.train_scenes, args.mode, args.steps, args.seed, args.cfg):
            cell = lambda key: f"{r[key][0]:.3f} (n={r[key][1]})"   # noqa: E731
            print(f"| {folder or 'assets'} | {r['cfg']:g} | {cell('truth')} | {cell('truth_mixed')} "
                  f"| {cell('generated')} | {cell('generated_mixed')} | {r['generated_sphere_share']:.2f} |")


if __name__ == "__main__":
    main()
