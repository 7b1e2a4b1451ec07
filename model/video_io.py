"""Reading and writing MP4 files (imageio-ffmpeg, bundled ffmpeg binary) and tiling views side by side.

Frames are `[F, H, W, 3]`: uint8, or float in 0..1 (converted with rounding). Wan renders at 16 fps.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

WAN_FPS = 16


def _imageio_ffmpeg():
    try:
        import imageio_ffmpeg
    except ImportError:
        raise ImportError("reading/writing MP4 needs imageio-ffmpeg: pip install imageio-ffmpeg") from None
    return imageio_ffmpeg


def to_uint8(frames: Union[np.ndarray, torch.Tensor]) -> np.ndarray:
    """[..., 3] uint8 or float 0..1 (tensor or array) -> uint8 numpy array."""
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu()
        if frames.is_floating_point():
            frames = frames.float()
        frames = frames.numpy()
    frames = np.asarray(frames)
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames.astype(np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def write_video(path: Union[str, Path], frames, fps: float = WAN_FPS, crf: int = 18,
                preset: Optional[str] = None) -> Path:
    """Write [F, H, W, 3] frames as an H.264 MP4 (yuv420p, which every player reads). `preset`: x264's speed
    preset (None: its default, medium); the same crf at a faster preset keeps the quality in a larger file.

    yuv420p needs even sizes, so an odd height/width gets one black row/column appended."""
    frames = to_uint8(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [F, H, W, 3] with F >= 1, got shape {frames.shape}")
    f, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)))
        f, h, w, _ = frames.shape
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = _imageio_ffmpeg().write_frames(str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                                            quality=None, macro_block_size=1,
                                            output_params=["-crf", str(int(crf))] + (["-preset", preset] if preset else []))
    writer.send(None)  # start the generator
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame).tobytes())
    finally:
        writer.close()
    return path


def read_video(path: Union[str, Path], max_frames: Optional[int] = None) -> tuple[np.ndarray, float]:
    """(frames uint8 [F, H, W, 3], fps) of a video file (any format ffmpeg reads)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {str(path)!r} does not exist")
    reader = _imageio_ffmpeg().read_frames(str(path))
    try:
        meta = next(reader)
        w, h = meta["size"]
        frames = []
        for raw in reader:
            frames.append(np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3))
            if max_frames is not None and len(frames) >= max_frames:
                break
    finally:
        reader.close()
    if not frames:
        raise ValueError(f"video {str(path)!r} has no frames")
    return np.stack(frames), float(meta.get("fps") or WAN_FPS)


def grid_layout(num_views: int) -> tuple[int, int]:
    """(rows, cols) for tiling views: as square as possible, more columns than rows."""
    cols = math.ceil(math.sqrt(num_views))
    return math.ceil(num_views / cols), cols


def tile_frames(views, rows: int, cols: int):
    """[V, F, H, W, C] -> [F, rows*H, cols*W, C] in the input's type and dtype (numpy array or torch
    tensor), views left to right, top to bottom; empty cells are zero (black)."""
    v, f, h, w, c = views.shape
    shape = (f, rows * h, cols * w, c)
    canvas = views.new_zeros(shape) if isinstance(views, torch.Tensor) else np.zeros(shape, dtype=views.dtype)
    for i in range(v):
        r, q = divmod(i, cols)
        canvas[:, r * h:(r + 1) * h, q * w:(q + 1) * w] = views[i]
    return canvas


def tile_views(views, rows: Optional[int] = None, cols: Optional[int] = None) -> np.ndarray:
    """[V, F, H, W, 3] -> [F, rows*H, cols*W, 3] uint8, view-major left to right, top to bottom;
    empty cells are black."""
    views = to_uint8(views)
    if views.ndim != 5:
        raise ValueError(f"views must be [V, F, H, W, 3], got shape {views.shape}")
    if rows is None or cols is None:
        rows, cols = grid_layout(views.shape[0])
    if rows * cols < views.shape[0]:
        raise ValueError(f"a {rows} x {cols} layout cannot hold {views.shape[0]} views")
    return tile_frames(views, rows, cols)
