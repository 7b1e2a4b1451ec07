"""`python -m camgrid train`: the built-in model, trained on synthetic multi-camera scenes.

Stages (each runs until `--steps` or its time budget, whichever comes first, and saves what it has):
  ae      the tiny video autoencoder (train/autoencoder.py), L1 + L2 on pixels, object pixels weighed x5;
  video   a single-view video DiT (variant "wan") + the tiny text encoder, flow matching on one view of
          every sample (caption dropped 10% of the time, for classifier-free guidance);
  syncam  SynCamMaster's modules on the frozen video model, initialised as the official code does:
          mvs_attn copied from self_attn, modulation_mvs from modulation[:, :3], zero projector and
          zero cam_encoder (so the new model starts equal to the independent one); trained in mode
          "syncam" on 4-view samples with their relative extrinsics;
  hard    4Real-Video's two-stream fine-tune: the WHOLE DiT (base blocks, SynCamMaster modules and the
          hard gates) trains in mode "hard" (loss on every step), together with an anchor loss that
          alternates between mode "syncam" and mode "independent" on the same batch;
          With --two-stream-modes hard,soft (the default, the shipped model's recipe) the loss alternates
          between mode "hard" and mode "soft", and the soft sync layers train here too;
  soft    the soft sync layers alone, on the frozen DiT of the hard stage, in mode "soft".
  ("sync" is accepted as the old name of hard + soft: `--stages sync`, `--stage-budgets sync=S` = S/2 each.)

Why the hard stage fine-tunes the whole DiT. Hard sync is x = (½ + g)·y_view + (½ - g)·y_time after
every block, where y_view runs the block's own self-attention across the views of one latent frame
(plus the camera embedding, DESIGN §3.3). A video model's self-attention never saw that grouping, so
with the base frozen y_view carries little that is consistent, and the only trainable thing, the
per-channel gate g(σ), can at best fall back to y_time: the first GPU run's hard mode scored no
better than independent (86.7 vs 64 px median). 4Real-Video fine-tunes the model in two-stream mode;
we do the same, but the built-in model ships ONE DiT file (+ one sync file) that every mode and the
ComfyUI nodes run, so the base weights the fine-tune changes are also those of independent and syncam.
The anchor loss keeps those two modes trained on the changing weights (independent stays a fair
baseline: the same weights, the views generated without exchanging anything), and costs one extra
pass per step instead of a second 4.5 MB DiT file and a loader that picks a DiT per mode. The gates
learn at the full learning rate, the pre-trained weights at half of it. Soft sync then trains its
zero-initialised low-rank layers on top of that two-stream-tuned DiT. Soft sync keeps the two streams
apart through every block, which a DiT tuned only for the hard merge never saw: trained that way, soft
was no better than independent by the mean (run 4 in benchmarks/TINY_MODEL.md). With soft steps in the
two-stream fine-tune the shared weights learn to serve both merges (run 5, the shipped model).

Flow matching as the sampler uses it (model/sampling.py): x_σ = (1 - σ)·x0 + σ·noise, target
v = noise - x0, timestep 1000·σ, σ = shift(u) = s·u / (1 + (s - 1)·u) with u ~ U(0, 1) (s = --shift).

Outputs in --out: the built-in model files (train/builtin.py: DiT, sync weights, text + AE),
`loss.csv` (stage, step, loss, lr, seconds), `checkpoint.pt` (the stage in progress, for --resume),
`progress.json` (finished stages), and `eval.json` + a printed table when --eval-scenes > 0.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..model.config import DiTConfig
from ..model.dit import GridDiT
from ..model.sync import attach_sync_layers
from .autoencoder import TinyVideoAE
from .builtin import TinyGridModel, save_builtin
from .data import SampleBank
from .text import TinyTextEncoder, tokenize

STAGES = ("ae", "video", "syncam", "hard", "soft")
LEGACY_STAGES = {"sync": ("hard", "soft")}   # the first release trained both in one "sync" stage


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
    # model
    dim: int = 128
    ffn_dim: int = 512
    num_heads: int = 4
    num_layers: int = 6
    text_dim: int = 64
    latent_dim: int = 8
    ae_width: int = 64
    sync_rank: int = 32
    # optimisation
    steps: int = 100_000               # per stage, at most
    time_budget: float = 60.0          # seconds per stage
    stage_budgets: dict = field(default_factory=dict)   # per-stage overrides of time_budget
    batch: int = 16                    # multi-view samples per step (the single-view stage uses batch*views views)
    lr: float = 5e-4
    finetune_lr_scale: float = 0.5    # hard stage: pre-trained weights learn at lr * this, new gates at lr
    two_stream_modes: tuple = ("hard", "soft")   # modes the hard stage's two-stream fine-tune cycles through
    ae_lr: float = 1e-3
    shift: float = 3.0
    caption_dropout: float = 0.1
    stages: tuple = STAGES
    checkpoint_every: int = 500
    eval_scenes: int = 0
    eval_steps: int = 20
    resume: bool = False
    progress_bar: bool = True

    def __post_init__(self):
        # checked here, not in the hard stage: a bad value must fail before minutes of earlier stages
        self.two_stream_modes = tuple(self.two_stream_modes)
        bad = [m for m in self.two_stream_modes if m not in ("hard", "soft")]
        if not self.two_stream_modes or bad:
            raise ValueError(f"two_stream_modes (--two-stream-modes): expected a non-empty subset of "
                             f"('hard', 'soft'), got {self.two_stream_modes}")


def shifted_sigmas(u: torch.Tensor, shift: float) -> torch.Tensor:
    return shift * u / (1 + (shift - 1) * u)


def flow_matching_loss(model, x0: torch.Tensor, context: torch.Tensor, shift: float, mode: str = "independent",
                       camera: Optional[torch.Tensor] = None) -> torch.Tensor:
    """x0 [B, V, C, T, h, w] clean latents -> MSE between the predicted and the true velocity."""
    b = x0.shape[0]
    sigma = shifted_sigmas(torch.rand(b, device=x0.device), shift)
    noise = torch.randn_like(x0)
    s = sigma.view(b, 1, 1, 1, 1, 1)
    x = (1 - s) * x0 + s * noise
    pred = model(x, 1000.0 * sigma, context, mode=mode, camera=camera)
    return F.mse_loss(pred.float(), noise - x0)


def syncammaster_from(base: GridDiT) -> GridDiT:
    """A "syncammaster" GridDiT holding `base`'s weights, new modules initialised like the official code."""
    cfg = base.config.replace(variant="syncammaster")
    model = GridDiT(cfg).to(base.device)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected, unexpected
    with torch.no_grad():
        for block in model.blocks:
            block.mvs_attn.load_state_dict(block.self_attn.state_dict())
            block.modulation_mvs.copy_(block.modulation[:, :3])
            for layer in (block.projector, block.cam_encoder):
                torch.nn.init.zeros_(layer.weight)
                torch.nn.init.zeros_(layer.bias)
    return model


