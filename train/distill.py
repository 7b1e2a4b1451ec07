"""`python -m camgrid.train.distill`: distil the built-in model into its few-step student (train/student.py).

Method: trajectory-segment distillation (piecewise rectified-flow / "PeRFlow"-style knowledge distillation).
  1. Teacher trajectories: for prompts and rigs of the training distribution (captions and cameras only,
     nothing is rendered), the teacher samples a grid from noise with its own 20-step UniPC schedule and
     classifier-free guidance (cfg, on the steps up to cfg_max_sigma), in every grid mode; the latent is recorded
     at the student's noise levels, which are four of the teacher's own (train/student.py): x(1) = noise, x(0.9),
     x(0.75), x(0.5), x(0).
  2. Student: the teacher DiT with LoRA + small full deltas (student.attach_student), trained so that ONE
     Euler step from a recorded point lands on the next one: its velocity at (x_i, sigma_i), conditional
     branch only, regresses v* = (x_{i+1} - x_i) / (sigma_{i+1} - sigma_i) (so guidance is baked in and
     the loss has the scale of the flow-matching loss whatever the segment). Batches cycle through the grid
     modes, one mode per step, so one LoRA serves independent, syncam, hard and soft.
Why this method at this scale: each segment spans a quarter of the schedule, where the teacher's ODE map is
close to linear, so plain regression on it is accurate (its known weakness, blurry averages, belongs to 1-2
step students); it needs no second network (DMD trains a critic alongside the student) and no target network
or many iterations (consistency distillation); the targets are computed once, in one batched pass of the
teacher, and the student then trains with one forward + backward per step: the whole distillation fits
in a few GPU minutes, and it is deterministic given the trajectories.

Outputs in --out: STUDENT_FILE (the LoRA), `distill.json` (settings, timing, losses, the student's and the
teacher's 4-step latent error against the 20-step teacher on held-out trajectories, and the check that the
exported file merged by `apply_lora` reproduces the trained student), `distill_loss.csv`.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch.nn.utils import parametrize

from ..model.checks import InputError, output_folder
from ..model.files import atomic_write
from ..model.lora import apply_lora
from ..model.sampling import SamplerOptions, denoise, guided_velocity, prepare, prepare_scheduler
from .builtin import COMPOSE_DEFAULTS, TEACHER_SAMPLING, load_builtin
from .evaluate import COMPARED_MODES
from .loop import LoopSettings, StagePlan, run_stage
from .losslog import LossLog
from .objective import mixed_precision
from .state import RunFolder
from .student import (STUDENT_FILE, STUDENT_SAMPLING, TEACHER_SCHEDULER, TEACHER_STEPS, attach_student,
                      export_student, load_student, parameter_groups, trainable_count)

DISTILL_SEED = 0          # prompts and rigs of the training distribution (the held-out eval uses EVAL_SEED)
VALIDATION_GRIDS = 8      # per mode: trajectories held out of training, scored at the end
TRAJECTORY_SHARE = 0.4    # of the budget, at most, for the teacher's trajectories
RESERVE_SHARE = 0.08      # of the budget, kept for validation, export and its check after training
MODE_COST = {"independent": 1.0, "syncam": 1.3, "hard": 2.0, "soft": 2.1}   # forward cost relative to independent
LOSS_FILE = "distill_loss.csv"
REPORT_FILE = "distill.json"


@dataclass
class Trajectories:
    """One mode's teacher trajectories: x at the student's noise levels (last: the clean grid)."""
    mode: str
    points: torch.Tensor      # [N, K + 1, V, C, T, h, w]
    context: torch.Tensor     # [N, L, text_dim], the prompt's features (the student's only branch)
    cameras: torch.Tensor     # [N, V, T, 12]

    def __len__(self) -> int:
        return self.points.shape[0]

    def split(self, n: int) -> tuple["Trajectories", "Trajectories"]:
        """(the first len - n, the last n)."""
        cut = len(self) - n
        part = lambda s: Trajectories(self.mode, self.points[s], self.context[s], self.cameras[s])
        return part(slice(0, cut)), part(slice(cut, None))


def student_sigmas(shift: float, steps: int = STUDENT_SAMPLING["steps"]) -> torch.Tensor:
    """The student's noise levels, float32 [steps + 1] ending in 0 (the Euler schedule sample_grid runs)."""
    return prepare_scheduler(STUDENT_SAMPLING["scheduler"], steps, shift)[1]


