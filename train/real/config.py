"""The settings of one `camgrid train --dit FILE` run, checked once when made (before anything loads)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ...model.attention import BACKENDS
from ...model.checks import InputError
from ...model.checks import frames_problem, raise_problem

TWO_STREAM_MODES = ("hard", "soft")
PARALLEL = ("ddp", "fsdp")
DTYPES = ("bf16", "fp32")
SYNTHETIC = "synthetic"          # --data synthetic[:SCENES]: our rendered scenes, written in the published layout
SYNTHETIC_SCENES = 64


@dataclass
class RealTrainConfig:
    dit: str = ""
    out: str = "camgrid-sync-run"
    device: str = "cpu"
    # data: a dataset root (SynCamVideo / MultiCamVideo layout), "synthetic[:N]", or only an existing cache
    data: Optional[str] = None
    cache: Optional[str] = None          # default OUT/latent-cache
    captions: Optional[str] = None       # caption file instead of DATA/metadata.csv
    vae: Optional[str] = None            # needed to build the cache
    text_encoder: Optional[str] = None
    tokenizer: Optional[str] = None
    text_fp8: bool = False
    cache_views: int = 0                 # cameras encoded per scene (0: all); training draws `views` of them
    height: int = 480
    width: int = 832
    frames: int = 81
    views: int = 4
    caption_dropout: float = 0.1
    # what trains
    modes: tuple = TWO_STREAM_MODES      # two-stream modes the steps cycle through
    sync_rank: int = 64
    lora_rank: int = 32                  # 0: sync layers only
    lora_alpha: Optional[float] = None   # None: = rank (scale 1)
    # optimisation
    steps: int = 2000
    time_budget: float = 0.0             # seconds; 0: no limit
    batch: int = 1                       # multi-view samples per step and GPU
    lr: float = 1e-4
    warmup: int = 100                    # steps of linear learning-rate warm-up, then a cosine to 10%
    shift: float = 5.0
    seed: int = 0
    checkpoint_every: int = 200
    resume: bool = False
    progress_bar: bool = True
    # memory and speed
    dtype: str = "bf16"
    attention: Optional[str] = None
    row_chunks: int = 0
    ffn_chunk: int = 0
    fp8: bool = False                    # frozen block weights stored in fp8 (model/fp8.py, dequantised per matmul)
    gradient_checkpointing: bool = True
    block_swap: int = 0                  # refused: inference only
    parallel: str = "ddp"

    def __post_init__(self):
        self.modes = tuple(self.modes)
        if not self.modes or any(m not in TWO_STREAM_MODES for m in self.modes):
            raise InputError(f"--modes: expected a non-empty subset of {TWO_STREAM_MODES}, got {','.join(self.modes)}")
        if not self.dit or not Path(self.dit).is_file():
            raise InputError(f"--dit {self.dit!r} is not an existing file: give the DiT to train on (Wan2.1, "
                             "SynCamMaster or ReCamMaster weights)")
        if self.block_swap:
            raise InputError("--block-swap is inference only: it drops each block's weights after use, which "
                             "backward needs again. For memory use --row-chunks / --ffn-chunk (gradient "
                             "checkpointing is on), --fp8 weights, fewer --views / --frames, or --parallel fsdp")
        if self.data is None and self.cache is None:
            raise InputError("give --data DIR (a SynCamVideo / MultiCamVideo dataset, or 'synthetic'), or --cache DIR "
                             "(a latent cache built before)")
        if self.data is not None and not self.data.startswith(SYNTHETIC) and not Path(self.data).is_dir():
            raise InputError(f"--data {self.data!r} is not a folder: give the dataset root (with train/<lens>/scene<N>)")
        if self.data is not None and not (self.vae and self.text_encoder):
            raise InputError("--data needs --vae and --text-encoder to build the latent cache (e.g. "
                             "wan_2.1_vae.safetensors and umt5_xxl_fp8_e4m3fn_scaled.safetensors)")
        for name in ("steps", "batch", "views", "checkpoint_every", "height", "width", "sync_rank"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"--{name.replace('_', '-')}: must be at least 1, got {getattr(self, name)}")
        for name in ("lora_rank", "cache_views", "row_chunks", "ffn_chunk", "warmup"):
            if int(getattr(self, name)) < 0:
                raise InputError(f"--{name.replace('_', '-')}: must be 0 or more, got {getattr(self, name)}")
        if self.height % 16 or self.width % 16:
            raise InputError(f"--height/--width must be multiples of 16, got {self.height}x{self.width}")
        raise_problem(frames_problem(self.frames, "--frames"))
        if self.cache_views and self.cache_views < self.views:
            raise InputError(f"--cache-views {self.cache_views} is fewer than --views {self.views}")
        for name, value in (("lr", self.lr), ("shift", self.shift), ("time_budget", self.time_budget)):
            if not math.isfinite(float(value)) or float(value) < 0:
                raise InputError(f"--{name.replace('_', '-')}: expected a finite number >= 0, got {value}")
        if not 0 <= self.caption_dropout <= 1:
            raise InputError(f"--caption-dropout: expected 0..1, got {self.caption_dropout}")
        if self.dtype not in DTYPES or self.parallel not in PARALLEL:
            raise InputError(f"--dtype must be one of {DTYPES} and --parallel one of {PARALLEL}")
        if self.attention in ("sage",) or (self.attention is not None and self.attention not in BACKENDS):
            raise InputError(f"--attention {self.attention}: training needs a backend with a backward pass "
                             "(sdpa, flash_attn, chunked, auto)")

    @property
    def cache_dir(self) -> Path:
        return Path(self.cache) if self.cache else Path(self.out) / "latent-cache"

    @property
    def synthetic_scenes(self) -> int:
        """Scenes of --data synthetic[:N]."""
        _, _, count = (self.data or "").partition(":")
        try:
            return int(count) if count else SYNTHETIC_SCENES
        except ValueError:
            raise InputError(f"--data {self.data!r}: expected synthetic or synthetic:SCENES") from None

    @property
    def budget(self) -> float:
        return float(self.time_budget) if self.time_budget > 0 else math.inf
