"""One `camgrid train --dit FILE` run, start to end: data -> latent cache -> DiT -> training -> the two files.

    OUT/sync_weights.safetensors   camgrid sync weights (model/sync.py): CamGrid Model Loader `sync_weights`
                                   (ComfyUI models/camgrid/), `--sync-weights`, load_sync_weights
    OUT/lora.safetensors           the LoRA in the Kijai / lightx2v layout: CamGrid LoRA node (models/loras/),
                                   `--lora`, apply_lora
    OUT/loss.csv, OUT/checkpoint.pt, OUT/progress.json   (train/losslog.py, train/state.py); --resume continues
    OUT/latent-cache/              the latent cache unless --cache names another folder

Steps: (1) `--data synthetic[:N]` renders N synthetic scenes into OUT/synthetic-data in the SynCamVideo layout
(once); (2) `--data DIR` encodes what the cache lacks (train/real/latent_cache.py; every process its share),
then the encoders are freed; (3) the DiT is loaded and made trainable (train/real/model_setup.py) and wrapped
for DDP / FSDP (train/real/distributed.py); (4) the loop (train/real/loop.py); (5) rank 0 writes the files.
"""
from __future__ import annotations

import gc
from pathlib import Path
from types import SimpleNamespace

import torch
from safetensors import safe_open

from ...model.checkpoint import describe
from ...model.checks import InputError, output_folder
from ...model.sync import SyncLayer, save_sync_weights
from ..multicam import MultiCamDataset, write_synthetic_dataset
from ..state import RunFolder
from .cached_source import CachedGridSource
from .config import SYNTHETIC, RealTrainConfig
from .distributed import Dist, wrap
from .latent_cache import CacheSettings, Encoders, build_latent_cache, read_parts, read_settings
from .loop import STAGE, gather_parameters, train
from .model_setup import TrainableDiT, prepare_dit

SYNC_FILE = "sync_weights.safetensors"
LORA_FILE = "lora.safetensors"
SYNTHETIC_FOLDER = "synthetic-data"


def dataset_root(cfg: RealTrainConfig, dist: Dist, log) -> Path:
    """The dataset folder: --data, or the synthetic scenes rendered (once, by rank 0) into OUT/synthetic-data."""
    if not cfg.data.startswith(SYNTHETIC):
        return Path(cfg.data)
    root = Path(cfg.out) / SYNTHETIC_FOLDER
    if dist.main and not (root / "metadata.csv").is_file():
        size = max(cfg.height, cfg.width)   # square, like the published datasets' 1280x1280 videos
        log(f"rendering {cfg.synthetic_scenes} synthetic scenes ({max(cfg.views, 4)} cameras, {cfg.frames} frames, "
            f"{size}x{size}) into {root}")
        write_synthetic_dataset(root, "syncamvideo", scenes=cfg.synthetic_scenes, cameras=max(cfg.views, 4),
                                frames=cfg.frames, height=size, width=size, seed=cfg.seed)
    dist.barrier()
    return root


def fill_cache(cfg: RealTrainConfig, dist: Dist, log) -> None:
    root = dataset_root(cfg, dist, log)
    dataset = MultiCamDataset(root, views=cfg.cache_views, frames=cfg.frames, height=cfg.height, width=cfg.width,
                              seed=cfg.seed, captions=cfg.captions)
    settings = CacheSettings(cfg.frames, cfg.height, cfg.width, cfg.cache_views, cfg.seed, Path(cfg.vae).name,
                             Path(cfg.text_encoder).name)
    build_latent_cache(dataset, cfg.cache_dir, settings,
                       lambda: Encoders(cfg.vae, cfg.text_encoder, cfg.tokenizer, dist.device, cfg.text_fp8),
                       dist.rank, dist.world, dist.barrier, log, cfg.progress_bar)
    gc.collect()
    if dist.device.type == "cuda":
        torch.cuda.empty_cache()   # the encoders are gone: their memory goes back before the DiT loads