def prompts(model, count: int, views: int = 4, seed: int = DISTILL_SEED) -> tuple[list, torch.Tensor]:
    """(captions, cameras [count, V, T, 12]) of `count` training-distribution items, without rendering."""
    ds = model.scenes(count, seed, views)
    items = [ds.scene_and_rig(i) for i in range(count)]
    return [scene.caption for scene, _ in items], torch.stack([model.camera_embedding(rig) for _, rig in items])


def teacher_points(model, captions: list, cameras: torch.Tensor, mode: str, guidance: dict, seed: int,
                   sigmas: torch.Tensor) -> torch.Tensor:
    """One batch: the teacher's 20-step sample of each grid with `guidance` (cfg, cfg_max_sigma), recorded at
    `sigmas` -> [B, K + 1, V, C, T, h, w]."""
    b, v = cameras.shape[:2]
    options = SamplerOptions(steps=TEACHER_STEPS, shift=model.shift, scheduler=TEACHER_SCHEDULER, seed=seed,
                             **guidance)
    negative, composed = model.guidance_contexts(b, guidance)
    plan = prepare(model.dit, model.latent_shape(v, b), model.encode_prompt(captions), negative, mode=mode,
                   camera=cameras.to(model.device), options=options, compose_context=composed)
    teacher = plan.sigmas[:-1]
    wanted = [int((teacher - s).abs().argmin()) for s in sigmas[:-1]]
    gaps = [abs(float(teacher[i] - s)) for i, s in zip(wanted, sigmas[:-1])]
    if max(gaps) > 1e-4:   # the student's levels must be the teacher's own (train/student.py)
        raise InputError(f"the student's noise levels {sigmas.tolist()} are not on the teacher's {TEACHER_STEPS}-step "
                         f"schedule (off by {max(gaps):.2g}); use a step count that divides {TEACHER_STEPS}")
    recorded, step = {}, [0]

    def recording(plan_, x, sigma):
        if step[0] in wanted:
            recorded[step[0]] = x.clone()
        step[0] += 1
        return guided_velocity(plan_, x, sigma)

    clean = denoise(plan, velocity=recording)
    return torch.stack([recorded[i] for i in wanted] + [clean], dim=1)


@torch.no_grad()
def teacher_trajectories(model, mode: str, captions: list, cameras: torch.Tensor, guidance: dict, batch: int,
                         sigmas: torch.Tensor, seed: int = 0, deadline: Optional[float] = None,
                         log=print) -> Trajectories:
    """A trajectory in `mode` for each prompt (captions, cameras [N, V, T, 12]), or for the first ones when
    time.time() passes `deadline`; on the model's device."""
    count = len(captions)
    points = []
    for start in range(0, count, batch):
        if deadline is not None and points and time.time() > deadline:
            log(f"distill: {mode}: time is up after {start} trajectories")
            break
        points.append(teacher_points(model, captions[start:start + batch], cameras[start:start + batch], mode,
                                     guidance, seed + start, sigmas))
    points = torch.cat(points)
    n = points.shape[0]
    return Trajectories(mode, points, model.encode_prompt(captions[:n]), cameras[:n].to(model.device))


def segment_batch(traj: Trajectories, sigmas: torch.Tensor, size: int, generator: torch.Generator):
    """A random batch of (x_i, sigma_i, context, cameras, target velocity) over every segment of `traj`."""
    device = traj.points.device
    idx = torch.randint(len(traj), (size,), generator=generator).to(device)
    seg = torch.randint(sigmas.numel() - 1, (size,), generator=generator).to(device)
    s = sigmas.to(device)
    x, x_next = traj.points[idx, seg], traj.points[idx, seg + 1]
    step = (s[seg + 1] - s[seg]).view(-1, 1, 1, 1, 1, 1)
    return x, s[seg], traj.context[idx], traj.cameras[idx], (x_next - x) / step


def student_velocity(dit, x, sigma, context, cameras, mode: str) -> torch.Tensor:
    """The student's (conditional) velocity; every delta is computed once per forward (parametrize.cached)."""
    with parametrize.cached():
        return dit(x, 1000.0 * sigma, context, mode=mode, camera=cameras)


