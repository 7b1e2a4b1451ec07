"""The Wan2.1 pipeline's other components — VAE, umT5 text encoder, tokenizer — from the files people have.

    vae = load_wan_vae("wan_2.1_vae.safetensors", device)                   # or a diffusers vae/ folder
    encoder = load_umt5("umt5_xxl_fp8_e4m3fn_scaled.safetensors", device)   # bf16; fp8=True keeps fp8 weights
    tokenizer = load_tokenizer("umt5_xxl_fp16.safetensors")                  # ComfyUI files carry it
    context = encode_prompts(encoder, tokenizer, ["a red fox"], device)      # [1, 512, 4096], zero padding
    latent = encode_frames(vae, frames, device)                              # [1, 16, T, H/8, W/8], normalised

Modules: `kinds` (what a file is, from its keys: refuses a file passed in the wrong place), `wan_vae`,
`umt5`, `tokenizer`. model/pipeline.py builds on these; so does the latent cache of train/real/.
"""
from .kinds import file_kind, require_kind
from .tokenizer import SentencePieceTokenizer, TransformersTokenizer, clean_prompt, find_tokenizer, load_tokenizer
from .umt5 import TEXT_LENGTH, describe_umt5, encode_prompts, load_umt5
from .wan_vae import describe_wan_vae, encode_frames, latent_stats, load_wan_vae

__all__ = ["file_kind", "require_kind", "SentencePieceTokenizer", "TransformersTokenizer", "clean_prompt",
           "find_tokenizer", "load_tokenizer", "TEXT_LENGTH", "describe_umt5", "encode_prompts", "load_umt5",
           "describe_wan_vae", "encode_frames", "latent_stats", "load_wan_vae"]
