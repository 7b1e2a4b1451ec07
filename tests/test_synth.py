"""Synthetic 4D scenes, the ray caster, the training dataset and the multi-view consistency metric."""
import math

import pytest
import torch

from camgrid.model.camera import CameraRig, default_intrinsics, orbit_arc
from camgrid.synth.dataset import SyntheticMultiViewDataset, collate_samples
from camgrid.synth.metric import consistency_metrics, object_centroids, segment_colours, triangulate
from camgrid.synth.render import project, project_points, render
from camgrid.synth.scenes import GROUND_Y, MIN_CLEARANCE, PALETTE, VOCABULARY, caption_for, sample_scene

H, W = 48, 80


def wide_rig(num_views=4, num_frames=9, height=H, width=W, span=90.0, elevation=20.0, radius=3.5, hfov=60.0):
    """An orbit with square pixels at the rendered aspect."""
    rig = orbit_arc(num_views, span, elevation, radius, num_frames=num_frames, hfov_deg=hfov)
    rig.intrinsics = default_intrinsics(num_views, hfov, aspect=width / height)
    return rig


def mask_centroids(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centroid over pixel centres (x, y) of bool masks [..., H, W], and the pixel counts."""
    m = mask.double()
    xs = torch.arange(m.shape[-1]).double() + 0.5
    ys = torch.arange(m.shape[-2]).double() + 0.5
    count = m.sum((-1, -2))
    cx = (m.sum(-2) * xs).sum(-1) / count.clamp(min=1)
    cy = (m.sum(-1) * ys).sum(-1) / count.clamp(min=1)
    return torch.stack([cx, cy], -1), count


def touches_border(mask: torch.Tensor) -> torch.Tensor:
    return mask[..., 0, :].any(-1) | mask[..., -1, :].any(-1) | mask[..., :, 0].any(-1) | mask[..., :, -1].any(-1)


# -- scenes ----------------------------------------------------------------------------------------

def test_scene_is_deterministic_from_its_seed():
    assert sample_scene(7) == sample_scene(7)
    assert sample_scene(7) != sample_scene(8)
    rig = wide_rig(2, 5)
    a = render(sample_scene(7, num_frames=5), rig, 24, 40)
    b = render(sample_scene(7, num_frames=5), rig, 24, 40)
    assert torch.equal(a, b)


@pytest.mark.parametrize("seed", range(6))
def test_scene_objects_captions_and_tracks(seed):
    scene = sample_scene(seed)
    assert 2 <= scene.num_objects <= 4
    assert len(set(scene.colours)) == scene.num_objects
    # the caption names every object, in order, with words from the fixed vocabulary
    expected = [f"a {o.colour} {o.shape}" for o in scene.objects]
    assert scene.caption == caption_for(scene.objects)
    pos = 0
    for phrase in expected:
        found = scene.caption.find(phrase, pos)
        assert found >= 0, (phrase, scene.caption)
        pos = found + len(phrase)
    assert set(scene.caption.replace(",", "").split()) <= set(VOCABULARY)

    tracks = scene.tracks()
    assert tracks.shape == (scene.num_objects, scene.num_frames, 3)
    # objects rest on or above the floor (y down: a smaller y is higher)
    for obj, track in zip(scene.objects, tracks):
        assert (track[:, 1] + obj.size[1] <= GROUND_Y + 1e-9).all()
    # smooth: no jumps between consecutive frames of a 17-frame clip
    assert (tracks.diff(dim=1).norm(dim=-1) < 0.5).all()
    # kept apart on the floor at every frame
    for i in range(scene.num_objects):
        for j in range(i + 1, scene.num_objects):
            gap = (tracks[i, :, [0, 2]] - tracks[j, :, [0, 2]]).norm(dim=-1).min()
            assert gap >= scene.objects[i].footprint_radius + scene.objects[j].footprint_radius + MIN_CLEARANCE - 1e-6


def test_caption_grammar_and_pinned_objects():
    scene = sample_scene(3, colours=["red", "blue"], shapes=["sphere", "box"])
    assert scene.caption == "a red sphere and a blue box"
    three = sample_scene(4, colours=["red", "blue", "green"], shapes=["sphere", "box", "sphere"])
    assert three.caption == "a red sphere, a blue box and a green sphere"
    with pytest.raises(ValueError, match="distinct"):
        sample_scene(0, colours=["red", "red"])
    with pytest.raises(ValueError, match="num_objects"):
        sample_scene(0, num_objects=5)


# -- renderer --------------------------------------------------------------------------------------

def test_render_shapes_ranges_and_object_colours():
    scene = sample_scene(1, num_frames=5)
    rig = wide_rig(3, 5)
    img, ids = render(scene, rig, H, W, return_ids=True)
    assert img.shape == (3, 5, H, W, 3) and img.dtype == torch.float32
    assert ids.shape == (3, 5, H, W) and ids.dtype == torch.long
    assert img.min() >= 0 and img.max() <= 1
    assert set(ids.unique().tolist()) <= set(range(-1, scene.num_objects))
    for k in range(scene.num_objects):
        assert (ids == k).any(), f"object {k} ({scene.objects[k].colour}) never visible"
    # what the caption says is what the image shows: every object pixel has its palette colour's hue,
    # and nothing else in the picture does
    labels = segment_colours(img, scene.colours)
    assert torch.equal(labels, ids)
    # a different frame count samples the same motion (first and last frames agree)
    img9 = render(scene, rig, H, W, num_frames=9)
    assert torch.allclose(img9[:, 0], img[:, 0]) and torch.allclose(img9[:, -1], img[:, -1])


def test_project_puts_the_look_at_target_at_the_principal_point():
    rig = wide_rig(5, 3, span=150.0, elevation=30.0, radius=4.0)
    rig.intrinsics[1, 2] = 0.4   # off-centre principal points must be honoured
    rig.intrinsics[3, 3] = 0.6
    uv, depth = project(torch.zeros(1, 3), rig, 0, H, W)
    assert uv.shape == (5, 1, 2) and depth.shape == (5, 1)
    expected = torch.stack([rig.intrinsics[:, 2] * W, rig.intrinsics[:, 3] * H], -1)
    assert torch.allclose(uv[:, 0], expected, atol=1e-9)
    assert torch.allclose(depth[:, 0], torch.full((5,), 4.0, dtype=torch.float64), atol=1e-9)
    # a point 1 m to the right of the target (world +x) appears right of centre in the front view
    uv_right, _ = project(torch.tensor([[1.0, 0.0, 0.0]]), rig, 0, H, W)
    assert uv_right[2, 0, 0] > expected[2, 0] + 5


@pytest.mark.parametrize("shape,tolerance", [("sphere", 0.5), ("box", 1.5)])
def test_rendered_object_lands_where_project_puts_it(shape, tolerance):
    """The centroid of an object's rendered mask is the projection of its centre (to perspective
    bias: tiny for a sphere, up to about a pixel for a close box), in every view and frame, also
    with non-square images and off-centre principal points."""
    height, width = 64, 96
    rig = wide_rig(4, 9, height, width, span=120.0, elevation=25.0, radius=3.0, hfov=50.0)
    rig.intrinsics[1, 2] = 0.45
    rig.intrinsics[2, 3] = 0.55
    for seed in range(3):
        scene = sample_scene(seed, num_objects=1, shapes=[shape], num_frames=9)
        _, ids = render(scene, rig, height, width, return_ids=True)
        mask = ids == 0
        centroid, count = mask_centroids(mask)
        inside = (count >= 20) & ~touches_border(mask)
        assert inside.float().mean() > 0.8
        uv, _ = project_points(scene.tracks()[0][None], rig.c2w, rig.intrinsics[:, None], height, width)  # [V, F, 2]
        err = (centroid - uv).norm(dim=-1)[inside]
        assert err.max() < tolerance, f"{shape} seed {seed}: centroid is {err.max():.2f} px from its projection"


def test_moving_rig_is_followed_per_frame():
    """Each frame is rendered from that frame's camera: a static sphere seen from a camera that
    pans moves across the image exactly as `project` predicts."""
    scene = sample_scene(2, num_objects=1, shapes=["sphere"], num_frames=5)
    base = wide_rig(1, 1)
    c2w = base.c2w.repeat(1, 5, 1, 1)
    c2w[0, :, 0, 3] += torch.linspace(-0.6, 0.6, 5, dtype=torch.float64)   # slide the camera sideways
    rig = CameraRig(c2w, base.intrinsics)
    _, ids = render(scene, rig, H, W, return_ids=True)
    centroid, count = mask_centroids(ids == 0)
    assert (count > 10).all()
    uv = torch.stack([project(scene.tracks()[0, f][None], rig, f, H, W)[0][0, 0] for f in range(5)])
    assert (centroid[0] - uv).norm(dim=-1).max() < 0.5
    assert centroid[0, 0, 0] > centroid[0, -1, 0] + 5   # camera moves right -> object moves left


# -- metric ----------------------------------------------------------------------------------------

def inconsistent_grid(scene, rig, height, width, other_seed):
    """Views 0-1 from `scene`, views 2-3 from another scene with the same objects on other paths."""
    other = sample_scene(other_seed, colours=scene.colours, shapes=[o.shape for o in scene.objects],
                         num_frames=scene.num_frames)
    a = render(scene, rig, height, width)
    b = render(other, rig, height, width)
    return torch.cat([a[:2], b[2:]])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metric_floor_on_ground_truth_and_larger_on_inconsistent_views(seed):
    scene = sample_scene(seed, num_frames=9)
    rig = wide_rig(4, 9)
    gt = consistency_metrics(render(scene, rig, H, W), rig, scene.colours)
    assert gt["found"] > 0.9 and gt["triangulated"] > 0.9
    assert gt["num_observations"] >= 2 * 9 * scene.num_objects
    assert gt["reproj_px"] < 0.5, gt

    bad = consistency_metrics(inconsistent_grid(scene, rig, H, W, seed + 100), rig, scene.colours)
    assert bad["found"] > 0.9
    assert bad["reproj_px"] > 1.5 and bad["reproj_px"] > 5 * gt["reproj_px"], (gt, bad)


def test_triangulation_recovers_ground_truth_tracks():
    scene = sample_scene(5, num_frames=9)
    rig = wide_rig(4, 9)
    det = object_centroids(render(scene, rig, H, W), scene.colours)
    points, valid = triangulate(det.centroids, det.usable, rig, H, W)
    assert valid.float().mean() > 0.8
    err = (points - scene.tracks())[valid].norm(dim=-1)
    assert err.max() < 0.05, f"triangulated centres are up to {err.max():.3f} m off"


def test_metric_accepts_uint8_and_reports_missing_objects():
    scene = sample_scene(1, num_frames=5)
    rig = wide_rig(3, 5)
    img = render(scene, rig, H, W)
    as_bytes = consistency_metrics((img * 255).round().to(torch.uint8), rig, scene.colours)
    assert as_bytes["reproj_px"] < 0.5
    absent = next(c for c in PALETTE if c not in scene.colours)
    m = consistency_metrics(img, rig, scene.colours + [absent])
    expected_found = scene.num_objects / (scene.num_objects + 1)
    assert m["found"] <= expected_found + 1e-9
    assert math.isnan(m["per_object_px"][-1])
    with pytest.raises(ValueError, match="views"):
        consistency_metrics(img[:2], rig, scene.colours)
    with pytest.raises(ValueError, match="colour"):
        consistency_metrics(img, rig, ["octarine"])


# -- dataset ---------------------------------------------------------------------------------------

def test_dataset_items_are_deterministic_and_well_formed():
    ds = SyntheticMultiViewDataset(length=50, height=32, width=48, num_frames=9, min_views=2, max_views=5, seed=3)
    first = ds[4]
    again = SyntheticMultiViewDataset(length=50, height=32, width=48, num_frames=9, min_views=2, max_views=5, seed=3)[4]
    assert torch.equal(first["videos"], again["videos"]) and first["caption"] == again["caption"]
    assert torch.equal(first["rig"].c2w, again["rig"].c2w)
    assert not torch.equal(ds[5]["tracks"], first["tracks"]) or ds[5]["caption"] != first["caption"]

    views = set()
    for i in range(6):
        s = ds[i]
        v = s["rig"].num_views
        views.add(v)
        assert 2 <= v <= 5
        assert s["videos"].shape == (v, 9, 32, 48, 3)
        assert s["tracks"].shape == (len(s["colours"]), 9, 3)
        assert s["caption"].split()[1] in s["colours"]
        s["rig"].validate()
        # square pixels at the rendered aspect
        k = s["rig"].intrinsics
        assert torch.allclose(k[:, 1] * 32, k[:, 0] * 48)
        # the cameras look at the scene: every object's track projects in front of every camera
        for f in (0, 8):
            _, depth = project(s["tracks"][:, f], s["rig"], f, 32, 48)
            assert (depth > 0.5).all()
        m = consistency_metrics(s["videos"], s["rig"], s["colours"])
        assert m["found"] > 0.5
        if m["num_observations"]:
            assert m["reproj_px"] < 0.5, (i, m)
    assert len(views) > 1
    batch = collate_samples([first, again])
    assert len(batch) == 2 and batch[0] is first and batch[1] is again
    with pytest.raises(IndexError):
        ds[50]


def test_scene_styles_keep_the_scenes_and_change_only_the_checkers_and_camera_distance():
    """style "close": the same objects, paths, presets and turns as "standard" (one random stream), 1 m checkers and
    cameras at 2.2-3.2 m, so objects are larger in the frame; the ground truth stays consistent; an unknown style
    is refused by name."""
    from camgrid.synth.scenes import SCENE_STYLES
    kw = dict(length=12, height=48, width=80, num_frames=5, min_views=4, max_views=4, seed=7)
    standard, close = SyntheticMultiViewDataset(**kw), SyntheticMultiViewDataset(**kw, style="close")
    object_pixels = {"standard": 0, "close": 0}
    for i in range(4):
        (s_scene, s_rig), (c_scene, c_rig) = standard.scene_and_rig(i), close.scene_and_rig(i)
        assert s_scene.objects == c_scene.objects and s_scene.checker_size == SCENE_STYLES["standard"].checker_size
        assert c_scene.checker_size == SCENE_STYLES["close"].checker_size
        distance = float((c_rig.c2w[0, 0, :3, 3] - c_rig.target).norm())    # view 0 (a dolly moves the others)
        low, high = SCENE_STYLES["close"].camera_radius
        assert low - 1e-6 < distance < high + 1e-6, distance
        for name, ds in (("standard", standard), ("close", close)):
            item = SyntheticMultiViewDataset(**kw, style=name, return_ids=True)[i]
            object_pixels[name] += int((item["ids"] >= 0).sum())
            if name == "close":
                m = consistency_metrics(item["videos"], item["rig"], item["colours"])
                assert m["num_observations"] == 0 or m["reproj_px"] < 0.5
    assert object_pixels["close"] > 1.5 * object_pixels["standard"]
    with pytest.raises(ValueError, match="scene style.*'huge'"):
        SyntheticMultiViewDataset(**kw, style="huge")


def _azimuth_span(rig) -> float:
    """Degrees about the vertical between the first and the last camera, seen from the rig's target."""
    first, last = (rig.c2w[v, 0, :3, 3] - rig.target for v in (0, -1))
    turn = abs(math.degrees(math.atan2(float(last[2]), float(last[0])) - math.atan2(float(first[2]), float(first[0]))))
    return min(turn, 360 - turn)


