"""Synthetic multi-camera 4D data and the multi-view consistency metric.

- `scenes`: coloured primitives moving over a checkered floor, deterministic from a seed, with captions and tracks.
- `render`: a vectorised torch ray caster for those scenes, seen from any `CameraRig`; `project` for points.
- `dataset`: training samples (multi-view videos, rig, caption, tracks) from random preset rigs.
- `metric`: colour segmentation + triangulation -> reprojection error of generated grids.
"""
from .scenes import PALETTE, SHAPES, VOCABULARY, Scene, SceneObject, caption_for, sample_scene
from .render import project, render
from .dataset import SyntheticMultiViewDataset, collate_samples, random_rig
from .metric import consistency_metrics, object_centroids, triangulate

__all__ = ["PALETTE", "SHAPES", "VOCABULARY", "Scene", "SceneObject", "caption_for", "sample_scene", "project",
           "render", "SyntheticMultiViewDataset", "collate_samples", "random_rig", "consistency_metrics",
           "object_centroids", "triangulate"]
