"""Cameras (docs/ARCHITECTURE.md §4 Cameras): conversions, importers, the official embeddings, presets, Plücker rays,
the limits every rig input is checked against, the rig nodes, and the mode/variant rules of model/modes.py."""
import json
import math
from pathlib import Path

import pytest
import torch

from camgrid.model.camera.encoding import NOMINAL_HFOV_DEGREES, extrinsics_rays
from camgrid.model.camera import (
    PRESETS, RECAMMASTER_TRAJECTORIES, SYNCAMMASTER_EXAMPLE_PAIRS, TRANSLATION_SCALE, CameraRig, CameraRigError,
    default_intrinsics, dolly, elevation_sweep, from_opencv_c2w, latent_frame_count, load_rig, look_at,
    make_preset, orbit_arc, parse_unreal_matrix, plucker_rays, recammaster_trajectory, relative_extrinsics,
    rig_from_matrices, rig_from_unreal_json, rig_to_dict, save_rig, syncammaster_example_rig, to_opencv_c2w,
)

REFERENCE_DATA = Path(__file__).resolve().parents[2] / "shared" / "reference-data"

# Embeddings computed from the reference files must match the official float32 output to rounding.
EMBED_RTOL = 1e-5
# camgrid's presets are built from exact angles/distances; the official files print translations
# to 0.1 cm (SynCamMaster, ~12960.2 cm) or 0.01 cm (ReCamMaster), rotations to 6 digits, so the
# presets agree with the files to that rounding: 2e-4 in embedding units (<= 0.4 mm).
PRESET_ATOL = 2e-4


def reference_json(name: str):
    path = REFERENCE_DATA / name
    if not path.is_file():
        pytest.skip(f"reference data {path} is absent (it sits in ../shared/reference-data beside the checkout in CI)")
    return json.loads(path.read_text())


def assert_embeddings_close(got: torch.Tensor, ref: torch.Tensor, rtol: float = EMBED_RTOL):
    assert got.shape == ref.shape
    assert got.dtype == torch.float32
    scale = ref.abs().clamp(min=1.0)
    err = ((got.double() - ref.double()).abs() / scale).max().item()
    assert err <= rtol, f"max relative difference {err:.3g} > {rtol}"


def random_c2w(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.linalg.det(q)[:, None, None].sign()  # det +1
    m = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    m[:, :3, :3] = q
    m[:, :3, 3] = torch.randn(n, 3, generator=g, dtype=torch.float64) * 3
    return m


# ------------------------------------------------------------------------------------------------
# conversions and the schema
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("convention", ["opencv", "opengl", "blender"])
@pytest.mark.parametrize("matrix", ["c2w", "w2c"])
def test_convention_round_trip(convention, matrix):
    c2w = random_c2w(6)
    other = from_opencv_c2w(c2w, convention, matrix)
    if (convention, matrix) != ("opencv", "c2w"):
        assert not torch.allclose(other, c2w)
    torch.testing.assert_close(to_opencv_c2w(other, convention, matrix), c2w, rtol=0, atol=1e-12)


def test_opengl_camera_axes_flip():
    # an OpenGL camera at the origin with identity pose looks down world -z, with y up:
    # in OpenCV axes its forward (z) column is -z and its down (y) column is -y
    cv = to_opencv_c2w(torch.eye(4), "opengl", "c2w")
    torch.testing.assert_close(cv, torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)))
    w2c = torch.linalg.inv(random_c2w(1)[0])
    torch.testing.assert_close(to_opencv_c2w(w2c, "opencv", "w2c"), torch.linalg.inv(w2c))


@pytest.mark.parametrize("convention,matrix", [("opencv", "c2w"), ("opengl", "w2c"), ("blender", "c2w")])
def test_schema_save_load_round_trip(tmp_path, convention, matrix):
    rig = CameraRig(random_c2w(10).reshape(2, 5, 4, 4), default_intrinsics(2, 50.0), ["left", "right"],
                    target=[0.0, 1.0, 2.0])
    path = save_rig(rig, tmp_path / "rig.json", convention, matrix)
    data = json.loads(path.read_text())
    assert data["format"] == "camgrid.rig" and data["convention"] == convention and data["matrix"] == matrix
    back = load_rig(path)
    assert back.names == ["left", "right"]
    torch.testing.assert_close(back.c2w, rig.c2w, rtol=0, atol=1e-12)
    torch.testing.assert_close(back.intrinsics, rig.intrinsics)
    torch.testing.assert_close(back.target, rig.target)
    assert load_rig(rig_to_dict(rig)).c2w.equal(rig.c2w)


def test_schema_static_view_and_units():
    moving = random_c2w(3)
    static = random_c2w(1, seed=1)[0]
    in_cm = moving.clone()
    in_cm[:, :3, 3] *= 100.0
    data = {"format": "camgrid.rig", "version": 1, "convention": "opencv", "matrix": "c2w", "units": "cm",
            "views": [{"name": "a", "c2w": in_cm.tolist()},
                      {"name": "b", "c2w": static.tolist()}]}
    rig = load_rig(data)
    assert (rig.num_views, rig.num_frames) == (2, 3)
    torch.testing.assert_close(rig.c2w[0], moving)
    static_m = static.clone()
    static_m[:3, 3] /= 100.0
    torch.testing.assert_close(rig.c2w[1], static_m.expand(3, 4, 4))
    torch.testing.assert_close(rig.intrinsics, default_intrinsics(2))


