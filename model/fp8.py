"""fp8 weight storage for the DiT's big Linear layers (docs/ARCHITECTURE.md §7.2 Memory options).

    quantize_linear_weights(model, dtype=torch.float8_e4m3fn, scaling="per_channel", skip=()) -> names
        replaces the block Linear layers (self_attn / cross_attn / mvs_attn q,k,v,o; ffn.0, ffn.2;
        projector) by `FP8Linear`. Embeddings, the head, the camera encoder, norms and modulation
        stay in the model dtype: they are small and numerically sensitive.

`FP8Linear` stores the weight as float8 e4m3 plus float32 scales (one per output channel or one
per tensor): w ~= weight_fp8 * scale. Two ways to run it:
  * "dequant"   (portable, any device): w is rebuilt in the compute dtype and F.linear runs as usual.
                 Halves the weight memory; speed as bf16.
  * "scaled_mm" (Hopper / Ada: CUDA capability >= 8.9): the activations are quantised too (one scale
                 per token with per-channel weights, one per tensor with a per-tensor weight scale) and
                 torch._scaled_mm runs the fp8 tensor-core matmul, fp32 accumulation, bf16 out.
                 Per token, the quantisation is one fused Triton pass on CUDA (kernels/fp8_quant.py)
                 and the matmul is rowwise-scaled (scale_a [M, 1], scale_b [1, N]). q, k and v of an
                 attention read the same input: it is quantised once (`_ActivationCache`).
FFN GELU fusion (`fuse_gelu=True`, the default of quantize_linear_weights): the FFN's
Linear -> GELU(tanh) -> Linear becomes Linear -> Identity -> FP8Linear(input_gelu=True), which applies
the GELU inside its quantisation pass, saving a pass over the FFN hidden, the largest activation.
  "auto" (the default) picks scaled_mm where it can run and dequant elsewhere. torch's CPU build also
  has _scaled_mm, which is how the tests check the fp8 matmul path's math without a GPU.

State dict: `<layer>.weight` (float8_e4m3fn) + `<layer>.scale_weight` (float32, shape [] or [out]),
the key names of ComfyUI's "scaled fp8" files, so saving and reloading is lossless. Loading files
that are already fp8 (`split_fp8_scales`): ComfyUI / Kijai "fp8_scaled" files carry
`<layer>.scale_weight` (and `scale_input`, plus a top-level `scaled_fp8` marker tensor); ComfyUI's
newer mixed-precision format carries `<layer>.weight_scale` (+ `input_scale`, `comfy_quant`);
plain "fp8_e4m3fn" files have no scale at all (scale 1).

Why the `weight` attribute is a shape/dtype-only stand-in: GridDiT code reads
`layer.weight.dtype` to cast activations to the compute dtype; it must see bf16, not fp8.
"""
from __future__ import annotations

import re
import weakref
from typing import Iterable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..kernels.fp8_quant import quantize_rows_fp8

FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)
SCALINGS = ("per_channel", "per_tensor")
MATMUL_MODES = ("auto", "dequant", "scaled_mm")

# the block Linear layers worth storing in fp8 (they hold >99% of the DiT's weights)
QUANTIZABLE = re.compile(r"^blocks\.\d+\.((self_attn|cross_attn|mvs_attn)\.[qkvo]|ffn\.[02]|projector)$")
# projections that GridDiT applies to one shared input (q, k, v of x; k, v of the text)
SHARED_INPUT = re.compile(r"\.(self_attn|cross_attn|mvs_attn)\.[qkv]$")

# per-layer keys of already-quantised files (ComfyUI legacy "scaled fp8" and the newer mixed-precision format)
_WEIGHT_SCALE_SUFFIXES = (".scale_weight", ".weight_scale")
_DROPPED_SUFFIXES = (".scale_input", ".input_scale", ".comfy_quant")
_MARKER_KEYS = ("scaled_fp8",)


def fp8_max(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).max)


def _check_dtype(dtype):
    if dtype not in FP8_DTYPES:
        raise ValueError(f"fp8 dtype must be one of {FP8_DTYPES}, got {dtype}")


