"""The built-in model's few-step student: a LoRA on the teacher DiT, and the schedule it samples with.

The student is the teacher's own DiT with trainable low-rank deltas on every linear layer of its blocks
(self-attention, cross-attention, FFN, SynCamMaster's multi-view attention and projector) and full deltas
on the small timestep-dependent parameters (time embedding and projection, every block's modulation, the
head). It ships as ONE LoRA file in the Kijai / lightx2v / ComfyUI layout:

    diffusion_model.blocks.N.self_attn.q.lora_down.weight  [r, in]     diffusion_model.time_projection.1.diff
    diffusion_model.blocks.N.self_attn.q.lora_up.weight    [out, r]    diffusion_model.time_projection.1.diff_b
    diffusion_model.blocks.N.self_attn.q.alpha             (alpha/r)   diffusion_model.blocks.N.diff_m

so it loads through the same `model.lora.apply_lora` as any downloaded LoRA (the file's metadata names
the schedule below). One file serves every grid mode: it is trained on a mixture of them (train/distill.py).

The schedule (what `sample_grid` needs, through its existing knobs): `STUDENT_SAMPLING` = 4 Euler steps
on the teacher's shifted flow-matching schedule (base sigmas 1, 0.75, 0.5, 0.25, shifted by the model's
shift 3: 1, 0.9, 0.75, 0.5, then 0), classifier-free guidance baked in (cfg 1: one forward per step). These
are four of the 20-step teacher's own noise levels, which is what the distillation targets are taken at.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterable, Optional, Union

import torch
import torch.nn as nn
from safetensors import safe_open
from safetensors.torch import save_file
from torch.nn.utils import parametrize

from ..model.checks import InputError
from ..model.files import atomic_save
from ..model.lora.layouts import read_lora

STUDENT_FILE = "camgrid-tiny-4step-lora.safetensors"
# sample_grid settings of the student and of the teacher it is distilled from (shift: the model's own)
STUDENT_SAMPLING = {"steps": 4, "cfg": 1.0, "scheduler": "euler"}
TEACHER_STEPS = 20
TEACHER_SCHEDULER = "unipc"
LORA_PREFIX = "diffusion_model."
# linear layers of a block that get a low-rank delta (those the block has: mvs_attn / projector are SynCamMaster's)
LORA_MODULES = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q", "cross_attn.k",
                "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2", "mvs_attn.q", "mvs_attn.k", "mvs_attn.v",
                "mvs_attn.o", "projector")
FULL_DELTA_LR_SCALE = 0.2
# parameters trained as full deltas: small, and they carry the timestep (what a few-step student changes most)
FULL_DELTA_PARAMETERS = ("time_embedding.0.weight", "time_embedding.0.bias", "time_embedding.2.weight",
                         "time_embedding.2.bias", "time_projection.1.weight", "time_projection.1.bias",
                         "head.head.weight", "head.head.bias", "head.modulation")


class LowRankDelta(nn.Module):
    """weight -> weight + (alpha / rank) * up @ down; up starts at zero, so the student starts as the teacher."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float):
        super().__init__()
        self.down = nn.Parameter(torch.randn(rank, in_features) / math.sqrt(in_features))
        self.up = nn.Parameter(torch.zeros(out_features, rank))
        self.alpha = float(alpha)

    @property
    def scale(self) -> float:
        return self.alpha / self.down.shape[0]

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.scale * (self.up @ self.down)).to(weight.dtype)


class FullDelta(nn.Module):
    """parameter -> parameter + delta (delta starts at zero)."""

    def __init__(self, like: torch.Tensor):
        super().__init__()
        self.delta = nn.Parameter(torch.zeros_like(like))

    def forward(self, value: torch.Tensor) -> torch.Tensor:
        return value + self.delta.to(value.dtype)


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    *path, leaf = name.split(".")
    module = model
    for part in path:
        module = getattr(module, part)
    return module, leaf


def lora_targets(dit: nn.Module) -> list[str]:
    """Names of the linear layers of `dit` that get a low-rank delta (blocks.N.<module>)."""
    names = dict(dit.named_modules())
    return [f"blocks.{i}.{m}" for i in range(len(dit.blocks)) for m in LORA_MODULES
            if isinstance(names.get(f"blocks.{i}.{m}"), nn.Linear)]


def full_delta_targets(dit: nn.Module) -> list[str]:
    params = dict(dit.named_parameters())
    names = [n for n in FULL_DELTA_PARAMETERS if n in params]
    return names + [f"blocks.{i}.modulation" for i in range(len(dit.blocks))]


def attach_student(dit: nn.Module, rank: int = 32, alpha: Optional[float] = None) -> list[nn.Parameter]:
    """Freeze `dit` and parametrise it as a student (deltas at zero: still equal to the teacher); returns the
    trainable parameters. `export_student` writes the deltas, `detach_student` removes them."""
    if rank < 1:
        raise InputError(f"rank: expected a positive LoRA rank, got {rank}")
    alpha = float(rank if alpha is None else alpha)
    dit.requires_grad_(False)
    trainable = []
    for name in lora_targets(dit):
        linear = dit.get_submodule(name)
        delta = LowRankDelta(linear.out_features, linear.in_features, rank, alpha).to(linear.weight.device)
        parametrize.register_parametrization(linear, "weight", delta)
        trainable += [delta.down, delta.up]
    for name in full_delta_targets(dit):
        owner, leaf = _owner(dit, name)
        delta = FullDelta(getattr(owner, leaf).detach())
        parametrize.register_parametrization(owner, leaf, delta)
        trainable.append(delta.delta)
    return trainable


