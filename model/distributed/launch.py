"""The command line under torchrun (docs/ARCHITECTURE.md §12 Several GPUs):

    torchrun --nproc-per-node N -m camgrid generate|demo ...

Every rank runs the whole command with the same arguments (same seed, same noise), and every GridDiT
forward inside it is split over the ranks; rank 0 alone prints to stdout and keeps the files it writes
(the other ranks' writes go to a scratch folder that is dropped, model/files.py). `--device cuda` means
each rank's own GPU (LOCAL_RANK). CAMGRID_PARALLEL=<strategy> (split.STRATEGIES) overrides the automatic
choice of split. Started without torchrun, the command runs as usual.
"""
from __future__ import annotations

import contextlib
import os
from typing import Iterator

import torch.distributed as dist

from ..files import keep_files
from .runtime import init_from_env, is_main, launched_world_size, local_device, parallel


@contextlib.contextmanager
def cli_processes(args) -> Iterator[None]:
    """Around a subcommand's run(args): join the ranks, set each rank's device in args.device, let rank 0
    alone print and keep files, split every forward; leave the process group at the end."""
    if launched_world_size() <= 1:
        yield
        return
    device = getattr(args, "device", None)
    init_from_env(device)
    if device is not None:
        args.device = str(local_device(device))
    main = is_main()
    keep_files(main)
    try:
        with contextlib.ExitStack() as stack:
            if not main:
                stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
            stack.enter_context(parallel(strategy=os.environ.get("CAMGRID_PARALLEL", "auto"), device=device))
            yield
    finally:
        keep_files(True)
        if dist.is_initialized():
            dist.destroy_process_group()