def test_arc_span_widens_the_training_orbits_and_makes_copied_views_wrong():
    """arc_span (camgrid train --arc-span): the same scenes, orbit arcs spanning the given degrees; objects then
    move farther between the outer views (median 19.6 against 12.8 px for the default spans at seed 7), which is
    what makes views that merely look alike wrong. Bad spans are refused by name."""
    from camgrid.train.nvs import true_centroids
    kw = dict(length=24, height=48, width=80, num_frames=5, min_views=4, max_views=4, seed=7,
              presets={"orbit_arc": 1.0}, return_ids=True, style="close")
    moved = {}
    for span in (None, (60.0, 160.0)):
        data = SyntheticMultiViewDataset(**kw, arc_span=span)
        low, high = span or (20.0, 120.0)
        distances = []
        for i in range(24):
            item = data[i]
            assert low - 1e-6 <= _azimuth_span(item["rig"]) <= high + 1e-6
            assert data.scene_and_rig(i)[0] == SyntheticMultiViewDataset(**kw).scene_and_rig(i)[0]   # same scene
            centres, visible = true_centroids(torch.as_tensor(item["ids"]), len(item["colours"]))
            both = visible[:, -1] & visible[:, 0]
            distances += (centres[:, -1] - centres[:, 0]).norm(dim=-1)[both].tolist()
        moved[span] = torch.tensor(distances).median().item()
    assert moved[(60.0, 160.0)] > 1.3 * moved[None], moved
    for bad in ((0, 90), (90, 60), (30, 400), ("a", 2), (30,)):
        with pytest.raises(ValueError, match="arc_span"):
            SyntheticMultiViewDataset(**kw, arc_span=bad)