def _round_up_to_bf16(x: torch.Tensor) -> torch.Tensor:
    """Smallest bf16-representable value >= x (float32 in, float32 out). A bf16 scale makes the
    dequantised weight `w_fp8.to(bf16) * scale` exact up to one final rounding, like fp32 math."""
    r = x.to(torch.bfloat16).float()
    xb = x.to(torch.bfloat16)
    up = torch.nextafter(xb, torch.full_like(xb, float("inf"))).float()
    return torch.where(r >= x, r, up)


def quantize_weight(w: torch.Tensor, dtype=torch.float8_e4m3fn, scaling: str = "per_channel"):
    """w [out, in] -> (w_fp8 [out, in], scale float32 [out] or []) with w ~= w_fp8 * scale."""
    _check_dtype(dtype)
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    wf = w.detach().float()
    amax = wf.abs().amax(dim=1) if scaling == "per_channel" else wf.abs().amax()
    scale = _round_up_to_bf16((amax / fp8_max(dtype)).clamp(min=1e-12))
    q = (wf / (scale[:, None] if scale.ndim else scale)).clamp(-fp8_max(dtype), fp8_max(dtype)).to(dtype)
    return q, scale


def dequantize_weight(w_fp8: torch.Tensor, scale: torch.Tensor | None, dtype=torch.bfloat16) -> torch.Tensor:
    """w_fp8 * scale in `dtype` (fp32 math, then one rounding). scale None means 1 (unscaled fp8 files)."""
    w = w_fp8.float()
    if scale is not None:
        s = scale.float()
        w = w * (s.reshape(-1, 1) if s.numel() > 1 else s.reshape(()))
    return w.to(dtype)


def quantize_activation(x2: torch.Tensor, dtype=torch.float8_e4m3fn, per_token: bool = True):
    """x2 [M, K] -> (x_fp8 [M, K], scale float32 [M, 1] or []) for torch._scaled_mm.

    The scale is rounded to the activation dtype and the division done there: no fp32 copy of x
    (that would be the largest temporary of an FFN), and the scale handed to _scaled_mm is exactly
    the one used to quantise."""
    amax = x2.abs().amax(dim=1, keepdim=True) if per_token else x2.abs().amax()
    scale = (amax.float() / fp8_max(dtype)).clamp(min=1e-12).to(x2.dtype)
    xq = (x2 / scale).clamp_(-fp8_max(dtype), fp8_max(dtype)).to(dtype)
    return xq, scale.float()


def scaled_mm_supported(device: torch.device) -> bool:
    """fp8 tensor-core matmul: CUDA capability >= 8.9 (Ada, Hopper) and torch._scaled_mm present."""
    if not hasattr(torch, "_scaled_mm") or device.type != "cuda":
        return False
    return torch.cuda.get_device_capability(device) >= (8, 9)


def _version_of(x: torch.Tensor):
    try:
        return x._version
    except RuntimeError:  # inference-mode tensors keep no version counter
        return None


class _ActivationCache:
    """The last per-token quantisation of a q / k / v projection's input: the three projections of
    one attention read the same tensor, so the second and third reuse the first one's fp8 copy.
    Keyed on the tensor object (weak reference: a freed tensor whose memory is reused never
    matches), its data pointer and shape, its in-place version counter where it has one (tensors
    made under torch.inference_mode have none: there the cache relies on GridDiT never modifying a
    projection's input between q, k and v, which it does not), the fp8 dtype and the GELU flag.
    Holds one fp8 copy of one attention input at most."""

    def __init__(self):
        self.key, self.ref, self.value = None, None, None

    def lookup(self, x, key):
        if self.ref is not None and self.ref() is x and self.key == (_version_of(x), *key):
            return self.value
        return None

    def store(self, x, key, value):
        self.ref, self.key, self.value = weakref.ref(x), (_version_of(x), *key), value

    def clear(self):
        self.key, self.ref, self.value = None, None, None


_activation_cache = _ActivationCache()


