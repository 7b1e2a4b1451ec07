"""`python -m camgrid SUBCOMMAND ...` (also the `camgrid` console script).

Each subcommand lives in its own module, imported only when it runs (so `--help` stays fast and a
missing optional dependency only breaks its own subcommand). A subcommand module provides
    add_arguments(parser: argparse.ArgumentParser) -> None
    run(args: argparse.Namespace) -> int          # the process exit code
and one line in SUBCOMMANDS below: name -> (module path relative to this package, one-line help).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from .model import host_allocator
from .model.checks import CamGridError, output_folder, torch_device

# --- subcommand registry --------------------------------------------------------------------------
# To add `train`, `eval` or `demo`: write a module with add_arguments/run and add its line here, e.g.
#   "train": (".training.cli", "train camgrid sync layers"),
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "generate": (".model.pipeline", "text -> multi-view video grid; video -> novel views"),
    "train": (".train.cli", "train the tiny built-in model (or your own) on synthetic multi-camera scenes"),
    "eval": (".train.evaluate", "multi-view consistency table per grid mode (independent/syncam/hard/soft)"),
    "demo": (".train.demo", "generate a 4-view grid with the built-in model on CPU: videos, rig picture, metrics"),
}

# under torchrun these split every model forward over the ranks (model/distributed/launch.py)
SPLIT_FORWARD_COMMANDS = ("generate", "demo", "eval")

# errors of bad input: printed as one line instead of a traceback. Other errors are bugs and keep theirs.
USER_ERRORS = (CamGridError, FileNotFoundError, ImportError)


def _load(name: str):
    module_path, _ = SUBCOMMANDS[name]
    return importlib.import_module(module_path, package=__package__ or "camgrid")


def _check_common_arguments(args: argparse.Namespace) -> None:
    """--device and --out, shared by the subcommands, checked before any model loads (one line on error)."""
    if getattr(args, "device", None) is not None:
        args.device = str(torch_device(args.device, "--device"))
    if getattr(args, "out", None) is not None:
        output_folder(args.out)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # one job per process here, so freed CPU tensors may keep their memory (model/host_allocator.py)
    host_allocator.keep_freed_memory()
    top = argparse.ArgumentParser(prog="python -m camgrid",
                                  description="camgrid: synchronized multi-camera and 4D video generation")
    sub = top.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    # only the chosen subcommand's module is imported; its own parser handles the rest of argv
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0 if argv else 2
    if argv[0] not in SUBCOMMANDS:
        top.parse_args(argv)  # exits, listing the valid subcommands
    name = argv[0]
    module = _load(name)
    parser = argparse.ArgumentParser(prog=f"python -m camgrid {name}")
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        _check_common_arguments(args)
        # imported here like the subcommands (it loads the model code); under torchrun it joins the ranks,
        # splits every forward over them and lets rank 0 alone print and write (docs/ARCHITECTURE.md §12 Several GPUs)
        from .model.distributed import cli_processes
        # `train` runs its own data parallelism (DDP / FSDP, train/real/distributed.py): no forward splitting
        with cli_processes(args) if name in SPLIT_FORWARD_COMMANDS else contextlib.nullcontext():
            return int(module.run(args) or 0)
    except USER_ERRORS as exc:
        print(f"camgrid {name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
