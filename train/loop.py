"""The optimisation loop every stage runs (train/stages.py says what each stage trains, and on what).

AdamW (betas 0.9 / 0.99, no weight decay), gradients clipped to norm 1, and a learning rate that warms
up linearly over the first WARMUP_STEPS steps and follows a cosine down to 10% over the stage's *time*
budget: a stage runs until `max_steps` or until its budget of seconds is spent, whichever comes first
(runs are planned in seconds of GPU time). A resumed stage continues its step count, its spent budget
and so its schedule from the checkpoint.

A stage with `ema_decay` > 0 keeps an exponential moving average of its trainable parameters (`WeightEMA`,
decay min(ema_decay, (1 + t) / (10 + t)) at step t, so early steps are forgotten quickly) and ends with the
parameters set to it: averaging away the last steps' noise gives a smoother velocity field to sample from
(the checkpoint holds it, so a resumed stage averages on).
"""
from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from tqdm.auto import tqdm

from ..model.checks import CamGridError
from .losslog import LossLog
from .state import RunFolder, StageCheckpoint

WARMUP_STEPS = 100
LOG_EVERY = 10         # steps between logged losses (and each of the first FIRST_LOGGED steps)
FIRST_LOGGED = 5
CLIP_NORM = 1.0
FINAL_LR_FRACTION = 0.1


class TrainingDiverged(CamGridError):
    """The loss became NaN or infinite."""


@dataclass
class StagePlan:
    """One stage, ready to run: `step(i)` draws a batch and returns its loss (graph attached) for step i."""
    name: str
    step: Callable[[int], torch.Tensor]
    groups: list                        # optimiser groups {"params": [...], "lr_scale": s}; frozen ones are skipped
    modules: dict                       # name -> module: what a checkpoint of this stage saves
    lr: float
    budget: float                       # seconds
    finish: Callable[[], None] = field(default=lambda: None)   # after the loop, with every module frozen
    ema_decay: float = 0.0              # > 0: end the stage with the moving average of its trainable parameters


@dataclass
class LoopSettings:
    max_steps: int
    checkpoint_every: int
    progress_bar: bool = True


class WeightEMA(torch.nn.Module):
    """A moving average of some parameters, kept as buffers (so a checkpoint of it is a state dict)."""

    def __init__(self, params: list, decay: float):
        super().__init__()
        self.params, self.decay = list(params), float(decay)
        for i, p in enumerate(self.params):
            self.register_buffer(f"p{i}", p.detach().clone())
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def averages(self) -> list:
        return [getattr(self, f"p{i}") for i in range(len(self.params))]

    @torch.no_grad()
    def update(self) -> None:
        t = int(self.updates)
        weight = 1.0 - min(self.decay, (1.0 + t) / (10.0 + t))
        torch._foreach_lerp_(self.averages(), [p.detach() for p in self.params], weight)
        self.updates += 1

    @torch.no_grad()
    def copy_to_params(self) -> None:
        for p, avg in zip(self.params, self.averages()):
            p.copy_(avg)


class StageClock:
    """Seconds of a stage's budget spent, counting those spent before a resume."""

    def __init__(self, budget: float, spent: float = 0.0):
        self.budget = float(budget)
        self.start = time.time() - float(spent)

    def elapsed(self) -> float:
        return time.time() - self.start

    def fraction(self) -> float:
        return min(1.0, self.elapsed() / max(self.budget, 1e-6))

    def running(self) -> bool:
        return self.elapsed() < self.budget


def learning_rate(base: float, step: int, budget_fraction: float) -> float:
    warm = base * min(1.0, (step + 1) / WARMUP_STEPS)
    return warm * (0.5 * (1 + math.cos(math.pi * budget_fraction)) * (1 - FINAL_LR_FRACTION) + FINAL_LR_FRACTION)


