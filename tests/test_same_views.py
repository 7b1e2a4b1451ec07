"""The same-views comparison (train/same_views.py): two arms scored on the views usable in both (CPU, synthetic
detections projected from known points through a real preset rig)."""
import pytest
import torch

from camgrid.model.camera.presets import orbit_arc
from camgrid.model.checks import InputError
from camgrid.synth.render import project_points
from camgrid.train.same_views import compare_grids, same_view_errors

H, W, FRAMES = 48, 80, 3


def _grid(points, usable, rig, noise=0.0, seed=0, offsets=None) -> dict:
    """grid_detections of objects at `points` [N, F, 3] seen exactly through `rig`, plus pixel noise, plus
    `offsets` {view: px} added to every centroid in that view (a view that disagrees)."""
    proj, _ = project_points(points[:, None], rig.c2w[None], rig.intrinsics[None, :, None], H, W)   # [N, V, F, 2]
    g = torch.Generator().manual_seed(seed)
    proj = proj + noise * torch.randn(proj.shape, generator=g, dtype=torch.float64)
    for view, px in (offsets or {}).items():
        proj[:, view] += px
    return {"centroids": proj, "usable": usable.clone(), "c2w": rig.c2w.double(), "intrinsics": rig.intrinsics.double(),
            "height": H, "width": W}


@pytest.fixture()
def scene():
    rig = orbit_arc(num_views=4, azimuth_span_deg=60.0, num_frames=FRAMES)
    points = torch.tensor([[[0.3, -0.2, 0.1]] * FRAMES, [[-0.4, -0.1, -0.2]] * FRAMES], dtype=torch.float64)
    return rig, points


def test_views_usable_in_only_one_arm_are_not_scored(scene):
    """Arm B finds the objects in two more views, one of which disagrees by 6 px: the pooled metric would score B
    on four views, the same-views one scores both on the two views both found, where they are identical."""
    rig, points = scene
    few = torch.zeros(2, 4, FRAMES, dtype=torch.bool)
    few[:, :2] = True
    a = _grid(points, few, rig, noise=0.5)
    b = _grid(points, torch.ones_like(few), rig, noise=0.5, offsets={3: 6.0})
    err_a, err_b = same_view_errors(a, b)
    assert err_a.numel() == 2 * 2 * FRAMES and torch.equal(err_a, err_b)
    result = compare_grids([a], [b])
    assert result["a"] == result["b"] and result["difference"] == 0 and result["b_lower"] == 0 and result["p"] == 1.0


def test_an_arm_whose_views_disagree_is_higher_on_the_same_views(scene):
    """On every scene both arms are usable in all views; B's view 3 is off by 4 px: B is higher in every scene
    and the signed-rank test says so (12 scenes, different noise each)."""
    rig, points = scene
    usable = torch.ones(2, 4, FRAMES, dtype=torch.bool)
    grids_a = [_grid(points, usable, rig, noise=0.3, seed=s) for s in range(12)]
    grids_b = [_grid(points, usable, rig, noise=0.3, seed=100 + s, offsets={3: 4.0}) for s in range(12)]
    result = compare_grids(grids_a, grids_b)
    assert result["scenes"] == 12 and result["observations"] == 12 * 2 * 4 * FRAMES
    assert result["b"] > result["a"] + 0.5 and result["difference"] > 0.5
    assert result["b_lower"] == 0 and result["p"] < 0.001
    swapped = compare_grids(grids_b, grids_a)
    assert swapped["b_lower"] == 12 and swapped["p"] == result["p"]


def test_an_arm_that_loses_objects_is_not_hidden_by_the_same_views(scene):
    """B draws the second object in only two of the four views (12 scenes): where both found it the two arms are
    identical, so the errors tie, and the found-rates' table says that B found fewer, in every scene."""
    from camgrid.train.same_views import format_comparison

    rig, points = scene
    everywhere = torch.ones(2, 4, FRAMES, dtype=torch.bool)
    lost = everywhere.clone()
    lost[1, 2:] = False
    grids_a, grids_b = [], []
    for s in range(12):
        a, b = _grid(points, everywhere, rig, noise=0.3, seed=s), _grid(points, lost, rig, noise=0.3, seed=s)
        a["found"], b["found"] = everywhere.clone(), lost.clone()
        grids_a.append(a)
        grids_b.append(b)
    result = compare_grids(grids_a, grids_b)
    assert result["difference"] == 0 and result["b_lower"] == 0
    found = result["found"]
    assert found["scenes"] == 12 and found["a"] == 1.0 and found["b"] == pytest.approx(0.75)
    assert found["b_higher"] == 0 and found["difference"] == pytest.approx(-0.25) and found["p"] < 0.001
    text = format_comparison({"teacher 20 steps": {"syncam": result}}, "A", "B")
    assert "Objects found" in text and "| teacher 20 steps | syncam | 12 | 1.000 | 0.750 | -0.250 | 0 of 12 |" in text
    # runs from before the found-rates were kept: no such table
    for g in grids_a:
        del g["found"]
    assert "found" not in compare_grids(grids_a, grids_b)
    assert "Objects found" not in format_comparison({"r": {"syncam": compare_grids(grids_a, grids_b)}}, "A", "B")