def check_cache_fits(cache_dir: Path, config) -> None:
    """The cache's latents and text features have the widths the DiT takes (one shard header read)."""
    entries = read_parts(cache_dir)
    if not entries:
        raise InputError(f"{cache_dir}: the latent cache holds no scene yet: build it with --data DIR --vae FILE "
                         "--text-encoder FILE")
    shard, scene = entries[0]
    with safe_open(str(cache_dir / shard), framework="pt") as f:
        channels = f.get_slice(f"{scene['slot']}.latents").get_shape()[1]
        text_dim = f.get_slice(f"{scene['slot']}.context").get_shape()[-1]
    if channels != config.in_dim or text_dim != config.text_dim:
        raise InputError(f"{cache_dir}: the cache holds {channels}-channel latents and {text_dim}-d text features, the "
                         f"DiT takes {config.in_dim} and {config.text_dim}: build the cache with the Wan2.1 VAE and "
                         "umT5 (or use another --cache folder)")


def save_outputs(cfg: RealTrainConfig, trainable: TrainableDiT, state: dict, out: Path, log) -> dict:
    """Write the sync weights and the LoRA from the gathered trainable state (rank 0)."""
    dit = trainable.dit
    first = dit.blocks[0].sync
    layers = []
    for i in range(dit.config.num_layers):
        layer = SyncLayer(dit.config.dim, cfg.sync_rank, dit.config.eps, hard=first.gate is not None,
                          soft=first.soft is not None)
        prefix = f"dit.blocks.{i}.sync."
        layer.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
        layers.append(layer)
    shadow = SimpleNamespace(blocks=[SimpleNamespace(sync=layer) for layer in layers], config=dit.config)
    paths = {"sync": out / SYNC_FILE}
    save_sync_weights(shadow, paths["sync"])
    if trainable.lora is not None:
        paths["lora"] = out / LORA_FILE
        values = {k[len("lora."):]: v for k, v in state.items() if k.startswith("lora.")}
        trainable.lora.save(paths["lora"], values=values, metadata={"model": dit.config.size_name,
                                                                   "variant": dit.variant})
    else:
        (out / LORA_FILE).unlink(missing_ok=True)
    for path in paths.values():
        log(f"wrote {path}")
    return paths


def run(cfg: RealTrainConfig, log=print) -> dict:
    """Train; returns {"sync": path, "lora": path} (rank 0; other processes get {})."""
    dist = Dist.from_env(cfg.device)
    say = log if dist.main else (lambda *_: None)
    source = None
    try:
        torch.manual_seed(cfg.seed + 1000 * dist.rank)   # each process its own noise and timesteps
        out = output_folder(cfg.out)
        folder = RunFolder(out)
        if cfg.resume and STAGE in folder.finished_stages():
            say(f"{out}: this run has finished; its files are {out / SYNC_FILE} and {out / LORA_FILE}")
            return {}
        if not cfg.resume:
            folder.drop_checkpoint()
        config = describe(cfg.dit)["config"]   # the header only: a bad DiT fails before the cache is built
        if cfg.data is not None:
            fill_cache(cfg, dist, say)
        read_settings(cfg.cache_dir)   # a folder that is no cache fails here, with its own message
        check_cache_fits(cfg.cache_dir, config)
        source = CachedGridSource(cfg.cache_dir, cfg.views, config.variant, dist.device,
                                  seed=cfg.seed * 7919 + dist.rank, caption_dropout=cfg.caption_dropout)
        say(f"training on {len(source)} cached scenes, {cfg.views} views each; {config.variant} DiT "
            f"({config.size_name}), modes {', '.join(cfg.modes)}, LoRA rank {cfg.lora_rank or 'none'}, "
            f"{dist.world} process(es)")
        trainable = prepare_dit(cfg, dist.device)
        model = wrap(trainable, dist, cfg.parallel, unused_parameters=len(cfg.modes) > 1)
        train(cfg, dist, model, trainable.parameter_groups(), source, folder, say)
        state = gather_parameters(model)
        paths = {}
        if dist.main:
            paths = save_outputs(cfg, trainable, state, out, say)
            folder.save_progress([STAGE], cfg)
            folder.drop_checkpoint()
        dist.barrier()
        return paths
    finally:
        if source is not None:
            source.close()
        # The wrapped model can sit in reference cycles (its hooks), and then its communication handles, which
        # hold tensors, are freed only at interpreter shutdown, where freeing a tensor can abort the process
        # (pytorch PR 179291; seen once in the torchrun test: SIGABRT after the files were written). Free them
        # here, while Python is alive and before the process group goes.
        model = trainable = None
        gc.collect()
        dist.close()
