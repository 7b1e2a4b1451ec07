"""Grid latent -> pictures: per-view frames, a side-by-side video, a view x time contact sheet."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..model.checks import VIEW_INDEX, VIEWS, InputError, Limit, raise_problem, range_problem
from ..model.vae_decode import DecodeOptions, decode_views
from ..model.video_io import grid_layout, tile_frames
from . import host, latent_convert, preview
from .vae_io import decode_video

MAX_SHEET_WIDTH = 4096  # the contact sheet is shrunk to at most this many pixels across
DECODERS = ("full", "preview")
DECODE_LIMITS = {
    "rows": Limit(0, VIEWS.high, integer=True, hint="rows of the side-by-side video, 0 = automatic"),
    "cols": Limit(0, VIEWS.high, integer=True, hint="columns of the side-by-side video, 0 = automatic"),
    "sheet_frames": Limit(1, 64, integer=True, hint="frames per view in the contact sheet"),
    "tile_size": Limit(64, 4096, integer=True, hint="pixels per tile"),
    "overlap": Limit(0, 4096, integer=True, hint="pixels of tile overlap, at most half of tile_size"),
    "temporal_size": Limit(8, 4096, integer=True, hint="video frames per temporal tile"),
    "temporal_overlap": Limit(4, 4096, integer=True, hint="frames of overlap between temporal tiles"),
}


def sample_frame_indices(num_frames: int, count: int) -> list[int]:
    """`count` frame indices spread evenly from the first to the last frame."""
    count = max(1, min(count, num_frames))
    if count == 1:
        return [0]
    return [round(i * (num_frames - 1) / (count - 1)) for i in range(count)]


def contact_sheet(frames: torch.Tensor, count: int, gap: int = 4) -> torch.Tensor:
    """[V, F, H, W, 3] -> [1, H', W', 3]: one row per view, `count` sampled frames across (time ->)."""
    v, f, h, w, c = frames.shape
    picks = sample_frame_indices(f, count)
    n = len(picks)
    sheet = frames.new_ones(v * h + (v - 1) * gap, n * w + (n - 1) * gap, c)  # white gaps
    for i in range(v):
        for j, k in enumerate(picks):
            sheet[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = frames[i, k]
    if sheet.shape[1] > MAX_SHEET_WIDTH:
        factor = MAX_SHEET_WIDTH / sheet.shape[1]
        size = (max(1, round(sheet.shape[0] * factor)), MAX_SHEET_WIDTH)
        sheet = F.interpolate(sheet.permute(2, 0, 1)[None], size=size, mode="area")[0].permute(1, 2, 0)
    return sheet[None]


def decode_problem(**inputs):
    """None, or why CamGrid Decode cannot take these inputs (None values = not known yet)."""
    problem = range_problem(DECODE_LIMITS, inputs)
    tile_size, overlap = inputs.get("tile_size"), inputs.get("overlap")
    if problem is None and tile_size is not None and overlap is not None and overlap * 2 > tile_size:
        problem = f"overlap ({overlap}) must be at most half of tile_size ({tile_size})"
    return problem


def resolve_layout(views: int, rows: int, cols: int) -> tuple[int, int]:
    """rows / cols 0 = automatic (as square as possible); one given -> the other follows."""
    if rows and cols:
        return rows, cols
    if rows:
        return rows, math.ceil(views / rows)
    if cols:
        return math.ceil(views / cols), cols
    return grid_layout(views)


def comfy_decode_cost(vae, latent_shape) -> int | None:
    """Bytes ComfyUI's VAE expects one video of `latent_shape` to need (its own `memory_used_decode`), or None."""
    estimate = getattr(vae, "memory_used_decode", None)
    if not callable(estimate):
        return None
    try:
        return int(estimate(tuple(latent_shape), getattr(vae, "vae_dtype", torch.float32)))
    except (TypeError, ValueError, AttributeError, IndexError):  # an estimate is a nicety, never a failure
        return None


