"""DiT configurations: named presets and inference of a config from a state dict's shapes.

A Wan2.1 checkpoint carries no config file, so everything is read off tensor shapes. The only
quantity shapes cannot tell is the number of attention heads: Wan uses head_dim 128, which is
what we assume for any width divisible by 128 (1.3B: 1536/128 = 12 heads, 14B: 5120/128 = 40).
Smaller widths (test models, the built-in tiny model) store their head count in the file's
metadata, or the caller passes it.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Mapping

from .key_layouts import block_count

# The model variants, detected from the weights (docs/ARCHITECTURE.md §3.2 Variants). Order: how nodes list them.
VARIANTS = ("syncammaster", "recammaster", "wan")


@dataclass(frozen=True)
class DiTConfig:
    dim: int = 1536
    ffn_dim: int = 8960
    num_heads: int = 12
    num_layers: int = 30
    in_dim: int = 16
    out_dim: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    cross_attn_norm: bool = True
    # which extra modules exist (docs/ARCHITECTURE.md §3.2 Variants); "wan" = plain Wan2.1 T2V
    variant: str = "wan"
    # a Plücker ray encoder per block beside the camera encoder (the built-in model; ignored by variants without
    # a camera encoder). Its rays come from the 12-d extrinsics (model/camera/encoding.py extrinsics_rays).
    camera_rays: bool = False
    # the multi-view attention reads each view pair's relative camera pose where SynCamMaster's reads the view
    # index (model/relative_pose_attention.py; the built-in model; no weights of its own, so only the
    # file's metadata records it)
    relative_cameras: bool = False
    name: str = field(default="custom", compare=False)

    def __post_init__(self):
        for key in ("dim", "ffn_dim", "num_heads", "num_layers", "in_dim", "out_dim", "text_dim", "freq_dim"):
            value = getattr(self, key)
            if type(value) is not int or value < 1:
                raise ValueError(f"DiTConfig: {key} must be a positive integer, got {value!r}")
        patch = self.patch_size
        if not (isinstance(patch, tuple) and len(patch) == 3 and all(type(p) is int and p >= 1 for p in patch)):
            raise ValueError(f"DiTConfig: patch_size must be 3 positive integers (frames, height, width), got {patch!r}")
        if type(self.eps) not in (int, float) or not 0 < self.eps < 1:
            raise ValueError(f"DiTConfig: eps must be a small positive number, got {self.eps!r}")
        if type(self.cross_attn_norm) is not bool:
            raise ValueError(f"DiTConfig: cross_attn_norm must be true or false, got {self.cross_attn_norm!r}")
        for key in ("camera_rays", "relative_cameras"):
            if type(getattr(self, key)) is not bool:
                raise ValueError(f"DiTConfig: {key} must be true or false, got {getattr(self, key)!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"DiTConfig: variant must be one of {VARIANTS}, got {self.variant!r}")
        if not isinstance(self.name, str):
            raise ValueError(f"DiTConfig: name must be text, got {self.name!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"DiTConfig: dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"DiTConfig: head_dim {self.head_dim} must be even for RoPE")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def rope_dims(self) -> tuple[int, int, int]:
        """Head dims given to the (frame, height, width) RoPE axes: 44/42/42 for d = 128."""
        d = self.head_dim
        return d - 4 * (d // 6), 2 * (d // 6), 2 * (d // 6)

    @property
    def size_name(self) -> str:
        for name, preset in PRESETS.items():
            if (preset.dim, preset.ffn_dim, preset.num_layers) == (self.dim, self.ffn_dim, self.num_layers):
                return name
        return self.name

    def replace(self, **kw) -> "DiTConfig":
        return dataclasses.replace(self, **kw)

    def to_json(self) -> str:
        d = dataclasses.asdict(self)
        d["patch_size"] = list(self.patch_size)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DiTConfig":
        """The config `to_json` wrote. Every shape field must be present (a partial config would silently
        take the 1.3B defaults); `name`, `variant`, `camera_rays` and `relative_cameras` may be missing; unknown
        fields are ignored."""
        try:
            d = json.loads(text)
        except (ValueError, RecursionError):
            raise ValueError("the config is not valid JSON") from None
        if not isinstance(d, dict):
            raise ValueError(f"the config must be a JSON object, got {type(d).__name__}")
        optional = ("name", "variant", "camera_rays", "relative_cameras")
        required = [f.name for f in dataclasses.fields(cls) if f.name not in optional]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"the config lacks {', '.join(missing)}")
        if isinstance(d["patch_size"], list):
            d["patch_size"] = tuple(d["patch_size"])
        return cls(**{k: d[k] for k in required + list(optional) if k in d})


PRESETS: dict[str, DiTConfig] = {
    "wan-1.3b": DiTConfig(dim=1536, ffn_dim=8960, num_heads=12, num_layers=30, name="wan-1.3b"),
    "wan-14b": DiTConfig(dim=5120, ffn_dim=13824, num_heads=40, num_layers=40, name="wan-14b"),
    "tiny": DiTConfig(dim=64, ffn_dim=128, num_heads=4, num_layers=2, text_dim=32, freq_dim=32, name="tiny"),
}


def get_config(name: str, **overrides) -> DiTConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown DiT preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides) if overrides else PRESETS[name]


def _shape(t) -> tuple[int, ...]:
    # accepts tensors (real or meta), numpy arrays, safetensors slices, or plain shape tuples
    if isinstance(t, (tuple, list)):
        return tuple(int(s) for s in t)
    shape = t.shape if hasattr(t, "shape") else t.get_shape()
    return tuple(int(s) for s in shape)


def detect_variant(keys) -> str:
    """Variant from marker keys (docs/ARCHITECTURE.md §3.2 Variants), keys already in original Wan layout without prefix."""
    keys = set(keys)
    if "blocks.0.mvs_attn.q.weight" in keys:
        return "syncammaster"
    if "blocks.0.cam_encoder.weight" in keys:
        return "recammaster"
    return "wan"


def infer_config(shapes: Mapping[str, object], num_heads: int | None = None) -> DiTConfig:
    """Config from a state dict in original Wan layout (no prefix): keys -> tensors or shapes.

    Raises ValueError (with the key at fault) when a key is missing or a shape is not the Wan one."""
    def need(key, ndim):
        if key not in shapes:
            raise ValueError(f"not a Wan2.1 DiT state dict: key {key!r} is missing (keys start with "
                             f"{sorted(shapes)[:3]}...)")
        shape = _shape(shapes[key])
        if len(shape) != ndim:
            raise ValueError(f"{key} has shape {list(shape)}; a Wan2.1 DiT's is {ndim}-D")
        return shape

    pe = need("patch_embedding.weight", 5)  # [dim, in_dim, pt, ph, pw] (Conv3d)
    dim, in_dim, patch = pe[0], pe[1], tuple(pe[2:])
    ffn_dim = need("blocks.0.ffn.0.weight", 2)[0]
    text_dim = need("text_embedding.0.weight", 2)[1]
    freq_dim = need("time_embedding.0.weight", 2)[1]
    head_out = need("head.head.weight", 2)[0]
    if math.prod(patch) == 0 or head_out % math.prod(patch):
        raise ValueError(f"head.head.weight has {head_out} outputs, not a multiple of the patch size {list(patch)}")
    if num_heads is None:
        num_heads = _default_heads(dim)
    cfg = DiTConfig(
        dim=dim, ffn_dim=ffn_dim, num_heads=num_heads, num_layers=block_count(shapes), in_dim=in_dim,
        out_dim=head_out // math.prod(patch), text_dim=text_dim, freq_dim=freq_dim, patch_size=patch,
        cross_attn_norm="blocks.0.norm3.weight" in shapes, variant=detect_variant(shapes),
        camera_rays="blocks.0.ray_encoder.weight" in shapes,
    )
    return cfg.replace(name=cfg.size_name)


def _default_heads(dim: int) -> int:
    """Wan's head_dim 128 (the presets' head counts for their widths)."""
    preset = next((p for p in PRESETS.values() if p.dim == dim and p.dim % 128 == 0), None)
    if preset is not None:
        return preset.num_heads
    if dim % 128 == 0:
        return dim // 128
    raise ValueError(f"cannot infer the head count of a DiT with width {dim} (not a multiple of 128): "
                     "pass num_heads=... or store 'camgrid.config' metadata in the file")