def test_plain_matrix_list():
    c2w = random_c2w(4)
    gl = from_opencv_c2w(c2w, "blender", "c2w")
    rig = load_rig({"convention": "blender", "matrix": "c2w", "matrices": gl.tolist()})
    assert (rig.num_views, rig.num_frames) == (1, 4)
    torch.testing.assert_close(rig.c2w[0], c2w)
    rig = load_rig({"convention": "opencv", "matrix": "w2c", "layout": "views",
                    "matrices": torch.linalg.inv(c2w).tolist()})
    assert (rig.num_views, rig.num_frames) == (4, 1)
    torch.testing.assert_close(rig.c2w[:, 0], c2w)
    rig = load_rig({"convention": "opengl", "matrix": "c2w", "cameras": {"x": gl[:2].tolist(), "y": gl[3].tolist()}})
    assert rig.names == ["x", "y"] and rig.num_frames == 2
    with pytest.raises(CameraRigError, match="convention"):
        load_rig(gl.tolist())
    with pytest.raises(CameraRigError, match="convention"):
        load_rig({"matrices": gl.tolist()})
    with pytest.raises(CameraRigError, match="unknown camera convention"):
        load_rig({"convention": "unity", "matrices": gl.tolist()})


# ------------------------------------------------------------------------------------------------
# official files and embeddings
# ------------------------------------------------------------------------------------------------

def test_unreal_matrix_conversion_matches_official_formula():
    text = "[0.866025 -0.5 0 0] [0.5 0.866025 -0 0] [0 0 1 0] [12960.2 1250 -570 1] "
    m = parse_unreal_matrix(text)
    assert m[3].tolist() == [12960.2, 1250.0, -570.0, 1.0]
    official = m.T[:, [1, 2, 0, 3]].clone()       # what SynCamMaster / ReCamMaster compute
    official[:3, 1] *= -1
    official[:3, 3] /= 100
    # the official result keeps Unreal's left-handed world: det -1; camgrid's has det +1
    assert torch.linalg.det(official[:3, :3]) == pytest.approx(-1.0, abs=1e-5)
    rig = rig_from_unreal_json({"frame0": {"camA": text, "camB": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [100 0 0 1]"}})
    assert torch.linalg.det(rig.c2w[0, 0, :3, :3]) == pytest.approx(1.0, abs=1e-5)
    # ... and the difference is a fixed world reflection, so relative poses are identical
    official_b = torch.eye(4, dtype=torch.float64)
    official_b[:3, :3] = torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, -1, 0]])
    official_b[:3, 3] = torch.tensor([1.0, 0, 0])
    torch.testing.assert_close(torch.linalg.inv(rig.c2w[0, 0]) @ rig.c2w[1, 0],
                               torch.linalg.inv(official) @ official_b)
    # an Unreal camera at rest looks along world +X, which camgrid calls +z (forward)
    torch.testing.assert_close(rig.c2w[1, 0, :3, 2], torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64))


def test_syncammaster_example_embeddings():
    cams = reference_json("syncammaster_camera_extrinsics.json")
    expected = reference_json("syncammaster_example_embeddings.json")["pairs"]
    rig = load_rig(cams)
    assert rig.num_views == 10 and rig.num_frames == 81 and rig.is_static
    assert set(expected) == set(SYNCAMMASTER_EXAMPLE_PAIRS)
    for key, (ref_cam, other_cam) in SYNCAMMASTER_EXAMPLE_PAIRS.items():
        assert (expected[key]["reference_cam"], expected[key]["other_cam"]) == (ref_cam, other_cam)
        ref = torch.tensor(expected[key]["embedding_views_frames_12"])
        got = relative_extrinsics(rig.select_views([ref_cam, other_cam]), TRANSLATION_SCALE["syncammaster"], "view0")
        assert got.shape == (2, 21, 12)
        assert_embeddings_close(got, ref)
        # view 0 is the identity
        assert got[0].equal(torch.tensor([1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]).expand(21, 12))


def test_recammaster_trajectory_embeddings():
    cams = reference_json("recammaster_camera_extrinsics.json")
    expected = reference_json("recammaster_preset_embeddings.json")["cam_types"]
    rig = load_rig(cams)
    assert rig.num_views == 10 and rig.num_frames == 81 and not rig.is_static
    assert len(expected) == len(RECAMMASTER_TRAJECTORIES) == 10
    for i, traj in enumerate(RECAMMASTER_TRAJECTORIES):
        entry = expected[str(i + 1)]
        assert entry["name"].replace(" ", "_") == traj
        ref = torch.tensor(entry["embedding_frames_12"])
        got = relative_extrinsics(rig.select_views([i]), "recammaster", reference="first_pose")
        assert got.shape == (1, 21, 12)
        assert_embeddings_close(got[0], ref)


def test_syncammaster_preset_matches_official_geometry():
    file_rig = load_rig(reference_json("syncammaster_camera_extrinsics.json"))
    expected = reference_json("syncammaster_example_embeddings.json")["pairs"]
    preset = syncammaster_example_rig()
    assert preset.names == file_rig.names and preset.num_frames == 81 and preset.is_static
    # all ten cameras relative to cam01, every latent frame
    diff = relative_extrinsics(preset, 0.5) - relative_extrinsics(file_rig, 0.5)
    assert diff.abs().max() <= PRESET_ATOL
    for key, (ref_cam, other_cam) in SYNCAMMASTER_EXAMPLE_PAIRS.items():
        got = relative_extrinsics(preset.select_views([ref_cam, other_cam]), "syncammaster")
        ref = torch.tensor(expected[key]["embedding_views_frames_12"])
        assert (got - ref).abs().max() <= PRESET_ATOL, key


