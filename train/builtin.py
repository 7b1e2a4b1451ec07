"""The built-in model "camgrid-tiny (built-in)": a tiny GridDiT trained by `camgrid train` on synthetic scenes.

It ships in `assets/` so the quick start runs with no downloads:
  camgrid-tiny.safetensors          the DiT ("syncammaster" variant, Wan key layout, config in the metadata),
                                    read by `load_grid_dit` like any real checkpoint;
  camgrid-tiny-sync.safetensors     its 4Real-Video sync layers (hard gates + soft layers), `load_sync_weights`;
  camgrid-tiny-text-ae.safetensors  the tiny text encoder (`text.*`) and video autoencoder (`ae.*`), their
                                    configs and the training resolution in the metadata.
  camgrid-tiny-4step-lora.safetensors  the few-step student (train/student.py): a LoRA in the Kijai /
                                    lightx2v layout, merged by `model.lora.apply_lora` with `student=True`.
Weights are stored in float16 (half the size) and loaded as float32.

    from camgrid.train import load_builtin
    m = load_builtin()                       # the teacher: 20 UniPC steps with guidance (TEACHER_SAMPLING)
    s = load_builtin(student=True)           # the student: 4 Euler steps, no guidance (STUDENT_SAMPLING)
    frames = s.generate("a red sphere and a blue box", rig, mode="syncam")   # [V, F, H, W, 3] in 0..1
"""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..model.camera import CameraRig, relative_extrinsics
from ..model.checks import InputError
from ..model.checkpoint import LoadOptions, load_grid_dit, save_grid_dit
from ..model.conditioning import SourceVideo
from ..model.files import atomic_save
from ..model.lora import apply_lora
from ..model.sampling import SamplerOptions, sample_grid
from ..model.sync import load_sync_weights, save_sync_weights
from ..synth.dataset import SyntheticMultiViewDataset
from .autoencoder import TinyVideoAE
from .student import STUDENT_FILE, student_sampling
from .text import TinyTextEncoder

BUILTIN_NAME = "camgrid-tiny (built-in)"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DIT_FILE = "camgrid-tiny.safetensors"
SYNC_FILE = "camgrid-tiny-sync.safetensors"
TEXT_AE_FILE = "camgrid-tiny-text-ae.safetensors"
DEFAULT_META = {"height": 48, "width": 80, "frames": 17, "shift": 3.0}
# the teacher's sample_grid settings (the student's: train/student.py STUDENT_SAMPLING). Guidance 3: the
# scale the student bakes in and the demo compares at. On every step: guiding only the noise levels up to 0.8
# (cfg_max_sigma) draws the objects at their true size, but v7 and its student were then less consistent from
# text and no better at shapes (benchmarks/TINY_MODEL.md, "Guidance in a limited interval").
TEACHER_SAMPLING = {"steps": 20, "cfg": 3.0, "scheduler": "unipc"}
# A model file may name a caption its teacher composes into that guidance, the weight it gets, the noise levels it
# gets it at and those where it acts on the background only (the meta's "compose": {"caption", and COMPOSE_KEYS};
# model/sampling.py "composed"): the teacher's sampling gains SamplerOptions' compose_<key> for each key, and the
# student, distilled from that teacher, has it baked in (train/floor_word.py writes it; benchmarks/TINY_MODEL.md,
# "The floor composed into the guidance").
# SamplerOptions' compose_* fields and their defaults; COMPOSE_KEYS names them without the prefix, so a compose
# setting added to the sampler reaches the files and the student's distillation with no list to keep in step
COMPOSE_DEFAULTS = {f.name: f.default for f in dataclasses.fields(SamplerOptions) if f.name.startswith("compose_")}
COMPOSE_KEYS = tuple(name[len("compose_"):] for name in COMPOSE_DEFAULTS)


def compose_settings(compose: dict) -> dict:
    """The sampler's settings (compose_cfg, ...) that a files' meta "compose" gives, one per key it has."""
    return {f"compose_{key}": float(compose[key]) for key in COMPOSE_KEYS if key in compose}


def camera_embedding(rig: CameraRig, num_latent_frames: int) -> torch.Tensor:
    """The built-in model's camera input, in training and in generation: [V, T_lat, 12] SynCamMaster
    relative extrinsics (view 0 reference, 0.5 per metre)."""
    return relative_extrinsics(rig, "syncammaster", "view0", num_latent_frames=num_latent_frames)


