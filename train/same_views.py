"""`python -m camgrid.train.same_views A B`: two models' reprojection error on the same views of the same scenes.

The tables' reprojection error (train/evaluate.py) triangulates each object, per frame, from every view where it
is usable (found, whole, apart from the others) and pools the residuals. Between two models that is not a fair
comparison when their objects differ in size: smaller objects are usable in more views, and a point fitted to
more views leaves larger residuals (two views can nearly always be met; four must agree). So the pooled error
favours large blobs found in few views (benchmarks/TINY_MODEL.md, "The floor composed into the guidance").

Here both arms are scored on the same observations from the same views: per scene, object and frame, each arm
is triangulated only from the views where the object is usable in both arms' grids, and scored on those views.
Each scene's median error is paired across the arms, and the table gives the median of the scene medians, the
median of the scenes' differences, the scenes where B is lower, and the signed-rank test's p (train/claims.py):
the last three are the paired comparison, the first two only where each arm stands.

Scoring only what both arms found hides an arm that loses objects (a sphere that is not drawn costs it nothing
there), so a second table pairs the scenes' found-rates (the share of object, view and frame that was segmented),
where the detections kept them (tables from before kept only what was usable).

Where both tables kept their novel-view scores per scene, a third table pairs those the same way: each row's
PSNR and colour-mask IoU, the mean over the scenes scored in both, the median of the scenes' B - A, the scenes
where B is higher, and p.

A and B are two `python -m camgrid.train.tables --out` folders of the same held-out scenes and noise (the same
--scenes, --views and --seed, on the same kind of device, so the pairs share its arithmetic too): the tables keep
every grid's detections in detections.pt for this.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

import torch

from ..model.checks import InputError
from ..model.files import atomic_write
from ..model.camera import CameraRig
from ..synth.metric import triangulated_residuals
from ..synth.render import rig_at_frames
from .claims import median_of, signed_rank_test

DETECTIONS_FILE = "detections.pt"
TABLES_FILE = "tables.json"
NVS_METRICS = ("psnr", "iou")   # higher is better
# the settings that must match for two runs to have generated the same scenes from the same noise
SAME_SCENES_KEYS = ("scenes", "views", "seed", "eval_seed")


def grid_detections(det, rig: CameraRig, frames) -> dict:
    """What same_view_errors needs of one grid: the objects' centroids [N, V, F, 2] (float64, pixels), where
    they are usable and where they were found [N, V, F], and the cameras at the grid's frames (c2w [V, F, 4, 4],
    intrinsics [V, 4])."""
    v, f, h, w = torch.as_tensor(frames).shape[:4]
    rig = rig_at_frames(rig, f)
    return {"centroids": det.centroids.clone(), "usable": det.usable.clone(), "found": det.found.clone(),
            "c2w": rig.c2w[:, :f].double(), "intrinsics": rig.intrinsics.double(), "height": int(h), "width": int(w)}


def _residuals(grid: dict, used: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """synth.metric.triangulated_residuals of one grid's detections, triangulated only from the views in `used`."""
    rig = CameraRig(grid["c2w"], grid["intrinsics"])
    return triangulated_residuals(grid["centroids"], used, rig, grid["height"], grid["width"])


