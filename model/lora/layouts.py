"""LoRA files -> patches on GridDiT parameters (original Wan names), each with its scale.

Key layouts seen in the wild, and their rules (docs/ARCHITECTURE.md §14 LoRA; sources in brackets):

  Kijai / lightx2v / ComfyUI   `diffusion_model.blocks.0.self_attn.q.lora_down.weight` [r, in],
                               `.lora_up.weight` [out, r], `.alpha` (scale alpha / r; no alpha: 1)
                               [ComfyUI comfy/weight_adapter/lora.py: alpha / mat2.shape[0]].
                               Full deltas: `<module>.diff` (added to `<module>.weight`, or to the
                               parameter itself when `<module>` names one, e.g. `blocks.0.modulation.diff`),
                               `<module>.diff_b` (added to `<module>.bias`) [ComfyUI comfy/lora.py
                               load_lora], `<parent>.diff_m` (added to `<parent>.modulation`:
                               `blocks.N.diff_m` -> blocks.N.modulation, `head.diff_m` -> head.modulation)
                               [lightx2v tools/extract/lora_extractor.py writes `.modulation` -> `.diff_m`;
                               DiffSynth LightX2VLoRALoader maps it back]. Deltas are never scaled by alpha.
                               ai-toolkit saves the same names with `lora_A` / `lora_B` [toolkit/models/
                               wan21/wan_lora_convert.py convert_to_original].
  diffusers / PEFT             `transformer.blocks.0.attn1.to_q.lora_A.weight` / `lora_B.weight`,
                               diffusers module names, also under `base_model.model.`; no alpha -> 1, or
                               `lora_alpha` / `alpha_pattern` (and `use_rslora`: alpha / sqrt(r)) from the
                               `lora_adapter_metadata` JSON that diffusers writes into the safetensors
                               header, keys prefixed `transformer.` [diffusers loaders/lora_base.py
                               _save_lora_weights]. `lora_B.bias` is a bias delta scaled like the pair (PEFT
                               lora_bias). Names converted with model/checkpoint.py's diffusers renames.
  kohya / musubi / lycoris     `lora_unet_blocks_0_self_attn_q.lora_down.weight`, `.alpha` (alpha / r)
                               [diffusers _convert_musubi_wan_lora_to_diffusers]; `lora_unet__` (Wan Fun)
                               [ComfyUI lora_convert.convert_lora_wan_fun]; `lora_transformer_` (OneTrainer)
                               and `lycoris_` (SimpleTuner) spell diffusers names [ComfyUI comfy/lora.py
                               model_lora_keys_unet]. Underscores are mapped back through a table of the
                               model's own names with '.' -> '_' (never by guessing where a dot was).
  DiffSynth                    `pipe.dit.` prefix (or none: its trainer strips it by default), original Wan
                               names, `lora_A.default.weight` / `lora_B.default.weight`, no alpha -> 1
                               [DiffSynth diffusion/training_module.py, utils/lora/general.py].

Not supported, refused with a clear error: DoRA (`dora_scale`, `lora_magnitude_vector`), LoCon `lora_mid`,
LyCORIS LoHa / LoKr / OFT. Keys whose target the model lacks (I2V `k_img`, text-encoder keys, ...) are
reported as unmatched, not applied.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import torch

from ..key_layouts import original_key, to_diffusers_layout
from ..weights_io import CheckpointError, read_state_dict

# (suffix, role), longest first where one suffix ends another
SUFFIXES = (
    (".lora_A.default.weight", "down"), (".lora_B.default.weight", "up"),
    (".lora_down.weight", "down"), (".lora_up.weight", "up"),
    (".lora_A.weight", "down"), (".lora_B.weight", "up"), (".lora_B.bias", "up_bias"),
    (".alpha", "alpha"), (".diff_b", "diff_b"), (".diff_m", "diff_m"), (".diff", "diff"),
    (".lora_mid.weight", "mid"), (".dora_scale", "dora"),
)
# dotted prefixes of LoRA files (stripped repeatedly: `base_model.model.transformer.` exists too)
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "base_model.model.", "transformer.", "pipe.dit.", "dit.",
            "model.", "module.")
# underscore spellings: prefix -> the naming its names follow (the other naming is tried second)
UNDERSCORE_PREFIXES = (("lora_unet__", "original"), ("lora_unet_", "original"), ("lora_transformer_", "diffusers"),
                       ("lycoris_", "diffusers"))
DIFFUSERS_MARKERS = (".attn1.", ".attn2.", "condition_embedder.", ".ffn.net.", "proj_out.", "scale_shift_table",
                     ".to_out.", ".to_q.", ".to_k.", ".to_v.")
UNSUPPORTED = {"dora": "DoRA (dora_scale)", "mid": "LoCon (lora_mid)"}
UNSUPPORTED_MARKERS = {"lora_magnitude_vector": "DoRA (PEFT lora_magnitude_vector)", ".hada_w": "LyCORIS LoHa",
                       ".lokr_w": "LyCORIS LoKr", ".oft_": "OFT", ".boft_": "BOFT"}
KNOWN_SIZES = {(5120, 40): "Wan2.1 14B", (1536, 30): "Wan2.1 1.3B", (3072, 30): "Wan2.2 5B"}
# a module inside a Wan block, in any spelling: what the width / block-count inference looks at
_WAN_BLOCK_MODULE = re.compile(r"blocks[._](\d+)(?:[._](?:self_attn|cross_attn|attn1|attn2|mvs_attn|ffn|norm|"
                               r"modulation|scale_shift_table|cam_encoder|projector)|$)")


@dataclass
class Patch:
    """One change to one parameter: `delta = scale * up @ down` (low rank) or `delta = diff` (full)."""

    target: str                          # parameter name in original Wan layout
    keys: tuple                          # the LoRA keys it was built from
    up: Optional[torch.Tensor] = None
    down: Optional[torch.Tensor] = None
    diff: Optional[torch.Tensor] = None
    scale: float = 1.0


@dataclass
class LoraPlan:
    name: str
    layout: str
    patches: list = field(default_factory=list)
    unmatched: list = field(default_factory=list)   # LoRA keys that patch nothing in this model
    width: Optional[int] = None                     # model width the LoRA was made for (from its shapes)
    blocks: Optional[int] = None                    # block count it was made for (highest block index + 1)

    @property
    def made_for(self) -> str:
        return describe_size(self.width, self.blocks)


def describe_size(width, blocks, loaded: bool = False) -> str:
    """"a 5120-wide, 40-block DiT (Wan2.1 14B)"; loaded=True: "1536-wide, 30 blocks (Wan2.1 1.3B)"."""
    if width is None:
        return "a DiT of unknown size"
    name = KNOWN_SIZES.get((width, blocks))
    if blocks is None:
        text = f"a {width}-wide DiT"
    else:
        text = f"{width}-wide, {blocks} blocks" if loaded else f"a {width}-wide, {blocks}-block DiT"
    return text + (f" ({name})" if name else "")


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
def read_lora(path_or_state_dict) -> tuple[dict, dict, str]:
    """(tensors, metadata, display name) through the checkpoint reader (safetensors / weights-only pickles)."""
    if isinstance(path_or_state_dict, Mapping):
        sd = {k: v for k, v in path_or_state_dict.items() if isinstance(v, torch.Tensor)}
        if not sd:
            raise CheckpointError("the LoRA state dict contains no tensors")
        return sd, {}, "LoRA state dict"
    sd, meta = read_state_dict(path_or_state_dict)
    return sd, meta, Path(path_or_state_dict).name


def peft_metadata(meta: Mapping) -> dict:
    """PEFT LoraConfig fields from diffusers' `lora_adapter_metadata` header entry ({} when absent)."""
    raw = meta.get("lora_adapter_metadata") if meta else None
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    # a pipeline's save_lora_weights prefixes each field with the component name
    return {k.split(".", 1)[1] if k.startswith("transformer.") else k: v for k, v in data.items()}


