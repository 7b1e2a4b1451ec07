"""The SynCamVideo / MultiCamVideo dataset layout: synthetic scenes written in it, read back (CPU, tiny)."""
import csv
import json

import pytest
import torch

from camgrid.synth.dataset import SyntheticMultiViewDataset
from camgrid.train.multicam import (CAMERA_FILE, LAYOUTS, SENSOR_MM, MultiCamDataset, find_scenes,
                                    write_synthetic_dataset)

pytest.importorskip("imageio_ffmpeg", reason="writing the datasets' mp4 videos needs imageio-ffmpeg (test extra)")

CAMS, FRAMES, SIZE = 4, 9, 32


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def dataset_root(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    write_synthetic_dataset(root, request.param, scenes=1, cameras=CAMS, frames=FRAMES, height=SIZE, width=SIZE, seed=3)
    return request.param, root


def test_written_files_follow_the_published_layout(dataset_root):
    layout, root = dataset_root
    for lens in LAYOUTS[layout]:
        scene = root / "train" / lens / "scene1"
        assert sorted(p.name for p in (scene / "videos").iterdir()) == [f"cam{k:02d}.mp4" for k in range(1, CAMS + 1)]
        cameras = json.loads((scene / CAMERA_FILE).read_text())
        assert list(cameras) == [f"frame{f}" for f in range(FRAMES)]
        assert sorted(cameras["frame0"]) == [f"cam{k:02d}" for k in range(1, CAMS + 1)]
        assert cameras["frame0"]["cam01"].startswith("[") and cameras["frame0"]["cam01"].endswith(" 1.0]")
    with open(root / "metadata.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == CAMS * len(LAYOUTS[layout]) and rows[0]["file_name"] == f"{LAYOUTS[layout][0]}/scene1/videos/cam01.mp4"


def test_reader_gives_views_frames_cameras_and_captions_of_the_scene(dataset_root):
    layout, root = dataset_root
    data = MultiCamDataset(root, views=3, frames=5, height=16, width=SIZE, seed=1)
    truth = SyntheticMultiViewDataset(length=len(LAYOUTS[layout]), height=SIZE, width=SIZE, num_frames=FRAMES,
                                      min_views=CAMS, max_views=CAMS, seed=3)
    assert len(data) == len(LAYOUTS[layout])
    for i in range(len(data)):
        item, ref = data[i], truth[i]
        assert item["videos"].shape == (3, 5, 16, SIZE, 3) and 0 <= item["videos"].min() <= item["videos"].max() <= 1
        assert item["caption"] == ref["caption"]
        rig = item["rig"]
        views, start = [int(n[3:]) - 1 for n in rig.names], item["start"]
        assert torch.allclose(rig.c2w, ref["rig"].c2w[views, start:start + 5], atol=1e-9)
        # the pixels are the render's, centre-cropped to 2:1 (rows 8..24 of 32), up to mp4 compression: closer
        # than any other window of those cameras, or the same window of other cameras
        def error(v, s):
            return float((item["videos"] - ref["videos"][v, s:s + 5, 8:24]).abs().mean())
        others = [error(views, s) for s in range(FRAMES - 4) if s != start] + [error(views[1:] + views[:1], start)]
        assert error(views, start) < min(0.03, *others)
        focal = float(data.scenes[i].focal_mm) / SENSOR_MM
        assert torch.allclose(rig.intrinsics[0], torch.tensor([focal, 2 * focal, 0.5, 0.5], dtype=torch.float64))


def test_reader_errors_name_the_fix(dataset_root, tmp_path):
    _, root = dataset_root
    with pytest.raises(ValueError, match="no train/ folder"):
        find_scenes(tmp_path)
    with pytest.raises(ValueError, match="4 camera videos, 5 views"):
        MultiCamDataset(root, views=5, frames=5, height=16, width=SIZE)[0]
    with pytest.raises(ValueError, match="frames"):
        MultiCamDataset(root, views=2, frames=FRAMES + 4, height=16, width=SIZE)[0]
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "train").symlink_to(root / "train")
    with pytest.raises(ValueError, match="no caption"):
        find_scenes(tmp_path / "copy")
    assert find_scenes(tmp_path / "copy", allow_missing_captions=True)[0].caption == ""
