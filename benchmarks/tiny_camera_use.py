"""Does the built-in model read its cameras? Its denoising loss with each scene's true rig against a wrong rig.

    python benchmarks/tiny_camera_use.py [DIR ...] [--scenes 24] [--seed 0] [--sigmas 0.3,0.5,0.7,0.9]
                                         [--arc-span LOW,HIGH] [--modes syncam,hard,soft]

For held-out scenes of the model's own data (its resolution, frames, scene style), the true videos are encoded
and noised to fixed levels sigma with fixed noise; the DiT predicts the velocity in each multi-view mode, and
the flow-matching error (train/objective.py) is measured on views 1..V-1 (view 0 is the reference every other
camera is given relative to, so its own embedding is the identity whatever the rig). The same inputs are
given three camera embeddings:

  true        the scene's own rig;
  other rig   the rig of the next held-out scene (another random rig of the same kind: views placed elsewhere);
  at view 0   every view told it stands where view 0 stands (all embeddings the identity).

A model that draws each view for its camera predicts better with the true rig, and more so at high noise,
where the layout of each view is still open. The gap says how much of what the views exchange depends on
where the cameras are, next to the gain of the mode over independent generation (which sees no camera and no
other view). Paired over scenes: the share of scenes where the true rig is better and a Wilcoxon signed-rank
p-value (train/claims.py). `--arc-span`: held-out orbit arcs of that span (degrees) instead of the training
default, rigs on which views that copy each other are wrong. CPU: about 4 min a folder at 24 scenes (forward
passes only).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.model.sampling import NUM_TRAIN_TIMESTEPS  # noqa: E402
from camgrid.synth.dataset import check_arc_span  # noqa: E402
from camgrid.train.builtin import load_builtin  # noqa: E402
from camgrid.train.claims import signed_rank_test  # noqa: E402
from camgrid.train.cli import parse_arc_span  # noqa: E402

HELD_OUT_SEED, NOISE_SEED = 777, 1
SIGMAS = (0.3, 0.5, 0.7, 0.9)
VARIANTS = ("true", "other rig", "at view 0")
BATCH = 8


def held_out(model, count: int, seed: int, arc_span=None):
    """`count` scenes' latents [N, V, C, T, h, w], text features and true camera embeddings [N, V, T, 12]."""
    data = model.scenes(count, HELD_OUT_SEED + seed, views=4, arc_span=arc_span)
    items = [data[i] for i in range(count)]
    with torch.no_grad():
        latents = torch.stack([model.ae.encode(torch.as_tensor(it["videos"]).to(model.device)) for it in items])
    context = model.encode_prompt([it["caption"] for it in items])
    cameras = torch.stack([model.camera_embedding(it["rig"]) for it in items]).to(model.device)
    return latents.float(), context, cameras


def camera_variants(cameras: torch.Tensor) -> dict:
    """{variant: [N, V, T, 12]}: the true rigs, each scene given the next scene's rig, every view at view 0."""
    # view 0's embedding is the identity pose in every rig (cameras are given relative to it)
    return {"true": cameras, "other rig": cameras.roll(1, 0), "at view 0": cameras[:, :1].expand_as(cameras).clone()}


@torch.no_grad()
def view_errors(dit, latents, context, cameras, mode: str, noise, sigmas) -> torch.Tensor:
    """[N, S]: each scene's mean squared velocity error on views 1..V-1 at each noise level in `sigmas`."""
    out = torch.zeros(len(latents), len(sigmas), dtype=torch.float64)
    target = noise - latents
    for j, s in enumerate(sigmas):
        x = (1 - s) * latents + s * noise
        for i in range(0, len(x), BATCH):
            rows = slice(i, i + BATCH)
            t = torch.full((len(x[rows]),), NUM_TRAIN_TIMESTEPS * s, device=x.device)
            pred = dit(x[rows], t, context[rows], mode=mode, camera=cameras[rows]).float()
            out[rows, j] = (pred - target[rows])[:, 1:].pow(2).mean(dim=(1, 2, 3, 4, 5)).double().cpu()
    return out


