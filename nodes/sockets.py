"""What flows on camgrid's own sockets (docs/ARCHITECTURE.md §2 Data that flows between nodes). Core types
(LATENT, IMAGE, ...) are not here."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch

from ..model.camera import CameraRig, latent_frame_count, relative_extrinsics
from ..model.modes import camera_rule

MODEL = "CAMGRID_MODEL"
RIG = "CAMERA_RIG"
EMBEDS = "CAMERA_EMBEDS"
SOURCE = "CAMGRID_SOURCE"  # carries a model.conditioning.SourceVideo (how may be "auto")
WINDOWS = "CAMGRID_WINDOWS"  # carries a model.context_windows.ContextWindows, or None (windows off)
SAMPLER_OPTIONS = "CAMGRID_SAMPLER_OPTIONS"  # a dict of model.sampling.SamplerOptions fields (checked)


@dataclass
class LoadedModel:
    """A loaded grid DiT and how to run it (the CAMGRID_MODEL socket)."""

    model: torch.nn.Module          # GridDiT, parked on the offload device between runs
    name: str                       # file name (or the built-in model's name)
    variant: str                    # "wan" | "syncammaster" | "recammaster"
    size: str                       # "1.3B", "14B", "tiny", ...
    dtype: torch.dtype
    attention: str                  # attention backend name
    sync_weights: Optional[str] = None
    block_swap: int = 0             # blocks whose weights stay on the offload device
    weight_storage: str = "default"
    row_chunks: int = 0             # GridDiT.set_row_chunks (0: off)
    ffn_chunk: int = 0              # GridDiT.set_ffn_chunk (0: off)
    notes: list = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.name}: {self.variant} DiT, {self.size}, {str(self.dtype).replace('torch.', '')}, "
                 f"attention {self.attention}"]
        parts.append(f"sync weights {self.sync_weights}" if self.sync_weights else "no sync weights")
        if self.block_swap:
            parts.append(f"block swap {self.block_swap}")
        if self.weight_storage != "default":
            parts.append(f"weights {self.weight_storage}")
        if self.row_chunks:
            parts.append(f"row chunks {self.row_chunks}")
        if self.ffn_chunk:
            parts.append(f"FFN chunk {self.ffn_chunk} tokens")
        return "; ".join(parts + list(self.notes))


@dataclass
class CameraEmbeds:
    """A rig and how to encode it as 12-d relative extrinsics (the CAMERA_EMBEDS socket).

    convention "auto" defers the encoding rule (translation scale, reference camera) to the sampler,
    which knows the model variant; a variant name fixes it.
    """

    rig: CameraRig
    length: int                          # video frames the embedding is for (4k+1)
    convention: str = "auto"             # "auto" | one of model.config.VARIANTS
    reference: str = "auto"              # "auto" | "view0" | "first_pose"
    translation_scale: float = 0.0       # 0: the convention's own scale

    @property
    def num_views(self) -> int:
        return self.rig.num_views

    @property
    def num_latent_frames(self) -> int:
        return latent_frame_count(self.length)

    def rule_for(self, variant: str) -> tuple[str, str, float]:
        """(convention, reference, translation scale): the model's rule (model/modes.py camera_rule) unless this
        embedding fixes the convention, the reference or the scale."""
        convention = variant if self.convention == "auto" else self.convention
        reference, scale = camera_rule(convention)
        if self.reference != "auto":
            reference = self.reference
        if self.translation_scale:
            scale = float(self.translation_scale)
        return convention, reference, scale

    def relative(self, variant: str, num_latent_frames: Optional[int] = None) -> torch.Tensor:
        """[V, T_lat, 12] relative extrinsics under the rule for `variant`."""
        _, reference, scale = self.rule_for(variant)
        t = num_latent_frames or self.num_latent_frames
        return relative_extrinsics(self.rig, scale, reference=reference, num_latent_frames=t)