def decode_chunk(vae, latents: torch.Tensor) -> torch.Tensor:
    """Raw latent videos [n, C, T, h, w] -> frames [n, F, H, W, 3] (CPU) in one `vae.decode` call."""
    pixels = vae.decode(latents)
    if pixels.shape[-1] != 3 or pixels.ndim not in (4, 5):
        raise ValueError(f"the VAE decoded an unexpected shape {tuple(pixels.shape)}; is it a video VAE "
                         "(Wan2.1 VAE for Wan2.1 models)?")
    return pixels.reshape(len(latents), -1, *pixels.shape[-3:]).float().cpu()


def decode_grid_views(vae, latents: torch.Tensor, tiled: bool, tile_args: dict, progress) -> torch.Tensor:
    """Raw latents of every view [N, C, T, h, w] -> frames [N, F, H, W, 3] by model/vae_decode.py's policy.

    ComfyUI's `VAE.decode` already batches a call's videos by its own estimate (`memory_used_decode`) and tiles
    after running out of memory. On top of it: the views go to it in chunks of what that same estimate says
    fits (not one view at a time as before), so progress and cancel come per chunk and a tile fallback costs
    one chunk; an out-of-memory error that escapes it halves the chunk, then tiles; `tiled` always tiles."""
    cost = comfy_decode_cost(vae, latents[:1].shape)
    device = getattr(vae, "device", None)
    if cost is not None:
        host.free_memory_for(cost, device)  # as ComfyUI's decode does for one video before it measures
    frames, _report = decode_views(
        latents, lambda z: decode_chunk(vae, z),
        (lambda z: decode_video(vae, z, True, **tile_args)[None]) if hasattr(vae, "decode_tiled") else None,
        DecodeOptions(tiled="always" if tiled else "auto", headroom=1.0),  # ComfyUI's estimate has its margin
        per_view_bytes=cost, free_bytes=lambda: host.free_bytes(device), release=host.soft_empty_cache,
        progress=progress)
    host.soft_empty_cache()  # the decode's activations go back once, not between chunks
    return frames