# ---------------------------------------------------------------------------------------------
# the model side: what can be patched, under which spellings
# ---------------------------------------------------------------------------------------------
class ModelIndex:
    """Parameter names -> shapes of one GridDiT (fp8 weights under their `.weight` name), its module
    names, and the underscore spellings (original and diffusers names) kohya-style files use."""

    def __init__(self, model: torch.nn.Module):
        self.shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith(".scale_weight")}
        self.dim, self.num_layers = model.config.dim, model.config.num_layers
        names = set(self.shapes) | {n for n, _ in model.named_modules() if n}
        original = {_module_name(k): _module_name(k) for k in names}
        renamed = to_diffusers_layout({k: k for k in self.shapes})  # diffusers key -> original key
        diffusers = {_module_name(d): _module_name(o) for d, o in renamed.items()}
        diffusers.update({n: n for n in names if n.count(".") <= 1})  # containers: blocks.N, head
        self.underscore = {"original": _underscore_table(original), "diffusers": _underscore_table(diffusers)}

    def target(self, path: str, role: str, diffusers: bool) -> Optional[str]:
        """The parameter a LoRA module path + role patches, or None when this model has none."""
        suffixes = {"diff_b": (".bias",), "up_bias": (".bias",), "diff_m": (".modulation",)}.get(role, (".weight", ""))
        for base in self._bases(path, diffusers):
            for suffix in suffixes:
                if base + suffix in self.shapes:
                    return base + suffix
        return None

    def _bases(self, path, diffusers):
        for prefix, naming in UNDERSCORE_PREFIXES:
            if path.startswith(prefix):
                rest = path[len(prefix):]
                other = "diffusers" if naming == "original" else "original"
                return [t[rest] for t in (self.underscore[naming], self.underscore[other]) if rest in t]
        path = strip_prefixes(path)
        if not diffusers:
            return [path]
        # module names get the renames with a dot after them; bare parameters (scale_shift_table) without
        return [original_key(path + ".x")[:-2], original_key(path)]