class FP8Linear(nn.Module):
    """A Linear layer whose weight is stored in fp8 with float32 scales; bias in the compute dtype.

    `input_gelu=True`: the layer computes Linear(GELU_tanh(x)) (the FFN's second Linear after the
    GELU fusion; see the module docstring)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, compute_dtype=torch.bfloat16,
                 fp8_dtype=torch.float8_e4m3fn, per_channel: bool = True, device=None):
        super().__init__()
        _check_dtype(fp8_dtype)
        self.in_features, self.out_features = in_features, out_features
        self.compute_dtype, self.fp8_dtype = compute_dtype, fp8_dtype
        self.register_buffer("weight_fp8", torch.zeros(out_features, in_features, dtype=fp8_dtype, device=device))
        self.register_buffer("scale_weight", torch.ones((out_features,) if per_channel else (), device=device))
        self.bias = nn.Parameter(torch.zeros(out_features, dtype=compute_dtype, device=device),
                                 requires_grad=False) if bias else None
        self.matmul = "auto"  # "auto" | "dequant" | "scaled_mm" (see the module docstring)
        self.input_gelu = False  # set by fuse_ffn_gelu
        self.share_input_quant = False  # q / k / v projections: reuse the input's fp8 copy (_ActivationCache)

    @classmethod
    def from_linear(cls, linear: nn.Linear, fp8_dtype=torch.float8_e4m3fn, scaling: str = "per_channel",
                    compute_dtype=None) -> "FP8Linear":
        compute_dtype = compute_dtype or linear.weight.dtype
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, compute_dtype, fp8_dtype,
                    scaling == "per_channel", device=linear.weight.device)
        q, s = quantize_weight(linear.weight, fp8_dtype, scaling)
        layer.weight_fp8, layer.scale_weight = q, s
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach().to(compute_dtype), requires_grad=False)
        return layer

    # --- what the rest of the model sees -------------------------------------------------------
    @property
    def weight(self) -> torch.Tensor:
        """Shape/dtype stand-in (meta tensor) in the compute dtype; the data is `dequantized_weight()`."""
        return torch.empty(self.out_features, self.in_features, dtype=self.compute_dtype, device="meta")

    @property
    def per_channel(self) -> bool:
        return self.scale_weight.numel() > 1

    def dequantized_weight(self, dtype=None) -> torch.Tensor:
        return dequantize_weight(self.weight_fp8, self.scale_weight, dtype or self.compute_dtype)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"{str(self.fp8_dtype).replace('torch.', '')}, {'per_channel' if self.per_channel else 'per_tensor'}"
                + (", input_gelu=True" if self.input_gelu else ""))

    # --- state dict in ComfyUI's scaled-fp8 key names ------------------------------------------
    def _save_to_state_dict(self, destination, prefix, keep_vars):
        destination[prefix + "weight"] = self.weight_fp8 if keep_vars else self.weight_fp8.detach()
        destination[prefix + "scale_weight"] = self.scale_weight if keep_vars else self.scale_weight.detach()
        if self.bias is not None:
            destination[prefix + "bias"] = self.bias if keep_vars else self.bias.detach()

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):
        assign = bool(local_metadata.get("assign_to_params_buffers", False))
        for key, attr in (("weight", "weight_fp8"), ("scale_weight", "scale_weight"), ("bias", "bias")):
            if attr == "bias" and self.bias is None:
                continue
            if prefix + key not in state_dict:
                missing_keys.append(prefix + key)
                continue
            value = state_dict[prefix + key]
            if attr == "weight_fp8":
                if value.dtype not in FP8_DTYPES:
                    error_msgs.append(f"{prefix}weight: FP8Linear needs an fp8 weight, got {value.dtype}; "
                                      "quantise it with quantize_weight first")
                    continue
                self.fp8_dtype = value.dtype
            if tuple(value.shape) != tuple(getattr(self, attr).shape) and attr != "scale_weight":
                error_msgs.append(f"{prefix}{key}: shape {tuple(value.shape)} != {tuple(getattr(self, attr).shape)}")
                continue
            value = value.float() if attr == "scale_weight" else value
            value = value.to(self.compute_dtype) if attr == "bias" else value
            if attr == "bias":
                if assign:
                    self.bias = nn.Parameter(value.detach(), requires_grad=False)
                else:
                    self.bias.data.copy_(value)
            elif assign or getattr(self, attr).is_meta or getattr(self, attr).shape != value.shape:
                self._buffers[attr] = value.detach()
            else:
                getattr(self, attr).copy_(value)
        for key in state_dict if strict else ():
            if key.startswith(prefix) and key[len(prefix):] not in ("weight", "scale_weight", "bias") \
                    and "." not in key[len(prefix):]:
                unexpected_keys.append(key)

    # --- forward -------------------------------------------------------------------------------
    def _use_scaled_mm(self, x: torch.Tensor) -> bool:
        if self.matmul == "dequant":
            return False
        if self.matmul == "scaled_mm":
            return True
        if self.matmul != "auto":
            raise ValueError(f"FP8Linear.matmul must be one of {MATMUL_MODES}, got {self.matmul!r}")
        return (self.compute_dtype in (torch.bfloat16, torch.float16) and self.fp8_dtype == torch.float8_e4m3fn
                and self.in_features % 16 == 0 and self.out_features % 16 == 0 and scaled_mm_supported(x.device))

    def _quantized_input(self, x: torch.Tensor, x2: torch.Tensor):
        """(x_fp8 [M, K], scale) of this layer's input; per token through the fused kernel, reused
        when the previous layer quantised the very same tensor."""
        if not self.per_channel:
            xin = F.gelu(x2, approximate="tanh") if self.input_gelu else x2
            return quantize_activation(xin, self.fp8_dtype, per_token=False)
        if not self.share_input_quant:
            return quantize_rows_fp8(x2, self.fp8_dtype, gelu=self.input_gelu)
        key = (self.fp8_dtype, self.input_gelu, tuple(x.shape), x.data_ptr())
        hit = _activation_cache.lookup(x, key)
        if hit is not None:
            return hit
        value = quantize_rows_fp8(x2, self.fp8_dtype, gelu=self.input_gelu)
        _activation_cache.store(x, key, value)
        return value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.compute_dtype)
        if not self._use_scaled_mm(x):
            if self.input_gelu:
                x = F.gelu(x, approximate="tanh")
            return F.linear(x, self.dequantized_weight(), self.bias)
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        xq, sx = self._quantized_input(x, x2)
        sw = self.scale_weight.reshape(1, -1) if self.per_channel else self.scale_weight
        # weight_fp8 [out, in] row-major; .t() is the column-major [in, out] operand _scaled_mm wants
        fused_bias = self.compute_dtype != torch.float32  # rowwise scaling only writes bf16 / fp16
        y = torch._scaled_mm(xq, self.weight_fp8.t(), scale_a=sx, scale_b=sw,
                             bias=self.bias if fused_bias else None,
                             out_dtype=self.compute_dtype if fused_bias else torch.bfloat16, use_fast_accum=True)
        if not fused_bias:
            y = y.float() + self.bias if self.bias is not None else y.float()
        return y.reshape(*shape[:-1], self.out_features)


# ---------------------------------------------------------------------------------------------
# whole-model helpers
# ---------------------------------------------------------------------------------------------
def quantizable_linear_names(model: nn.Module, skip: Iterable[str] = ()) -> list[str]:
    """Names of the Linear layers `quantize_linear_weights` would replace. `skip`: regexes (re.search)."""
    skip = [re.compile(s) for s in skip]
    return [name for name, mod in model.named_modules()
            if isinstance(mod, nn.Linear) and QUANTIZABLE.match(name) and not any(s.search(name) for s in skip)]


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, module)


def fuse_ffn_gelu(model: nn.Module) -> int:
    """Move each FFN's tanh GELU into its second Linear's quantisation pass; returns the count.

    Only where ffn = Sequential(FP8Linear, GELU(tanh), FP8Linear): with an nn.Linear first layer
    GridDiT runs the GELU in that matmul's epilogue and calls ffn[2] itself, so it must stay as is."""
    count = 0
    for mod in model.modules():
        if (isinstance(mod, nn.Sequential) and len(mod) == 3 and isinstance(mod[0], FP8Linear)
                and isinstance(mod[1], nn.GELU) and mod[1].approximate == "tanh" and isinstance(mod[2], FP8Linear)
                and not mod[2].input_gelu):
            mod[1] = nn.Identity()
            mod[2].input_gelu = True
            count += 1
    return count