def _deltas(dit: nn.Module):
    """(name of the parametrised tensor, its delta module) for every student delta in `dit`."""
    for module_name, module in dit.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for leaf, plist in module.parametrizations.items():
            for p in plist:
                if isinstance(p, (LowRankDelta, FullDelta)):
                    yield (f"{module_name}.{leaf}" if module_name else leaf), p


def parameter_groups(dit: nn.Module) -> list[dict]:
    """Optimiser groups of a student: the low-rank pairs at the full learning rate, the full deltas (shared by
    every block and timestep: a small step moves the whole model) at FULL_DELTA_LR_SCALE of it."""
    low_rank, full = [], []
    for _, delta in _deltas(dit):
        if isinstance(delta, LowRankDelta):
            low_rank += [delta.down, delta.up]
        else:
            full.append(delta.delta)
    return [{"params": low_rank, "lr_scale": 1.0}, {"params": full, "lr_scale": FULL_DELTA_LR_SCALE}]


def _student_tensors(dit: nn.Module) -> dict:
    """LoRA file key -> the student's trainable tensor it is written from (Kijai / lightx2v layout); one table for
    writing (student_state_dict) and reading back (load_student)."""
    table = {}
    for name, delta in _deltas(dit):
        module, _, leaf = name.rpartition(".")
        key = LORA_PREFIX + module
        if isinstance(delta, LowRankDelta):
            table[f"{key}.lora_down.weight"] = delta.down
            table[f"{key}.lora_up.weight"] = delta.up
        elif leaf == "modulation" and module.startswith("blocks."):
            table[f"{key}.diff_m"] = delta.delta              # blocks.N.diff_m -> blocks.N.modulation
        elif leaf == "modulation":
            table[f"{LORA_PREFIX}{name}.diff"] = delta.delta  # head.modulation.diff: the parameter itself
        else:
            table[f"{key}.{'diff_b' if leaf == 'bias' else 'diff'}"] = delta.delta
    return table


def student_state_dict(dit: nn.Module, dtype=torch.float16) -> dict:
    """The deltas of a student DiT as a LoRA state dict in the Kijai / lightx2v layout."""
    sd = {k: v.detach() for k, v in _student_tensors(dit).items()}
    for name, delta in _deltas(dit):
        if isinstance(delta, LowRankDelta):
            sd[f"{LORA_PREFIX}{name.rpartition('.')[0]}.alpha"] = torch.tensor(delta.alpha)
    return {k: v.to(dtype).contiguous().cpu() for k, v in sd.items()}


def load_student(dit: nn.Module, path: Union[str, Path]) -> int:
    """Start a student (attach_student's deltas) from a student LoRA file written by export_student, e.g. one
    distilled from an earlier teacher: a warm start, where the deltas would otherwise start at zero. The file must
    have exactly this student's keys and shapes, with the same rank and alpha; returns the tensors loaded."""
    sd, _, name = read_lora(path)
    table = _student_tensors(dit)
    missing = sorted(set(table) - set(sd))
    extra = sorted(k for k in set(sd) - set(table) if not k.endswith(".alpha"))
    if missing or extra:
        raise InputError(f"{name}: not a student LoRA of this model ({len(missing)} keys missing, e.g. "
                         f"{missing[:2]}; {len(extra)} unexpected, e.g. {extra[:2]}); start from zero instead "
                         f"(leave out --init-student) or give the student file of a model of this size and rank")
    for name_, delta in _deltas(dit):
        if isinstance(delta, LowRankDelta):
            alpha = sd.get(f"{LORA_PREFIX}{name_.rpartition('.')[0]}.alpha")
            if alpha is not None and abs(float(alpha) - delta.alpha) > 1e-3 * max(1.0, delta.alpha):
                raise InputError(f"{name}: alpha {float(alpha):g} of {name_} differs from this student's "
                                 f"{delta.alpha:g}; distil with the file's rank and alpha")
    with torch.no_grad():
        for key, tensor in table.items():
            value = sd[key]
            if tuple(value.shape) != tuple(tensor.shape):
                raise InputError(f"{name}: {key} has shape {tuple(value.shape)}, this student's is "
                                 f"{tuple(tensor.shape)}: another LoRA rank or model size; distil with the "
                                 f"file's --rank, or from zero")
            if not torch.isfinite(value).all():
                raise InputError(f"{name}: {key} holds non-finite values; the file is damaged, distil from zero")
            tensor.copy_(value.to(tensor.dtype))
    return len(table)


def export_student(dit: nn.Module, path: Union[str, Path], meta: Optional[dict] = None) -> Path:
    """Write the student's LoRA file (atomically); metadata: the schedule and what it was distilled from."""
    sd = student_state_dict(dit)
    if not sd:
        raise InputError("export_student: the model has no student deltas (call attach_student first)")
    info = {"format": "camgrid-tiny-student", "sampling": json.dumps(STUDENT_SAMPLING), **(meta or {})}
    path = Path(path)
    atomic_save(path, lambda tmp: save_file(sd, str(tmp), metadata={k: str(v) for k, v in info.items()}))
    return path


def detach_student(dit: nn.Module, merge: bool = False) -> nn.Module:
    """Remove the student deltas: keep the teacher's weights (merge=False) or the student's (merge=True)."""
    for module_name, module in list(dit.named_modules()):
        if parametrize.is_parametrized(module):
            for leaf in list(module.parametrizations.keys()):
                parametrize.remove_parametrizations(module, leaf, leave_parametrized=merge)
    return dit


def student_sampling(path: Union[str, Path, None] = None) -> dict:
    """sample_grid settings of a student file (from its metadata), or the default schedule."""
    if path is None or not Path(path).is_file():
        return dict(STUDENT_SAMPLING)
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    return {**STUDENT_SAMPLING, **json.loads(meta.get("sampling", "{}"))}


def trainable_count(params: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in params)
