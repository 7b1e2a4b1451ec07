"""The layout of KwaiVGI's published multi-camera datasets: a reader, and a writer of synthetic scenes in it.

SynCamVideo-Dataset (static cameras, SynCamMaster) and MultiCamVideo-Dataset (moving cameras, ReCamMaster)
share one layout (their READMEs' "File Structure"):

    ROOT/train/<lens>/scene<N>/videos/cam01.mp4 ... cam10.mp4     synchronised, 81 frames, 1280x1280, 15 fps
    ROOT/train/<lens>/scene<N>/cameras/camera_extrinsics.json      {"frame<K>": {"cam<NN>": "[..] [..] [..] [..]"}}

<lens> is f24_aperture5 (SynCamVideo) or f18_aperture10, f24_aperture5, f35_aperture2.4, f50_aperture2.4
(MultiCamVideo): the focal length in mm on a 23.76 mm square sensor. The camera strings are Unreal
row-vector transforms in centimetres (model/camera.py reads them). Both also have a `val/` folder (SynCamVideo:
`val/basic/{videos,cameras}`, 10 validation cameras) that training does not read. Captions are not in the
datasets: the official training scripts read `ROOT/metadata.csv` (columns file_name, relative to ROOT/train,
and text), one row per video; a scene's caption is that of its first listed video. Another caption file can
be given instead (`captions=`): the same CSV columns, or a JSON object {"<lens>/scene<N>": caption}.

`MultiCamDataset(root, views, frames, height, width)[i]` is one training sample of scene i: `views`
cameras (a seeded random choice; the first is the reference view; views=0: every camera of the scene, in a
seeded random order), a window of `frames` frames,
centre-cropped to the aspect ratio and resized (as the official loaders do), as
{"videos": float [V, F, H, W, 3] in 0..1, "rig": CameraRig of those views and frames, "caption", "scene",
"start": the window's first frame}.
The pieces of a sample are methods too (`choose`, `read_view`, `rig`), so train/real/latent_cache.py can
encode a scene one camera at a time. It encodes such samples once and serves them as a GridSource.

`write_synthetic_dataset` renders synthetic scenes (synth/) into the same layout, file names and JSON format:
data for tests, and for trying the real-data path without a download.
"""
from __future__ import annotations

import csv
import io
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from ..model.camera import CameraRig, rig_from_unreal_json
from ..model.checks import InputError
from ..model.files import atomic_write
from ..model.modes import fit_frames
from ..model.video_io import read_video
from ..synth.dataset import SyntheticMultiViewDataset
from .media import save_video

SENSOR_MM = 23.76
LENS_FOLDER = re.compile(r"^f(\d+(?:\.\d+)?)_aperture(\d+(?:\.\d+)?)$")
SCENE_FOLDER = re.compile(r"^scene(\d+)$")
CAMERA_FILE = "cameras/camera_extrinsics.json"
CAPTION_FILE = "metadata.csv"
LAYOUTS = {"syncamvideo": ("f24_aperture5",), "multicamvideo": ("f18_aperture10", "f24_aperture5")}
UNITS_PER_METRE = 100.0   # the camera files are in centimetres
DATASET_FPS = 15.0


@dataclass(frozen=True)
class Scene:
    folder: Path
    focal_mm: float
    cameras: tuple        # camera names with a video, e.g. ("cam01", ..., "cam10")
    caption: str


