"""`python -m camgrid train --dit FILE --data DIR ...`: the options of a real-DiT run (train/cli.py adds them
to the `train` subcommand and hands a run with --dit here).

Options the built-in model's training shares (--out, --device, --steps, --time-budget, --batch, --height,
--width, --frames, --views, --lr, --shift, --seed, --checkpoint-every, --resume, --no-progress) keep their
names; their defaults here are a real run's (480x832, 81 frames, 4 views, batch 1, 2000 steps, lr 1e-4,
shift 5), applied where the command line leaves them unset.
"""
from __future__ import annotations

import argparse

from .config import PARALLEL, RealTrainConfig
from .run import run as run_training

SHARED = ("out", "steps", "time_budget", "batch", "height", "width", "frames", "views", "lr", "shift", "seed",
          "checkpoint_every")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = RealTrainConfig.__dataclass_fields__
    g = parser.add_argument_group("training a real DiT (--dit): sync layers + LoRA in two-stream mode")
    g.add_argument("--dit", default=None, help="the DiT to train on: Wan2.1 1.3B / 14B T2V, SynCamMaster or "
                   "ReCamMaster weights (any file CamGrid Model Loader reads)")
    g.add_argument("--data", default=None, help="dataset root in the SynCamVideo / MultiCamVideo layout "
                   "(train/<lens>/scene<N>/videos/camNN.mp4 + cameras/camera_extrinsics.json, captions in "
                   "metadata.csv), or 'synthetic[:SCENES]' for rendered scenes")
    g.add_argument("--cache", default=None, help="latent cache folder (default OUT/latent-cache); alone, without "
                   "--data: train from a cache built before (no VAE / text encoder needed)")
    g.add_argument("--captions", default=None, help="caption file instead of DATA/metadata.csv: CSV file_name,text "
                   "or JSON {\"<lens>/scene<N>\": caption}")
    g.add_argument("--vae", default=None, help="Wan2.1 VAE for the cache: wan_2.1_vae.safetensors or a diffusers folder")
    g.add_argument("--text-encoder", default=None, help="umT5 for the cache: umt5_xxl_fp16.safetensors / "
                   "umt5_xxl_fp8_e4m3fn_scaled.safetensors or a transformers folder")
    g.add_argument("--tokenizer", default=None, help="umT5 tokenizer folder or spiece.model (default: the one "
                   "ComfyUI's umT5 files carry)")
    g.add_argument("--text-fp8", action="store_true", help="keep umT5's weights in fp8 while encoding captions")
    g.add_argument("--cache-views", type=int, default=d["cache_views"].default,
                   help="cameras encoded per scene (0: all); each step draws --views of them")
    g.add_argument("--caption-dropout", type=float, default=d["caption_dropout"].default,
                   help="share of samples trained with the empty caption (classifier-free guidance)")
    g.add_argument("--modes", default=",".join(d["modes"].default), help="two-stream modes the steps take turns "
                   "in: hard,soft (trains the hard gates and the soft layers), or one of them")
    g.add_argument("--sync-rank", type=int, default=d["sync_rank"].default, help="rank of the soft-sync layers")
    g.add_argument("--lora-rank", type=int, default=d["lora_rank"].default, help="LoRA rank on the DiT's block "
                   "Linear layers (0: sync layers only, which learn little on a frozen DiT)")
    g.add_argument("--lora-alpha", type=float, default=None, help="LoRA alpha (default: the rank, scale 1)")
    g.add_argument("--warmup", type=int, default=d["warmup"].default, help="learning-rate warm-up steps")
    g.add_argument("--dtype", default=d["dtype"].default, choices=("bf16", "fp32"), help="the frozen DiT's dtype")
    g.add_argument("--attention", default=None, help="attention backend with a backward pass: sdpa, flash_attn, "
                   "chunked (default: auto)")
    g.add_argument("--row-chunks", type=int, default=0, help="run each block on this many sequences at a time")
    g.add_argument("--ffn-chunk", type=int, default=0, help="run the FFN on this many tokens at a time")
    g.add_argument("--fp8", action="store_true", help="store the frozen block weights in fp8 (half of bf16)")
    g.add_argument("--block-swap", type=int, default=0, help="refused: block swap is inference only")
    g.add_argument("--no-gradient-checkpointing", action="store_true",
                   help="keep every block's activations (faster, far more memory)")
    g.add_argument("--parallel", default=d["parallel"].default, choices=PARALLEL, help="under torchrun: ddp "
                   "(every GPU holds the DiT) or fsdp (the frozen block weights sharded across GPUs, for 14B)")


def config_from_args(args: argparse.Namespace) -> RealTrainConfig:
    d = RealTrainConfig.__dataclass_fields__
    shared = {name: getattr(args, name) if getattr(args, name) is not None else d[name].default for name in SHARED}
    return RealTrainConfig(
        dit=args.dit, device=args.device, data=args.data, cache=args.cache, captions=args.captions, vae=args.vae,
        text_encoder=args.text_encoder, tokenizer=args.tokenizer, text_fp8=args.text_fp8, cache_views=args.cache_views,
        caption_dropout=args.caption_dropout, modes=tuple(m for m in args.modes.split(",") if m),
        sync_rank=args.sync_rank, lora_rank=args.lora_rank, lora_alpha=args.lora_alpha, warmup=args.warmup,
        resume=args.resume, progress_bar=not args.no_progress, dtype=args.dtype,
        attention=None if args.attention in (None, "auto") else args.attention, row_chunks=args.row_chunks,
        ffn_chunk=args.ffn_chunk, fp8=args.fp8, gradient_checkpointing=not args.no_gradient_checkpointing,
        block_swap=args.block_swap, parallel=args.parallel, **shared)


def run(args: argparse.Namespace) -> int:
    run_training(config_from_args(args))
    return 0
