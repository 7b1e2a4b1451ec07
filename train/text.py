"""A tiny text encoder for the synthetic world's captions ("a red sphere, a green box and a blue sphere").

The real pipeline conditions on umT5 features [B, 512, 4096]; the built-in model uses this instead:
word embedding + learned positions + a 2-layer transformer -> [B, L, text_dim] with L = MAX_TOKENS,
padding positions zeroed exactly as Wan zeroes umT5's padding. The empty caption is all zeros: the
unconditional branch for classifier-free guidance (trained by caption dropout). It is trained jointly
with the single-view DiT (stage a) and frozen afterwards.
"""
from __future__ import annotations

import re
from typing import Sequence, Union

import torch
import torch.nn as nn

from ..synth.scenes import VOCABULARY

PAD, UNK = 0, 1
WORDS = ("<pad>", "<unk>", *VOCABULARY)
WORD_INDEX = {w: i for i, w in enumerate(WORDS)}
MAX_TOKENS = 16   # 4 objects = "a c s a c s a c s and a c s" = 13 words


def tokenize(captions: Union[str, Sequence[str]], max_tokens: int = MAX_TOKENS) -> torch.Tensor:
    """Captions -> word ids int64 [B, max_tokens] (lower case, punctuation dropped, unknown words -> <unk>)."""
    captions = [captions] if isinstance(captions, str) else list(captions)
    ids = torch.full((len(captions), max_tokens), PAD, dtype=torch.long)
    for row, caption in enumerate(captions):
        words = re.findall(r"[a-z]+", str(caption).lower())[:max_tokens]
        ids[row, :len(words)] = torch.tensor([WORD_INDEX.get(w, UNK) for w in words], dtype=torch.long)
    return ids


class TinyTextEncoder(nn.Module):
    def __init__(self, text_dim: int = 64, num_layers: int = 2, num_heads: int = 4, max_tokens: int = MAX_TOKENS):
        super().__init__()
        self.text_dim, self.max_tokens = int(text_dim), int(max_tokens)
        self.words = nn.Embedding(len(WORDS), text_dim)
        self.positions = nn.Parameter(torch.randn(1, max_tokens, text_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(text_dim, num_heads, 4 * text_dim, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(text_dim)

    def config(self) -> dict:
        return {"text_dim": self.text_dim, "num_layers": len(self.encoder.layers),
                "num_heads": self.encoder.layers[0].self_attn.num_heads, "max_tokens": self.max_tokens}

    @property
    def device(self) -> torch.device:
        return self.words.weight.device

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, L] -> features [B, L, text_dim] float32, zero at padding (an empty caption is all zeros)."""
        ids = ids.to(self.device)
        mask = ids != PAD
        h = self.words(ids) + self.positions[:, :ids.shape[1]]
        # a fully padded row would make attention NaN: let its positions attend to themselves, then zero them
        empty = ~mask.any(1, keepdim=True)
        h = self.norm(self.encoder(h, src_key_padding_mask=~(mask | empty)))
        return h * mask[..., None].to(h.dtype)

    def encode(self, captions: Union[str, Sequence[str]]) -> torch.Tensor:
        return self(tokenize(captions, self.max_tokens))