def test_recammaster_presets_match_official_trajectories():
    file_rig = load_rig(reference_json("recammaster_camera_extrinsics.json"))
    expected = reference_json("recammaster_preset_embeddings.json")["cam_types"]
    for i, traj in enumerate(RECAMMASTER_TRAJECTORIES):
        preset = recammaster_trajectory(traj)
        assert (preset.num_views, preset.num_frames) == (1, 81)
        got = relative_extrinsics(preset, "recammaster", "first_pose")[0]
        assert (got - torch.tensor(expected[str(i + 1)]["embedding_frames_12"])).abs().max() <= PRESET_ATOL, traj
        # every one of the 81 video frames, not only the latent ones
        own = file_rig.c2w[i]
        rel = torch.linalg.inv(own[0]) @ own
        assert (rel - preset.c2w[0]).abs().max() <= PRESET_ATOL, traj


# ------------------------------------------------------------------------------------------------
# relative encoding and resampling
# ------------------------------------------------------------------------------------------------

def test_relative_extrinsics_rules():
    rig = orbit_arc(3, 60.0, 0.0, 3.0, num_frames=9)
    emb = relative_extrinsics(rig, 1.0)
    assert emb.shape == (3, latent_frame_count(9), 12) == (3, 3, 12)
    # view 2 relative to view 0: translation along +x (to the right of view 0 is view 2)
    c0, c2 = rig.c2w[0, 0], rig.c2w[2, 0]
    p = (torch.linalg.inv(c0) @ c2)[:3, :4].reshape(12).float()
    torch.testing.assert_close(emb[2, 0], p)
    # translation scales linearly, rotations do not
    half = relative_extrinsics(rig, "syncammaster")
    torch.testing.assert_close(half[..., 3::4], emb[..., 3::4] * 0.5)
    torch.testing.assert_close(half.reshape(3, 3, 3, 4)[..., :3], emb.reshape(3, 3, 3, 4)[..., :3])
    # first_pose: each view's first latent frame is the identity; a fixed reference pose works too
    first = relative_extrinsics(recammaster_trajectory("zoom_in"), 1.0, "first_pose")
    torch.testing.assert_close(first[0, 0], torch.tensor([1.0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]))
    assert first[0, -1, 11] > 1.9  # moved ~2 m forward (+z)
    fixed = relative_extrinsics(rig, 1.0, reference=rig.c2w[0, 0])
    torch.testing.assert_close(fixed, emb)
    with pytest.raises(CameraRigError, match="unknown model"):
        relative_extrinsics(rig, "sora")
    with pytest.raises(CameraRigError, match="unknown reference"):
        relative_extrinsics(rig, 1.0, reference="middle")


def test_num_latent_frames_resamples_whole_path():
    traj = recammaster_trajectory("pan_right")
    emb = relative_extrinsics(traj, 1.0, "first_pose", num_latent_frames=13)  # a 49-frame clip
    full = relative_extrinsics(traj, 1.0, "first_pose")
    assert emb.shape == (1, 13, 12)
    torch.testing.assert_close(emb[0, 0], full[0, 0])
    torch.testing.assert_close(emb[0, -1], full[0, -1], rtol=0, atol=1e-6)  # same end pose
    static = orbit_arc(2, num_frames=1)
    assert relative_extrinsics(static, 1.0, num_latent_frames=21).shape == (2, 21, 12)


def test_resample_frames():
    traj = recammaster_trajectory("arc_left")
    sub = traj.resample_frames(21)
    assert sub.c2w.equal(traj.c2w[:, ::4])           # exact picks
    back = sub.resample_frames(81)
    assert back.c2w[:, ::4].equal(sub.c2w)
    # rotation interpolation is a slerp: the midpoint of a pan is half the angle
    pan = recammaster_trajectory("pan_right", num_frames=2, amplitude=40.0)  # frames at 0 and 40/1.5 deg
    mid = pan.resample_frames(3).c2w[0, 1]
    angle = math.degrees(math.atan2(mid[0, 2], mid[2, 2]))
    assert angle == pytest.approx(40.0 / 1.5 / 2, abs=1e-9)
    torch.testing.assert_close(torch.linalg.det(mid[:3, :3]), torch.tensor(1.0, dtype=torch.float64))
    assert orbit_arc(2, num_frames=1).resample_frames(5).num_frames == 5


# ------------------------------------------------------------------------------------------------
# presets and validation
# ------------------------------------------------------------------------------------------------

def test_presets_geometry():
    rig = orbit_arc(5, 90.0, 20.0, 4.0, target=(1.0, 0.0, 0.0), num_frames=5)
    centre = rig.c2w[:, 0, :3, 3]
    torch.testing.assert_close((centre - rig.target).norm(dim=-1), torch.full((5,), 4.0, dtype=torch.float64))
    assert (centre[:, 1] < 0).all()                   # raised: up is -y
    assert (centre[1:, 0] > centre[:-1, 0]).all()     # view 0 leftmost
    # every camera looks at the target
    forward = rig.c2w[:, 0, :3, 2]
    torch.testing.assert_close(forward, (rig.target - centre) / 4.0)
    sweep = elevation_sweep(4, 30.0, radius=3.0)
    torch.testing.assert_close(sweep.c2w[:, 0, 2, 3], torch.full((4,), -3.0, dtype=torch.float64))  # ground distance kept
    torch.testing.assert_close(-sweep.c2w[:, 0, 1, 3], 3.0 * torch.tan(torch.deg2rad(torch.tensor([0.0, 10, 20, 30],
                                                                                                 dtype=torch.float64))))
    d = dolly(3, 1.0, 3.0)
    torch.testing.assert_close(d.c2w[:, 0, 2, 3], torch.tensor([-3.0, -4.0, -5.0], dtype=torch.float64))


