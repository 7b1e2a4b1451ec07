"""Bitwise fingerprint of a short fixed-seed training run through every stage (CPU), for trainer refactors
that must not change behaviour: every logged loss, and a hash of every trained module and model file.

Run from a checkout (the same way on the old and the new code, then diff the outputs):
    python benchmarks/trainer_fingerprint.py [--steps 25]
"""
import argparse
import csv
import hashlib
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402  (this checkout as `camgrid`, whatever is installed)

use_this_checkout()

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from camgrid.train.trainer import TrainConfig, Trainer  # noqa: E402

MICRO = dict(device="cpu", height=16, width=32, frames=5, views=2, samples=6, workers=0, dim=32, ffn_dim=64,
             num_heads=2, num_layers=1, text_dim=32, latent_dim=4, ae_width=8, sync_rank=8, batch=2,
             time_budget=1e9, checkpoint_every=10 ** 9, progress_bar=False)


def digest(tensors: dict) -> str:
    h = hashlib.sha256()
    for k, v in sorted(tensors.items()):
        h.update(k.encode())
        h.update(v.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:32]


p = argparse.ArgumentParser()
p.add_argument("--steps", type=int, default=25)
args = p.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
out = Path(tempfile.mkdtemp())
trainer = Trainer(TrainConfig(**MICRO, out=str(out), steps=args.steps), log=lambda *_: None)
trainer.run()
with open(out / "loss.csv", newline="") as f:
    for row in csv.reader(f):
        print(*row[:3])
models = getattr(trainer, "models", trainer)   # the trainer before the split kept dit/text/ae itself
for name in ("ae", "text", "dit"):
    print(name, digest(getattr(models, name).state_dict()))
for f in sorted(out.glob("*.safetensors")):
    print(f.name, digest(load_file(str(f))))