class CamGridDecode:
    """Decodes a grid latent (as many views at a time as memory allows) and lays the views out."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "latent": ("LATENT", {"tooltip": "The grid from CamGrid Sampler."}),
                "vae": ("VAE", {"tooltip": "The Wan2.1 VAE (wan_2.1_vae.safetensors)."}),
                "rows": ("INT", DECODE_LIMITS["rows"].widget(default=0, tooltip="Rows of the side-by-side video; "
                         "0 = automatic.")),
                "cols": ("INT", DECODE_LIMITS["cols"].widget(default=0, tooltip="Columns of the side-by-side video; "
                         "0 = automatic.")),
                "sheet_frames": ("INT", DECODE_LIMITS["sheet_frames"].widget(default=6, tooltip="Frames per view in "
                                 "the contact sheet (evenly spaced over time).")),
            },
            "optional": {
                "tiled": ("BOOLEAN", {"default": False, "tooltip": "Always decode in tiles: least VRAM, about 2.3x "
                          "slower, rare seams. Off: whole views, several at a time when they fit; tiles only "
                          "when memory runs out."}),
                "tile_size": ("INT", DECODE_LIMITS["tile_size"].widget(default=256, step=32, tooltip="Tile size "
                              "in pixels (tiled).")),
                "overlap": ("INT", DECODE_LIMITS["overlap"].widget(default=64, step=32, tooltip="Tile overlap in "
                            "pixels (tiled).")),
                "temporal_size": ("INT", DECODE_LIMITS["temporal_size"].widget(default=64, step=4, tooltip="Video "
                                  "frames decoded at a time (tiled).")),
                "temporal_overlap": ("INT", DECODE_LIMITS["temporal_overlap"].widget(default=8, step=4, tooltip=
                                     "Frames of overlap between temporal tiles (tiled).")),
                "decoder": (list(DECODERS), {"default": "full", "tooltip": "full: the VAE. preview: a fast draft "
                            "through the tiny preview decoder (the built-in model's; for Wan latents connect "
                            "lighttaew2_1 (TAEHV) from core Load VAE as vae and keep full)."}),
            },
        }

    RETURN_TYPES = ("IMAGE", "IMAGE", "IMAGE", "INT")
    RETURN_NAMES = ("frames", "side_by_side", "contact_sheet", "views")
    FUNCTION = "decode"
    CATEGORY = "CamGrid/latent"
    DESCRIPTION = ("Decodes every view (as many at a time as memory allows; tiles only when needed). frames: all "
                   "views' frames, view after view; side_by_side: one video with the views tiled; contact_sheet: "
                   "views x time.")

    @classmethod
    def VALIDATE_INPUTS(cls, tile_size=None, overlap=None):
        # named here for the overlap rule (ComfyUI then skips its min/max for these two)
        return decode_problem(tile_size=tile_size, overlap=overlap) or True

    def decode(self, latent, vae, rows, cols, sheet_frames, tiled=False, tile_size=256, overlap=64,
               temporal_size=64, temporal_overlap=8, decoder="full"):
        raise_problem(decode_problem(rows=rows, cols=cols, sheet_frames=sheet_frames, tile_size=tile_size,
                                     overlap=overlap, temporal_size=temporal_size, temporal_overlap=temporal_overlap))
        if decoder not in DECODERS:
            raise InputError(f"decoder {decoder!r} is not one of {', '.join(DECODERS)}")
        grid = latent_convert.latent_to_grid(latent)  # raw [B, V, C, T, H, W]
        b, v = grid.shape[:2]
        rows, cols = resolve_layout(v, rows, cols)
        if rows * cols < v:
            raise InputError(f"a {rows} x {cols} layout holds {rows * cols} views but the grid has {v}: "
                             "raise rows or cols, or set them to 0 (automatic)")
        draft = preview.draft_decoder(vae, grid.shape[2]) if decoder == "preview" else None
        progress = host.ProgressReporter(b * v, desc="camgrid decoding")
        try:
            if draft is not None:
                frames = draft(grid.flatten(0, 1))
                progress.update(b * v)
            else:
                tile_args = dict(tile_size=tile_size, overlap=overlap, temporal_size=temporal_size,
                                 temporal_overlap=temporal_overlap)
                frames = decode_grid_views(vae, grid.flatten(0, 1), tiled, tile_args, progress.update)
        finally:
            progress.close()
        per_item = frames.unflatten(0, (b, v))                       # [B, V, F, H, W, 3]
        flat = per_item.flatten(0, 2)                                # view-major within each batch item
        side = torch.cat([tile_frames(item, rows, cols) for item in per_item])
        sheet = torch.cat([contact_sheet(item, sheet_frames) for item in per_item])
        return flat, side, sheet, v


class CamGridSelectView:
    """One view's frames out of a grid IMAGE batch (view-major, e.g. CamGrid Decode's 'frames')."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "All views' frames, view after view (CamGrid Decode 'frames', or core "
                       "VAE Decode of a grid latent)."}),
            "views": ("INT", VIEWS.widget(default=4, tooltip="How many views the batch holds (CamGrid Decode's "
                      "'views' output).")),
            "view": ("INT", VIEW_INDEX.widget(default=0, tooltip="The view to take (0 = the first).")),
        }}

    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("frames",)
    FUNCTION = "select"
    CATEGORY = "CamGrid/latent"
    DESCRIPTION = "Takes one view's frames out of a grid's frames."

    @classmethod
    def VALIDATE_INPUTS(cls, views=None, view=None):
        return select_view_problem(views, view) or True

    def select(self, images, views, view):
        raise_problem(select_view_problem(views, view))
        n = images.shape[0]
        if n % views:
            raise InputError(f"{n} frames cannot be split into {views} equal views: set views to the grid's view "
                             "count (CamGrid Decode's 'views' output)")
        per_view = n // views
        return (images[view * per_view:(view + 1) * per_view],)


def select_view_problem(views=None, view=None):
    """None, or why CamGrid Select View cannot take these inputs (None = not known yet)."""
    problem = range_problem({"views": VIEWS, "view": VIEW_INDEX}, {"views": views, "view": view})
    if problem is None and views is not None and view is not None and view >= views:
        problem = f"view {view} does not exist in a grid of {views} views (0..{views - 1})"
    return problem