def test_preset_registry():
    assert {"orbit_arc", "elevation_sweep", "dolly", "syncammaster_example"} <= set(PRESETS)
    assert all(f"recammaster_{t}" in PRESETS for t in RECAMMASTER_TRAJECTORIES)
    for name, spec in PRESETS.items():
        rig = make_preset(name, num_frames=5)
        rig.validate()
        assert rig.num_frames == 5, name
        assert "num_frames" in spec.params and "name" not in spec.params
    assert make_preset("orbit_arc", num_views=6).num_views == 6
    assert make_preset("recammaster_tilt_up").names == ["tilt_up"]
    with pytest.raises(CameraRigError, match="unknown camera preset"):
        make_preset("spiral")
    with pytest.raises(CameraRigError, match="no parameter"):
        make_preset("dolly", azimuth_span_deg=30)


def _rig_with(mutate, v=1, f=2):
    c2w = orbit_arc(3, num_frames=4).c2w.clone()
    mutate(c2w[v, f])
    return CameraRig(c2w)


@pytest.mark.parametrize("mutate,message", [
    (lambda m: m[:3, :3].mul_(2.0), "not orthonormal"),
    (lambda m: m[:3, 0].mul_(-1.0), "determinant -1"),
    (lambda m: m[0, 3].fill_(float("nan")), "NaN"),
    (lambda m: m.copy_(m.T.clone()), "bottom row"),
])
def test_bad_rigs_name_camera_and_frame(mutate, message):
    with pytest.raises(CameraRigError, match=message) as err:
        _rig_with(mutate).validate()
    assert "camera 'cam02'" in str(err.value) and "frame 2" in str(err.value)