SYNCAM_PARTS = ("cam_encoder", "projector", "mvs_attn", "modulation_mvs")


class Trainer:
    def __init__(self, cfg: TrainConfig, log=print):
        self.cfg, self.log = cfg, log
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(cfg.device)
        self.rng = random.Random(cfg.seed)
        torch.manual_seed(cfg.seed)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            torch.backends.cudnn.benchmark = True   # fixed shapes: let cuDNN pick its fastest 3D convolutions
        self.ae = TinyVideoAE(cfg.latent_dim, cfg.ae_width).to(self.device)
        self.text = TinyTextEncoder(cfg.text_dim).to(self.device)
        t_lat = TinyVideoAE.latent_frames(cfg.frames)
        self.dit_config = DiTConfig(dim=cfg.dim, ffn_dim=cfg.ffn_dim, num_heads=cfg.num_heads, num_layers=cfg.num_layers,
                                    in_dim=cfg.latent_dim, out_dim=cfg.latent_dim, text_dim=cfg.text_dim, freq_dim=64,
                                    patch_size=(1, 2, 2), variant="wan", name="camgrid-tiny")
        self.dit = GridDiT(self.dit_config).to(self.device)
        self.t_lat = t_lat
        self.progress_path = self.out / "progress.json"
        self.done: list[str] = []
        self.bank: Optional[SampleBank] = None
        self._loss_file = open(self.out / "loss.csv", "a", newline="")
        self._loss_csv = csv.writer(self._loss_file)
        if self._loss_file.tell() == 0:
            self._loss_csv.writerow(["stage", "step", "loss", "lr", "seconds"])

    # -- data --------------------------------------------------------------------------------------
    def start_data(self):
        c = self.cfg
        self.bank = SampleBank(c.samples, c.views, c.height, c.width, c.frames, c.seed, c.workers)
        if c.workers > 0:
            torch.set_num_threads(max(1, min(torch.get_num_threads(), 2)))   # leave the cores to the renderers
        t0 = time.time()
        self.bank.poll(at_least=min(c.samples, 2 * c.batch))   # the first batches, before any budget starts
        self.log(f"data: {len(self.bank)} samples rendered in {time.time() - t0:.1f}s, more in the background")

    def _frames_batch(self, n: int):
        """n single views: frames [n, F, H, W, 3] float and object masks [n, F, H, W] on the device."""
        self.bank.poll(at_least=max(1, min(n, 64)))
        idx = [self.rng.randrange(len(self.bank)) for _ in range(n)]
        views = [self.rng.randrange(self.cfg.views) for _ in range(n)]
        # numpy stacks (one thread): torch's threaded CPU ops crawl next to busy rendering workers
        frames = torch.from_numpy(np.stack([self.bank.items[i]["videos"][v] for i, v in zip(idx, views)]))
        masks = torch.from_numpy(np.stack([self.bank.items[i]["mask"][v] for i, v in zip(idx, views)]))
        return frames.to(self.device).float() / 255.0, masks.to(self.device)

    def _latent_batch(self, n: int, single_view: bool):
        """Latents [n, V or 1, C, T, h, w], captions (some dropped), cameras [n, V, T, 12]."""
        self.bank.poll(at_least=max(1, min(n, 64)))
        self.bank.encode_pending(self.ae, self.device)
        idx = [self.rng.randrange(len(self.bank)) for _ in range(n)]
        lat = torch.stack([self.bank.latents[i] for i in idx])
        cam = torch.stack([torch.from_numpy(self.bank.items[i]["camera"]) for i in idx]).to(self.device)
        if single_view:
            pick = torch.tensor([self.rng.randrange(self.cfg.views) for _ in range(n)], device=self.device)
            lat = lat[torch.arange(n, device=self.device), pick][:, None]
        captions = ["" if self.rng.random() < self.cfg.caption_dropout else self.bank.items[i]["caption"] for i in idx]
        return lat, captions, cam

    # -- bookkeeping -------------------------------------------------------------------------------
    def budget(self, stage: str) -> float:
        return float(self.cfg.stage_budgets.get(stage, self.cfg.time_budget))

    def _save_progress(self):
        self.progress_path.write_text(json.dumps({"done": self.done, "config": asdict(self.cfg)}, indent=1, default=str))

    def _checkpoint(self, stage: str, step: int, modules: dict, opt):
        state = {"stage": stage, "step": step, "optimizer": opt.state_dict(),
                 "modules": {k: m.state_dict() for k, m in modules.items()}}
        torch.save(state, self.out / "checkpoint.pt")

    def _restore(self, stage: str, modules: dict, opt) -> int:
        path = self.out / "checkpoint.pt"
        if not (self.cfg.resume and path.exists()):
            return 0
        state = torch.load(path, map_location=self.device, weights_only=True)
        if state["stage"] != stage:
            return 0
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        opt.load_state_dict(state["optimizer"])
        self.log(f"resumed stage {stage} at step {state['step']}")
        return int(state["step"])

    def _loop(self, stage: str, modules: dict, params, step_fn, lr: float, budget: float):
        """Run step_fn() -> loss until the step or time budget is spent; returns the losses."""
        from tqdm.auto import tqdm

        # PyTorch's SDPA has a backward; the memory-bounded "chunked" CPU backend works in place (inference only)
        self.dit.attention_backend = "sdpa"

        # params: tensors, or groups {"params": [...], "lr_scale": s} learning at lr * s
        params = list(params)
        groups = params if params and isinstance(params[0], dict) else [{"params": params, "lr_scale": 1.0}]
        groups = [{"params": [p for p in g["params"] if p.requires_grad], "lr_scale": float(g.get("lr_scale", 1.0))}
                  for g in groups]
        groups = [g for g in groups if g["params"]]
        params = [p for g in groups for p in g["params"]]
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=0.0, betas=(0.9, 0.99))
        start_step = self._restore(stage, modules, opt)
        warmup = 100
        t0 = time.time()
        losses = []
        bar = tqdm(total=int(budget), desc=f"train {stage}", unit="s", disable=not self.cfg.progress_bar,
                   bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s {postfix}")
        step = start_step
        while step < self.cfg.steps and time.time() - t0 < budget:
            cur_lr = lr * min(1.0, (step + 1) / warmup)
            frac = min(1.0, (time.time() - t0) / max(budget, 1e-6))
            cur_lr *= 0.5 * (1 + math.cos(math.pi * frac)) * 0.9 + 0.1     # cosine over the time budget
            for g in opt.param_groups:
                g["lr"] = cur_lr * g["lr_scale"]
            loss = step_fn()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            step += 1
            value = float(loss.detach()) if step % 10 == 0 or step <= 5 else None
            if value is not None:
                losses.append((step, value))
                self._loss_csv.writerow([stage, step, f"{value:.6f}", f"{cur_lr:.3g}", f"{time.time() - t0:.1f}"])
                bar.set_postfix_str(f"step {step} loss {value:.4f}")
            bar.n = min(int(time.time() - t0), int(budget))
            bar.refresh()
            if step % self.cfg.checkpoint_every == 0:
                self._checkpoint(stage, step, modules, opt)
        bar.close()
        self._loss_file.flush()
        self.log(f"stage {stage}: {step - start_step} steps in {time.time() - t0:.0f}s, "
                 f"last loss {losses[-1][1] if losses else float('nan'):.4f}")
        return losses

    # -- stages ------------------------------------------------------------------------------------
    def stage_ae(self):
        c = self.cfg
        n = c.batch
        bf16 = self.device.type == "cuda"

        def step():
            frames, masks = self._frames_batch(n)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                z = self.ae.encode_raw(frames)
                z = z + 0.05 * z.detach().std() * torch.randn_like(z)   # a decoder robust to slightly-off latents
                rec = self.ae.decode_raw(z).float()
            z = z.float()
            w = 1.0 + 4.0 * masks[..., None].float()
            return ((rec - frames).abs() * w).mean() + ((rec - frames) ** 2 * w).mean() + 1e-4 * z.pow(2).mean()

        self.ae.train()
        losses = self._loop("ae", {"ae": self.ae}, self.ae.parameters(), step, c.ae_lr, self.budget("ae"))
        self.ae.eval().requires_grad_(False)
        with torch.no_grad():
            batches = [self._frames_batch(min(64, n))[0] for _ in range(4)]
            self.ae.measure_latent_stats(batches)
            rec = self.ae.decode(self.ae.encode(batches[0]))
            psnr = -10 * math.log10(float((rec - batches[0]).pow(2).mean()) + 1e-12)
        self.log(f"autoencoder reconstruction: {psnr:.1f} dB PSNR")
        return losses

    def _context(self, captions):
        return self.text(tokenize(captions, self.text.max_tokens))

    def stage_video(self):
        c = self.cfg
        n = c.batch * c.views

        def step():
            lat, captions, _ = self._latent_batch(n, single_view=True)
            return flow_matching_loss(self.dit, lat, self._context(captions), c.shift)

        self.dit.train()
        self.text.train()
        params = list(self.dit.parameters()) + list(self.text.parameters())
        losses = self._loop("video", {"dit": self.dit, "text": self.text}, params, step, c.lr, self.budget("video"))
        self.dit.eval()
        self.text.eval().requires_grad_(False)
        return losses

    def stage_syncam(self):
        c = self.cfg
        if self.dit.variant != "syncammaster":
            self.dit = syncammaster_from(self.dit)
        self.dit.requires_grad_(False)
        for block in self.dit.blocks:
            for name in SYNCAM_PARTS:
                getattr(block, name).requires_grad_(True)

        self.dit.train()
        losses = self._loop("syncam", {"dit": self.dit}, self.dit.parameters(), lambda: self._multiview_step("syncam"),
                            c.lr, self.budget("syncam"))
        self.dit.eval().requires_grad_(False)
        return losses

    def _multiview_step(self, mode: str):
        """flow-matching loss of one multi-view batch in `mode` (text encoder frozen)."""
        lat, captions, cam = self._latent_batch(self.cfg.batch, single_view=False)
        with torch.no_grad():
            ctx = self._context(captions)
        return flow_matching_loss(self.dit, lat, ctx, self.cfg.shift, mode=mode, camera=cam)

    def _ensure_sync_layers(self):
        if not self.dit.has_sync_weights:
            attach_sync_layers(self.dit, rank=self.cfg.sync_rank, hard=True, soft=True)

    def stage_hard(self):
        """Two-stream fine-tune (see the module docstring): the whole DiT + hard gates in mode "hard", with
        an anchor loss alternating between "syncam" and "independent" on the same batch. With
        two_stream_modes = ("hard", "soft") the two-stream loss alternates between hard and soft, and the
        soft layers train here too (at the full learning rate, like the gates)."""
        c = self.cfg
        if self.dit.variant != "syncammaster":
            self.dit = syncammaster_from(self.dit)
        self._ensure_sync_layers()
        two_stream = c.two_stream_modes
        self.dit.requires_grad_(True)
        for block in self.dit.blocks:
            # unused in mode hard; trained in the soft stage unless soft is one of the two-stream modes
            block.sync.soft.requires_grad_("soft" in two_stream)
        new_layers = [p for block in self.dit.blocks for p in block.sync.parameters()]
        new_ids = {id(p) for p in new_layers}
        rest = [p for p in self.dit.parameters() if id(p) not in new_ids]
        anchors = ("syncam", "independent")
        count = [0]

        def step():
            lat, captions, cam = self._latent_batch(c.batch, single_view=False)
            with torch.no_grad():
                ctx = self._context(captions)
            mode = two_stream[count[0] % len(two_stream)]
            anchor = anchors[(count[0] // len(two_stream)) % len(anchors)]   # every pairing of the two occurs
            count[0] += 1
            return (flow_matching_loss(self.dit, lat, ctx, c.shift, mode=mode, camera=cam)
                    + flow_matching_loss(self.dit, lat, ctx, c.shift, mode=anchor, camera=cam))

        self.dit.train()
        losses = self._loop("hard", {"dit": self.dit},
                            [{"params": new_layers, "lr_scale": 1.0}, {"params": rest, "lr_scale": c.finetune_lr_scale}],
                            step, c.lr, self.budget("hard"))
        self.dit.eval().requires_grad_(False)
        return losses

    def stage_soft(self):
        """The soft sync layers alone on the frozen DiT, in mode "soft"."""
        c = self.cfg
        if self.dit.variant != "syncammaster":
            self.dit = syncammaster_from(self.dit)
        self._ensure_sync_layers()
        self.dit.requires_grad_(False)
        for block in self.dit.blocks:
            block.sync.soft.requires_grad_(True)
        self.dit.train()
        losses = self._loop("soft", {"dit": self.dit}, self.dit.parameters(), lambda: self._multiview_step("soft"),
                            c.lr, self.budget("soft"))
        self.dit.eval().requires_grad_(False)
        return losses

    # -- the whole run -----------------------------------------------------------------------------
    def model(self) -> TinyGridModel:
        meta = {"height": self.cfg.height, "width": self.cfg.width, "frames": self.cfg.frames, "shift": self.cfg.shift}
        return TinyGridModel(self.dit, self.text, self.ae, meta)

    def save(self):
        save_builtin(self.model(), self.out)
        self._save_progress()

    def load_finished(self):
        """With --resume: reload the model files of the finished stages."""
        if not (self.cfg.resume and self.progress_path.exists()):
            return
        self.done = [s for name in json.loads(self.progress_path.read_text())["done"]
                     for s in LEGACY_STAGES.get(name, (name,))]
        if self.done:
            from .builtin import load_builtin

            m = load_builtin(self.out, device=self.device)
            self.dit, self.text, self.ae = m.dit, m.text, m.ae
            self.log(f"resumed after stages {self.done}")

    def run(self) -> dict:
        self.load_finished()
        self.start_data()
        history = {}
        try:
            for stage in self.cfg.stages:
                if stage in self.done:
                    continue
                history[stage] = getattr(self, f"stage_{stage}")()
                self.done.append(stage)
                self.save()
                (self.out / "checkpoint.pt").unlink(missing_ok=True)
        finally:
            if self.bank is not None:
                self.bank.close()
            self._loss_file.flush()
        self.log(f"rendered samples used: {len(self.bank) if self.bank else 0}; model files in {self.out}")
        return history


# ---------------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------------

def _budgets(text: str) -> dict:
    out, legacy = {}, {}
    for part in filter(None, (text or "").split(",")):
        name, _, value = part.partition("=")
        if name not in STAGES and name not in LEGACY_STAGES or not value:
            raise ValueError(f"--stage-budgets: expected STAGE=SECONDS with STAGE in {STAGES}, got {part!r}")
        if name in LEGACY_STAGES:   # sync=S: S/2 for hard and for soft, unless they are given
            legacy.update({s: float(value) / len(LEGACY_STAGES[name]) for s in LEGACY_STAGES[name]})
        else:
            out[name] = float(value)
    return {**legacy, **out}


def _stages(text: str) -> tuple:
    stages = tuple(s for name in text.split(",") if name for s in LEGACY_STAGES.get(name, (name,)))
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise ValueError(f"--stages: unknown {bad}; choose from {STAGES}")
    return stages


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    parser.add_argument("--out", default=d.out, help="folder for model files, loss.csv and checkpoints")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=d.steps, help="at most this many steps per stage")
    parser.add_argument("--time-budget", type=float, default=d.time_budget, help="seconds per stage")
    parser.add_argument("--stage-budgets", default="", help="per-stage seconds, e.g. ae=40,video=180,syncam=120,hard=60,soft=60")
    parser.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {STAGES}")
    parser.add_argument("--batch", type=int, default=d.batch, help="multi-view samples per step")
    parser.add_argument("--samples", type=int, default=d.samples, help="scenes rendered for training")
    parser.add_argument("--workers", type=int, default=d.workers, help="rendering processes (0: render in-process)")
    parser.add_argument("--height", type=int, default=d.height)
    parser.add_argument("--width", type=int, default=d.width)
    parser.add_argument("--frames", type=int, default=d.frames)
    parser.add_argument("--views", type=int, default=d.views)
    parser.add_argument("--dim", type=int, default=d.dim)
    parser.add_argument("--layers", type=int, default=d.num_layers)
    parser.add_argument("--heads", type=int, default=d.num_heads)
    parser.add_argument("--ffn-dim", type=int, default=d.ffn_dim)
    parser.add_argument("--lr", type=float, default=d.lr)
    parser.add_argument("--shift", type=float, default=d.shift)
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--resume", action="store_true", help="skip finished stages, continue the one in progress")
    parser.add_argument("--two-stream-modes", default=",".join(d.two_stream_modes),
                        help="modes the hard stage's whole-DiT fine-tune cycles through: hard, or hard,soft")
    parser.add_argument("--eval-scenes", type=int, default=0, help="after training, evaluate on this many held-out scenes")
    parser.add_argument("--eval-steps", type=int, default=d.eval_steps)
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args) -> TrainConfig:
    stages = _stages(args.stages)
    return TrainConfig(out=args.out, device=args.device, steps=args.steps, time_budget=args.time_budget,
                       stage_budgets=_budgets(args.stage_budgets), stages=stages, batch=args.batch,
                       samples=args.samples, workers=args.workers, height=args.height, width=args.width,
                       frames=args.frames, views=args.views, dim=args.dim, num_layers=args.layers,
                       num_heads=args.heads, ffn_dim=args.ffn_dim, lr=args.lr, shift=args.shift, seed=args.seed,
                       two_stream_modes=tuple(m for m in args.two_stream_modes.split(",") if m),
                       resume=args.resume, eval_scenes=args.eval_scenes, eval_steps=args.eval_steps,
                       progress_bar=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    trainer = Trainer(cfg)
    trainer.run()
    if cfg.eval_scenes > 0:
        import os

        torch.set_num_threads(os.cpu_count() or 1)   # the rendering workers are gone: the metric gets every core
        from .evaluate import evaluate, format_table

        results = evaluate(trainer.model(), num_scenes=cfg.eval_scenes, steps=cfg.eval_steps, device=trainer.device)
        (Path(cfg.out) / "eval.json").write_text(json.dumps(results, indent=1))
        print(format_table(results))
    return 0
