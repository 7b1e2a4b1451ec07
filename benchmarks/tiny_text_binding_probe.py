"""Can a cross-attention reader learn which shape a caption gives each colour, from the built-in text encoder?
The mechanism the DiT needs to draw "a red sphere and a blue box" right, isolated from everything else
(benchmarks/TINY_MODEL.md, "The model does not bind shapes to colours").

    python benchmarks/tiny_text_binding_probe.py [--steps 200,1000] [--seeds 3]

A fresh text encoder (train/text.py, the built-in model's sizes), with and without `phrases`, is trained jointly
with a one-head cross-attention probe: the query is a learned embedding of one object's colour (what a pixel of
that object knows), the keys and values the encoder's features; the probe must say the object's shape. Captions
are the data's grammar with 2-4 objects, random colours and shapes. The table gives the accuracy on 2000 fresh
two-object captions whose shapes differ ("a red sphere and a blue box"), where the words alone, without their
order, leave exactly chance (0.5). CPU: about 2.5 s a run per 200 steps.
"""
from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn as nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

from camgrid.synth.scenes import MAX_OBJECTS, PALETTE, SHAPES, caption_for  # noqa: E402
from camgrid.train.text import TinyTextEncoder, tokenize  # noqa: E402

COLOURS = list(PALETTE)


def sample_queries(rng: random.Random, count: int, objects=None, mixed_shapes: bool = False):
    """(captions, queried colour index [count], its shape index [count]); objects: a fixed count or 2-4."""
    captions, colours, shapes = [], [], []
    for _ in range(count):
        n = objects or rng.randint(2, MAX_OBJECTS)
        names = rng.sample(COLOURS, n)
        forms = list(rng.sample(SHAPES, 2)) if mixed_shapes and n == 2 else [rng.choice(SHAPES) for _ in range(n)]
        captions.append(caption_for([SimpleNamespace(colour=c, shape=s) for c, s in zip(names, forms)]))
        k = rng.randrange(n)
        colours.append(COLOURS.index(names[k]))
        shapes.append(SHAPES.index(forms[k]))
    return captions, torch.tensor(colours), torch.tensor(shapes)


class BindingProbe(nn.Module):
    def __init__(self, phrases: bool, text_dim: int = 64):
        super().__init__()
        self.text = TinyTextEncoder(text_dim, phrases=phrases)
        self.colour = nn.Embedding(len(COLOURS), text_dim)
        self.attend = nn.MultiheadAttention(text_dim, 1, batch_first=True)
        self.head = nn.Sequential(nn.Linear(text_dim, text_dim), nn.GELU(), nn.Linear(text_dim, len(SHAPES)))

    def forward(self, captions, colours):
        ids = tokenize(captions, self.text.max_tokens)
        feats = self.text(ids)
        read, _ = self.attend(self.colour(colours)[:, None], feats, feats, key_padding_mask=ids == 0)
        return self.head(read[:, 0])


def run(phrases: bool, steps: int, seed: int, batch: int = 64, lr: float = 1e-3) -> float:
    """Accuracy on held-out two-object, two-shape captions after `steps` steps of training."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    probe = BindingProbe(phrases)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    for _ in range(steps):
        captions, colours, shapes = sample_queries(rng, batch)
        loss = nn.functional.cross_entropy(probe(captions, colours), shapes)
        opt.zero_grad()
        loss.backward()
        opt.step()
    captions, colours, shapes = sample_queries(random.Random(10_000 + seed), 2000, objects=2, mixed_shapes=True)
    with torch.no_grad():
        return float((probe(captions, colours).argmax(1) == shapes).float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", default="200,1000", help="comma-separated training lengths")
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    print("accuracy on 2000 held-out two-object captions with different shapes (chance and bag of words: 0.5)\n")
    print("| text encoder | " + " | ".join(f"{s} steps (seeds 0-{args.seeds - 1})" for s in steps) + " |")
    print("|---|" + "---:|" * len(steps))
    for phrases in (False, True):
        cells = []
        for s in steps:
            acc = [run(phrases, s, seed) for seed in range(args.seeds)]
            cells.append(" ".join(f"{a:.3f}" for a in acc))
        print(f"| {'phrases' if phrases else 'plain'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
