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
- `claims`:      the pre-registered rule for what a comparison against independent may claim.
- `demo`:        `python -m camgrid demo --out DIR`: the README's main job, on CPU (the few-step student).
- `demo_seeds`:  the demo's verdicts for seeds 0-4, recorded for the tests.
Few-step student and measurements (issue 13 item 4, issue 15):
- `student`:     the student: LoRA + deltas on the teacher DiT, Kijai-layout export, its 4-step schedule.
- `distill`:     `python -m camgrid.train.distill`: trajectory-segment distillation of the teacher.
- `nvs`:         novel-view synthesis against ground truth (view 0 given).
- `tables`:      `python -m camgrid.train.tables`: steps x mode and NVS tables on held-out scenes.
"""
from .builtin import BUILTIN_NAME, TinyGridModel, builtin_available, load_builtin  # noqa: E402

__all__ = ["BUILTIN_NAME", "TinyGridModel", "builtin_available", "load_builtin"]
