"""Training soft sync on a real Wan2.1-family DiT: `python -m camgrid train --dit FILE --data DIR ...`.

- `cli`:           the --dit options of the `train` subcommand -> `config.RealTrainConfig`.
- `config`:        every option of a run, checked before anything loads.
- `run`:           one run: data -> latent cache -> DiT -> training -> sync_weights.safetensors + lora.safetensors.
- `latent_cache`:  the one-time cache: videos through the Wan VAE, captions through umT5, safetensors shards.
- `cached_source`: training batches from the cache (a train/sources.py GridSource).
- `model_setup`:   the DiT loaded for training, sync layers + LoRA attached, the rest frozen.
- `lora`:          the trainable LoRA (forward hooks), saved in the Kijai / lightx2v layout apply_lora reads.
- `loop`:          the optimisation loop (the shared train/loop.py pieces, plus multi-process agreement).
- `distributed`:   torchrun processes, DDP / FSDP.
"""