def test_empty_scenes_show_the_floor_alone_and_leave_the_other_items_as_they_were():
    """empty_share (camgrid train --empty-scene-share): about that share of the items has no objects (the ground
    under the item's own cameras, the empty caption, no tracks, no object pixels); every other item is the item of
    empty_share=0, pixel for pixel. Shares outside [0, 1) are refused by name."""
    kw = dict(length=40, height=16, width=24, num_frames=3, min_views=2, max_views=2, seed=3, return_ids=True)
    full, some = SyntheticMultiViewDataset(**kw), SyntheticMultiViewDataset(**kw, empty_share=0.5)
    empty = [i for i in range(40) if some.scene_and_rig(i)[0].num_objects == 0]
    assert 10 <= len(empty) <= 30 and all(full.scene_and_rig(i)[0].num_objects >= 2 for i in empty)
    item = some[empty[0]]
    assert item["caption"] == "" and item["colours"] == [] and item["tracks"].shape == (0, 3, 3)
    assert int((item["ids"] >= 0).sum()) == 0
    assert torch.equal(some.scene_and_rig(empty[0])[1].c2w, full.scene_and_rig(empty[0])[1].c2w)   # its cameras
    assert not torch.equal(item["videos"], full[empty[0]]["videos"])                # the objects are gone
    kept = next(i for i in range(40) if i not in empty)
    assert torch.equal(some[kept]["videos"], full[kept]["videos"]) and some[kept]["caption"] == full[kept]["caption"]
    assert all(SyntheticMultiViewDataset(**kw).scene_and_rig(i)[0].num_objects >= 2 for i in range(40))
    for bad in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="empty_share"):
            SyntheticMultiViewDataset(**kw, empty_share=bad)


