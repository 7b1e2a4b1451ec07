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

VARIANTS = ("wan", "syncammaster", "recammaster")
TEXT_LENGTH = 512  # Wan's umT5 context length: shorter prompts are padded with zero tokens to it


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
    # which extra modules exist (DESIGN §3.2); "wan" = plain Wan2.1 T2V
    variant: str = "wan"
    name: str = field(default="custom", compare=False)

    def __post_init__(self):
        if self.dim % self.num_heads:
            raise ValueError(f"DiTConfig: dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if self.head_dim % 2:
            raise ValueError(f"DiTConfig: head_dim {self.head_dim} must be even for RoPE")
        if self.variant not in VARIANTS:
            raise ValueError(f"DiTConfig: variant must be one of {VARIANTS}, got {self.variant!r}")

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
        d = json.loads(text)
        d["patch_size"] = tuple(d["patch_size"])
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


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
    """Variant from marker keys (DESIGN §3.2), keys already in original Wan layout without prefix."""
    keys = set(keys)
    if "blocks.0.mvs_attn.q.weight" in keys:
        return "syncammaster"
    if "blocks.0.cam_encoder.weight" in keys:
        return "recammaster"
    return "wan"


def infer_config(shapes: Mapping[str, object], num_heads: int | None = None) -> DiTConfig:
    """Config from a state dict in original Wan layout (no prefix): keys -> tensors or shapes."""
    def need(key):
        if key not in shapes:
            raise KeyError(key)
        return _shape(shapes[key])

    try:
        pe = need("patch_embedding.weight")  # [dim, in_dim, pt, ph, pw]
        dim, in_dim, patch = pe[0], pe[1], tuple(pe[2:])
        ffn_dim = need("blocks.0.ffn.0.weight")[0]
        text_dim = need("text_embedding.0.weight")[1]
        freq_dim = need("time_embedding.0.weight")[1]
        out_dim = need("head.head.weight")[0] // math.prod(patch)
    except KeyError as exc:
        raise ValueError(
            f"not a Wan2.1 DiT state dict: key {exc.args[0]!r} is missing "
            f"(keys start with {sorted(shapes)[:3]}...)"
        ) from None
    num_layers = 1 + max(int(k.split(".")[1]) for k in shapes if k.startswith("blocks."))
    if num_heads is None:
        preset = next((p for p in PRESETS.values() if p.dim == dim and p.dim % 128 == 0), None)
        if preset is not None:
            num_heads = preset.num_heads
        elif dim % 128 == 0:
            num_heads = dim // 128
        else:
            raise ValueError(
                f"cannot infer the head count of a DiT with width {dim} (not a multiple of 128): "
                "pass num_heads=... or store 'camgrid.config' metadata in the file"
            )
    cfg = DiTConfig(
        dim=dim, ffn_dim=ffn_dim, num_heads=num_heads, num_layers=num_layers, in_dim=in_dim,
        out_dim=out_dim, text_dim=text_dim, freq_dim=freq_dim, patch_size=patch,
        cross_attn_norm="blocks.0.norm3.weight" in shapes, variant=detect_variant(shapes),
    )
    return cfg.replace(name=cfg.size_name)