def read_captions(path: Path) -> dict:
    """metadata.csv -> {scene folder relative to ROOT/train: caption} (the first row of each scene wins)."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the captions ({exc})") from None
    if rows and not {"file_name", "text"} <= set(rows[0]):
        raise InputError(f"{path}: expected the columns file_name,text (as the official training scripts read), "
                         f"got {list(rows[0])}")
    captions = {}
    for row in rows:
        scene = Path(row["file_name"]).parent.parent   # <lens>/scene<N>/videos/camNN.mp4 -> <lens>/scene<N>
        captions.setdefault(scene.as_posix(), row["text"] or "")
    return captions


def read_caption_file(path) -> dict:
    """A caption file given by the user: CSV (file_name,text, as metadata.csv) or JSON {"<lens>/scene<N>": text}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"caption file {str(path)!r} does not exist")
    if path.suffix.lower() != ".json":
        return read_captions(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise InputError(f"{path}: expected a JSON object {{\"<lens>/scene<N>\": \"caption\", ...}}")
    return {str(k).strip("/"): v for k, v in table.items()}


def find_scenes(root, allow_missing_captions: bool = False, captions=None) -> list:
    """Every scene of ROOT/train/<lens>/scene<N> with a camera file and videos, in a stable order. Captions
    from `captions` (a caption file) when given, else ROOT/metadata.csv."""
    root = Path(root)
    train = root / "train"
    if not train.is_dir():
        raise InputError(f"{root}: no train/ folder; expected the SynCamVideo / MultiCamVideo layout "
                         "ROOT/train/<lens>/scene<N>/{videos/camNN.mp4, cameras/camera_extrinsics.json}")
    if captions is not None:
        captions = read_caption_file(captions)
    else:
        captions = read_captions(root / CAPTION_FILE) if (root / CAPTION_FILE).is_file() else {}
    scenes = []
    for lens in sorted(p for p in train.iterdir() if p.is_dir() and LENS_FOLDER.match(p.name)):
        folders = [p for p in lens.iterdir() if p.is_dir() and SCENE_FOLDER.match(p.name)]
        for folder in sorted(folders, key=lambda p: int(SCENE_FOLDER.match(p.name).group(1))):
            cameras = tuple(sorted(p.stem for p in (folder / "videos").glob("cam*.mp4")))
            if not cameras or not (folder / CAMERA_FILE).is_file():
                continue   # an incomplete download: the scene is not there yet
            caption = captions.get(f"{lens.name}/{folder.name}")
            if caption is None and not allow_missing_captions:
                raise InputError(f"{folder}: no caption in {root / CAPTION_FILE if captions is None else 'the caption file'}"
                                 "; add rows file_name,text for its videos, give a caption file, or allow scenes "
                                 "without captions")
            scenes.append(Scene(folder, float(LENS_FOLDER.match(lens.name).group(1)), cameras, caption or ""))
    if not scenes:
        raise InputError(f"{root}: no scene with videos/camNN.mp4 and {CAMERA_FILE} under train/<lens>/scene<N>")
    return scenes


def lens_intrinsics(focal_mm: float, source_hw: tuple, target_hw: tuple) -> torch.Tensor:
    """(fx, fy, cx, cy) as fractions of the target image, after the centre crop to its aspect ratio."""
    (h, w), (th, tw) = source_hw, target_hw
    fx, fy = focal_mm / SENSOR_MM, focal_mm / SENSOR_MM * w / h   # square pixels on a square sensor
    if w * th > h * tw:     # wider than the target: columns are cropped
        fx *= w / (h * tw / th)
    else:                   # taller: rows are cropped
        fy *= h / (w * th / tw)
    return torch.tensor([fx, fy, 0.5, 0.5], dtype=torch.float64)


class MultiCamDataset(torch.utils.data.Dataset):
    def __init__(self, root, views: int = 4, frames: int = 81, height: int = 480, width: int = 832, seed: int = 0,
                 allow_missing_captions: bool = False, captions=None):
        if views < 0 or frames < 1 or height < 1 or width < 1:
            raise InputError(f"MultiCamDataset: views must be >= 0 (0: all cameras), frames, height and width >= 1, "
                             f"got {views}, {frames}, {height}, {width}")
        self.scenes = find_scenes(root, allow_missing_captions, captions)
        self.views, self.frames, self.height, self.width, self.seed = views, frames, height, width, seed

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict:
        scene, names, start, cameras = self.choose(index)
        clips = [self.read_view(scene, name, start) for name in names]
        return {"videos": torch.stack([fitted for fitted, _ in clips]),
                "rig": self.rig(scene, cameras, names, start, clips[0][1]),
                "caption": scene.caption, "scene": str(scene.folder), "start": start}

    def choose(self, index: int) -> tuple:
        """(scene, camera names, first frame of the window, the scene's camera JSON) of sample `index`:
        seeded, so every process and every call chooses the same."""
        scene = self.scenes[index]
        rng = random.Random(f"camgrid.multicam:{self.seed}:{index}")   # stable across processes
        views = self.views or len(scene.cameras)
        if len(scene.cameras) < views:
            raise InputError(f"{scene.folder}: {len(scene.cameras)} camera videos, {views} views asked for")
        names = rng.sample(scene.cameras, views)
        try:
            cameras = json.loads((scene.folder / CAMERA_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{scene.folder / CAMERA_FILE}: not readable JSON ({exc})") from None
        total = len(cameras)
        if total < self.frames:
            raise InputError(f"{scene.folder / CAMERA_FILE}: {total} frames, {self.frames} asked for")
        return scene, names, rng.randrange(total - self.frames + 1), cameras

    def read_view(self, scene: Scene, name: str, start: int) -> tuple:
        """(frames [F, H, W, 3] float 0..1 of camera `name` from `start`, centre-cropped and resized; the
        video's own (height, width))."""
        clip = read_video(scene.folder / "videos" / f"{name}.mp4", max_frames=start + self.frames)[0][start:]
        return fit_frames(clip, self.width, self.height, self.frames), tuple(clip.shape[1:3])

    def rig(self, scene: Scene, cameras: dict, names, start: int, source_hw: tuple) -> CameraRig:
        """The CameraRig of cameras `names` over the window from `start`; intrinsics after the centre crop of
        videos of size `source_hw`."""
        k = lens_intrinsics(scene.focal_mm, source_hw, (self.height, self.width))
        rig = rig_from_unreal_json(cameras, UNITS_PER_METRE)
        c2w = rig.c2w[[rig.names.index(n) for n in names], start:start + self.frames]
        return CameraRig(c2w, k.expand(len(names), 4), list(names)).validate()


# -- writing synthetic scenes in the layout --------------------------------------------------------------

def unreal_matrix(c2w: torch.Tensor) -> str:
    """An OpenCV camera-to-world pose (metres, camgrid's right-handed world) as the datasets' Unreal string:
    rows = the camera's forward, right and up axes, then its location in cm, in Unreal's world (X = our z,
    Y = our x, Z = -our y; the inverse of model/camera.py's reading)."""
    c2w = torch.as_tensor(c2w, dtype=torch.float64)

    def unreal(v):
        return [float(v[2]), float(v[0]), float(-v[1])]

    rows = [unreal(c2w[:3, 2]) + [0.0], unreal(c2w[:3, 0]) + [0.0], unreal(-c2w[:3, 1]) + [0.0],
            [x * UNITS_PER_METRE for x in unreal(c2w[:3, 3])] + [1.0]]
    return " ".join("[" + " ".join(repr(x) for x in row) + "]" for row in rows)


def write_synthetic_dataset(root, layout: str = "multicamvideo", scenes: int = 2, cameras: int = 4, frames: int = 9,
                            height: int = 32, width: int = 32, seed: int = 0) -> list:
    """Render `scenes` synthetic scenes per lens folder of `layout` into ROOT in the published layout, with
    ROOT/metadata.csv; returns the scene folders. Videos are square like the datasets' (1280x1280)."""
    if layout not in LAYOUTS:
        raise InputError(f"layout: expected one of {list(LAYOUTS)}, got {layout!r}")
    root = Path(root)
    data = SyntheticMultiViewDataset(length=scenes * len(LAYOUTS[layout]), height=height, width=width,
                                     num_frames=frames, min_views=cameras, max_views=cameras, seed=seed)
    written, rows = [], []
    for i in range(len(data)):
        sample = data[i]
        folder = root / "train" / LAYOUTS[layout][i // scenes] / f"scene{i % scenes + 1}"
        for v in range(cameras):
            path = save_video(folder / "videos" / f"cam{v + 1:02d}.mp4", sample["videos"][v], fps=DATASET_FPS)
            rows.append((path.relative_to(root / "train").as_posix(), sample["caption"]))
        c2w = sample["rig"].c2w
        extrinsics = {f"frame{f}": {f"cam{v + 1:02d}": unreal_matrix(c2w[v, f]) for v in range(cameras)}
                      for f in range(frames)}
        atomic_write(folder / CAMERA_FILE, json.dumps(extrinsics))
        written.append(folder)
    table = io.StringIO()
    csv.writer(table).writerows([("file_name", "text"), *rows])
    atomic_write(root / CAPTION_FILE, table.getvalue())
    return written
