"""The floor's lattice, measured: how well a frame's near floor matches some true checkered floor (used by
tiny_floor_probe.py; benchmarks/TINY_MODEL.md "The lattice, given the steps").

The near-floor eta (tiny_floor_probe.py) scores two tones, which camouflage has as well as checkers. The lattice
match asks for the squares: binarise the frame's bottom rows at their own Otsu split (grey pixels only, so objects
drop out) and find the true floor that agrees best. The true floors are a bank of renders from random training
cameras of the model's scene style (no objects), binarised the same way. The score is the best bank floor's share of
agreeing pixels: 0.5 for noise, near 1 for a checkered floor the bank covers. A render of an unseen camera scores
below 1 only because the bank is finite (about 0.90 with 4,096 floors at 48x80), so a score is read against the
truth's under the same bank. A floor of the right tones and scale with no lattice (camouflage) scores in between
(about 0.74).
"""
from __future__ import annotations

import torch

from camgrid.train.floor_images import floor_only_frames

LATTICE_TOP = 28           # the bottom 20 of 48 rows: floor from every training camera, squares large
GREY_MAX_CHROMA = 0.12     # max - min of a pixel's RGB: the floor and sky are grey, the objects are not
BANK_SEED = 99             # not the probe's training (7) or held-out (321) cameras


def floor_frames(count: int, seed: int = 7, style: str = "standard", height: int = 48,
                 width: int = 80, align_floor: bool | None = None) -> torch.Tensor:
    """[count, 1, H, W, 3]: the floor of scene style `style` from `count` random training cameras of that style (the
    video stage's floor images, train/floor_images.py, with the probe's seeds; align_floor: every camera looks
    along a grid line, synth/dataset.random_rig; the style's own unless given)."""
    return floor_only_frames(count, seed, style, height, width, align_floor)


def is_grey(frames: torch.Tensor) -> torch.Tensor:
    """[..., 3] -> [...]: the pixels whose colour spread is under GREY_MAX_CHROMA (floor, sky, shadows; not objects)."""
    return (frames.max(-1).values - frames.min(-1).values) < GREY_MAX_CHROMA


def otsu_split(values: torch.Tensor):
    """Otsu's two-level split of `values`: the values sorted (float64) and, for every split after the i-th of them,
    the share-weighted between-level variance; None for fewer than 50 or constant values."""
    v = values.flatten().double().sort().values
    n = v.numel()
    if n < 50 or v[0] == v[-1]:
        return None
    c = v.cumsum(0)
    k = torch.arange(1, n, dtype=torch.float64)
    return v, (k / n) * ((n - k) / n) * (c[:-1] / k - (c[-1] - c[:-1]) / (n - k)) ** 2


def otsu_threshold(values: torch.Tensor) -> float:
    """The split of `values` into two levels with the largest between-level variance (nan for fewer than 50 or
    constant values)."""
    split = otsu_split(values)
    if split is None:
        return float("nan")
    v, between = split
    i = int(between.argmax())
    return float((v[i] + v[i + 1]) / 2)


def floor_signs(frames: torch.Tensor) -> torch.Tensor:
    """[N, H, W, 3] -> [N, P]: each frame's near-floor pixels as +1 (light) / -1 (dark) about that frame's own
    Otsu split of its grey pixels, 0 where a pixel is not grey or the frame has too few grey pixels."""
    near = frames[:, LATTICE_TOP:]
    lum, grey = near.mean(-1), is_grey(near)
    signs = torch.zeros_like(lum)
    for i in range(len(frames)):
        t = otsu_threshold(lum[i][grey[i]])
        if t == t:                                               # not nan
            signs[i] = torch.where(lum[i] > t, 1.0, -1.0) * grey[i]
    return signs.flatten(1)


class LatticeBank:
    """`count` true floors of scene style `style` (random training cameras from BANK_SEED), as floor signs;
    align_floor: as floor_frames."""

    def __init__(self, style: str, count: int = 4096, height: int = 48, width: int = 80,
                 align_floor: bool | None = None):
        frames = torch.cat([floor_frames(min(512, count - i), BANK_SEED + i, style, height, width, align_floor)[:, 0]
                            for i in range(0, count, 512)])
        self.signs = floor_signs(frames)

    def match(self, frames: torch.Tensor) -> torch.Tensor:
        """[N, H, W, 3] -> [N]: the share of each frame's counted near-floor pixels that agree with the bank floor
        that agrees best (nan where no pixel counts)."""
        s = floor_signs(frames)
        counted = s.abs().sum(1)
        agree = (s @ self.signs.T).max(1).values / counted
        return torch.where(counted > 0, (1 + agree) / 2, torch.full_like(counted, float("nan")))

    def median(self, frames: torch.Tensor) -> float:
        """The median lattice match of `frames` [N, H, W, 3], rounded to 3 places."""
        return round(float(self.match(frames).nanmedian()), 3)