def test_objects_usable_in_one_common_view_are_not_scored_and_failed_grids_are_skipped(scene):
    rig, points = scene
    a_only, b_only = torch.zeros(2, 4, FRAMES, dtype=torch.bool), torch.zeros(2, 4, FRAMES, dtype=torch.bool)
    a_only[:, :2], b_only[:, 1:3] = True, True            # only view 1 in common: nothing can be triangulated
    a, b = _grid(points, a_only, rig), _grid(points, b_only, rig)
    assert same_view_errors(a, b)[0].numel() == 0
    result = compare_grids([a, None], [b, a])
    assert result == {"scenes": 0, "observations": 0, "a": None, "b": None, "difference": None, "b_lower": 0, "p": None}


def test_grids_of_other_cameras_are_refused(scene):
    rig, points = scene
    usable = torch.ones(2, 4, FRAMES, dtype=torch.bool)
    other = orbit_arc(num_views=4, azimuth_span_deg=90.0, num_frames=FRAMES)
    with pytest.raises(InputError, match="same held-out scenes"):
        same_view_errors(_grid(points, usable, rig), _grid(points, usable, other))


def test_runs_without_detections_or_of_other_scenes_are_refused(scene, tmp_path):
    from camgrid.train.same_views import DETECTIONS_FILE, compare_runs

    rig, points = scene
    usable = torch.ones(2, 4, FRAMES, dtype=torch.bool)
    with pytest.raises(InputError, match="camgrid.train.tables --out"):
        compare_runs(tmp_path, tmp_path)
    for name, seed in (("a", 0), ("b", 1)):
        (tmp_path / name).mkdir()
        torch.save({"settings": {"scenes": 1, "views": 4, "seed": seed, "eval_seed": 9001},
                    "rows": {"teacher 20 steps": {"syncam": [_grid(points, usable, rig)]}}},
                   tmp_path / name / DETECTIONS_FILE)
    assert compare_runs(tmp_path / "a", tmp_path / "a")["teacher 20 steps"]["syncam"]["scenes"] == 1
    with pytest.raises(InputError, match="seed differ"):
        compare_runs(tmp_path / "a", tmp_path / "b")
    on_gpu = torch.load(tmp_path / "a" / DETECTIONS_FILE, weights_only=True)
    on_gpu["settings"]["device"] = "cuda:0"      # another kind of device: other arithmetic
    torch.save(on_gpu, tmp_path / "b" / DETECTIONS_FILE)
    with pytest.raises(InputError, match="device differ"):
        compare_runs(tmp_path / "a", tmp_path / "b")


def _nvs_tables(psnr: list, iou: list, noise: float = 0.5) -> dict:
    """A tables.json's parts compare_nvs reads: one row, syncam with its scenes' scores, hard without (a table
    from before the per-scene scores were kept)."""
    return {"settings": {"source_noise": noise},
            "nvs": {"teacher 20 steps": {"settings": {"steps": 20},
                                         "syncam": {"psnr": 0.0, "per_scene": {"psnr": psnr, "iou": iou}},
                                         "hard": {"psnr": 0.0}, "stability": {}}}}


def test_nvs_scores_pair_scene_by_scene_and_tables_without_them_are_left_out():
    from camgrid.train.same_views import compare_nvs, format_nvs_comparison

    psnr_a = [15.0 + 0.1 * i for i in range(12)]
    iou_a = [0.3 + 0.01 * i for i in range(12)]
    # B is 0.5 dB higher on 11 of 12 scenes and lower on one; its IoU is lower on every scene but one (not scored)
    psnr_b = [p + (0.5 if i else -0.2) for i, p in enumerate(psnr_a)]
    iou_b = [None] + [x - 0.02 for x in iou_a[1:]]
    out = compare_nvs(_nvs_tables(psnr_a, iou_a), _nvs_tables(psnr_b, iou_b))
    assert set(out) == {"teacher 20 steps"} and set(out["teacher 20 steps"]) == {"syncam"}
    psnr, iou = out["teacher 20 steps"]["syncam"]["psnr"], out["teacher 20 steps"]["syncam"]["iou"]
    assert psnr["scenes"] == 12 and psnr["b_higher"] == 11 and psnr["difference"] == pytest.approx(0.5)
    assert psnr["b"] - psnr["a"] == pytest.approx((11 * 0.5 - 0.2) / 12) and psnr["p"] < 0.01
    assert iou["scenes"] == 11 and iou["b_higher"] == 0 and iou["difference"] == pytest.approx(-0.02)
    assert iou["p"] < 0.01
    text = format_nvs_comparison(out)
    assert "| teacher 20 steps | syncam | 12 |" in text and "11 of 12" in text and "0 of 11" in text
    assert format_nvs_comparison(compare_nvs(_nvs_tables(psnr_a, iou_a), {"settings": {"source_noise": 0.5}})) == ""
    with pytest.raises(InputError, match="source-noise"):
        compare_nvs(_nvs_tables(psnr_a, iou_a), _nvs_tables(psnr_b, iou_b, noise=1.0))