def make_optimizer(plan: StagePlan) -> torch.optim.Optimizer:
    groups = [{"params": [p for p in g["params"] if p.requires_grad], "lr_scale": float(g.get("lr_scale", 1.0))}
              for g in plan.groups]
    groups = [g for g in groups if g["params"]]
    if not groups:   # a stage that unfreezes nothing is a bug in train/stages.py, not a user error
        raise RuntimeError(f"stage {plan.name} has no trainable parameters")
    return torch.optim.AdamW(groups, lr=plan.lr, weight_decay=0.0, betas=(0.9, 0.99))


def optimise(plan: StagePlan, step: int, optimizer: torch.optim.Optimizer, params: list,
             lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimisation step at learning rate `lr` (times each group's lr_scale); returns the loss and the
    gradient norm before clipping (tensors: reading them waits for the device)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
    loss = plan.step(step)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, CLIP_NORM)
    optimizer.step()
    return loss, grad_norm


def checked_loss(loss: torch.Tensor, grad_norm: torch.Tensor, stage: str, step: int) -> float:
    """The loss as a number; TrainingDiverged when it or the gradients are not finite (the weights then are not)."""
    value, norm = float(loss.detach()), float(grad_norm)
    if not (math.isfinite(value) and math.isfinite(norm)):
        raise TrainingDiverged(f"stage {stage}: the loss ({value}) or its gradient ({norm}) is not finite at step "
                               f"{step}; resume from the last checkpoint with a lower --lr")
    return value


def stage_checkpoint(plan: StagePlan, step: int, elapsed: float, optimizer: torch.optim.Optimizer) -> StageCheckpoint:
    return StageCheckpoint(plan.name, step, elapsed, {k: m.state_dict() for k, m in plan.modules.items()},
                           optimizer.state_dict())


def run_stage(plan: StagePlan, settings: LoopSettings, folder: RunFolder, loss_log: LossLog,
              resume: Optional[StageCheckpoint] = None, log=print) -> list[tuple[int, float]]:
    """Train `plan` until its step limit or time budget; returns the logged (step, loss) pairs."""
    optimizer = make_optimizer(plan)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    ema = WeightEMA(params, plan.ema_decay) if plan.ema_decay > 0 else None
    if ema is not None:   # the checkpoint holds the average too
        plan = dataclasses.replace(plan, modules={**plan.modules, "ema": ema})
    step, spent = 0, 0.0
    if resume is not None:
        folder.restore(resume, plan.modules, optimizer)
        step, spent = resume.step, resume.elapsed
        log(f"resumed stage {plan.name} at step {step}")
    clock = StageClock(plan.budget, spent)
    losses, start_step = [], step
    bar = tqdm(total=int(plan.budget), desc=f"train {plan.name}", unit="s", disable=not settings.progress_bar,
               bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f}s {postfix}")
    while step < settings.max_steps and clock.running():
        lr = learning_rate(plan.lr, step, clock.fraction())
        loss, grad_norm = optimise(plan, step, optimizer, params, lr)
        if ema is not None:
            ema.update()
        step += 1
        logged, checkpoint = step % LOG_EVERY == 0 or step <= FIRST_LOGGED, step % settings.checkpoint_every == 0
        if logged or checkpoint:   # only then: reading the loss waits for the device
            value = checked_loss(loss, grad_norm, plan.name, step)   # never log or save a diverged model
        if logged:
            losses.append((step, value))
            loss_log.write(plan.name, step, value, lr, clock.elapsed())
            bar.set_postfix_str(f"step {step} loss {value:.4f}")
        bar.n = min(int(clock.elapsed()), int(plan.budget))
        bar.refresh()
        if checkpoint:
            folder.save_checkpoint(stage_checkpoint(plan, step, clock.elapsed(), optimizer))
    bar.close()
    if ema is not None:
        ema.copy_to_params()
    log(f"stage {plan.name}: {step - start_step} steps in {clock.elapsed():.0f}s, "
        f"last loss {losses[-1][1] if losses else float('nan'):.4f}{' (weights: their moving average)' if ema else ''}")
    return losses
