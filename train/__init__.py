"""Training on synthetic multi-camera scenes, and the tiny built-in model trained with it.

- `text`:        a tiny text encoder for the synthetic vocabulary ("a red sphere and a blue box").
- `autoencoder`: a tiny video autoencoder (4x spatial, 4x temporal, causal first frame like Wan's VAE).
- `builtin`:     the shipped model ("camgrid-tiny (built-in)"): `load_builtin()`, `TinyGridModel.generate`.
Training (`python -m camgrid train`):
- `cli`:         the subcommand: options -> `config.TrainConfig` -> `trainer.Trainer`, then the eval.
- `config`:      `TrainConfig`, the stage names.
- `trainer`:     one run: the modules, the stages in order, the files after each stage, --resume.
- `stages`:      the five stages (ae, video, syncam, hard, soft): what trains, on what, with which loss.
- `loop`:        the optimisation loop every stage runs (optimiser, schedule, logging, checkpoints).
- `objective`:   the flow-matching loss.
- `sources`:     where batches come from: the `GridSource` interface, synthetic scenes, tensors.
- `data`:        a bank of rendered training samples, filled by background worker processes.
- `state`:       checkpoint.pt and progress.json (what --resume reads).
- `losslog`:     loss.csv.
- `evaluate`:    `python -m camgrid eval`: the multi-view consistency table per grid mode.
- `demo`:        `python -m camgrid demo --out DIR`: the README's main job, on CPU.
"""
from .builtin import BUILTIN_NAME, TinyGridModel, builtin_available, load_builtin  # noqa: E402

__all__ = ["BUILTIN_NAME", "TinyGridModel", "builtin_available", "load_builtin"]