@dataclass
class TinyGridModel:
    """DiT + tiny text encoder + tiny video autoencoder, with a text -> multi-view video `generate`."""
    dit: torch.nn.Module
    text: torch.nn.Module
    ae: torch.nn.Module
    meta: dict = field(default_factory=lambda: dict(DEFAULT_META))
    sampling: dict = field(default_factory=lambda: dict(TEACHER_SAMPLING))   # generate's default settings

    @property
    def is_student(self) -> bool:
        return self.sampling.get("cfg") == 1.0 and self.sampling.get("scheduler") == "euler"

    @property
    def device(self) -> torch.device:
        return self.dit.device

    @property
    def height(self) -> int:
        return int(self.meta["height"])

    @property
    def width(self) -> int:
        return int(self.meta["width"])

    @property
    def frames(self) -> int:
        return int(self.meta["frames"])

    @property
    def shift(self) -> float:
        """The flow shift of its sigma schedule (teacher and student alike)."""
        return float(self.meta.get("shift", DEFAULT_META["shift"]))

    @property
    def scene_style(self) -> str:
        """The synthetic data style it learned (synth/scenes.py SCENE_STYLES); its held-out scenes use it. Files
        of the standard style do not record it, so they stay byte-identical to the releases before styles."""
        return str(self.meta.get("scene_style", "standard"))

    def scenes(self, count: int, seed: int, views: int = 4, arc_span=None,
               view_order: str = "preset", style: Optional[str] = None) -> SyntheticMultiViewDataset:
        """`count` scenes of the data it learned, with rigs of `views` cameras: its resolution, frames and scene
        style; every held-out set (tables, evaluate, distill, the tiny_* benchmarks) draws them with its own seed.
        arc_span (LOW, HIGH degrees): orbit arcs of that span instead of the training default (wider arcs are
        rigs on which copying one view into the others is wrong; the same scenes either way). view_order
        (synth/dataset.py VIEW_ORDERS): the rigs' views in that order (the same scenes and cameras). style: that
        scene style's instead of the model's (synth/scenes.py SCENE_STYLES)."""
        return SyntheticMultiViewDataset(length=max(count, 1), height=self.height, width=self.width,
                                         num_frames=self.frames, min_views=views, max_views=views, seed=seed,
                                         style=style or self.scene_style, arc_span=arc_span, view_order=view_order)

    @property
    def composed_caption(self) -> Optional[str]:
        """The caption the teacher composes into its guidance (the file's meta "compose"), or None."""
        compose = self.meta.get("compose")
        return str(compose["caption"]) if compose else None

    def guidance_contexts(self, batch: int, settings: dict) -> tuple:
        """(negative, composed): the features sampling `batch` grids with `settings` needs besides the captions':
        the empty caption's when text guidance or a composed caption uses it, the composed caption's when
        compose_cfg > 0; None where not needed."""
        composed = settings.get("compose_cfg", 0.0) > 0
        negative = self.encode_prompt([""] * batch) if settings.get("cfg", 1.0) != 1.0 or composed else None
        return negative, self.composed_context(batch) if composed else None

    def composed_context(self, batch: int) -> torch.Tensor:
        """[batch, L, text_dim]: the features of `composed_caption`, for sampling with compose_cfg > 0."""
        if self.composed_caption is None:
            raise InputError("compose_cfg > 0 composes the model's own caption, and this model's files name none "
                             "(their meta has no 'compose'): use compose_cfg = 0")
        return self.encode_prompt([self.composed_caption] * batch)

    @property
    def latent_frames(self) -> int:
        return TinyVideoAE.latent_frames(self.frames)

    def modes(self) -> list[str]:
        """Grid modes this model can run."""
        modes = ["independent", "hard"]
        if self.dit.variant == "syncammaster":
            modes.insert(1, "syncam")
        if self.dit.has_sync_weights and self.dit.blocks[0].sync.soft is not None:
            modes.append("soft")
        return modes

    @torch.no_grad()
    def encode_prompt(self, captions: Union[str, Sequence[str]]) -> torch.Tensor:
        """[B, L, text_dim]; "" gives the unconditional (all-zero) features."""
        return self.text.encode(captions).to(self.device)

    def camera_embedding(self, rig: CameraRig) -> torch.Tensor:
        """[V, T_lat, 12]: see the module-level `camera_embedding`."""
        return camera_embedding(rig, self.latent_frames)

    def latent_shape(self, num_views: int, batch: int = 1) -> tuple:
        c = self.dit.config.in_dim
        return (batch, num_views, c, self.latent_frames, self.height // 4, self.width // 4)

    @torch.no_grad()
    def generate_latents(self, captions: Union[str, Sequence[str]], cameras: torch.Tensor, mode: str = "syncam",
                         steps: Optional[int] = None, cfg: Optional[float] = None, shift: Optional[float] = None,
                         seed: int = 0, scheduler: Optional[str] = None, callback=None,
                         source: Optional[SourceVideo] = None, stats=None, **fast) -> torch.Tensor:
        """captions (B of them) and cameras [B, V, T, 12] or [V, T, 12] -> latent grid [B, V, C, T, h, w].
        steps / cfg / scheduler default to the model's `sampling` (teacher or student); `source` conditions a
        view on a given video (SourceVideo(latent [B, C, T, h, w], "replace_view", view=k)). `fast`: more
        SamplerOptions fields (cache=, cache_threshold=, schedule=, ...); `stats`: a SamplingStats to fill."""
        captions = [captions] if isinstance(captions, str) else list(captions)
        cameras = cameras if cameras.ndim == 4 else cameras[None].expand(len(captions), -1, -1, -1)
        b, v = cameras.shape[:2]
        if b != len(captions):
            raise ValueError(f"{len(captions)} captions for {b} camera sets; give one caption per grid")
        settings = {**self.sampling, **fast,
                    **{k: val for k, val in (("steps", steps), ("cfg", cfg), ("scheduler", scheduler)) if val is not None}}
        negative, composed = self.guidance_contexts(b, settings)
        return sample_grid(self.dit, self.latent_shape(v, b), self.encode_prompt(captions), negative, mode=mode,
                           camera=cameras.to(self.device), shift=self.shift if shift is None else float(shift),
                           seed=seed, callback=callback, source=source, stats=stats, compose_context=composed,
                           **settings)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """latent grid [B, V, C, T, h, w] -> frames [B, V, F, H, W, 3] in 0..1 (on the CPU)."""
        return torch.stack([self.ae.decode(grid).cpu() for grid in latents])

    @torch.no_grad()
    def generate(self, caption: str, rig: CameraRig, mode: str = "syncam", steps: Optional[int] = None,
                 cfg: Optional[float] = None, shift: Optional[float] = None, seed: int = 0,
                 scheduler: Optional[str] = None) -> torch.Tensor:
        """One grid for `rig`: frames [V, F, H, W, 3] in 0..1 at the model's resolution (settings not given:
        the model's `sampling`)."""
        if mode not in self.modes():
            raise ValueError(f"mode {mode!r} is not available for this model; use one of {self.modes()}")
        lat = self.generate_latents(caption, self.camera_embedding(rig), mode, steps, cfg, shift, seed, scheduler)
        return self.decode(lat)[0]


def save_builtin(model: TinyGridModel, directory: Union[str, Path], dtype=torch.float16) -> dict:
    """Write the three model files into `directory` (each atomically: a crash keeps the previous file);
    returns their paths. Weights are stored in `dtype` (float16: half the size)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"dit": directory / DIT_FILE, "sync": directory / SYNC_FILE, "text_ae": directory / TEXT_AE_FILE}
    stored = copy.deepcopy(model.dit).to(dtype)
    atomic_save(paths["dit"], lambda tmp: save_grid_dit(stored, tmp))
    if stored.has_sync_weights:
        atomic_save(paths["sync"], lambda tmp: save_sync_weights(stored, tmp))
    else:
        paths.pop("sync").unlink(missing_ok=True)
    sd = {**{f"text.{k}": v for k, v in model.text.state_dict().items()},
          **{f"ae.{k}": v for k, v in model.ae.state_dict().items()}}
    sd = {k: (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous().cpu() for k, v in sd.items()}
    meta = {"format": "camgrid-tiny-text-ae", "text": json.dumps(model.text.config()),
            "ae": json.dumps(model.ae.config()), "meta": json.dumps(model.meta)}
    atomic_save(paths["text_ae"], lambda tmp: save_file(sd, str(tmp), metadata=meta))
    return paths


def builtin_available(directory: Union[str, Path, None] = None) -> bool:
    directory = ASSETS_DIR if directory is None else Path(directory)
    return (directory / DIT_FILE).is_file() and (directory / TEXT_AE_FILE).is_file()


def student_available(directory: Union[str, Path, None] = None) -> bool:
    return ((ASSETS_DIR if directory is None else Path(directory)) / STUDENT_FILE).is_file()


def model_fingerprint(directory: Union[str, Path, None] = None, student: Union[str, Path, None] = None) -> dict:
    """SHA-256 (first 16 hex digits) of each model file present in `directory` (default: assets/); `student`:
    the student LoRA's file when it is not in that folder. Records made with the shipped files carry it
    (benchmarks/tiny_demo_seeds.json, tiny_tables.json), so a test or the demo can tell that they still apply."""
    directory = ASSETS_DIR if directory is None else Path(directory)
    files = {name: directory / name for name in (DIT_FILE, SYNC_FILE, TEXT_AE_FILE, STUDENT_FILE)}
    if student is not None:
        files[STUDENT_FILE] = Path(student)
    return {name: hashlib.sha256(path.read_bytes()).hexdigest()[:16] for name, path in files.items() if path.is_file()}


def load_text_and_autoencoder(directory: Union[str, Path]) -> tuple:
    """(text encoder, autoencoder, model meta) of TEXT_AE_FILE in `directory`, float32 on the CPU; the meta is
    the file's recorded resolution, shift (and scene style), over DEFAULT_META."""
    path = Path(directory) / TEXT_AE_FILE
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    sd = load_file(str(path))
    text = TinyTextEncoder(**json.loads(meta["text"]))
    text.load_state_dict({k[5:]: v.float() for k, v in sd.items() if k.startswith("text.")})
    ae = TinyVideoAE(**json.loads(meta["ae"]))
    ae.load_state_dict({k[3:]: v.float() for k, v in sd.items() if k.startswith("ae.")})
    return text, ae, {**DEFAULT_META, **json.loads(meta.get("meta", "{}"))}


def load_builtin(directory: Union[str, Path, None] = None, device: Union[str, torch.device] = "cpu",
                 attention: Optional[str] = None, student: Union[bool, str, Path] = False) -> TinyGridModel:
    """Load the built-in model (from `assets/`, or a `camgrid train --out` folder) as float32 on `device`.
    student=True merges the few-step student's LoRA (STUDENT_FILE in the same folder; or the LoRA file given as
    `student`) through `apply_lora`, and makes its schedule the model's default sampling."""
    directory = ASSETS_DIR if directory is None else Path(directory)
    if not builtin_available(directory):
        raise FileNotFoundError(f"the built-in model files ({DIT_FILE}, {TEXT_AE_FILE}) are not in {directory}: "
                                "reinstall camgrid with its assets/ folder, or train them with `python -m camgrid train`")
    device = torch.device(device)
    sync = directory / SYNC_FILE
    dit = load_grid_dit(directory / DIT_FILE, device=device, options=LoadOptions(
        dtype=torch.float32, sync_weights=sync if sync.is_file() else None, attention=attention))
    text, ae, info = load_text_and_autoencoder(directory)
    sampling = dict(TEACHER_SAMPLING)
    if info.get("compose"):
        sampling.update(compose_settings(info["compose"]))
    if student is not False and student is not None:
        lora = directory / STUDENT_FILE if student is True else Path(student)
        if not lora.is_file():
            raise FileNotFoundError(f"the few-step student {lora} does not exist: distil it with "
                                    "`python -m camgrid.train.distill`, or use the teacher (student=False / --teacher)")
        apply_lora(dit, lora)
        sampling = student_sampling(lora)
    ae = ae.to(device).eval().requires_grad_(False)
    if device.type == "cpu":   # oneDNN's faster convolutions (TinyVideoAE.use_channels_last)
        ae.use_channels_last()
    return TinyGridModel(dit, text.to(device).eval().requires_grad_(False), ae, info, sampling)
