"""The umT5-XXL text encoder from the files people have, as transformers' `UMT5EncoderModel`.

Accepted:
  - ComfyUI single files (Comfy-Org's Wan2.1 repackaged `umt5_xxl_fp16.safetensors` and
    `umt5_xxl_fp8_e4m3fn_scaled.safetensors`; core Load CLIP, type wan): transformers' own T5 names, which
    ComfyUI's comfy/text_encoders/t5.py keeps: `shared.weight`, `encoder.block.N.layer.0.SelfAttention.{q,k,v,o,
    relative_attention_bias}`, `encoder.block.N.layer.0.layer_norm`, `encoder.block.N.layer.1.DenseReluDense.
    {wi_0,wi_1,wo}`, `encoder.block.N.layer.1.layer_norm`, `encoder.final_layer_norm` (umT5: a relative
    attention bias in every block). They also carry the tokenizer as a uint8 tensor `spiece_model`
    (model/components/tokenizer.py reads it). The fp8 "scaled" file stores the block Linear weights as
    float8_e4m3fn with a float32 `<layer>.scale_weight` (w = fp8 * scale), a `scaled_fp8` marker tensor and
    optional `<layer>.scale_input`; ComfyUI's newer format spells them `weight_scale` / `input_scale`;
  - Wan's own layout (Wan-AI `models_t5_umt5-xxl-enc-bf16.pth`, Kijai `umt5-xxl-enc-bf16.safetensors`):
    `token_embedding`, `blocks.N.{norm1, attn.{q,k,v,o}, pos_embedding.embedding, norm2, ffn.gate.0, ffn.fc1,
    ffn.fc2}`, `norm` (ffn: fc1(x) * gelu(gate(x)), so gate.0 -> wi_0, fc1 -> wi_1, fc2 -> wo);
  - a transformers folder (`text_encoder/` of a Wan2.1 diffusers repository, or google/umt5-xxl).

The config (vocabulary, width, heads, layers, FFN width, buckets) is read off the shapes. The encoder runs in
bfloat16 by default (fp32 umT5-XXL is ~23 GB, bf16 ~11 GB): fp8 weights are dequantised with their scales;
`fp8=True` keeps the block Linear weights in fp8 instead (model/fp8.py FP8Linear, dequantised per matmul: ~6 GB).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence, Union

import torch

from ..checks import InputError
from ..fp8 import FP8Linear, dequantize_weight, split_fp8_scales, to_fp8_entry
from ..weights_io import CheckpointError, check_finite, check_layout, open_weights, problem_list
from .kinds import folder_config_value, require_kind

PathLike = Union[str, Path]
TEXT_LENGTH = 512          # Wan's text length: prompts are cut / padded to it
TOKENIZER_KEY = "spiece_model"
# keys a text-encoder file may carry besides the encoder's weights (tokenizer, quantisation markers, the tied
# embedding copy, a decoder when a whole seq2seq model was saved)
_EXTRA = re.compile(r"^(spiece_model|scaled_fp8|encoder\.embed_tokens\.weight|decoder\..*|lm_head\..*)$")
_WAN_RENAMES = [
    (r"^token_embedding\.", "shared."),
    (r"^norm\.", "encoder.final_layer_norm."),
    (r"^blocks\.(\d+)\.norm1\.", r"encoder.block.\1.layer.0.layer_norm."),
    (r"^blocks\.(\d+)\.attn\.([qkvo])\.", r"encoder.block.\1.layer.0.SelfAttention.\2."),
    (r"^blocks\.(\d+)\.pos_embedding\.embedding\.", r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias."),
    (r"^blocks\.(\d+)\.norm2\.", r"encoder.block.\1.layer.1.layer_norm."),
    (r"^blocks\.(\d+)\.ffn\.gate\.0\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_0."),
    (r"^blocks\.(\d+)\.ffn\.fc1\.", r"encoder.block.\1.layer.1.DenseReluDense.wi_1."),
    (r"^blocks\.(\d+)\.ffn\.fc2\.", r"encoder.block.\1.layer.1.DenseReluDense.wo."),
]
_LINEAR = re.compile(r"^encoder\.block\.\d+\.layer\.\d\.(SelfAttention\.[qkvo]|DenseReluDense\.(wi_0|wi_1|wo))$")


def hf_names(keys, kind: str) -> dict:
    """{file key: transformers UMT5EncoderModel key} for the encoder weights (extras and fp8 scales left out)."""
    out = {}
    for key in keys:
        new = key
        if kind == "umt5_wan":
            for pattern, repl in _WAN_RENAMES:
                new = re.sub(pattern, repl, new)
        if not _EXTRA.match(new):
            out[key] = new
    return out


def infer_config(name: str, shapes: dict):
    """UMT5Config from the shapes of a state dict in transformers names."""
    from transformers import UMT5Config   # lazy: transformers takes seconds to import

    def shape(key):
        if key not in shapes:
            raise CheckpointError(f"{name}: not a umT5 encoder: key {key!r} is missing")
        return tuple(shapes[key])

    vocab, d_model = shape("shared.weight")
    buckets, heads = shape("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight")
    inner = shape("encoder.block.0.layer.0.SelfAttention.q.weight")[0]
    layers = len({k.split(".")[2] for k in shapes if k.startswith("encoder.block.")})
    if heads < 1 or inner % heads:
        raise CheckpointError(f"{name}: attention width {inner} does not split into {heads} heads; the file is damaged")
    return UMT5Config(vocab_size=vocab, d_model=d_model, d_kv=inner // heads, num_heads=heads, num_layers=layers,
                      d_ff=shape("encoder.block.0.layer.1.DenseReluDense.wi_0.weight")[0],
                      relative_attention_num_buckets=buckets, relative_attention_max_distance=128,
                      feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, pad_token_id=0, eos_token_id=1,
                      tie_word_embeddings=False)


def _check_keys(name: str, model, names: dict, shapes: dict) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "encoder.embed_tokens.weight"}
    got = {new: tuple(shapes[new]) for new in names.values()}
    check_layout(name, expected, got, "a umT5 encoder", "the file is damaged or another text encoder")


def _fp8_layers(model, names) -> None:
    """Block Linear layers -> FP8Linear (dequantised per matmul: the text encoder's numerics stay those of
    its bf16 weights, without fp8 activations)."""
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent, linear = model.get_submodule(parent_name), model.get_submodule(name)
        with torch.device("meta"):
            layer = FP8Linear(linear.in_features, linear.out_features, bias=False, compute_dtype=linear.weight.dtype)
        layer.matmul = "dequant"
        setattr(parent, child, layer)


def load_umt5(path: PathLike, device="cpu", dtype: torch.dtype = torch.bfloat16, fp8: bool = False):
    """A umT5 file (ComfyUI or Wan layout, fp16/bf16/fp32/scaled fp8) or transformers folder -> UMT5EncoderModel
    in eval mode without gradients, computing in `dtype`."""
    from transformers import UMT5EncoderModel   # lazy: transformers takes seconds to import
    path = Path(path)
    if path.is_dir():
        if fp8:
            raise InputError("fp8 storage of the text encoder needs a single file (e.g. umt5_xxl_fp16.safetensors)")
        model = UMT5EncoderModel.from_pretrained(str(path), torch_dtype=dtype)
        return model.to(device).eval().requires_grad_(False)
    with open_weights(path, what="text-encoder file") as weights:
        kind = require_kind(weights, ("umt5", "umt5_wan"), "--text-encoder")
        kept, scales = split_fp8_scales({k: k for k in weights.infos})   # scales: "<layer>.weight" -> scale key
        names = hf_names(kept, kind)
        shapes = {new: weights.infos[old].shape for old, new in names.items()}
        with torch.device("meta"):
            model = UMT5EncoderModel(infer_config(weights.name, shapes)).to(dtype)
        _check_keys(weights.name, model, names, shapes)
        linears = sorted({new[: -len(".weight")] for new in names.values() if _LINEAR.match(new[: -len(".weight")])})
        if fp8:
            _fp8_layers(model, linears)
        state = {}
        for old, new in names.items():
            stored, scale_key = weights.tensor(old), scales.get(old)
            scale = weights.tensor(scale_key) if scale_key else None
            layer = new[: -len(".weight")]
            if fp8 and layer in linears:
                w, s = to_fp8_entry(stored, scale)
                state[layer + ".weight"], state[layer + ".scale_weight"] = w.to(device), s.to(device)
                check_finite(weights.name, old, state[layer + ".scale_weight"])
                continue
            value = dequantize_weight(stored, scale, dtype) if stored.dtype in (torch.float8_e4m3fn, torch.float8_e5m2) \
                else stored.to(dtype)
            state[new] = value.to(device)
            check_finite(weights.name, old, state[new], stored)
    model.load_state_dict(state, strict=False, assign=True)
    model.encoder.embed_tokens = model.shared   # the tied input embedding
    left = [n for n, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if left:
        raise CheckpointError(f"{path.name}: weights missing after loading: {problem_list(left, 4)}")
    return model.eval().requires_grad_(False)


def describe_umt5(path: PathLike) -> dict:
    """{"d_model", "layout", "has_tokenizer"} from a file's header or a folder's config.json."""
    path = Path(path)
    if path.is_dir():
        d_model = folder_config_value(path, "d_model", "--text-encoder",
                                      "pass a transformers folder or the single umT5 file")
        return {"d_model": d_model, "layout": "transformers folder", "has_tokenizer": False}
    with open_weights(path, what="text-encoder file") as weights:
        kind = require_kind(weights, ("umt5", "umt5_wan"), "--text-encoder")
        kept, _ = split_fp8_scales({k: k for k in weights.infos})
        names = hf_names(kept, kind)
        shared = next((weights.infos[old].shape for old, new in names.items() if new == "shared.weight"), None)
        if shared is None or len(shared) != 2:
            raise CheckpointError(f"{weights.name}: not a umT5 encoder: no 2-D token embedding")
        layout = "ComfyUI / transformers names" if kind == "umt5" else "Wan names"
        return {"d_model": int(shared[1]), "layout": layout, "has_tokenizer": TOKENIZER_KEY in weights.infos}


@torch.no_grad()
def encode_prompts(encoder, tokenizer, prompts: Union[str, Sequence[str]], device,
                   length: int = TEXT_LENGTH) -> torch.Tensor:
    """Prompts -> umT5 features [B, length, d_model] float32, zero at padding (as Wan pads its context).

    The encoder runs on the longest prompt's tokens only: with the attention mask, padding changes nothing
    in the other positions, and it is most of the 512."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    ids, mask = tokenizer(prompts, length)
    used = max(1, int(mask.sum(1).max()))
    ids, mask = ids[:, :used].to(device), mask[:, :used].to(device)
    feats = encoder(input_ids=ids, attention_mask=mask).last_hidden_state.float() * mask[..., None]
    out = torch.zeros(len(prompts), length, feats.shape[-1], device=feats.device)
    out[:, :used] = feats
    return out
