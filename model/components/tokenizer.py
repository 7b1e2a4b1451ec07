"""umT5's tokenizer: google/umt5-xxl's sentencepiece model, from wherever the user has it.

Where it comes from (first that applies):
  1. `tokenizer=` / `--tokenizer`: a tokenizer folder (transformers: tokenizer.json / spiece.model +
     tokenizer_config.json, e.g. the `tokenizer/` folder of a Wan2.1 diffusers repository or the
     `google/umt5-xxl/` folder of Wan-AI's Wan2.1-T2V repositories), a sentencepiece `.model` file, or a
     `.safetensors` file that carries one (below);
  2. the text-encoder file itself: ComfyUI's umT5 files (`umt5_xxl_fp16.safetensors`,
     `umt5_xxl_fp8_e4m3fn_scaled.safetensors`) carry the sentencepiece model as a uint8 tensor named
     `spiece_model` (ComfyUI's comfy/text_encoders/wan.py reads it from there; ComfyUI ships no umT5 tokenizer
     of its own);
  3. a text-encoder folder, or a `tokenizer/` folder beside it.
No download is ever attempted.

Both kinds tokenize the same way (Wan's HuggingfaceTokenizer with clean="whitespace", diffusers'
WanPipeline): HTML entities unescaped, runs of whitespace collapsed; pieces, then </s> (id 1); cut to 511 pieces
+ </s>; padded with <pad> (id 0) to `length`. `tokenizer(prompts, length) -> (ids, mask)`, int64 [B, length].
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from ..checks import InputError
from ..weights_io import open_weights

PathLike = Union[str, Path]
TOKENIZER_KEY = "spiece_model"
_FOLDER_MARKERS = ("tokenizer.json", "spiece.model", "tokenizer_config.json")


def clean_prompt(text: str) -> str:
    """Wan's prompt cleaning: HTML entities unescaped (twice, as Wan does), whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(str(text)))).strip()


class SentencePieceTokenizer:
    """umT5 tokenization straight from the sentencepiece model (bytes of spiece.model)."""

    def __init__(self, model_proto: bytes, source: str = "sentencepiece model"):
        import sentencepiece   # lazy: only this tokenizer needs it
        try:
            self.processor = sentencepiece.SentencePieceProcessor(model_proto=bytes(model_proto))
        except Exception as exc:   # sentencepiece raises RuntimeError / OSError with C++ messages
            raise InputError(f"{source}: not a readable sentencepiece model ({str(exc).strip()[:120]}); "
                             "pass google/umt5-xxl's spiece.model or tokenizer folder as --tokenizer") from None
        self.source = source
        self.eos_id = self.processor.eos_id() if self.processor.eos_id() >= 0 else 1
        self.pad_id = self.processor.pad_id() if self.processor.pad_id() >= 0 else 0

    def __call__(self, prompts: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        ids = torch.full((len(prompts), length), self.pad_id, dtype=torch.long)
        mask = torch.zeros(len(prompts), length, dtype=torch.long)
        for row, prompt in enumerate(prompts):
            pieces = self.processor.encode(clean_prompt(prompt))[: length - 1] + [self.eos_id]
            ids[row, :len(pieces)] = torch.tensor(pieces, dtype=torch.long)
            mask[row, :len(pieces)] = 1
        return ids, mask


class TransformersTokenizer:
    """A transformers tokenizer folder behind the same call."""

    def __init__(self, folder: Path):
        from transformers import AutoTokenizer   # lazy: transformers takes seconds to import
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.source = str(folder)

    @classmethod
    def wrap(cls, tokenizer) -> "TransformersTokenizer":
        """A transformers tokenizer object already loaded (Pipeline(...) built by hand)."""
        self = cls.__new__(cls)
        self.tokenizer, self.source = tokenizer, type(tokenizer).__name__
        return self

    def __call__(self, prompts: Sequence[str], length: int) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.tokenizer([clean_prompt(p) for p in prompts], padding="max_length", max_length=length,
                             truncation=True, add_special_tokens=True, return_attention_mask=True,
                             return_tensors="pt")
        return out.input_ids.long(), out.attention_mask.long()


def _embedded_model(path: Path) -> Optional[bytes]:
    """The sentencepiece model a .safetensors file carries under `spiece_model`, or None."""
    if path.suffix.lower() != ".safetensors":
        return None
    with open_weights(path, what="text-encoder file") as weights:
        if TOKENIZER_KEY not in weights.infos:
            return None
        return weights.tensor(TOKENIZER_KEY).to(torch.uint8).numpy().tobytes()


def find_tokenizer(text_encoder: Optional[PathLike] = None, tokenizer: Optional[PathLike] = None) -> str:
    """Where the tokenizer will come from (a description), or an InputError naming the fix. Reads headers only."""
    if tokenizer is not None:
        path = Path(tokenizer)
        if path.is_dir() and any((path / m).is_file() for m in _FOLDER_MARKERS):
            return f"folder {path}"
        if path.is_file() and path.suffix.lower() in (".model", ".safetensors"):
            return f"file {path}"
        raise InputError(f"--tokenizer {str(path)!r}: expected a tokenizer folder (tokenizer.json or spiece.model), "
                         "a sentencepiece .model file, or a .safetensors file that carries 'spiece_model'")
    if text_encoder is not None:
        path = Path(text_encoder)
        if path.is_file():
            with open_weights(path, what="text-encoder file") as weights:
                if TOKENIZER_KEY in weights.infos:
                    return f"{path.name} (embedded '{TOKENIZER_KEY}')"
        for folder in ((path, path.parent / "tokenizer") if path.is_dir() else ()):
            if any((folder / m).is_file() for m in _FOLDER_MARKERS):
                return f"folder {folder}"
    raise InputError("no umT5 tokenizer found: the text-encoder file carries none (ComfyUI's umt5_xxl_*.safetensors "
                     "do) and no tokenizer folder is beside it; pass --tokenizer with google/umt5-xxl's spiece.model "
                     "or tokenizer folder (e.g. 'google/umt5-xxl' of Wan-AI/Wan2.1-T2V-1.3B, or the 'tokenizer' folder "
                     "of Wan-AI/Wan2.1-T2V-1.3B-Diffusers)")


def load_tokenizer(text_encoder: Optional[PathLike] = None, tokenizer: Optional[PathLike] = None):
    """The umT5 tokenizer (see the module docstring for where it is looked for)."""
    find_tokenizer(text_encoder, tokenizer)   # the same rules, with their error messages
    if tokenizer is not None:
        path = Path(tokenizer)
        if path.is_dir():
            return TransformersTokenizer(path)
        if path.suffix.lower() == ".model":
            return SentencePieceTokenizer(path.read_bytes(), path.name)
        return SentencePieceTokenizer(_embedded_model(path), f"{path.name} ({TOKENIZER_KEY})")
    path = Path(text_encoder)
    if path.is_file():
        return SentencePieceTokenizer(_embedded_model(path), f"{path.name} ({TOKENIZER_KEY})")
    folder = path if any((path / m).is_file() for m in _FOLDER_MARKERS) else path.parent / "tokenizer"
    return TransformersTokenizer(folder)