def same_view_errors(a: dict, b: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The errors (float64 [n] each, the same n observations) of two grids of one scene (grid_detections),
    each triangulated and scored only on the views where the object is usable in both."""
    if a["centroids"].shape != b["centroids"].shape or not torch.equal(a["c2w"], b["c2w"]):
        raise InputError("same_views: the two grids are not of the same scene and cameras; compare two tables "
                         "runs of the same held-out scenes (the same --scenes, --views and --seed, of models of one "
                         "scene style: each model draws its held-out scenes in the style its files record).")
    both = a["usable"] & b["usable"]
    err_a, valid_a = _residuals(a, both)
    err_b, valid_b = _residuals(b, both)
    used = both & (valid_a & valid_b)[:, None, :]
    return err_a[used], err_b[used]


def compare_grids(grids_a: list, grids_b: list) -> dict:
    """One row and mode of two runs (per scene: grid_detections, or None where the metric failed):
    {"scenes" (scored in both), "observations", "a"/"b" (median of the scene medians), "difference" (the median of
    the scenes' B - A), "b_lower" (scenes where B is lower), "p"}, and "found" (compare_scene_scores of the scenes'
    found-rates) where both runs kept them."""
    medians = []
    observations = 0
    for a, b in zip(grids_a, grids_b):
        if a is None or b is None:
            continue
        err_a, err_b = same_view_errors(a, b)
        if err_a.numel():
            medians.append((float(err_a.median()), float(err_b.median())))
            observations += err_a.numel()
    differences = [b - a for a, b in medians]
    result = {"scenes": len(medians), "observations": observations,
              "a": median_of([a for a, _ in medians]), "b": median_of([b for _, b in medians]),
              "difference": median_of(differences), "b_lower": sum(d < 0 for d in differences),
              "p": signed_rank_test(differences) if medians else None}
    found_a, found_b = _found_rates(grids_a), _found_rates(grids_b)
    if any(a is not None and b is not None for a, b in zip(found_a, found_b)):
        result["found"] = compare_scene_scores(found_a, found_b)
    return result


def _found_rates(grids: list) -> list:
    """Each grid's share of (object, view, frame) that was segmented; None where the metric failed or the run
    did not keep it."""
    return [float(g["found"].double().mean()) if g is not None and "found" in g else None for g in grids]


def load_detections(folder) -> dict:
    path = Path(folder) / DETECTIONS_FILE
    if not path.is_file():
        raise InputError(f"same_views: {path} does not exist; run `python -m camgrid.train.tables --out {folder}` "
                         "(tables from before the same-views comparison did not keep their detections).")
    return torch.load(path, map_location="cpu", weights_only=True)


def _device_type(settings: dict) -> str:
    return str(settings.get("device", "cpu")).split(":")[0]


def compare_runs(folder_a, folder_b) -> dict:
    """Every row and mode that both tables runs measured: {row: {mode: compare_grids(...)}}."""
    a, b = load_detections(folder_a), load_detections(folder_b)
    differ = [k for k in SAME_SCENES_KEYS if a["settings"].get(k) != b["settings"].get(k)]
    # the noise is drawn on the CPU either way, but a GPU's arithmetic differs: pairs would differ by more than
    # the model
    if _device_type(a["settings"]) != _device_type(b["settings"]):
        differ.append("device")
    if differ:
        raise InputError(f"same_views: {folder_a} and {folder_b} measured other scenes or noise ({', '.join(differ)} "
                         "differ); run both tables with the same --scenes, --views, --seed and --device type.")
    return {row: {mode: compare_grids(grids, b["rows"][row][mode]) for mode, grids in modes.items()
                  if mode in b["rows"].get(row, {})}
            for row, modes in a["rows"].items() if row in b["rows"]}


def compare_scene_scores(scores_a: list, scores_b: list) -> dict:
    """Two runs' scores of the same scenes (None where a scene was not scored): {"scenes" (scored in both),
    "a"/"b" (their means over those scenes), "difference" (the median of B - A), "b_higher", "p"}."""
    pairs = [(a, b) for a, b in zip(scores_a, scores_b) if a is not None and b is not None]
    differences = [b - a for a, b in pairs]
    return {"scenes": len(pairs), "a": sum(a for a, _ in pairs) / len(pairs) if pairs else None,
            "b": sum(b for _, b in pairs) / len(pairs) if pairs else None, "difference": median_of(differences),
            "b_higher": sum(d > 0 for d in differences), "p": signed_rank_test(differences) if pairs else None}


def compare_nvs(tables_a: dict, tables_b: dict) -> dict:
    """Every novel-view row and mode whose per-scene scores both tables.json hold (tables from before this kept
    only the means): {row: {mode: {metric: compare_scene_scores(...)}}}."""
    if tables_a["settings"].get("source_noise") != tables_b["settings"].get("source_noise"):
        raise InputError("same_views: the two tables gave view 0 at different noise levels (--source-noise), so "
                         "their novel-view scores do not pair; run both with the same --source-noise.")
    out = {}
    for row, table in tables_a.get("nvs", {}).items():
        other = tables_b.get("nvs", {}).get(row, {})
        for mode, scores in table.items():
            if "per_scene" in scores and "per_scene" in other.get(mode, {}):
                out.setdefault(row, {})[mode] = {
                    m: compare_scene_scores(scores["per_scene"][m], other[mode]["per_scene"][m]) for m in NVS_METRICS}
    return out


def _f(value: Optional[float], digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _paired_cells(scores: dict, digits: int) -> str:
    """compare_scene_scores' cells: A | B | B - A | B higher in | p."""
    return (f"{_f(scores['a'], digits)} | {_f(scores['b'], digits)} | {_f(scores['difference'], digits)} | "
            f"{scores['b_higher']} of {scores['scenes']} | {_f(scores['p'], 3)}")


def format_comparison(results: dict, name_a: str, name_b: str) -> str:
    lines = [f"Reprojection error on the same views (A: {name_a}, B: {name_b}; per scene, object and frame, both "
             "triangulated from the views usable in both; median px of the scene medians)", "",
             "| row | mode | scenes | observations | A | B | B - A (median over scenes) | B lower in | p |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row, modes in results.items():
        lines += [f"| {row} | {mode} | {r['scenes']} | {r['observations']} | {_f(r['a'])} | {_f(r['b'])} | "
                  f"{_f(r['difference'])} | {r['b_lower']} of {r['scenes']} | {_f(r['p'], 3)} |"
                  for mode, r in modes.items()]
    found = [(row, mode, r["found"]) for row, modes in results.items() for mode, r in modes.items() if "found" in r]
    if found:
        lines += ["", "Objects found (the share of object, view and frame segmented; means over the scenes)", "",
                  "| row | mode | scenes | A | B | B - A (median over scenes) | B higher in | p |",
                  "|---|---|---:|---:|---:|---:|---:|---:|"]
        lines += [f"| {row} | {mode} | {f['scenes']} | {_paired_cells(f, 3)} |" for row, mode, f in found]
    return "\n".join(lines)


def format_nvs_comparison(results: dict) -> str:
    """compare_nvs's table (empty where neither run kept its scenes' scores)."""
    if not results:
        return ""
    lines = ["Novel-view synthesis on the same scenes (view 0 given; means over the scenes scored in both)", "",
             "| row | mode | scenes | PSNR A | PSNR B | B - A (median) | B higher in | p | IoU A | IoU B | "
             "B - A (median) | B higher in | p |", "|---|---|---:|" + "---:|" * 10]
    for row, modes in results.items():
        for mode, r in modes.items():
            cells = [_paired_cells(m, d) for m, d in ((r["psnr"], 2), (r["iou"], 3))]
            lines.append(f"| {row} | {mode} | {r['psnr']['scenes']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def load_tables(folder) -> dict:
    path = Path(folder) / TABLES_FILE
    if not path.is_file():
        raise InputError(f"same_views: {path} does not exist; run `python -m camgrid.train.tables --out {folder}`.")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camgrid.train.same_views", description=__doc__.split("\n")[0])
    parser.add_argument("a", help="a `python -m camgrid.train.tables --out` folder")
    parser.add_argument("b", help="another, of the same held-out scenes")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    try:
        text = format_comparison(compare_runs(args.a, args.b), args.a, args.b)
        nvs = format_nvs_comparison(compare_nvs(load_tables(args.a), load_tables(args.b)))
        if nvs:
            text += "\n\n" + nvs
    except InputError as e:
        parser.error(str(e))
    print(text)
    if args.out:
        atomic_write(Path(args.out), text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