def plan_student(dit, banks: list, sigmas: torch.Tensor, batch: int, lr: float, budget: float,
                 device, amp: str = "auto", seed: int = 0) -> StagePlan:
    """The student's training as a loop stage: step i trains on mode banks[i % len(banks)]."""
    generator = torch.Generator().manual_seed(seed)

    def step(i: int) -> torch.Tensor:
        traj = banks[i % len(banks)]
        x, sigma, context, cameras, target = segment_batch(traj, sigmas, batch, generator)
        with mixed_precision(device, amp):
            v = student_velocity(dit, x, sigma, context, cameras, traj.mode)
        return F.mse_loss(v.float(), target)

    return StagePlan("student", step, parameter_groups(dit), {"dit": dit}, lr, budget)


@torch.no_grad()
def euler_sample(dit, traj: Trajectories, sigmas: torch.Tensor, velocity: Callable) -> torch.Tensor:
    """Euler from the trajectories' noise over `sigmas` with velocity(dit, x, sigma [B], context, cameras, mode)."""
    x = traj.points[:, 0]
    for i in range(sigmas.numel() - 1):
        s = torch.full((x.shape[0],), float(sigmas[i]), device=x.device)
        x = x + float(sigmas[i + 1] - sigmas[i]) * velocity(dit, x, s, traj.context, traj.cameras, traj.mode).float()
    return x


def latent_psnr(x: torch.Tensor, reference: torch.Tensor) -> float:
    """PSNR of normalised latents against the reference, with the reference's range as the peak."""
    mse = float((x - reference).pow(2).mean())
    peak = float(reference.max() - reference.min())
    return 10 * math.log10(peak ** 2 / max(mse, 1e-12))


def check_export(teacher_dir, lora: Path, student_dit, traj: Trajectories, sigmas: torch.Tensor, device) -> dict:
    """Merge the written LoRA into a fresh teacher with `apply_lora` and compare its predictions with the
    trained (parametrised) student's on validation inputs: the file must reproduce what was trained."""
    merged = apply_lora(load_builtin(teacher_dir, device=device).dit, lora)
    report = merged.applied_loras[-1]
    if report.unmatched:
        raise RuntimeError(f"the student LoRA has keys that match nothing in the teacher: {report.unmatched[:5]}")
    x = traj.points[:, 1]
    s = torch.full((x.shape[0],), float(sigmas[1]), device=x.device)
    with torch.no_grad():
        ours = student_velocity(student_dit, x, s, traj.context, traj.cameras, traj.mode).float()
        theirs = merged(x, 1000.0 * s, traj.context, mode=traj.mode, camera=traj.cameras).float()
    rel = float((ours - theirs).norm() / ours.norm().clamp(min=1e-12))
    if not rel < 2e-2:   # float16 rounding of the deltas is ~1e-3
        raise RuntimeError(f"the exported student LoRA does not reproduce the trained student (relative error {rel:.3g})")
    return {"patched": len(report.patched), "relative_error": rel}


def student_psnr(student_dit, held: Trajectories, sigmas: torch.Tensor) -> float:
    """Latent PSNR of the student's 4 Euler steps against the 20-step teacher's end point of `held`."""
    return latent_psnr(euler_sample(student_dit, held, sigmas, student_velocity), held.points[:, -1])


def validation_scores(student_dit, teacher, validation, sigmas, guidance: dict, log=print) -> dict:
    """Per mode: latent PSNR against the 20-step teacher's end point of the held-out trajectories, for the student's
    4 Euler steps and for the teacher itself sampled in 4 steps (what distillation has to beat)."""
    scores = {}
    for held in validation:
        teacher4 = teacher_four_steps(teacher, held, guidance)
        scores[held.mode] = {"student_4step_psnr": student_psnr(student_dit, held, sigmas),
                             "teacher_4step_psnr": latent_psnr(teacher4, held.points[:, -1])}
        log(f"distill: {held.mode}: latent PSNR against the 20-step teacher: student 4 steps "
            f"{scores[held.mode]['student_4step_psnr']:.1f} dB, teacher 4 steps "
            f"{scores[held.mode]['teacher_4step_psnr']:.1f} dB")
    return scores


def warm_start(dit, init_student, validation: list, sigmas: torch.Tensor, log=print) -> dict:
    """Load `init_student` into the attached student deltas of `dit`; its latent PSNR per mode on the validation
    trajectories (what training starts from)."""
    loaded = load_student(dit, init_student)
    log(f"distill: starting from {init_student} ({loaded} tensors)")
    dit.eval()
    scores = {held.mode: student_psnr(dit, held, sigmas) for held in validation}
    log("distill: the starting student's latent PSNR against the 20-step teacher: "
        + ", ".join(f"{m} {v:.1f} dB" for m, v in scores.items()))
    return scores


