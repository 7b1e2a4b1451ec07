"""The settings of one `camgrid train` run, and the names of its stages.

Every option of a run lives in `TrainConfig`, checked once when it is made (a bad value fails before
minutes of earlier stages). `parse_stages` / `parse_budgets` read the command line's comma lists.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..model.checks import InputError
from ..synth.dataset import check_arc_span, check_empty_share, check_view_order
from ..synth.scenes import SCENE_STYLES

AMP_CHOICES = ("auto", "bf16", "off")   # the DiT stages' autocast (train/objective.py mixed_precision)

# In training order; docs in train/stages.py.
STAGES = ("ae", "video", "syncam", "hard", "soft")
# The first release trained hard and soft sync in one "sync" stage: the old name still means both.
LEGACY_STAGES = {"sync": ("hard", "soft")}
TWO_STREAM_MODES = ("hard", "soft")
IMAGE_SOURCES = ("clips", "floor")     # where the video stage's single frames come from (--image-source)


@dataclass
class TrainConfig:
    out: str = "camgrid-tiny-run"
    device: str = "cpu"
    # data
    height: int = 48
    width: int = 80
    frames: int = 17
    views: int = 4
    samples: int = 3000
    workers: int = 0
    seed: int = 0
    scene_style: str = ""              # synth/scenes.py SCENE_STYLES ("": standard, or with --init the files')
    arc_span: tuple = ()               # degrees an orbit arc of the training rigs spans, (low, high) ((): the
                                       # default, 20 to 30 per view; synth/dataset.py); held-out scenes keep the default
    view_order: str = "preset"         # the training rigs' view order (synth/dataset.py VIEW_ORDERS; "shuffled": the
                                       # view index says nothing about where a camera is); held-out scenes keep "preset"
    given_view_share: float = 0.0      # multi-view stages: share of samples with one view noised less and not scored
                                       # (train/objective.py "Given views"; what novel-view synthesis asks)
    empty_scene_share: float = 0.0     # share of the training scenes with no objects: the floor alone, empty caption
                                       # (benchmarks/TINY_MODEL.md "The floor alone"); held-out scenes keep theirs
    image_weight: float = 0.0          # video stage: this share of the loss from single frames (a second draw of
                                       # clips, their first latent frame only: a causal autoencoder encodes it from the
                                       # first frame alone), as Wan trains on images beside videos
    image_source: str = "clips"        # those frames: "clips" (the clips' own) or "floor" (the floor alone, captioned
                                       # "floor": train/floor_images.py)
    # model (the shipped recipe, benchmarks/TINY_MODEL.md "Built-in model v2": 6.8 M parameters, 13.6 MB in fp16)
    dim: int = 224
    ffn_dim: int = 896
    num_heads: int = 4
    num_layers: int = 6
    text_dim: int = 64
    text_phrases: bool = False         # the text encoder binds each colour to its shape (train/text.py)
    camera_rays: bool = False          # the DiT reads a Plücker ray per token too (DiTConfig.camera_rays; with --init
                                       # a model without them gets zero-initialised ray encoders)
    relative_cameras: bool = False     # the multi-view attention reads relative camera poses, not the view index
                                       # (DiTConfig.relative_cameras; with --init the model is switched to it)
    ray_lr_scale: float = 1.0          # syncam stage: the ray encoders learn at lr * this (they start at zero and
                                       # barely moved in 400 CPU steps at 1: benchmarks/TINY_MODEL.md)
    latent_dim: int = 8
    ae_width: int = 64
    sync_rank: int = 32
    patch: int = 2                     # the DiT's spatial patch: a token covers patch x 4 pixels square
    # optimisation
    steps: int = 100_000               # per stage, at most
    time_budget: float = 60.0          # seconds per stage
    stage_budgets: dict = field(default_factory=dict)   # per-stage overrides of time_budget
    batch: int = 16                    # multi-view samples per step (the single-view stage uses batch*views views)
    lr: float = 5e-4
    finetune_lr_scale: float = 0.5    # hard stage: pre-trained weights learn at lr * this, new gates at lr
    two_stream_modes: tuple = TWO_STREAM_MODES   # modes the hard stage's two-stream fine-tune cycles through
    ae_lr: float = 1e-3
    ae_scale_reg: float = 0.0          # weight of the autoencoder's scale-equivariance loss (train/stages.py plan_ae)
    amp: str = "auto"                  # DiT stages' autocast: auto = bfloat16 on CUDA (train/objective.py)
    shift: float = 3.0                 # the sampler's shift, recorded in the model files
    train_shift: float = 0.0           # noise levels trained: sigma = shift(u), u ~ U(0, 1), with this shift (0: shift)
    ema: float = 0.0                   # DiT stages: weights averaged with this decay (0: off; train/loop.py)
    caption_dropout: float = 0.1
    stages: tuple = STAGES
    checkpoint_every: int = 500        # steps between checkpoints of the stage in progress
    eval_scenes: int = 0
    eval_steps: int = 20
    resume: bool = False               # skip finished stages, continue the stage in progress from checkpoint.pt
    init: str = ""                     # start from these built-in model files (e.g. assets/) instead of fresh weights
    restart_stage: bool = False        # resume, but start the stage in progress again (ignores checkpoint.pt)
    progress_bar: bool = True

    def __post_init__(self):
        self.two_stream_modes = tuple(self.two_stream_modes)
        bad = [m for m in self.two_stream_modes if m not in TWO_STREAM_MODES]
        if not self.two_stream_modes or bad:
            raise InputError(f"two_stream_modes (--two-stream-modes): expected a non-empty subset of "
                             f"{TWO_STREAM_MODES}, got {self.two_stream_modes}")
        self.stages = tuple(self.stages)
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise InputError(f"stages (--stages): unknown {unknown}; choose from {STAGES}")
        if not 0.0 <= float(self.ema) < 1.0:
            raise InputError(f"ema (--ema): expected a decay in [0, 1) (0 turns it off), got {self.ema}")
        try:
            self.arc_span = check_arc_span(self.arc_span) or ()
        except ValueError as exc:
            raise InputError(f"{exc} (--arc-span LOW,HIGH)") from None
        try:
            check_view_order(self.view_order)
        except ValueError as exc:
            raise InputError(f"{exc} (--view-order)") from None
        try:
            check_empty_share(self.empty_scene_share)
        except ValueError as exc:
            raise InputError(f"{exc} (--empty-scene-share)") from None
        if not 0.0 <= float(self.image_weight) < 1.0:
            raise InputError(f"image_weight (--image-weight): expected a share of the loss in [0, 1), got "
                             f"{self.image_weight}")
        if self.image_source not in IMAGE_SOURCES:
            raise InputError(f"image_source (--image-source): expected one of {', '.join(IMAGE_SOURCES)}, got "
                             f"{self.image_source!r}")
        if self.image_source != "clips" and not self.image_weight:
            raise InputError(f"--image-source {self.image_source} chooses the video stage's single frames, which "
                             "--image-weight 0 leaves out: give --image-weight (e.g. 0.5) or leave --image-source out")
        if not 0.0 <= float(self.given_view_share) <= 1.0:
            raise InputError(f"given_view_share (--given-view-share): expected a share in [0, 1], "
                             f"got {self.given_view_share}")
        if not float(self.ray_lr_scale) > 0.0:
            raise InputError(f"ray_lr_scale (--ray-lr-scale): expected a factor above 0, got {self.ray_lr_scale}")
        if self.scene_style and self.scene_style not in SCENE_STYLES:
            raise InputError(f"scene_style (--scene-style): expected one of {sorted(SCENE_STYLES)}, "
                             f"got {self.scene_style!r}")
        if self.amp not in AMP_CHOICES:
            raise InputError(f"amp (--amp): expected one of {AMP_CHOICES}, got {self.amp!r}")
        if self.init and "ae" in self.stages:
            raise InputError(f"--init {self.init}: the stages {self.stages} include ae, but a model trained further "
                             "keeps its autoencoder (its DiT learned that autoencoder's latents); leave ae out of "
                             "--stages, e.g. --stages video,syncam,hard,soft")
        if self.ae_scale_reg and (int(self.height) % 8 or int(self.width) % 8):
            raise InputError(f"ae_scale_reg: pools the 4x latents 2x, so height and width must be multiples of 8, "
                             f"got {self.height}x{self.width}; use 0 or a size divisible by 8")
        if self.restart_stage:
            self.resume = True   # restarting the stage in progress keeps the finished ones
        for name in ("batch", "views", "samples", "checkpoint_every", "height", "width", "frames", "patch"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name}: must be at least 1, got {getattr(self, name)}")
        seconds = {"time_budget": self.time_budget, **{f"stage_budgets[{k}]": v for k, v in self.stage_budgets.items()}}
        for name, value in {**seconds, "lr": self.lr, "ae_lr": self.ae_lr, "ae_scale_reg": self.ae_scale_reg,
                            "shift": self.shift, "train_shift": self.train_shift}.items():
            if not math.isfinite(float(value)) or float(value) < 0:
                raise InputError(f"{name}: expected a finite number >= 0, got {value}")

    @property
    def data_style(self) -> str:
        """The scene style the data is rendered in: scene_style, or standard (the trainer sets scene_style from
        the files with --init / --resume before rendering starts)."""
        return self.scene_style or "standard"

    @property
    def training_shift(self) -> float:
        """The shift of the noise levels the DiT stages train on: train_shift, or the sampler's shift. A smaller
        one trains more low noise levels (shift 1: sigma uniform, 10 % below 0.1; shift 3: 3.6 %)."""
        return float(self.train_shift or self.shift)

    def budget(self, stage: str) -> float:
        """Seconds of training for `stage`."""
        return float(self.stage_budgets.get(stage, self.time_budget))


def parse_stages(text: str) -> tuple:
    """'ae,sync' -> ('ae', 'hard', 'soft')."""
    stages = tuple(s for name in text.split(",") if name for s in LEGACY_STAGES.get(name, (name,)))
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise InputError(f"--stages: unknown {bad}; choose from {STAGES}")
    return stages


def parse_budgets(text: str) -> dict:
    """'video=100,sync=60,soft=10' -> {'video': 100.0, 'hard': 30.0, 'soft': 10.0} (a legacy sync=S gives
    S/2 to hard and to soft, unless they are given too)."""
    out, legacy = {}, {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        if name not in STAGES and name not in LEGACY_STAGES or not value:
            raise InputError(f"--stage-budgets: expected STAGE=SECONDS with STAGE in {STAGES}, got {part!r}")
        try:
            seconds = float(value)
        except ValueError:
            raise InputError(f"--stage-budgets: {part!r} does not give seconds as a number") from None
        if name in LEGACY_STAGES:
            legacy.update({s: seconds / len(LEGACY_STAGES[name]) for s in LEGACY_STAGES[name]})
        else:
            out[name] = seconds
    return {**legacy, **out}
