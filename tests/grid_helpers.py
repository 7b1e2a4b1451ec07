"""Shared test helpers (import as `from grid_helpers import ...`): tiny random DiTs, the reference-data folder.

Not in conftest.py: tests/host has its own conftest, and two modules named `conftest` shadow each other."""
from pathlib import Path

import torch

from camgrid.model import GridDiT, get_config

REFERENCE_DATA = Path(__file__).resolve().parents[2] / "shared" / "reference-data"


def tiny_config(variant="wan", **overrides):
    base = dict(dim=64, ffn_dim=128, num_heads=2, num_layers=2, text_dim=32, freq_dim=32, variant=variant)
    base.update(overrides)
    return get_config("tiny", **base)


def randomize(model: GridDiT, seed=0, scale=0.1, zero_new_modules=False):
    """Fill every parameter with random values (norm weights around 1), deterministic from `seed`.

    zero_new_modules reproduces the official SynCamMaster/ReCamMaster initialisation of the modules
    added to Wan (zero projector and camera encoder)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g) * scale
            if "norm" in name and name.endswith("weight"):
                r = r + 1.0
            if zero_new_modules and (".projector." in name or ".cam_encoder." in name):
                r = torch.zeros_like(r)
            p.copy_(r.to(p.dtype))
    return model


def tiny_model(variant="wan", seed=0, zero_new_modules=False, **overrides):
    return randomize(GridDiT(tiny_config(variant, **overrides)).eval(), seed, zero_new_modules=zero_new_modules)


def load_benchmark(name: str):
    """benchmarks/<name>.py imported as a module (the benchmarks are scripts, not a package)."""
    import importlib.util
    import sys
    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
