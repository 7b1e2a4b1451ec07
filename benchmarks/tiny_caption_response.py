"""Does the built-in model know which colour has which shape? A diagnosis of its blobs (benchmarks/TINY_MODEL.md,
"The model does not bind shapes to colours").

    python benchmarks/tiny_caption_response.py [DIR ...] [--captions 6] [--mode syncam] [--steps N]

Each caption names two objects of different shapes ("a red sphere and a blue box", colours drawn from the palette
with a seed of its own). Three batches are generated from the same noise: the captions, the same captions with the
two shapes swapped ("a red box and a blue sphere"), and the captions with the second colour replaced by one not in
them. The table gives, per model folder, how far the generated latents move (||b - a|| / ||a||, mean and range
over the captions) for the shape swap and for the colour change, and how far the text encoder's features at the
two colour words move under the shape swap (0: the encoder cannot tell the two captions' bindings apart). A model
that draws a sphere where the caption puts one moves its latents about as far for the swap as for the colour
change; one that ignores the binding barely moves. CPU: about 2.5 min a folder for 6 captions at 20 steps.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.synth.scenes import PALETTE, SHAPES, caption_for  # noqa: E402
from camgrid.train.builtin import load_builtin  # noqa: E402
from camgrid.train.demo import demo_rig  # noqa: E402

CAPTION_SEED = 77     # the captions' colours and shape order
NOISE_SEED = 5
COLOUR_WORDS = (1, 5)   # word positions of the two colours in "a C S and a C S"


def two_objects(colours, shapes) -> str:
    """The data's caption for two objects: "a C S and a C S" (COLOUR_WORDS are its colours' positions)."""
    return caption_for([SimpleNamespace(colour=c, shape=s) for c, s in zip(colours, shapes)])


def caption_triples(count: int, seed: int = CAPTION_SEED) -> list[tuple[str, str, str]]:
    """(caption, its shapes swapped, its second colour replaced by one not in it), `count` of them."""
    rng, palette, triples = random.Random(seed), list(PALETTE), []
    for _ in range(count):
        colours = rng.sample(palette, 2)
        shapes = list(SHAPES) if rng.random() < 0.5 else list(reversed(SHAPES))
        other = rng.choice([c for c in palette if c not in colours])
        triples.append((two_objects(colours, shapes), two_objects(colours, shapes[::-1]),
                        two_objects([colours[0], other], shapes)))
    return triples


def relative_change(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||b - a|| / ||a|| over every dimension but the first: [B, ...] -> [B]."""
    return (b - a).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1)


@torch.no_grad()
def measure(model, captions: int, mode: str = "syncam", steps=None) -> dict:
    triples = caption_triples(captions)
    cams = model.camera_embedding(demo_rig(model))
    base, swapped, recoloured = ([t[k] for t in triples] for k in range(3))
    # the same seed and batch size: grid i starts from the same noise in all three batches
    lat = [model.generate_latents(c, cams, mode, steps=steps, seed=NOISE_SEED) for c in (base, swapped, recoloured)]
    feats = [model.text.encode(c).cpu() for c in (base, swapped)]
    words = list(COLOUR_WORDS)
    return {"shape_swap": relative_change(lat[0], lat[1]), "colour_change": relative_change(lat[0], lat[2]),
            "colour_word_binding": relative_change(feats[0][:, words], feats[1][:, words])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("models", nargs="*", default=[None], help="model folders (default: the shipped assets/)")
    p.add_argument("--captions", type=int, default=6)
    p.add_argument("--mode", default="syncam")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    args = p.parse_args()
    print(f"caption response ({args.captions} two-object captions, mode {args.mode}, the same noise per caption)\n")
    print("| folder | latents moved: shape swap | latents moved: colour change | swap / change "
          "| colour-word features moved by the swap |")
    print("|---|---:|---:|---:|---:|")
    for folder in args.models:
        r = measure(load_builtin(folder), args.captions, args.mode, args.steps)
        s, c, b = r["shape_swap"], r["colour_change"], r["colour_word_binding"]
        print(f"| {folder or 'assets'} | {s.mean():.3f} ({s.min():.3f}-{s.max():.3f}) | {c.mean():.3f} "
              f"({c.min():.3f}-{c.max():.3f}) | {s.mean() / c.mean():.3f} | {b.mean():.3f} |")


if __name__ == "__main__":
    main()
