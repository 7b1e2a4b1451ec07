"""Training on synthetic multi-camera scenes, and the tiny built-in model trained with it.

- `text`:        a tiny text encoder for the synthetic vocabulary ("a red sphere and a blue box").
- `autoencoder`: a tiny video autoencoder (4x spatial, 4x temporal, causal first frame like Wan's VAE).
- `data`:        a bank of rendered training samples, filled by background worker processes.
- `trainer`:     `python -m camgrid train`: AE, single-view DiT, SynCamMaster modules, sync layers.
- `builtin`:     the shipped model ("camgrid-tiny (built-in)"): `load_builtin()`, `TinyGridModel.generate`.
- `evaluate`:    `python -m camgrid eval`: the multi-view consistency table per grid mode.
- `demo`:        `python -m camgrid demo --out DIR`: the README's main job, on CPU.
"""
from .builtin import BUILTIN_NAME, TinyGridModel, builtin_available, load_builtin  # noqa: E402

__all__ = ["BUILTIN_NAME", "TinyGridModel", "builtin_available", "load_builtin"]
