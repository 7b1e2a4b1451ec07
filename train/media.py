"""Pictures and videos written the way every camgrid file is: whole or not at all (model/files.py).

ffmpeg and PIL pick the format from the file name, which the temporary file of an atomic write does not
carry: the format is passed to PIL, and ffmpeg writes a staging file named *.mp4 that then becomes the
temporary file.
"""
from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..model.files import atomic_path, atomic_save
from ..model.video_io import write_video

IMAGE_FORMATS = {".png": "PNG", ".gif": "GIF", ".jpg": "JPEG", ".jpeg": "JPEG"}


def save_image(image: Image.Image, path, **options) -> Path:
    path = Path(path)
    return atomic_save(path, lambda tmp: image.save(tmp, format=IMAGE_FORMATS[path.suffix.lower()], **options))


def save_video(path, frames, fps: float, preset=None) -> Path:
    """frames [F, H, W, 3] -> an H.264 MP4 at `path` (model/video_io.write_video, x264 `preset`; ImportError
    without imageio-ffmpeg)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        staging = tmp.with_name(tmp.name + ".mp4")
        try:
            write_video(staging, frames, fps=fps, preset=preset)
            staging.replace(tmp)
        finally:
            staging.unlink(missing_ok=True)
    return path