def test_view_orders_keep_the_scenes_and_cameras_and_only_reorder_the_views():
    """view_order (camgrid train --view-order, tiny_follow_cameras --view-order): "reversed" is the preset rig's
    views last to first, "shuffled" a permutation of them that is the same on every call and differs between
    items; the scene is the same in every order, and the renders follow the views. Unknown orders are refused."""
    kw = dict(length=12, height=16, width=24, num_frames=3, min_views=4, max_views=4, seed=3)
    preset, reversed_, shuffled = (SyntheticMultiViewDataset(**kw, view_order=o)
                                   for o in ("preset", "reversed", "shuffled"))
    orders = set()
    for i in range(12):
        (scene, rig), (scene_r, rig_r), (scene_s, rig_s) = (d.scene_and_rig(i) for d in (preset, reversed_, shuffled))
        assert scene == scene_r == scene_s
        assert torch.equal(rig_r.c2w, rig.c2w.flip(0)) and rig_r.names == rig.names[::-1]
        order = [rig.names.index(name) for name in rig_s.names]
        assert sorted(order) == [0, 1, 2, 3] and torch.equal(rig_s.c2w, rig.c2w[order])
        assert torch.equal(rig_s.intrinsics, rig.intrinsics[order])
        assert shuffled.scene_and_rig(i)[1].names == rig_s.names                     # the same on every call
        orders.add(tuple(order))
    assert len(orders) > 3                                                           # items differ
    assert torch.equal(reversed_[5]["videos"], preset[5]["videos"].flip(0))
    with pytest.raises(ValueError, match="view_order"):
        SyntheticMultiViewDataset(**kw, view_order="sideways")


