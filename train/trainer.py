"""One `camgrid train` run: the built-in model's modules, its stages in order, its files after each stage.

Outputs in --out: the built-in model files (train/builtin.py: DiT, sync weights, text + AE), rewritten
after every finished stage; `loss.csv` (train/losslog.py); `checkpoint.pt` and `progress.json`
(train/state.py) for --resume; and, from the command line, `eval.json` (train/cli.py).

Where the parts are: the stages in train/stages.py, the loop they run in train/loop.py, the batches in
train/sources.py; the recipe's history and scores in benchmarks/TINY_MODEL.md.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch

from ..model.checks import InputError, output_folder
from ..model.config import DiTConfig
from ..model.dit import GridDiT
from ..synth.scenes import scene_style
from .autoencoder import TinyVideoAE
from .builtin import DIT_FILE, TEXT_AE_FILE, TinyGridModel, load_builtin, save_builtin
from .config import TrainConfig
from .loop import LoopSettings, run_stage
from .losslog import LossLog
from .sources import GridSource, SyntheticSource
from .stages import STAGE_PLANS, StageInputs, freeze
from .state import RunFolder, StageCheckpoint, TrainStateError, one_line
from .text import TinyTextEncoder

LOSS_FILE = "loss.csv"
# PyTorch's SDPA has a backward; the memory-bounded "chunked" CPU backend works in place (inference only)
TRAIN_ATTENTION = "sdpa"


def new_models(cfg: TrainConfig, device: torch.device) -> TinyGridModel:
    """Freshly initialised autoencoder, text encoder and video DiT ("wan" variant) of the built-in model."""
    TinyVideoAE.latent_frames(cfg.frames)   # frames must be 4k+1: refused before anything trains
    ae = TinyVideoAE(cfg.latent_dim, cfg.ae_width).to(device)
    text = TinyTextEncoder(cfg.text_dim, phrases=cfg.text_phrases).to(device)
    dit_config = DiTConfig(dim=cfg.dim, ffn_dim=cfg.ffn_dim, num_heads=cfg.num_heads, num_layers=cfg.num_layers,
                           in_dim=cfg.latent_dim, out_dim=cfg.latent_dim, text_dim=cfg.text_dim, freq_dim=64,
                           patch_size=(1, cfg.patch, cfg.patch), variant="wan", camera_rays=cfg.camera_rays,
                           relative_cameras=cfg.relative_cameras, name="camgrid-tiny")
    dit = GridDiT(dit_config).to(device)
    meta = {"height": cfg.height, "width": cfg.width, "frames": cfg.frames, "shift": cfg.shift}
    if cfg.data_style != "standard":   # see TinyGridModel.scene_style
        meta["scene_style"] = cfg.data_style
    return TinyGridModel(dit, text, ae, meta)


def initial_models(cfg: TrainConfig, device: torch.device) -> TinyGridModel:
    """The built-in model files in cfg.init, to train further (--init). The files fix the model's shape: cfg's
    model sizes and patch are set from them (so progress.json records what trained), and Trainer.run takes their
    scene style unless one is given; the resolution, shift and a given scene style must agree, since the data and
    the noise schedule follow them."""
    try:
        models = load_builtin(cfg.init, device=device)
    except FileNotFoundError:   # load_builtin's own check; its advice (reinstall, train) is not this one's
        raise InputError(f"--init {cfg.init}: not a folder with the built-in model's files ({DIT_FILE}, "
                         f"{TEXT_AE_FILE}); give assets/ or the --out folder of an earlier `camgrid train`") from None
    given = {"height": cfg.height, "width": cfg.width, "frames": cfg.frames, "shift": cfg.shift}
    differ = {k: (v, models.meta.get(k)) for k, v in given.items() if float(v) != float(models.meta.get(k, v))}
    if cfg.scene_style and cfg.scene_style != models.scene_style:
        if scene_style(cfg.scene_style).looks_like(scene_style(models.scene_style)):
            models.meta["scene_style"] = cfg.scene_style   # only the rigs' turn differs: the files learn the new one
        else:
            differ["scene_style"] = (cfg.scene_style, models.scene_style)
    if cfg.text_phrases and not models.text.phrases:
        differ["text_phrases"] = (True, False)
    if differ:
        text = ", ".join(f"{k} {v} (files: {f})" for k, (v, f) in differ.items())
        raise InputError(f"--init {cfg.init}: the run's {text} differ from the model files'; give the files' values "
                         "(--height / --width / --frames / --shift / --scene-style / --text-phrases) or train a new "
                         "model without --init")
    if cfg.camera_rays and not models.dit.config.camera_rays:
        models.dit.add_ray_encoders()
    if cfg.relative_cameras and not models.dit.config.relative_cameras:
        models.dit.config = models.dit.config.replace(relative_cameras=True)
    c = models.dit.config
    cfg.camera_rays, cfg.relative_cameras = c.camera_rays, c.relative_cameras
    cfg.dim, cfg.ffn_dim, cfg.num_heads, cfg.num_layers = c.dim, c.ffn_dim, c.num_heads, c.num_layers
    cfg.patch = c.patch_size[1]
    cfg.text_dim, cfg.latent_dim, cfg.ae_width = c.text_dim, c.in_dim, models.ae.width
    cfg.text_phrases = models.text.phrases
    return models


class Trainer:
    """`Trainer(cfg).run()` trains cfg.stages in order. `source` replaces the synthetic scenes for the DiT
    stages (syncam, hard, soft) with any GridSource; the ae and video stages need the synthetic one."""

    def __init__(self, cfg: TrainConfig, log=print, source: Optional[GridSource] = None):
        self.cfg, self.log = cfg, log
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True   # fixed shapes: let cuDNN pick its fastest 3D convolutions
        self.models = initial_models(cfg, self.device) if cfg.init else new_models(cfg, self.device)
        self.out = output_folder(cfg.out)   # after the models: a refused --init leaves no empty folder behind
        self.folder = RunFolder(self.out)
        self.done: list[str] = []
        self.source = source
        self._own_source = source is None
        self.loss_log: Optional[LossLog] = None

    # -- data ------------------------------------------------------------------------------------------
    def _encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        return self.models.ae.encode(frames)

    def _encode_text(self, captions: Sequence[str]) -> torch.Tensor:
        text = self.models.text
        # with gradients only while the text encoder trains (the video stage); frozen it is a fixed feature map
        with torch.set_grad_enabled(any(p.requires_grad for p in text.parameters())):
            return text.encode(captions)

    def start_data(self) -> None:
        """Start rendering synthetic scenes (unless a source was given)."""
        if self._own_source:
            self.source = SyntheticSource(self.cfg, self.device, self._encode_video, self._encode_text)
            self.source.start(min(self.cfg.samples, 2 * self.cfg.batch), self.log)
        if self.cfg.given_view_share:
            self.log(f"multi-view stages: one view given (noised less, not scored) in {self.cfg.given_view_share:g} "
                     "of the samples")

    # -- resuming --------------------------------------------------------------------------------------
    def pending(self) -> list[str]:
        return [s for s in self.cfg.stages if s not in self.done]

    def _resume(self) -> Optional[StageCheckpoint]:
        """With --resume: the finished stages and their model files; returns the checkpoint of the stage in
        progress when it is the next stage to run (and not --restart-stage)."""
        self.done = self.folder.finished_stages()
        if self.done:
            try:
                finished = load_builtin(self.out, device=self.device)
            except Exception as exc:   # any failure to load our own files means they are damaged
                raise TrainStateError(f"{self.out}: the model files of the finished stages {self.done} cannot be "
                                      f"loaded ({one_line(exc)}): "
                                      f"delete {self.folder.progress_path.name} to train every stage again") from None
            if self.cfg.scene_style and self.cfg.scene_style != finished.scene_style:
                raise InputError(f"{self.out}: its finished stages trained on scene style {finished.scene_style}, "
                                 f"this run asks for {self.cfg.scene_style}: resume with --scene-style "
                                 f"{finished.scene_style} (or leave it out), or train into a new --out")
            self.models.dit, self.models.text, self.models.ae = finished.dit, finished.text, finished.ae
            self.models.meta = finished.meta
            self.log(f"resumed after stages {self.done}")
        pending = self.pending()
        if not pending or self.cfg.restart_stage:
            return None
        ckpt = self.folder.load_checkpoint(self.device, pending[0])
        return ckpt if ckpt is not None and ckpt.stage == pending[0] else None

    def _open_loss_log(self, resume: Optional[StageCheckpoint]) -> LossLog:
        if not self.cfg.resume:
            return LossLog(self.out / LOSS_FILE)
        # keep the rows of the state the run resumes from; the steps it trains again are logged again
        done = set(self.done)
        return LossLog(self.out / LOSS_FILE, keep=lambda stage, step: stage in done or (
            resume is not None and stage == resume.stage and step <= resume.step))

    # -- the run ---------------------------------------------------------------------------------------
    def run_stage(self, stage: str, resume: Optional[StageCheckpoint] = None) -> list[tuple[int, float]]:
        """Train one stage from the models as they are; returns its logged (step, loss) pairs."""
        if self.loss_log is None or self.loss_log.closed:   # a stage run on its own: append to the run's log
            self.loss_log = LossLog(self.out / LOSS_FILE, keep=lambda stage, step: True)
        plan = STAGE_PLANS[stage](StageInputs(self.models, self.source, self.cfg, self.log))
        self.models.dit.attention_backend = TRAIN_ATTENTION
        settings = LoopSettings(self.cfg.steps, self.cfg.checkpoint_every, self.cfg.progress_bar)
        losses = run_stage(plan, settings, self.folder, self.loss_log, resume, self.log)
        freeze(self.models)
        plan.finish()
        return losses

    def save(self) -> None:
        save_builtin(self.models, self.out)
        self.folder.save_progress(self.done, self.cfg)

    def run(self) -> dict:
        """Train the stages not finished yet; returns {stage: [(step, loss), ...]}."""
        resume = self._resume() if self.cfg.resume else None
        self.cfg.scene_style = self.models.scene_style   # given, or the files' (--init, --resume)
        self.loss_log = self._open_loss_log(resume)
        self.start_data()
        history = {}
        try:
            for stage in self.pending():
                history[stage] = self.run_stage(stage, resume if resume is not None and resume.stage == stage else None)
                self.done.append(stage)
                self.save()
                self.folder.drop_checkpoint()   # the model files now hold the stage's result
        finally:
            if self._own_source and self.source is not None:
                self.source.close()
            self.loss_log.close()
        self.log(f"training samples used: {len(self.source) if self.source is not None else 0}; "
                 f"model files in {self.out}")
        return history