def every_mode_trajectories(model, modes, count: int, validation_grids: int, guidance: dict, teacher_batch: int,
                            sigmas, seed: int, t0: float, budget: float, log=print) -> tuple[list, list]:
    """The teacher's trajectories for `count` + `validation_grids` prompts in every mode, split into (training,
    held-out) lists of Trajectories. They get at most TRAJECTORY_SHARE of the budget from t0, shared by the modes
    in proportion to their cost."""
    weights = [MODE_COST[m] for m in modes]
    deadlines = [t0 + TRAJECTORY_SHARE * budget * sum(weights[:k + 1]) / sum(weights) for k in range(len(modes))]
    captions, cameras = prompts(model, count + validation_grids)
    train, validation = [], []
    for mode, deadline in zip(modes, deadlines):
        traj = teacher_trajectories(model, mode, captions, cameras, guidance, teacher_batch, sigmas, seed=seed,
                                    deadline=deadline, log=log)
        fit, held = traj.split(max(1, min(validation_grids, len(traj) // 4)))
        train.append(fit)
        validation.append(held)
        log(f"distill: {mode}: {len(fit)} + {len(held)} teacher trajectories ({time.time() - t0:.0f}s)")
    return train, validation


def distill(teacher_dir, out, budget: float = 240.0, trajectories: int = 512, cfg: float = TEACHER_SAMPLING["cfg"],
            batch: int = 32, teacher_batch: int = 64, rank: int = 32, lr: float = 5e-4, device="cpu",
            amp: str = "auto", seed: int = 0, log=print, max_steps: int = 10 ** 9,
            validation_grids: int = VALIDATION_GRIDS, init_student=None,
            cfg_max_sigma: float = TEACHER_SAMPLING.get("cfg_max_sigma", 1.0),
            compose_cfg: Optional[float] = None) -> dict:
    """Distil the model in `teacher_dir` into STUDENT_FILE in `out`, within about `budget` seconds; the teacher
    samples with guidance `cfg` at the noise levels up to `cfg_max_sigma` (the built-in teacher's own by default),
    composing its caption with weight `compose_cfg` (None: the teacher's own, from its files), and the student
    bakes that in. `init_student`:
    a student LoRA (of an earlier teacher of the same size) to start from instead of zero deltas: when the
    teacher was trained further, its old student is most of the way there, and a short run on few trajectories
    (a CPU, say) finishes the job; the report then also scores that starting point."""
    t0 = time.time()
    guidance = {"cfg": cfg, "cfg_max_sigma": cfg_max_sigma}
    SamplerOptions(**guidance)   # refused here, before the teacher loads, when out of range
    out = output_folder(out)
    device = torch.device(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    model = load_builtin(teacher_dir, device=device)
    guidance.update(composed_settings(model, compose_cfg))
    modes = [m for m in COMPARED_MODES if m in model.modes()]
    sigmas = student_sigmas(model.shift)
    train, validation = every_mode_trajectories(model, modes, trajectories, validation_grids, guidance, teacher_batch,
                                                sigmas, seed, t0, budget, log)
    t_traj = time.time() - t0
    dit = model.dit
    params = attach_student(dit, rank=rank)
    log(f"distill: student has {trainable_count(params) / 1e6:.2f} M trainable parameters (LoRA rank {rank})")
    start_scores = warm_start(dit, init_student, validation, sigmas, log) if init_student is not None else None
    dit.attention_backend = "sdpa"   # the chunked CPU backend has no backward
    train_budget = max(1.0, budget - (time.time() - t0) - RESERVE_SHARE * budget)
    plan = plan_student(dit, train, sigmas, batch, lr, train_budget, device, amp, seed)
    dit.train()
    log_file = LossLog(out / LOSS_FILE)
    try:
        losses = run_stage(plan, LoopSettings(max_steps, 10 ** 9, progress_bar=False), RunFolder(out), log_file, log=log)
    finally:
        log_file.close()
    dit.eval().requires_grad_(False)
    dit.attention_backend = None
    lora = export_student(dit, out / STUDENT_FILE, meta={**{f"teacher_{k}": v for k, v in guidance.items()},
                                                         "rank": rank,
                                                         "method": "trajectory-segment distillation"})
    check = check_export(teacher_dir, lora, dit, validation[-1], sigmas, device)
    log(f"distill: wrote {lora} ({lora.stat().st_size / 1e6:.2f} MB, {check['patched']} weights patched; merged by "
        f"apply_lora it matches the trained student to {check['relative_error']:.1e})")
    scores = validation_scores(dit, load_builtin(teacher_dir, device=device), validation, sigmas, guidance, log)
    report = {"teacher": str(teacher_dir), **guidance, "rank": rank, "lr": lr, "batch": batch, "modes": modes,
              "sigmas": sigmas.tolist(), "trajectories": {t.mode: len(t) for t in train},
              "seconds": {"trajectories": t_traj, "total": time.time() - t0},
              "steps": losses[-1][0] if losses else 0, "last_loss": losses[-1][1] if losses else None,
              "validation": scores, "export_check": check, "file_mb": lora.stat().st_size / 1e6}
    if init_student is not None:
        report["init_student"] = {"file": str(init_student), "student_4step_psnr": start_scores}
    atomic_write(out / REPORT_FILE, json.dumps(report, indent=1))
    return report


def teacher_four_steps(teacher, held: Trajectories, guidance: dict) -> torch.Tensor:
    """The teacher itself at the student's schedule (4 Euler steps, with `guidance`): what distillation beats."""
    b, v = held.cameras.shape[:2]
    options = SamplerOptions(steps=STUDENT_SAMPLING["steps"], shift=teacher.shift,
                             scheduler=STUDENT_SAMPLING["scheduler"], **guidance)
    negative, composed = teacher.guidance_contexts(b, guidance)
    plan = prepare(teacher.dit, held.points[:, 0], held.context, negative, mode=held.mode, camera=held.cameras,
                   options=options, compose_context=composed)
    return denoise(plan)


def composed_settings(model, compose_cfg: Optional[float]) -> dict:
    """The sampler's compose_* settings of the teacher's composed caption: the weight `compose_cfg`, or None for the
    teacher's own (its files'), and the rest as its files give them (SamplerOptions' defaults where they do not);
    refused when the weight is above 0 and the files name no caption, or out of range."""
    settings = {name: model.sampling.get(name, default) for name, default in COMPOSE_DEFAULTS.items()}
    if compose_cfg is not None:
        settings["compose_cfg"] = float(compose_cfg)
    SamplerOptions(**settings)
    if settings["compose_cfg"] > 0:
        model.composed_context(1)
    return settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="the teacher: a `camgrid train --out` folder (default: assets/)")
    parser.add_argument("--out", required=True, help="folder for the student LoRA, distill.json and its loss log")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for the whole distillation")
    parser.add_argument("--trajectories", type=int, default=512, help="teacher trajectories per mode (at most)")
    parser.add_argument("--cfg", type=float, default=TEACHER_SAMPLING["cfg"],
                        help="the teacher's guidance, baked into the student (default: the built-in teacher's)")
    parser.add_argument("--cfg-max-sigma", type=float, default=TEACHER_SAMPLING.get("cfg_max_sigma", 1.0),
                        help="the teacher guides only the noise levels up to this (default: the built-in teacher's)")
    parser.add_argument("--compose-cfg", type=float, default=None,
                        help="the weight of the teacher's composed caption (default: its files' own; 0: none)")
    parser.add_argument("--batch", type=int, default=32, help="grids per student step")
    parser.add_argument("--teacher-batch", type=int, default=64, help="grids per teacher sampling batch")
    parser.add_argument("--rank", type=int, default=32, help="LoRA rank")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--amp", default="auto", choices=("auto", "bf16", "off"))
    parser.add_argument("--validation", type=int, default=VALIDATION_GRIDS,
                        help="trajectories per mode held out of training and scored at the end")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init-student", default=None, metavar="LORA",
                        help="start from this student LoRA (an earlier teacher's, same size and rank) instead of zero")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camgrid.train.distill", description=__doc__.split("\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    distill(args.model, args.out, args.budget, args.trajectories, args.cfg, args.batch, args.teacher_batch, args.rank,
            args.lr, args.device, args.amp, args.seed, validation_grids=args.validation,
            init_student=args.init_student, cfg_max_sigma=args.cfg_max_sigma, compose_cfg=args.compose_cfg)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
