"""Aligned novel-view synthesis on held-out scenes: a measurement against ground truth, not only triangulation.

For each held-out scene (rendered by synth/), view 0's ground-truth video is encoded and given to the
sampler as a source (`SourceVideo(latent, "replace_view", view=0)`: view 0 of the grid is held at the
source, noised to the current level, at every step); the model generates the other views for the scene's
rig and caption, and they are compared with their own ground-truth renders:

  psnr        pixel PSNR of views 1..V-1 against their renders (per scene, over all their frames);
  iou         per object colour: intersection over union of the pixels classified as that colour
              (synth.metric.segment_colours) and the object's true pixels, over views 1..V-1 and all
              frames; averaged over the scene's objects;
  place_px    where the generated views put each object: the median distance (pixels) between the object's
              generated centroid (its colour's largest component) and its true centroid, over the objects,
              views 1..V-1 and frames where it is visible in the truth of that view and of view 0 and found in
              the generated view;
  copy_px     on the same observations, the median distance between its true centroid in view 0 and in that
              view: what a model scores that copies view 0's layout into every view. place_px / copy_px says
              whether the views follow their cameras (0: objects where they belong; about 1: view 0 copied).

Independent generation ignores view 0 (its views exchange nothing), so it is the baseline a mode that
uses the source must beat; the autoencoder round trip of the true views is the ceiling.
`ordering_stability` says how sure the ranking of modes is: the share of bootstrap resamples of the scenes
that rank the modes as the full sample does, and whether the two halves of the scenes agree.
"""
from __future__ import annotations

import random
from typing import Sequence

import torch

from ..model.conditioning import SourceVideo
from ..synth.metric import mask_centroids, object_centroids, segment_colours
from .claims import median_of

PLACE_MIN_PIXELS = 4   # an object with fewer true or generated pixels in a frame is not placed there


def nvs_scores(frames: torch.Tensor, truth: torch.Tensor, ids: torch.Tensor, colours: Sequence[str],
               source_view: int = 0) -> dict:
    """One grid: frames / truth [V, F, H, W, 3] in 0..1, ids [V, F, H, W] (object index, -1 none) ->
    {"psnr": dB over the views other than source_view, "iou": mean over the objects of the colour-mask IoU}."""
    others = [v for v in range(frames.shape[0]) if v != source_view]
    gen, ref, true_ids = frames[others].float(), truth[others].float(), ids[others]
    mse = float((gen - ref).pow(2).mean())
    labels = segment_colours(gen, list(colours))
    ious = []
    for k in range(len(colours)):
        pred, true = labels == k, true_ids == k
        union = int((pred | true).sum())
        if union:
            ious.append(int((pred & true).sum()) / union)
    return {"psnr": -10.0 * torch.log10(torch.tensor(max(mse, 1e-10))).item(),
            "iou": sum(ious) / len(ious) if ious else None, **placement(frames, ids, colours, source_view)}


def summarise_scores(scores: Sequence[dict]) -> dict:
    """The nvs_scores of a set of grids (one per scene) in one row: mean PSNR and IoU (over the scenes with an
    IoU; 0 without any), the median of the scenes' place_px and copy_px, the observations placed."""
    ious = [s["iou"] for s in scores if s["iou"] is not None]
    return {"psnr": sum(s["psnr"] for s in scores) / len(scores), "iou": sum(ious) / max(len(ious), 1),
            "scenes": len(scores), "place_px": median_of([s["place_px"] for s in scores]),
            "copy_px": median_of([s["copy_px"] for s in scores]), "placed": sum(s["placed"] for s in scores)}


def true_centroids(ids: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """ids [V, F, H, W] -> each object's centroid [N, V, F, 2] (x, y in pixels, centres at +0.5) and whether it
    has at least PLACE_MIN_PIXELS pixels there [N, V, F]."""
    centres, counts = zip(*(mask_centroids(ids == k) for k in range(count)))
    return torch.stack(centres), torch.stack(counts) >= PLACE_MIN_PIXELS


def placement_errors(frames: torch.Tensor, ids: torch.Tensor, colours: Sequence[str],
                     source_view: int = 0) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One grid's observations (see the module docstring): (the distance of each generated object from its true
    place [n], what copying the source view's layout gives on the same observations [n], how many were expected:
    visible in the truth of the view and of the source view)."""
    true_c, visible = true_centroids(ids, len(colours))
    det = object_centroids(frames.float(), list(colours), min_pixels=PLACE_MIN_PIXELS)
    others = [v for v in range(frames.shape[0]) if v != source_view]
    expected = visible[:, others] & visible[:, source_view:source_view + 1]
    seen = expected & det.found[:, others]
    error = (det.centroids[:, others] - true_c[:, others]).norm(dim=-1)[seen]
    copy = (true_c[:, source_view:source_view + 1] - true_c[:, others]).norm(dim=-1)[seen]
    return error, copy, int(expected.sum())


def placement(frames: torch.Tensor, ids: torch.Tensor, colours: Sequence[str], source_view: int = 0) -> dict:
    """place_px / copy_px of one grid (see the module docstring), with the number of observations and the share
    of truly visible objects the generated views did not draw ("missed"); None where nothing was observed."""
    error, copy, n_expected = placement_errors(frames, ids, colours, source_view)
    return {"place_px": median_of(error), "copy_px": median_of(copy), "placed": int(error.numel()),
            "missed": 1.0 - int(error.numel()) / n_expected if n_expected else None}


def source_of(model, truth_videos: torch.Tensor, view: int = 0, noise_scale: float = 1.0) -> SourceVideo:
    """truth_videos [B, V, F, H, W, 3] -> the sampler's source: view `view` encoded, replacing that view (held at
    noise_scale times the grid's noise level)."""
    with torch.no_grad():
        latent = model.ae.encode(truth_videos[:, view].to(model.device))
    return SourceVideo(latent, "replace_view", view=view, noise_scale=noise_scale)


def ordering_stability(per_scene: dict, resamples: int = 1000, seed: int = 0) -> dict:
    """per_scene: {mode: [score per scene]} (same scenes, higher is better; None skipped pairwise) ->
    {"order": modes best first, "bootstrap": share of scene resamples giving the same order,
     "halves_agree": whether the first and second half of the scenes give the same order}."""
    modes = list(per_scene)
    n = min(len(v) for v in per_scene.values())
    keep = [i for i in range(n) if all(per_scene[m][i] is not None for m in modes)]

    def order(rows) -> tuple:
        means = {m: sum(per_scene[m][i] for i in rows) / max(len(rows), 1) for m in modes}
        return tuple(sorted(modes, key=lambda m: -means[m]))

    full = order(keep)
    rng = random.Random(seed)
    same = sum(order([rng.choice(keep) for _ in keep]) == full for _ in range(resamples)) if keep else 0
    half = len(keep) // 2
    return {"order": list(full), "bootstrap": same / resamples if keep else None, "scenes": len(keep),
            "halves_agree": bool(keep) and order(keep[:half]) == order(keep[half:]) == full}
