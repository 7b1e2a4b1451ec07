"""A tiny text encoder for the synthetic world's captions ("a red sphere, a green box and a blue sphere").

The real pipeline conditions on umT5 features [B, 512, 4096]; the built-in model uses this instead:
word embedding + learned positions + a 2-layer transformer -> [B, L, text_dim] with L = MAX_TOKENS,
padding positions zeroed exactly as Wan zeroes umT5's padding. The empty caption is all zeros: the
unconditional branch for classifier-free guidance (trained by caption dropout). It is trained jointly
with the single-view DiT (stage a) and frozen afterwards.

Binding (`phrases=True`): without it the encoder is close to a bag of words. Its attention sums over the other
words, and the learned positions stay small (rms 0.025 in v2.1, the words' 1.0), so in every model trained
without it "a red sphere and a blue box" and "a red box and a blue sphere" give the colour words the same features
(to 0.002, relative), and the DiT draws the two captions alike (swapping the shapes moves the grid 1-2 % as far as
changing one colour: benchmarks/tiny_caption_response.py). A reader trained only to find a colour's shape stays
at chance through it (benchmarks/tiny_text_binding_probe.py). With phrases every word also gets its object
phrase's words ("a red sphere": red + sphere, through a learned projection): the colour word knows its shape
from the start, and the same reader finds it exactly.
"""
from __future__ import annotations

import re
from typing import Sequence, Union

import torch
import torch.nn as nn

from ..synth.scenes import VOCABULARY

PAD, UNK = 0, 1
# the caption of the floor alone (the video stage's floor images, train/floor_images.py): its own word, so that the
# empty caption keeps meaning "anything" for guidance. Appended after the scenes' words, so the ids of files
# written before it stay as they were; such files' encoders read it as <unk>, as they always did (below)
FLOOR_WORD = "floor"
WORDS = ("<pad>", "<unk>", *VOCABULARY, FLOOR_WORD)
WORD_INDEX = {w: i for i, w in enumerate(WORDS)}
PHRASE_START = WORD_INDEX["a"]                      # every object phrase of the grammar starts with "a"
NOT_CONTENT = (PAD, PHRASE_START, WORD_INDEX["and"])   # words a phrase's summary leaves out
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
    def __init__(self, text_dim: int = 64, num_layers: int = 2, num_heads: int = 4, max_tokens: int = MAX_TOKENS,
                 phrases: bool = False):
        super().__init__()
        self.text_dim, self.max_tokens, self.phrases = int(text_dim), int(max_tokens), bool(phrases)
        self.words = nn.Embedding(len(WORDS), text_dim)
        self.positions = nn.Parameter(torch.randn(1, max_tokens, text_dim) * 0.02)
        layer = nn.TransformerEncoderLayer(text_dim, num_heads, 4 * text_dim, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(text_dim)
        if self.phrases:
            self.phrase = nn.Linear(text_dim, text_dim, bias=False)

    def config(self) -> dict:
        config = {"text_dim": self.text_dim, "num_layers": len(self.encoder.layers),
                  "num_heads": self.encoder.layers[0].self_attn.num_heads, "max_tokens": self.max_tokens}
        if self.phrases:   # only when on: the files of encoders without it stay as they were
            config["phrases"] = True
        return config

    @property
    def device(self) -> torch.device:
        return self.words.weight.device

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids [B, L] -> features [B, L, text_dim] float32, zero at padding (an empty caption is all zeros)."""
        ids = ids.to(self.device)
        mask = ids != PAD
        words = self.words(ids)
        h = words + self.positions[:, :ids.shape[1]]
        if self.phrases:
            h = h + self.phrase(phrase_sums(words, ids))
        # a fully padded row would make attention NaN: let its positions attend to themselves, then zero them
        empty = ~mask.any(1, keepdim=True)
        h = self.norm(self.encoder(h, src_key_padding_mask=~(mask | empty)))
        return h * mask[..., None].to(h.dtype)

    def encode(self, captions: Union[str, Sequence[str]]) -> torch.Tensor:
        return self(tokenize(captions, self.max_tokens))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # files from before words were appended (FLOOR_WORD): the new words start as <unk>'s row, so the loaded
        # encoder reads them exactly as the file's did
        key = prefix + "words.weight"
        table = state_dict.get(key)
        if table is not None and table.ndim == 2 and UNK < table.shape[0] < len(WORDS):
            extra = table[UNK:UNK + 1].expand(len(WORDS) - table.shape[0], -1)
            state_dict[key] = torch.cat([table, extra])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def phrase_sums(words: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """For every position, the sum of the content words' embeddings (colours, shapes, unknown words) of its
    object phrase: words [B, L, D], ids [B, L] -> [B, L, D]. A phrase runs from an "a" to the next one, so
    "a red sphere, a blue box" sums red + sphere over its first three words and blue + box over the rest."""
    phrase = torch.cumsum(ids == PHRASE_START, dim=1)                          # [B, L], 0 before the first "a"
    content = ~torch.isin(ids, torch.tensor(NOT_CONTENT, device=ids.device))
    index = phrase[..., None].expand(-1, -1, words.shape[-1])
    sums = torch.zeros(words.shape[0], ids.shape[1] + 1, words.shape[-1], dtype=words.dtype, device=words.device)
    sums.scatter_add_(1, index, words * content[..., None].to(words.dtype))
    return sums.gather(1, index)
