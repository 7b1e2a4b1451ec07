"""The demo's novel views: given one view of a scene, does the built-in model draw the other views where their
cameras see it?

Text alone cannot say where the objects belong, and four views that look alike already score a low
reprojection error (benchmarks/TINY_MODEL.md: the copy control). So the demo also renders scenes of its caption on
its rig, gives view 0's true video to syncam (SourceVideo replace_view, held at NOVEL_VIEW_NOISE of the grid's
noise level: the setting the built-in model learned to follow, `camgrid train --given-view-share`), generates
the other views, and measures where they put each object (train/nvs.py placement_errors: the distance of its
generated centroid from its true one) against where copying view 0's layout would put it, on the same
observations. The claim follows train/claims.py: per scene the two medians pair up, a direction and a percentage
only when the signed-rank test decides, "not enough observations" below MIN_PAIRS scenes.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from .claims import compare, median_of
from .nvs import placement_errors, source_of

NOVEL_VIEW_MODE = "syncam"
NOVEL_VIEW_NOISE = 0.5      # the given view's noise level / the grid's (1: SynCamMaster's replace_view)
NOVEL_VIEW_LABEL = f"{NOVEL_VIEW_MODE}, view 0 given"
TWO_PASS_LABEL = "two passes, from text"
COPY_BASELINE = "copying view 0"
PLACE_MEASURE = "median distance of the objects from their true places"


def novel_view_claim(place: Sequence[Sequence[float]], copy: Sequence[Sequence[float]]):
    """train/claims.py's Claim for per-scene lists of place and copy distances (scene k in both)."""
    return compare(NOVEL_VIEW_LABEL, place, copy, baseline_name=COPY_BASELINE, measure=PLACE_MEASURE)


@torch.no_grad()
def score_novel_views(model, rig, truth: torch.Tensor, ids: torch.Tensor, colours: Sequence[Sequence[str]],
                      caption: str, seed: int = 0, steps: Optional[int] = None,
                      cfg: Optional[float] = None) -> tuple[dict, torch.Tensor]:
    """truth [N, V, F, H, W, 3] in 0..1 and ids [N, V, F, H, W] of N scenes on `rig`, each scene's object colours
    -> (summary, generated frames [N, V, F, H, W, 3]); the N grids are one batch, their noise from `seed`."""
    n = truth.shape[0]
    cameras = model.camera_embedding(rig)[None].expand(n, -1, -1, -1)
    latents = model.generate_latents([caption] * n, cameras, mode=NOVEL_VIEW_MODE, steps=steps, cfg=cfg, seed=seed,
                                     source=source_of(model, truth, 0, NOVEL_VIEW_NOISE))
    frames = model.decode(latents)
    place, copy = [], []
    for grid, scene_ids, scene_colours in zip(frames, ids, colours):
        error, copied, _ = placement_errors(grid, scene_ids, scene_colours)
        place.append([round(float(e), 3) for e in error])
        copy.append([round(float(e), 3) for e in copied])
    claim = novel_view_claim(place, copy)
    summary = {"mode": NOVEL_VIEW_MODE, "noise_scale": NOVEL_VIEW_NOISE, "scenes": n,
               "place_px": median_of([e for s in place for e in s]), "copy_px": median_of([e for s in copy for e in s]),
               "observations": sum(len(s) for s in place), "per_scene_place": place, "per_scene_copy": copy,
               "verdict": claim.verdict, "line": claim.line()}
    return summary, frames


def describe_novel_views(summary: dict) -> str:
    """One log line: the pooled medians and the sample."""
    if summary["place_px"] is None:
        return f"{NOVEL_VIEW_LABEL}: no object placed in {summary['scenes']} scenes"
    return (f"{NOVEL_VIEW_LABEL} (held at {summary['noise_scale']:g} of the noise level): the objects sit "
            f"{summary['place_px']:.1f} px from their true places, copying view 0 would put them "
            f"{summary['copy_px']:.1f} px away ({summary['observations']} observations in {summary['scenes']} scenes)")


@torch.no_grad()
def two_pass_grid(model, rig, caption: str, first_pass: torch.Tensor, seed: int = 0, steps: Optional[int] = None,
                  cfg: Optional[float] = None) -> torch.Tensor:
    """Text to grid in two passes: view 0 of `first_pass` (frames [V, F, H, W, 3] generated from the caption, e.g.
    the independent mode's) is given to syncam the way the truth's view 0 is above, and syncam draws the other
    views around it -> frames [V, F, H, W, 3]. From text alone syncam's views agree mostly by looking alike; given
    a view they follow their cameras (benchmarks/TINY_MODEL.md: on wide rigs the two passes scored lower than
    copies of their own view 0 with v7 and v8; lower than syncam from text in three of four samples with v7, not
    clearly with v8)."""
    cameras = model.camera_embedding(rig)[None]
    latents = model.generate_latents([caption], cameras, mode=NOVEL_VIEW_MODE, steps=steps, cfg=cfg, seed=seed,
                                     source=source_of(model, first_pass[None], 0, NOVEL_VIEW_NOISE))
    return model.decode(latents)[0]