def _module_name(key: str) -> str:
    for suffix in (".weight", ".bias"):
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return key


def _underscore_table(names: Mapping[str, str]) -> dict:
    table = {}
    for spelled, name in names.items():
        u = spelled.replace(".", "_")
        if table.get(u, name) != name:
            raise RuntimeError(f"two GridDiT names spell {u!r} with underscores: {table[u]!r}, {name!r}")
        table[u] = name
    return table


def strip_prefixes(path: str) -> str:
    stripped = True
    while stripped:
        stripped = False
        for prefix in PREFIXES:
            if path.startswith(prefix):
                path, stripped = path[len(prefix):], True
    return path


# ---------------------------------------------------------------------------------------------
# file -> plan
# ---------------------------------------------------------------------------------------------
def split_key(key: str) -> tuple[Optional[str], str]:
    """(role, module path) of a LoRA key; role None for a key of no known kind."""
    for suffix, role in SUFFIXES:
        if key.endswith(suffix):
            return role, key[: -len(suffix)]
    return None, key


def layout_name(keys) -> str:
    keys = list(keys)
    if any(k.startswith(tuple(p for p, _ in UNDERSCORE_PREFIXES)) for k in keys):
        return "kohya/musubi (underscore names)"
    if any(k.startswith("pipe.dit.") or ".default.weight" in k for k in keys):
        return "DiffSynth"
    if any(m in strip_prefixes(k) for k in keys for m in DIFFUSERS_MARKERS):
        return "diffusers/PEFT"
    if any(k.endswith((".lora_down.weight", ".diff", ".diff_b", ".diff_m")) for k in keys):
        return "Kijai/lightx2v/ComfyUI"
    return "original Wan names, lora_A/lora_B (ai-toolkit)"


def plan_lora(sd: Mapping[str, torch.Tensor], meta: Mapping, index: ModelIndex, name: str) -> LoraPlan:
    """Every patch the file makes on this model, validated (shapes, finite numbers, model size);
    raises CheckpointError before anything is changed when the file cannot be applied."""
    _refuse_unsupported(sd, name)
    groups, unknown = {}, []
    for key in sd:
        role, path = split_key(key)
        if role is None:
            unknown.append(key)
            continue
        if role in groups.setdefault(path, {}):
            raise CheckpointError(f"{name}: two keys give the same LoRA part of {path!r}: "
                                  f"{groups[path][role]!r} and {key!r}")
        groups[path][role] = key
    plan = LoraPlan(name, layout_name(sd), unmatched=sorted(unknown))
    diffusers = any(m in strip_prefixes(p) + "." for p in groups for m in DIFFUSERS_MARKERS)
    peft = peft_metadata(meta)
    for path, parts in groups.items():
        _plan_module(plan, sd, path, parts, index, diffusers, peft)
    plan.width, plan.blocks = _made_for(sd, groups)
    check_size(plan, index)
    if not plan.patches:
        raise CheckpointError(f"{name}: none of its {len(sd)} keys patch this DiT (e.g. {sorted(sd)[:3]}): is it a "
                              "LoRA for another model family (not Wan2.1)?")
    return plan


def _refuse_unsupported(sd, name):
    for key in sd:
        role, _ = split_key(key)
        kind = UNSUPPORTED.get(role) or next((v for m, v in UNSUPPORTED_MARKERS.items() if m in key), None)
        if kind:
            raise CheckpointError(f"{name}: {kind} adapters are not supported (key {key!r}); use a plain LoRA "
                                  "(lora_down/lora_up or lora_A/lora_B)")


def all_finite(t: torch.Tensor) -> bool:
    """No NaN / inf in t: one min/max pass (NaN propagates through both; no mask tensor, no overflow)."""
    if t.numel() == 0:
        return True
    lo, hi = (t.float() if t.element_size() == 1 else t).aminmax()  # fp8 has no aminmax kernel
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def _tensor(sd, key, name) -> torch.Tensor:
    t = sd[key]
    if not t.is_floating_point():
        raise CheckpointError(f"{name}: LoRA tensor {key!r} is {t.dtype}, not floating point; the file is damaged")
    if not all_finite(t):
        raise CheckpointError(f"{name}: LoRA tensor {key!r} contains NaN or infinite values; the file is damaged "
                              "(re-download or re-export it)")
    return t