@pytest.mark.parametrize("seed", range(8))
def test_aligned_rigs_look_along_a_grid_line_over_the_origin_and_keep_the_other_draws(seed):
    import random

    from camgrid.synth.dataset import random_rig

    free = random_rig(random.Random(seed), 3, 5, 80 / 48, radius=(2.2, 3.2))
    aligned = random_rig(random.Random(seed), 3, 5, 80 / 48, radius=(2.2, 3.2), align_floor=True)
    forward, centre = aligned.c2w[0, 0, :3, 2], aligned.c2w[0, 0, :3, 3]
    assert min(abs(float(forward[0])), abs(float(forward[2]))) < 1e-9            # along x or along z
    assert min(abs(float(centre[0])), abs(float(centre[2]))) < 1e-9              # in a vertical plane through the origin
    assert float(aligned.target[0]) == float(aligned.target[2]) == 0.0
    # the same preset, distances, heights and field of view: only the turn and the sideways offset differ
    assert torch.allclose(aligned.intrinsics, free.intrinsics)
    for rig in (free, aligned):
        assert rig.c2w.shape == (3, 5, 4, 4)
    height = lambda rig: rig.c2w[:, 0, 1, 3] - rig.target[1]                    # noqa: E731
    reach = lambda rig: (rig.c2w[:, 0, :3, 3] - rig.target).norm(dim=-1)        # noqa: E731
    assert torch.allclose(height(aligned), height(free)) and torch.allclose(reach(aligned), reach(free))
    # the free rigs turn every way: seeds differ in view 0's heading by more than a quarter turn's multiples
    assert abs(math.remainder(math.atan2(float(free.c2w[0, 0, 2, 2]), float(free.c2w[0, 0, 0, 2])), math.pi / 2)) > 1e-6


