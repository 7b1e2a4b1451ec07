"""The optimisation loop of a `--dit` run: one stage ("dit"), the shared loop's pieces (train/loop.py), and
what a run over several processes adds.

Shared with the built-in model's trainer: AdamW without weight decay (`make_optimizer`), one step =
draw a batch, backward, clip to norm 1, step (`optimise`), non-finite losses stop the run (`checked_loss`),
checkpoint.pt / progress.json (train/state.py RunFolder) and loss.csv (train/losslog.py).

What differs, and why:
  - the schedule: linear warm-up over `cfg.warmup` steps, then a cosine to 10% over the run, where the run's
    progress is max(step / steps, seconds / time budget). The built-in trainer plans in seconds only; here
    the step count is the usual limit, and a budget of seconds may cut it short;
  - every process must take the same decisions in the same step (a process that stops early, or uses another
    learning rate, leaves the others waiting or drifting): rank 0's progress is broadcast each step (`agree`);
  - logged losses are the mean over the processes; only rank 0 writes files;
  - checkpoints hold only the trainable state (sync layers, LoRA, their optimiser state), gathered whole from
    the processes through torch.distributed.checkpoint's state-dict functions, so a run resumes on any number
    of GPUs, with DDP or FSDP alike.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict,
                                                     get_optimizer_state_dict, set_model_state_dict,
                                                     set_optimizer_state_dict)
from tqdm.auto import tqdm

from ..loop import FINAL_LR_FRACTION, FIRST_LOGGED, LOG_EVERY, StageClock, StagePlan, checked_loss, make_optimizer, \
    optimise
from ..losslog import LossLog
from ..objective import flow_matching_loss
from ..state import RunFolder, StageCheckpoint, TrainStateError, one_line
from .config import RealTrainConfig
from .distributed import Dist

STAGE = "dit"
GATHER = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)


class NullLog:
    """The loss log of processes other than rank 0."""

    def write(self, *args) -> None:
        pass

    def close(self) -> None:
        pass


def learning_rate(cfg: RealTrainConfig, step: int, progress: float) -> float:
    warm = min(1.0, (step + 1) / cfg.warmup) if cfg.warmup else 1.0
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.lr * warm * (cosine * (1 - FINAL_LR_FRACTION) + FINAL_LR_FRACTION)


def make_step(cfg: RealTrainConfig, model: torch.nn.Module, source) -> Callable[[int], torch.Tensor]:
    """step(i): one batch's flow-matching loss in the two-stream mode of step i (the modes take turns)."""
    def step(i: int) -> torch.Tensor:
        batch = source.grid_batch(cfg.batch)
        mode = cfg.modes[i % len(cfg.modes)]
        return flow_matching_loss(model, batch.latents, batch.context, cfg.shift, mode=mode, camera=batch.cameras)
    return step


def init_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Give every parameter AdamW's (zero) state up front, as its first step would: the steps take turns in the
    modes, and a parameter that one mode does not use (the soft layers in a hard step) must still have state in
    a checkpoint, or resuming it is refused. The same numbers as the lazy initialisation (step 0, zero moments)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)


def gather_parameters(model) -> dict:
    """The trainable parameters, whole, on the CPU of rank 0 (every process calls it)."""
    return get_model_state_dict(model, options=GATHER)


def gather_state(model, optimizer) -> tuple[dict, dict]:
    """The trainable parameters and their optimiser state, whole, on the CPU of rank 0 (every process calls it)."""
    return gather_parameters(model), get_optimizer_state_dict(model, optimizer, options=GATHER)


def restore_state(model, optimizer, ckpt: StageCheckpoint, folder: RunFolder) -> None:
    options = StateDictOptions(full_state_dict=True, strict=True, ignore_frozen_params=True)
    try:
        set_model_state_dict(model, ckpt.modules["trainable"], options=options)
        set_optimizer_state_dict(model, optimizer, ckpt.optimizer, options=options)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise TrainStateError(f"{folder.checkpoint_path} does not fit this run (another --lora-rank / --sync-rank / "
                              f"--modes or DiT: {one_line(exc)}): resume with the same options, or delete "
                              f"{folder.checkpoint_path.name} to start again") from None


def train(cfg: RealTrainConfig, dist: Dist, model: torch.nn.Module, groups: list, source, folder: RunFolder,
          log=print) -> list[tuple[int, float]]:
    """Train the parameters of `groups` until cfg.steps (or the time budget); returns the logged (step, loss)."""
    plan = StagePlan(STAGE, make_step(cfg, model, source), groups, {}, cfg.lr, cfg.budget)
    optimizer = make_optimizer(plan)
    init_optimizer_state(optimizer)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    step, spent = 0, 0.0
    ckpt = folder.load_checkpoint("cpu", STAGE) if cfg.resume else None
    if ckpt is not None:
        restore_state(model, optimizer, ckpt, folder)
        step, spent = ckpt.step, ckpt.elapsed
        log(f"resumed at step {step}")
    clock = StageClock(cfg.budget, spent)
    keep = (lambda stage, s: stage == STAGE and s <= step) if ckpt is not None else None
    loss_log = LossLog(folder.out / "loss.csv", keep=keep) if dist.main else NullLog()
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=not (dist.main and cfg.progress_bar))
    losses = []
    try:
        while True:
            progress, stop = dist.agree([max(step / cfg.steps, clock.fraction()),
                                         step >= cfg.steps or not clock.running()])
            if stop:
                break
            lr = learning_rate(cfg, step, progress)
            loss, grad_norm = optimise(plan, step, optimizer, params, lr)
            step += 1
            logged, checkpoint = step % LOG_EVERY == 0 or step <= FIRST_LOGGED, step % cfg.checkpoint_every == 0
            if logged or checkpoint:   # collectives: every process reaches them in the same steps
                norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
                value = checked_loss(dist.mean(loss), norm, STAGE, step)
            if logged:
                losses.append((step, value))
                loss_log.write(STAGE, step, value, lr, clock.elapsed())
                bar.set_postfix_str(f"loss {value:.4f}")
            if checkpoint:
                state, optim_state = gather_state(model, optimizer)
                if dist.main:
                    folder.save_checkpoint(StageCheckpoint(STAGE, step, clock.elapsed(), {"trainable": state},
                                                           optim_state))
            bar.update(1)
    finally:
        bar.close()
        loss_log.close()
    log(f"{step} steps in {clock.elapsed():.0f}s, last loss {losses[-1][1] if losses else float('nan'):.4f}")
    return losses
