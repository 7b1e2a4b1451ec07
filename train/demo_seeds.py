"""`python -m camgrid.train.demo_seeds`: the demo's comparison for several noise seeds, recorded.

Runs the demo's scoring (train/demo.py `score_modes`: the default model, grids, caption and rig) for each seed
and writes benchmarks/tiny_demo_seeds.json: every grid's reprojection errors per seed and mode, the verdicts of
train/claims.py, the demo's settings, and the SHA-256 of the model files it ran; and the same for its novel-view
check (train/demo_novel_views.py: per scene, the objects' distances from their true places and copying view 0's).
tests/test_claims.py recomputes the verdicts from the recorded errors with the current rule, checks that no
comparison's direction changes between the seeds, and that the record belongs to the shipped files (re-record
after retraining or distilling).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

from ..model.files import atomic_write
from .builtin import load_builtin, model_fingerprint
from .claims import claims
from .demo import DEMO_CAPTION, DEMO_GRIDS, check_scenes, demo_rig, load_demo_model, novel_views, score_modes
from .demo_novel_views import NOVEL_VIEW_MODE
from .student import STUDENT_FILE

RECORD = Path(__file__).resolve().parent.parent / "benchmarks" / "tiny_demo_seeds.json"


def record_seeds(seeds: Sequence[int], model_dir=None, device="cpu", out: Path = RECORD, student=None,
                 log=print) -> dict:
    model = load_demo_model(model_dir, device, log=log) if student is None else \
        load_builtin(model_dir, device=device, student=student)
    rig = demo_rig(model)
    result = {"model": "student" if model.is_student else "teacher", "sampling": model.sampling,
              "grids": DEMO_GRIDS, "caption": DEMO_CAPTION, "device": str(device),
              "files": model_fingerprint(model_dir, student), "seeds": {}}
    scenes = check_scenes(model, rig) if NOVEL_VIEW_MODE in model.modes() else None   # the same for every seed
    for seed in seeds:
        t0 = time.time()
        summaries, _ = score_modes(model, rig, DEMO_CAPTION, DEMO_GRIDS, seed)
        verdicts = {c.mode: c.verdict for c in claims(summaries)}
        nvs, _ = novel_views(model, rig, seed, scenes=scenes)
        result["seeds"][str(seed)] = {"verdicts": verdicts, "errors": {
            mode: [[round(e, 3) for e in grid] for grid in s.get("per_scene_errors", [])]
            for mode, s in summaries.items()},
            "novel_views": None if nvs is None else {"verdict": nvs["verdict"], "place": nvs["per_scene_place"],
                                                     "copy": nvs["per_scene_copy"]}}
        if nvs is not None:
            verdicts["novel views"] = nvs["verdict"]
        log(f"demo seeds: seed {seed}: {verdicts} ({time.time() - t0:.0f}s)")
    atomic_write(out, json.dumps(result, indent=None, separators=(",", ":")))
    log(f"demo seeds: wrote {out}")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m camgrid.train.demo_seeds", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--model", default=None, help="model folder (default: assets/)")
    parser.add_argument("--out", default=str(RECORD))
    parser.add_argument("--student", default=None, help=f"the student LoRA, when it is not {STUDENT_FILE} beside the model")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    record_seeds([int(s) for s in args.seeds.split(",") if s], args.model, args.device, Path(args.out), args.student)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