def _alpha(sd, key, name) -> float:
    t = sd[key]
    if t.numel() != 1:
        raise CheckpointError(f"{name}: {key!r} must be one number, got shape {tuple(t.shape)}")
    value = float(t.float().item())
    if not math.isfinite(value):
        raise CheckpointError(f"{name}: {key!r} is {value}; the file is damaged")
    return value


def _peft_alpha(path: str, rank: int, peft: dict) -> Optional[float]:
    """PEFT scale from the header metadata: alpha_pattern entry matching the module, else lora_alpha."""
    if "lora_alpha" not in peft:
        return None
    module = strip_prefixes(path)
    alpha = peft["lora_alpha"]
    for pattern, value in (peft.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):  # PEFT's own pattern rule (get_pattern_key)
            alpha = value
            break
    return float(alpha) / (math.sqrt(rank) if peft.get("use_rslora") else rank)


def _plan_module(plan, sd, path, parts, index, diffusers, peft):
    """The patches of one LoRA module (pair, alpha, diffs); parts it cannot place go to plan.unmatched."""
    name = plan.name
    scale = 1.0
    if "down" in parts and "up" in parts:
        down, up = _tensor(sd, parts["down"], name), _tensor(sd, parts["up"], name)
        rank = down.shape[0]
        if up.dim() < 2 or down.dim() < 2 or up.flatten(1).shape[1] != rank:
            raise CheckpointError(f"{name}: {parts['up']!r} {tuple(up.shape)} and {parts['down']!r} "
                                  f"{tuple(down.shape)} are not a LoRA pair of rank {rank}")
        if "alpha" in parts:
            scale = _alpha(sd, parts["alpha"], name) / rank
        else:
            peft_scale = _peft_alpha(path, rank, peft)
            scale = 1.0 if peft_scale is None else peft_scale
        keys = tuple(parts[r] for r in ("down", "up", "alpha") if r in parts)
        _add(plan, index, path, "down", diffusers, Patch("", keys, up=up, down=down, scale=scale))
    else:
        plan.unmatched += [parts[r] for r in ("down", "up", "alpha") if r in parts]  # half a pair
    for role in ("diff", "diff_b", "diff_m"):
        if role in parts:
            _add(plan, index, path, role, diffusers, Patch("", (parts[role],), diff=_tensor(sd, parts[role], name)))
    if "up_bias" in parts:
        bias = _tensor(sd, parts["up_bias"], name) * scale
        _add(plan, index, path, "up_bias", diffusers, Patch("", (parts["up_bias"],), diff=bias))


def _add(plan, index, path, role, diffusers, patch):
    target = index.target(path, role, diffusers)
    if target is None:
        plan.unmatched += list(patch.keys)
        return
    patch.target = target
    plan.patches.append(patch)


# ---------------------------------------------------------------------------------------------
# what model the LoRA was made for
# ---------------------------------------------------------------------------------------------
def _made_for(sd, groups) -> tuple[Optional[int], Optional[int]]:
    """(width, blocks) from the shapes: in a Wan block every 2-D weight has min(out, in) = width (the FFN
    hidden width is larger), so the most common min over block matrices is the width."""
    blocks, widths = [], []
    for path, parts in groups.items():
        m = _WAN_BLOCK_MODULE.search(path)
        if m is None:
            continue
        blocks.append(int(m.group(1)))
        if "down" in parts and "up" in parts:
            widths.append(min(sd[parts["up"]].shape[0], sd[parts["down"]].flatten(1).shape[1]))
        elif "diff" in parts and sd[parts["diff"]].dim() == 2:
            widths.append(min(sd[parts["diff"]].shape))
    width = Counter(widths).most_common(1)[0][0] if widths else None
    return width, (max(blocks) + 1 if blocks else None)


def check_size(plan: LoraPlan, index: ModelIndex) -> None:
    """Refuse a LoRA for another width or block count, and any patch whose shape does not fit its target."""
    model = describe_size(index.dim, index.num_layers, loaded=True)
    wrong = (plan.width is not None and plan.width != index.dim) or (plan.blocks or 0) > index.num_layers
    bad = None if wrong else next((p for p in plan.patches if not _fits(p, index.shapes[p.target])), None)
    if not (wrong or bad):
        return
    detail = "" if bad is None else (f" ({bad.keys[0]!r} does not fit {bad.target} {index.shapes[bad.target]})")
    raise CheckpointError(f"{plan.name}: this LoRA is for {plan.made_for}; the loaded model is {model}{detail}. "
                          "Use a LoRA made for the loaded model.")


def _fits(patch: Patch, shape: tuple) -> bool:
    numel = math.prod(shape)
    if patch.diff is not None:
        return patch.diff.numel() == numel and [s for s in patch.diff.shape if s != 1] == [s for s in shape if s != 1]
    out, inner = patch.up.shape[0], patch.down.flatten(1).shape[1]
    return len(shape) >= 2 and out == shape[0] and out * inner == numel