def test_close_aligned_style_is_close_with_every_view_0_along_a_grid_line():
    """The aligned style renders close's scenes (the same captions, checkers and camera distances), its rigs turned
    so that view 0 looks along x or z over the origin; and only styles that differ in that turn look alike (a model
    of one may be trained further on the other)."""
    from camgrid.synth.scenes import SCENE_STYLES

    kw = dict(length=12, num_frames=5, min_views=2, max_views=4, seed=3)
    close, aligned = SyntheticMultiViewDataset(**kw, style="close"), SyntheticMultiViewDataset(**kw, style="close_aligned")
    headings = set()
    for i in range(12):
        (scene, rig), (scene_a, rig_a) = close.scene_and_rig(i), aligned.scene_and_rig(i)
        assert scene == scene_a and rig.num_views == rig_a.num_views
        forward = rig_a.c2w[0, 0, :3, 2]
        assert min(abs(float(forward[0])), abs(float(forward[2]))) < 1e-9
        assert float(rig_a.target[0]) == float(rig_a.target[2]) == 0.0
        headings.add(round(math.degrees(math.atan2(float(forward[2]), float(forward[0])))) % 360)
    assert len(headings) > 1                                          # all four grid directions occur, not one
    assert SCENE_STYLES["close"].looks_like(SCENE_STYLES["close_aligned"])
    assert SCENE_STYLES["close_aligned"].looks_like(SCENE_STYLES["close"])
    assert not SCENE_STYLES["standard"].looks_like(SCENE_STYLES["close_aligned"])


def test_turn_to_floor_grid_turns_view_0_onto_the_nearest_grid_line():
    from camgrid.model.camera import make_preset
    from camgrid.synth.dataset import turn_to_floor_grid

    for span in (120.0, 60.0, 200.0):
        rig = make_preset("orbit_arc", num_views=3, azimuth_span_deg=span, elevation_deg=20.0, radius=3.0,
                          num_frames=5)
        turned = turn_to_floor_grid(rig)
        forward = turned.c2w[0, 0, :3, 2]
        assert min(abs(float(forward[0])), abs(float(forward[2]))) < 1e-9
        # the same arc: distances between cameras and to the target are kept
        assert torch.allclose(torch.cdist(turned.c2w[:, 0, :3, 3], turned.c2w[:, 0, :3, 3]),
                              torch.cdist(rig.c2w[:, 0, :3, 3], rig.c2w[:, 0, :3, 3]))
        before = math.degrees(math.atan2(float(rig.c2w[0, 0, 2, 2]), float(rig.c2w[0, 0, 0, 2])))
        after = math.degrees(math.atan2(float(forward[2]), float(forward[0])))
        assert abs(math.remainder(after - before, 360.0)) <= 45.0     # the nearest of the four lines