def quantize_linear_weights(model: nn.Module, dtype=torch.float8_e4m3fn, scaling: str = "per_channel",
                            skip: Iterable[str] = (), matmul: str = "auto", fuse_gelu: bool = True) -> list[str]:
    """Replace the block Linear layers of a GridDiT by FP8Linear in place; returns the replaced names.

    The compute dtype of each layer is its current weight dtype (bf16 for a bf16 model). Works on the
    meta device too (the loader quantises a meta model, then loads fp8 tensors into it).
    Call it before `enable_block_swap` (block swap hooks the modules present when it is enabled).
    `fuse_gelu`: see `fuse_ffn_gelu` (same output up to rounding, one pass less per FFN)."""
    _check_dtype(dtype)
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {SCALINGS}, got {scaling!r}")
    if matmul not in MATMUL_MODES:
        raise ValueError(f"matmul must be one of {MATMUL_MODES}, got {matmul!r}")
    names = quantizable_linear_names(model, skip)
    for name in names:
        layer = FP8Linear.from_linear(model.get_submodule(name), dtype, scaling)
        layer.matmul = matmul
        layer.share_input_quant = bool(SHARED_INPUT.search(name))
        _set_submodule(model, name, layer)
    if fuse_gelu:
        fuse_ffn_gelu(model)
    return names


