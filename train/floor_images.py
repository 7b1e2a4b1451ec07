"""Single frames of the floor alone, captioned "floor": the video stage's image part with --image-source floor.

Why: the floor's checkered lattice is learned from single frames of the floor alone (the floor probe, call 23a in
benchmarks/TINY_MODEL.md "Floors learned on single frames carry over to video"), and the video stage that brings
the objects back washes it out again (call 23b). Whole scenes' frames beside the clips did not keep it (a CPU
pilot of --image-weight with the clips' own frames). These images keep the floor in front of the DiT for the
whole stage, under their own caption (train/text.py FLOOR_WORD) so that the empty caption, guidance's negative,
goes on meaning any scene; with the empty caption, guidance inflated the objects (call 21d).

The frames are rendered once, when the stage starts, from random training cameras of the data's scene style
(one view, one frame: the floor does not move), and encoded once with the autoencoder, which the video stage
does not train.
"""
from __future__ import annotations

import random
from typing import Callable

import torch

from ..synth.dataset import random_rig
from ..synth.render import render
from ..synth.scenes import Scene, scene_style

FLOOR_IMAGES = 4096      # half the floor probe's 8,192: rendered before the stage's clock starts (about 25 s on
                         # the device calls' CPU, beside the rendering workers)
ENCODE_CHUNK = 256


def floor_only_frames(count: int, seed, style: str, height: int, width: int,
                      align_floor: bool | None = None) -> torch.Tensor:
    """[count, 1, H, W, 3] float32 in 0..1: the floor of scene style `style` (no objects) from `count` random
    training cameras of that style (`seed`: anything random.Random takes; align_floor: synth/dataset.random_rig's,
    the style's own unless given)."""
    look = scene_style(style)
    aligned = look.align_floor if align_floor is None else align_floor
    scene = Scene(objects=(), num_frames=1, checker_size=look.checker_size)
    rng = random.Random(seed)
    return torch.stack([render(scene, random_rig(rng, 1, 1, width / height, radius=look.camera_radius,
                                                   align_floor=aligned), height, width)[0] for _ in range(count)])


class FloorImages:
    """`count` floor-only frames as latents [count, C, 1, h, w] on the device; `batch(n)` draws n of them
    (with replacement, from its own generator) as single-view samples [n, 1, C, 1, h, w]."""

    def __init__(self, encode_video: Callable[[torch.Tensor], torch.Tensor], style: str, height: int, width: int,
                 seed: int, device, count: int | None = None):
        count = FLOOR_IMAGES if count is None else int(count)
        frames = floor_only_frames(count, seed=f"camgrid.train.floor_images:{seed}", style=style, height=height,
                                   width=width)
        with torch.no_grad():
            self.latents = torch.cat([encode_video(frames[i:i + ENCODE_CHUNK].to(device))
                                      for i in range(0, count, ENCODE_CHUNK)])
        self.generator = torch.Generator(device="cpu").manual_seed(int(seed))

    def __len__(self) -> int:
        return self.latents.shape[0]

    def batch(self, n: int) -> torch.Tensor:
        pick = torch.randint(len(self), (n,), generator=self.generator)
        return self.latents[pick.to(self.latents.device)][:, None]