def test_bad_rig_shapes_and_files():
    good = orbit_arc(2, num_frames=3)
    with pytest.raises(CameraRigError, match="names"):
        CameraRig(good.c2w, names=["a"]).validate()
    with pytest.raises(CameraRigError, match="unique"):
        CameraRig(good.c2w, names=["a", "a"]).validate()
    with pytest.raises(CameraRigError, match="intrinsics"):
        CameraRig(good.c2w, intrinsics=torch.ones(3, 4)).validate()
    with pytest.raises(CameraRigError, match="positive"):
        CameraRig(good.c2w, intrinsics=torch.tensor([0.0, 1.0, 0.5, 0.5])).validate()
    with pytest.raises(CameraRigError, match="frame counts"):
        load_rig({"convention": "opencv", "cameras": {"a": good.c2w[0].tolist(), "b": good.c2w[1, :2].tolist()}})
    ident = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"
    with pytest.raises(CameraRigError, match="same cameras"):
        load_rig({"frame0": {"cam01": ident, "cam02": ident}, "frame1": {"cam01": ident}})
    with pytest.raises(CameraRigError, match="cam02.*frame1"):
        load_rig({"frame0": {"cam01": ident, "cam02": ident}, "frame1": {"cam01": ident, "cam02": "[1 0 0] [0 1 0]"}})
    with pytest.raises(CameraRigError, match="missing"):
        load_rig({"frame0": {"cam01": ident}, "frame2": {"cam01": ident}})
    with pytest.raises(CameraRigError, match="last column"):
        load_rig({"frame0": {"cam01": "[1 0 0 5] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}})
    with pytest.raises(CameraRigError, match="not found"):
        load_rig("/nonexistent/rig.json")
    with pytest.raises(CameraRigError, match="out of range"):
        good.select_views([5])
    with pytest.raises(CameraRigError, match="no camera named"):
        good.select_views(["cam09"])


def test_select_views_and_static():
    rig = syncammaster_example_rig(num_frames=3)
    sub = rig.select_views(["cam07", 0])
    assert sub.names == ["cam07", "cam01"]
    assert sub.c2w[1].equal(rig.c2w[0])
    assert rig.is_static and not recammaster_trajectory("zoom_out", num_frames=3).is_static


@pytest.mark.parametrize("offset,static", [(0.0, True), (9e-10, True), (-9e-10, True), (2e-9, False), (-2e-9, False)])
def test_is_static_means_every_frame_within_1e9_of_frame_0(offset, static):
    """is_static is computed from reductions over frames (no rig-sized temporary); it must still mean what
    allclose against frame 0 means, including a frame that moves one way while another moves the other."""
    c2w = orbit_arc(3, num_frames=5).c2w.clone()
    c2w[1, 3, 0, 3] += offset
    c2w[1, 1, 0, 3] -= 0.9 * offset   # the same entry the other way: max - min exceeds 1e-9, each frame does not
    rig = CameraRig(c2w)
    assert rig.is_static is static
    assert rig.is_static == torch.allclose(c2w, c2w[:, :1].expand_as(c2w), rtol=0.0, atol=1e-9)


def test_determinant_check_agrees_with_linalg_det():
    """check_poses takes det R from its 3x3 formula; on random rotations, mirrored or not, its sign is
    linalg.det's."""
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(64, 3, 3, generator=gen, dtype=torch.float64))
    c2w = torch.eye(4, dtype=torch.float64).repeat(64, 1, 1)
    flip = torch.rand(64, generator=gen) < 0.5
    q[flip, :, 0] *= -1.0   # a mirrored frame in about half
    c2w[:, :3, :3] = q
    mirrored = torch.linalg.det(q) < 0
    assert 0 < int(mirrored.sum()) < 64   # both kinds are in the sample
    for i in range(64):
        if mirrored[i]:
            with pytest.raises(CameraRigError, match="determinant -1"):
                CameraRig(c2w[i][None, None])
        else:
            CameraRig(c2w[i][None, None])


# ------------------------------------------------------------------------------------------------
# Plücker rays
# ------------------------------------------------------------------------------------------------

def test_plucker_principal_ray_of_identity_camera():
    rig = CameraRig(torch.eye(4, dtype=torch.float64))
    rays = plucker_rays(rig, 5, 7)
    assert rays.shape == (1, 6, 1, 5, 7)
    centre = rays[0, :, 0, 2, 3]                 # pixel centre (3.5/7, 2.5/5) = (cx, cy)
    torch.testing.assert_close(centre, torch.tensor([0.0, 0, 0, 0, 0, 1]))
    # right of centre tilts +x, below tilts +y (OpenCV axes)
    assert rays[0, 3, 0, 2, 6] > 0 and rays[0, 4, 0, 4, 3] > 0
    torch.testing.assert_close(rays[0, 3:].norm(dim=0), torch.ones(1, 5, 7))


def test_plucker_world_point_lies_on_its_pixel_ray():
    c2w = look_at([1.0, -0.5, -3.0], [0.2, 0.1, 0.0])
    point = torch.tensor([0.4, -0.3, 0.6], dtype=torch.float64)
    height, width, row, col = 6, 10, 4, 2
    k = default_intrinsics(1)[0]
    cam = torch.linalg.inv(c2w) @ torch.cat([point, torch.ones(1, dtype=torch.float64)])
    u, v = k[0] * cam[0] / cam[2] + k[2], k[1] * cam[1] / cam[2] + k[3]
    # move the principal point so that the point projects exactly onto pixel (row, col)'s centre
    k[2] += (col + 0.5) / width - u
    k[3] += (row + 0.5) / height - v
    rig = CameraRig(torch.stack([c2w] * 5)[None], k)
    rays = plucker_rays(rig, height, width).double()
    assert rays.shape == (1, 6, 2, height, width)
    moment, d = rays[0, :3, 1, row, col], rays[0, 3:, 1, row, col]
    torch.testing.assert_close(torch.linalg.cross(point, d), moment, rtol=0, atol=1e-6)
    assert torch.dot(point - c2w[:3, 3], d) > 0   # in front of the camera
    # a neighbouring pixel's ray misses the point
    d2, m2 = rays[0, 3:, 1, row, col + 1], rays[0, :3, 1, row, col + 1]
    assert (torch.linalg.cross(point, d2) - m2).abs().max() > 1e-3


def test_extrinsics_rays_are_the_rigs_plucker_rays_at_the_nominal_field_of_view():
    """The built-in model's rays, made from the 12-d relative extrinsics alone, are exactly plucker_rays of the
    same rig made relative to view 0 (translation scaled), had its cameras the nominal 60-degree field of view."""
    height, width = 6, 10
    rig = orbit_arc(num_views=3, azimuth_span_deg=50, radius=3.0, num_frames=9)
    rig.intrinsics = default_intrinsics(3, NOMINAL_HFOV_DEGREES, aspect=width / height)
    emb = relative_extrinsics(rig, "syncammaster", "view0")                     # [V, T, 12]
    got = extrinsics_rays(emb, height, width)
    assert got.shape == (3, 3, height * width, 6) and got.dtype == torch.float32
    want = plucker_rays(rig, height, width, reference="view0", translation_scale="syncammaster")
    want = want.permute(0, 2, 3, 4, 1).flatten(2, 3)                           # [V, T, h*w, 6]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # another field of view gives other rays: the nominal one is what the model reads
    assert (extrinsics_rays(emb, height, width, hfov_degrees=50.0) - want).abs().max() > 1e-2


# ------------------------------------------------------------------------------------------------
# bad input: every camera reproducer of the reliability issue gives a one-line CameraRigError
# ------------------------------------------------------------------------------------------------

IDENT = "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"
I4 = torch.eye(4).tolist()


def peak_rss_growth(fn):
    """(result, peak resident memory growth in bytes) of fn(); Linux resets the peak through clear_refs."""
    def status():
        fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(fields["VmHWM"].split()[0]) * 1024, int(fields["VmRSS"].split()[0]) * 1024

    Path("/proc/self/clear_refs").write_text("5")
    before = status()[1]
    result = fn()
    return result, status()[0] - before


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak-RSS reset needs Linux /proc")
@pytest.mark.parametrize("key", ["frame30000000", "frame100000000000", "frame" + "9" * 5000])
def test_a_tiny_camera_file_cannot_make_the_loader_allocate(key):
    data = {"frame0": {"c": IDENT}, key: {"c": IDENT}}

    def load():
        with pytest.raises(CameraRigError, match="frame") as err:
            load_rig(data)
        return str(err.value)

    message, growth = peak_rss_growth(load)
    assert growth < 50e6, f"{growth / 1e6:.0f} MB for a {len(json.dumps(data))}-byte rig"
    assert "\n" not in message


def test_frame_numbers_are_contiguous_and_unique():
    with pytest.raises(CameraRigError, match="'frame0' and 'frame00' both name frame 0"):
        load_rig({"frame0": {"c": IDENT}, "frame00": {"c": IDENT}})
    with pytest.raises(CameraRigError, match="missing: frame1; beyond the end: frame2"):
        load_rig({"frame0": {"c": IDENT}, "frame2": {"c": IDENT}})
    assert load_rig({"frame1": {"c": IDENT}, "frame0": {"c": IDENT}}).num_frames == 2


@pytest.mark.parametrize("data,message", [
    ({"format": "camgrid.rig", "version": float("inf"), "views": [{"c2w": I4}]}, "'version' must be a whole number"),
    ({"format": "camgrid.rig", "version": [], "views": [{"c2w": I4}]}, "'version' must be a whole number"),
    ({"format": "camgrid.rig", "version": 2, "views": [{"c2w": I4}]}, "newer than this camgrid"),
    ({"format": "camgrid.rig", "views": [[]]}, r"views\[0\].*4x4"),
    ({"format": "camgrid.rig", "views": 1}, "'views' must be a non-empty list"),
    ({"format": "camgrid.rig", "views": []}, "'views' must be a non-empty list"),
    ({"format": "camgrid.rig", "target": {}, "views": [{"c2w": I4}]}, "field 'target'"),
    ({"format": "camgrid.rig", "target": [0, 0], "views": [{"c2w": I4}]}, "field 'target'.*3 numbers"),
    ({"format": "camgrid.rig", "views": [{"c2w": "1"}]}, "camera 'cam01', field 'c2w'.*got a string"),
    ({"format": "camgrid.rig", "views": [{"c2w": [[10 ** 400, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}]},
     "camera 'cam01', field 'c2w'.*too large"),
    ({"format": "camgrid.rig", "views": [{"c2w": [[float("nan"), 0, 0, 0]] + I4[1:]}]}, r"field 'c2w'\[0\]\[0\].*NaN"),
    ({"format": "camgrid.rig", "matrix": "w2c", "views": [{"name": "s", "w2c": [[0.0] * 4] * 3 + [[0, 0, 0, 1]]}]},
     "camera 's'.*field 'w2c'.*not orthonormal"),
    ({"format": "camgrid.rig", "views": [{"name": "a", "w2c": I4}]}, "has 'w2c' matrices but the file says"),
    ({"format": "camgrid.rig", "views": [{"name": 5.5, "c2w": I4}]}, "name' must be a string|camera name must be"),
    ({"format": "camgrid.rig", "views": [{"c2w": I4, "intrinsics": [1, 1, 0.5]}]}, "field 'intrinsics'"),
    ({"format": "camgrid.rig", "views": [{"c2w": I4}], "cameras": {"a": I4}}, "both 'views' and 'cameras'"),
    ({"convention": "opencv", "cameras": {"a": torch.eye(3).tolist()}}, "camera 'a', field 'cameras'.*4x4"),
    ({"convention": "opencv", "cameras": {"a": [None]}}, r"camera 'a', field 'cameras'\[0\].*null"),
    ({"convention": "opencv", "cameras": {}}, "'cameras' must be an object"),
    ({"convention": "opencv", "cameras": {"a": I4, "b": I4}, "intrinsics": [[1, 1, .5, .5], [1, 1, .5]]},
     r"field 'intrinsics'\[1\].*different lengths"),
    ({"convention": "opencv", "matrices": [I4], "names": 5}, "field 'names'.*list of camera names"),
    ({"convention": "opencv", "layout": "views", "matrices": [I4, I4], "names": ["a"]}, "1 name for 2 cameras"),
    ({"convention": "opencv", "units": "feet", "matrices": [I4]}, "unknown units"),
    ({"convention": 3, "matrices": [I4]}, "unknown camera convention"),
    ({"convention": "opencv", "layout": "rows", "matrices": [I4]}, "unknown layout"),
    ({"convention": "opencv", "layout": "views", "matrices": [I4, [[1, 0, 0, 1e300]] + I4[1:]]},
     "camera 'cam02'.*more than 1e\\+07 m"),
    ({"convention": "opencv", "matrices": [I4], "intrinsics": [1e-320, 1, 0.5, 0.5]}, "camera 'cam01'.*fx, fy"),
    ({"frame0": {"c": "[nan 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}, "camera 'c', frame0.*NaN"),
    ({"frame0": {"c": [1, 0]}}, "camera 'c', frame0.*matrix string"),
    ({"frame0": {}}, "'frame0' must map camera names"),
    ({"frame0": {"c": IDENT}, "target": [0, 0, 0]}, "mixes in other keys"),
    ({"frame0": {"c": IDENT}, "frame1": 7}, "'frame1' does not list the same cameras"),
    ({"views": {}}, "needs a 'convention' field"),
    ({}, "no cameras"),
    ([], "bare list"),
    (1, "cannot read a camera rig from a number"),
])
def test_malformed_rigs_give_one_line_camera_rig_errors(data, message):
    with pytest.raises(CameraRigError, match=message) as err:
        load_rig(data)
    assert "\n" not in str(err.value)


def test_camera_rig_error_is_a_camgrid_error():
    from camgrid.model.checks import CamGridError

    assert issubclass(CameraRigError, CamGridError) and issubclass(CameraRigError, ValueError)


def test_a_list_of_4x4_under_views_is_one_static_camera_each():
    gl = from_opencv_c2w(random_c2w(3), "opengl", "c2w")
    rig = load_rig({"convention": "opengl", "views": [gl[0].tolist(), gl[1:].tolist()]})
    assert rig.names == ["cam01", "cam02"] and rig.num_frames == 2
    torch.testing.assert_close(rig.c2w[0, 1], rig.c2w[0, 0])                # the static camera is repeated
    torch.testing.assert_close(rig.c2w[1], random_c2w(3)[1:])
    with pytest.raises(CameraRigError, match="needs a 'convention' field"):
        load_rig({"views": [gl[0].tolist()]})                                  # the axes are never guessed


def write_bytes(tmp_path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_rig_files_name_the_file_and_never_echo_it(tmp_path):
    secret = "API_KEY=sk-0123456789abcdef"
    cases = {
        "env.json": (secret + "\n").encode(),
        "format.json": json.dumps({"format": secret, "views": []}).encode(),
        "convention.json": json.dumps({"convention": secret, "matrices": [I4]}).encode(),
        "latin1.json": '{"frame0": {"cam\xe9": "[1 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}'.encode("latin-1"),
        "deep.json": ("[" * 100000 + "]" * 100000).encode(),
        "digits.json": b'{"format": "camgrid.rig", "version": ' + b"1" * 5000 + b"}",
        "matrix.json": json.dumps({"frame0": {"c": f"[{secret}] [0 1 0 0] [0 0 1 0] [0 0 0 1]"}}).encode(),
        "empty.json": b"",
    }
    for name, raw in cases.items():
        path = write_bytes(tmp_path, name, raw)
        with pytest.raises(CameraRigError) as err:
            load_rig(path)
        text = str(err.value)
        assert name in text and "\n" not in text, text
        assert "sk-0123" not in text, text


def test_rig_file_encodings(tmp_path):
    data = {"frame0": {"cam01": IDENT}}
    for encoding in ("utf-8", "utf-8-sig", "utf-16", "utf-32"):
        path = write_bytes(tmp_path, f"{encoding}.json", json.dumps(data).encode(encoding))
        assert load_rig(path).names == ["cam01"], encoding
    with pytest.raises(CameraRigError, match="is not UTF-8 text"):
        load_rig(write_bytes(tmp_path, "latin.json", '{"frame0": {"é": "x"}}'.encode("latin-1")))


def test_a_huge_rig_file_is_refused_before_reading(tmp_path):
    from camgrid.model.camera.limits import MAX_RIG_FILE_BYTES

    path = tmp_path / "huge.json"
    with open(path, "wb") as f:
        f.truncate(MAX_RIG_FILE_BYTES + 1)   # sparse: no disk used
    with pytest.raises(CameraRigError, match="huge.json.*larger than"):
        load_rig(path)


def test_save_rig_validates_first_and_writes_strict_json_atomically(tmp_path):
    path = save_rig(orbit_arc(2, num_frames=3), tmp_path / "rig.json")
    before = path.read_bytes()
    bad = orbit_arc(2, num_frames=3)
    bad.c2w[1, 2, 0, 3] = float("nan")            # edited after construction: save_rig validates again
    with pytest.raises(CameraRigError, match="camera 'az\\+30' \\(view 1\\), frame 2.*NaN"):
        save_rig(bad, path)
    assert path.read_bytes() == before             # the previous file is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rig.json"]   # no temporary file left
    json.loads(before, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))


def test_rigs_are_validated_when_made():
    c2w = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1, 1)
    c2w[1, 0, 0, 3] = 1e39                          # the 1e39 m baseline that gave an inf embedding
    with pytest.raises(CameraRigError, match="camera 'cam02'.*more than"):
        CameraRig(c2w)
    with pytest.raises(CameraRigError, match="fx, fy"):
        CameraRig(torch.eye(4), intrinsics=[1e-320, 1e-320, 0.5, 0.5])
    with pytest.raises(CameraRigError, match="CameraRig.c2w.*got a string"):
        CameraRig([["x"]])
    with pytest.raises(CameraRigError, match="CameraRig.names"):
        CameraRig(torch.eye(4), names=5)


@pytest.mark.parametrize("call,message", [
    (lambda: orbit_arc(hfov_deg=0), "hfov_deg must be a number between 1 and 179"),
    (lambda: default_intrinsics(1, 0.0), "hfov_deg"),
    (lambda: orbit_arc(radius=1e300), "radius must be a number between"),
    (lambda: orbit_arc(radius=-1.0), "radius must be a number between"),
    (lambda: orbit_arc(radius=float("nan")), "radius must be a number between .* got nan"),
    (lambda: orbit_arc(num_views=0), "num_views must be a whole number between 1 and 64"),
    (lambda: orbit_arc(num_views=2.5), "num_views must be a whole number"),
    (lambda: orbit_arc(num_frames=4_000_001), "num_frames must be a whole number between 1 and 4097"),
    (lambda: orbit_arc(elevation_deg=90.0), "elevation_deg must be a number between -89 and 89"),
    (lambda: orbit_arc(target=(0.0, float("inf"), 0.0)), "target.*NaN or infinite"),
    (lambda: dolly(3, step=-2.0, radius=3.0), "view 2 would be -1 m from the target"),
    (lambda: recammaster_trajectory("pan_left", amplitude=float("inf")), "amplitude must be"),
    (lambda: recammaster_trajectory("spin"), "unknown ReCamMaster trajectory"),
    (lambda: orbit_arc(2, num_frames=3).resample_frames(4_000_001), "num_frames must be a whole number"),
    (lambda: relative_extrinsics(orbit_arc(2, num_frames=3), 1.0, num_latent_frames=10 ** 6), "num_latent_frames"),
    (lambda: relative_extrinsics(orbit_arc(2, num_frames=3), float("nan")), "translation_scale must be"),
    (lambda: relative_extrinsics(orbit_arc(2, num_frames=3), 0.0), "translation_scale must be"),
    (lambda: plucker_rays(orbit_arc(2, num_frames=3), 0, 4), "height must be"),
    (lambda: look_at([0.0, 0.0, 0.0], [0.0, 1e300, 0.0]), "target.*exceeds"),
    (lambda: make_preset(5), "unknown camera preset"),
])
def test_camera_parameters_are_range_checked(call, message):
    with pytest.raises(CameraRigError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


def test_extreme_but_valid_rigs_encode_and_draw_finite():
    from camgrid.model.camera.limits import FOCAL, MAX_POSITION_M
    from camgrid.model.rig_preview import draw_rig

    for position, focal in [(0.99 * MAX_POSITION_M, FOCAL.low), (1e-3, FOCAL.high)]:
        c2w = torch.eye(4, dtype=torch.float64).repeat(2, 1, 1, 1)
        c2w[1, 0, :3, 3] = torch.tensor([position, -position, position / 2])
        rig = CameraRig(c2w, torch.tensor([focal, focal, 0.5, 0.5]))
        assert torch.isfinite(relative_extrinsics(rig, 100.0)).all()
        assert torch.isfinite(plucker_rays(rig, 3, 4, reference="view0", translation_scale=100.0)).all()
        image = draw_rig(rig, size=(128, 64))
        assert image.size == (128, 64)


def test_reference_view_minus_one_is_the_last_view():
    rig = orbit_arc(3, num_frames=1)
    torch.testing.assert_close(relative_extrinsics(rig, 1.0, reference=-1), relative_extrinsics(rig, 1.0, reference=2))


# ------------------------------------------------------------------------------------------------
# the rig nodes: limits shared with the library, Load Rig's path restricted, no contents echoed
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def camgrid_models(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMGRID_MODELS_DIR", str(tmp_path / "models"))
    (tmp_path / "models" / "camgrid").mkdir(parents=True)
    return tmp_path


def test_rig_node_inputs_are_range_checked_where_validated():
    from camgrid.nodes.rig import CamGridCameraEncode, CamGridLoadRig, CamGridRig

    good = dict(preset="orbit_arc", views=4, frames=81, azimuth_span=60.0, elevation=0.0, radius=3.0, spacing=1.0,
                hfov=60.0, amplitude=0.0)
    assert CamGridRig.VALIDATE_INPUTS(**good) is True
    for name, value, preset in [("radius", -1.0, "orbit_arc"), ("radius", float("nan"), "dolly"), ("hfov", 0.0, "dolly"),
                                ("views", 65, "orbit_arc"), ("frames", 10 ** 9, "recammaster_pan_left"),
                                ("elevation", 95.0, "elevation_sweep"), ("spacing", 1e300, "dolly"),
                                ("amplitude", float("inf"), "recammaster_arc_left")]:
        inputs = {**good, "preset": preset, "views": 1 if preset.startswith("recam") else 4, name: value}
        message = CamGridRig.VALIDATE_INPUTS(**inputs)
        assert isinstance(message, str) and name in message, (name, value, message)
        with pytest.raises(CameraRigError, match=name):   # a direct call meets the same limit
            CamGridRig().build(**inputs)
    # the widget ranges are the library's limits
    widgets = CamGridRig.INPUT_TYPES()["required"]
    assert (widgets["radius"][1]["min"], widgets["hfov"][1]["max"]) == (0.01, 179.0)
    # the length of the output video: the grid's limit (model/checks.py FRAMES), not a rig file's 4097 frames
    assert CamGridCameraEncode.INPUT_TYPES()["required"]["length"][1]["max"] == 1025
    assert "length" in CamGridCameraEncode.VALIDATE_INPUTS(length=4_000_001)
    assert "4k+1" in CamGridCameraEncode.VALIDATE_INPUTS(length=80)
    assert "translation_scale" in CamGridCameraEncode.VALIDATE_INPUTS(length=81, translation_scale=float("nan"))
    assert CamGridCameraEncode.VALIDATE_INPUTS(length=81, translation_scale=0.0) is True
    assert "frames" in CamGridLoadRig.VALIDATE_INPUTS(rig_file="x.json", frames=-1)
    rig = orbit_arc(2, num_frames=5)
    with pytest.raises(ValueError, match="length"):
        CamGridCameraEncode().encode(rig, 4_000_001, "auto", 0.0, "relative")
    assert CamGridCameraEncode.INPUT_TYPES()["required"]["encoding"][0] == ["relative"]


def test_load_rig_path_stays_in_comfy_folders_unless_allowed(camgrid_models):
    from camgrid.nodes.rig import CamGridLoadRig

    secret = "API_KEY=sk-0123456789abcdef"
    outside = write_bytes(camgrid_models, "outside.json", json.dumps({"frame0": {"cam01": IDENT}}).encode())
    env = write_bytes(camgrid_models, "secrets.env", (secret + "\n").encode())
    inside = camgrid_models / "models" / "camgrid" / "mine.json"
    inside.write_text(json.dumps({"frame0": {"cam01": IDENT}, "frame1": {"cam01": IDENT}}))

    node = CamGridLoadRig()
    assert node.load("", "", 0, path=str(inside))[0].num_frames == 2
    for path in (outside, env, camgrid_models / "models" / ".." / "outside.json"):
        message = CamGridLoadRig.VALIDATE_INPUTS(rig_file="x", path=str(path))
        assert "outside ComfyUI's models and input folders" in message and "allow_any_path" in message
        with pytest.raises(ValueError, match="allow_any_path"):
            node.load("", "", 0, path=str(path))
    assert CamGridLoadRig.VALIDATE_INPUTS(rig_file="x", path=str(outside), allow_any_path=True) is True
    assert node.load("", "cam01", 0, path=str(outside), allow_any_path=True)[0].names == ["cam01"]
    with pytest.raises(CameraRigError, match="secrets.env.*not valid JSON") as err:
        node.load("", "", 0, path=str(env), allow_any_path=True)
    assert "sk-0123" not in str(err.value)
    with pytest.raises(CameraRigError, match="mine.json: select_views: view index 5 is out of range for a rig of 1 view "):
        node.load("mine.json", "5", 0)
    assert node.load("mine.json", "", 0)[1].startswith("1 camera x 2 frames")


# ------------------------------------------------------------------------------------------------
# model/modes.py: the mode and variant rules, one module for nodes, CLI and pipeline
# ------------------------------------------------------------------------------------------------

def test_mode_and_variant_rules():
    from camgrid.model import checks, modes
    from camgrid.model.checks import InputError

    assert [modes.pick_mode(v) for v in modes.VARIANTS] == ["syncam", "recam", "hard"]
    with pytest.raises(InputError, match="variant 'sora' is unknown"):
        modes.pick_mode("sora")
    assert modes.camera_rule("recammaster") == ("first_pose", 1.0)
    assert checks.frames_problem(81) is None
    assert "between 1 and 1025" in checks.frames_problem(4_000_001)
    assert "use 77 or 81" in checks.frames_problem(80)
    with pytest.raises(InputError, match="width must be a whole number"):
        checks.check_video_size(32.5, 32, 5)
    with pytest.raises(InputError, match="the rig has 1 camera \\("):
        modes.build_rig("recammaster_pan_left", views=2)