def camera_use(model, count: int = 24, seed: int = 0, sigmas=SIGMAS, arc_span=None, modes=None) -> dict:
    """{mode: {variant: [N, S] errors}} for independent (true rig only: it reads no camera) and every mode of the
    model that reads cameras (or those of them in `modes`), on the same scenes, noise and levels."""
    readers = [m for m in model.modes() if m != "independent"]
    unknown = sorted(set(modes or ()) - set(readers))
    if unknown:
        raise ValueError(f"--modes: {', '.join(unknown)} is not a camera-reading mode of this model "
                         f"(it has {', '.join(readers)})")
    latents, context, cameras = held_out(model, count, seed, arc_span)
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(NOISE_SEED + seed)).to(latents.device)
    dit = model.dit.eval()
    results = {"independent": {"true": view_errors(dit, latents, context, cameras, "independent", noise, sigmas)}}
    for mode in (m for m in readers if modes is None or m in modes):
        results[mode] = {name: view_errors(dit, latents, context, cams, mode, noise, sigmas)
                         for name, cams in camera_variants(cameras).items()}
    return results


def gap(wrong: torch.Tensor, true: torch.Tensor) -> dict:
    """How much worse `wrong` [N] is than `true` [N]: relative difference of the means, the share of scenes where
    true is lower, and the signed-rank p-value of the paired differences."""
    return {"percent": 100 * float(wrong.mean() / true.mean() - 1), "true_lower": float((true < wrong).double().mean()),
            "p": signed_rank_test((wrong - true).tolist())}


def format_table(results: dict, sigmas=SIGMAS) -> str:
    base = results["independent"]["true"]
    lines = ["| mode | sigma | error, true rig | other rig | at view 0 | true rig against independent |",
             "|---|---|---:|---:|---:|---:|"]
    for mode, errors in results.items():
        if mode == "independent":
            continue
        for label, cols in [("all", slice(None))] + [(f"{s:g}", slice(j, j + 1)) for j, s in enumerate(sigmas)]:
            true = errors["true"][:, cols].mean(1)
            cells = []
            for name in VARIANTS[1:]:
                g = gap(errors[name][:, cols].mean(1), true)
                cells.append(f"{g['percent']:+.1f} % (true lower in {g['true_lower']:.2f}, p = {g['p']:.3f})")
            vs = 100 * float(true.mean() / base[:, cols].mean() - 1)
            lines.append(f"| {mode} | {label} | {float(true.mean()):.4f} | {' | '.join(cells)} | {vs:+.1f} % |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", default=[None], help="model folders (default: the shipped assets/)")
    p.add_argument("--scenes", type=int, default=24)
    p.add_argument("--seed", type=int, default=0, help="other held-out scenes and noise")
    p.add_argument("--sigmas", default=",".join(f"{s:g}" for s in SIGMAS), help="noise levels, comma-separated")
    p.add_argument("--arc-span", default="", help="LOW,HIGH degrees of the held-out orbit arcs")
    p.add_argument("--modes", default="", help="comma-separated camera-reading modes (default: all the model has)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args()
    sigmas = tuple(float(s) for s in args.sigmas.split(","))
    arc_span = check_arc_span(parse_arc_span(args.arc_span))
    for folder in args.models:
        model = load_builtin(folder, device=args.device)
        rigs = f", orbit arcs {arc_span[0]:g}-{arc_span[1]:g} degrees" if arc_span else ""
        print(f"\n{folder or 'assets'}: {args.scenes} held-out scenes x 4 views{rigs}, seed {args.seed}; velocity "
              f"error on views 1-3 (mean squared), the wrong rigs against the true one\n")
        modes = [m for m in args.modes.split(",") if m] or None
        print(format_table(camera_use(model, args.scenes, args.seed, sigmas, arc_span, modes), sigmas))


if __name__ == "__main__":
    main()
