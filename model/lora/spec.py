"""`--lora FILE[:STRENGTH]` on the command line -> (path, strength)."""
from __future__ import annotations

import argparse
import math
from pathlib import Path


def parse_lora_arg(text: str) -> tuple[str, float]:
    """argparse type: 'file.safetensors' -> (file, 1.0); 'file.safetensors:0.6' -> (file, 0.6).

    The strength is what follows the last ':' when that is a number, so Windows paths (C:\\x) still work."""
    path, strength = text, 1.0
    head, sep, tail = text.rpartition(":")
    if sep and head:
        try:
            strength = float(tail)
            path = head
        except ValueError:
            pass
    if not math.isfinite(strength):
        raise argparse.ArgumentTypeError(f"{text!r}: the strength after ':' must be a finite number")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"{text!r}: LoRA file {path!r} does not exist "
                                         "(use --lora FILE or --lora FILE:STRENGTH)")
    return path, strength