def set_fp8_matmul(model: nn.Module, mode: str) -> None:
    """Choose the FP8Linear path for the whole model: "auto", "dequant" or "scaled_mm"."""
    if mode not in MATMUL_MODES:
        raise ValueError(f"fp8 matmul mode must be one of {MATMUL_MODES}, got {mode!r}")
    for mod in model.modules():
        if isinstance(mod, FP8Linear):
            mod.matmul = mode


def dequantize_model(model: nn.Module) -> int:
    """Undo quantize_linear_weights: FP8Linear -> nn.Linear in the compute dtype. Returns the count."""
    names = [n for n, m in model.named_modules() if isinstance(m, FP8Linear)]
    for name in names:
        q = model.get_submodule(name)
        lin = nn.Linear(q.in_features, q.out_features, bias=q.bias is not None, device="meta")
        lin.weight = nn.Parameter(q.dequantized_weight(), requires_grad=False)
        if q.bias is not None:
            lin.bias = nn.Parameter(q.bias.detach(), requires_grad=False)
        _set_submodule(model, name, lin)
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        if q.input_gelu:  # undo fuse_ffn_gelu: the GELU goes back between the two Linears
            if not (isinstance(parent, nn.Sequential) and child == "2" and isinstance(parent[1], nn.Identity)):
                raise RuntimeError(f"{name}: an input-GELU FP8Linear outside an FFN Sequential; cannot restore the GELU")
            parent[1] = nn.GELU(approximate="tanh")
    return len(names)


# ---------------------------------------------------------------------------------------------
# files that are already fp8
# ---------------------------------------------------------------------------------------------
def split_fp8_scales(sd: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """(state dict without the quantisation bookkeeping keys, {"<layer>.weight": scale}).

    Input scales (`scale_input` / `input_scale`) are static activation scales for fp8 matmuls; camgrid
    computes activation scales per token instead, so they are dropped."""
    out, scales = {}, {}
    for k, v in sd.items():
        if k in _MARKER_KEYS or k.endswith(_DROPPED_SUFFIXES):
            continue
        suffix = next((s for s in _WEIGHT_SCALE_SUFFIXES if k.endswith(s)), None)
        if suffix is not None:
            scales[k[: -len(suffix)] + ".weight"] = v
            continue
        out[k] = v
    return out, scales


def has_fp8_weights(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(getattr(v, "dtype", None) in FP8_DTYPES for v in sd.values())


def to_fp8_entry(weight: torch.Tensor, scale: torch.Tensor | None, dtype=torch.float8_e4m3fn,
                 scaling: str = "per_channel") -> tuple[torch.Tensor, torch.Tensor]:
    """(fp8 weight, float32 scale) for one layer of a file: fp8 tensors are kept as stored (with their
    scale, 1 when the file has none); higher-precision ones are quantised now."""
    if weight.dtype in FP8_DTYPES:
        s = torch.ones(()) if scale is None else scale.float().reshape(-1)
        return weight, (s.reshape(()) if s.numel() == 1 else s)
    if scale is not None:
        raise ValueError("a scale was given for a weight that is not fp8")
    return quantize_weight(weight, dtype, scaling)
