"""One grid over several GPUs (or CPU processes) with torch.distributed (docs/ARCHITECTURE.md §12 Several GPUs).

    torchrun --nproc-per-node N -m camgrid generate|demo ...     every rank computes, rank 0 writes

From Python, every rank runs the same code:
    with parallel():                         # or parallel(strategy="streams", split_batch=False)
        grid = sample_grid(model, ...)
    if is_main(): ...

Modules: runtime (joining torchrun's processes, `parallel()`, who writes), split (strategies and the
automatic choice), dispatch (`run_mode`, GridDiT.forward's hook), streams (two-stream modes and syncam
by views / latent frames), sequence (Ulysses sequence parallelism), comm (all-to-all / all-gather on
uneven shares, `record_comm`), weights (FSDP2 sharding), launch (the CLI's hook).
"""
from .comm import CommStats, record_comm, shard_sizes
from .dispatch import run_mode
from .launch import cli_processes
from .runtime import ParallelContext, active, init_from_env, is_main, launched_world_size, local_device, parallel, \
    rank, world_size
from .split import MODE_STRATEGIES, STRATEGIES, ParallelOptions, Split, choose_split
from .weights import gathered, shard_weights

__all__ = ["CommStats", "MODE_STRATEGIES", "ParallelContext", "ParallelOptions", "STRATEGIES", "Split", "active",
           "choose_split", "cli_processes", "gathered", "init_from_env", "is_main", "launched_world_size",
           "local_device", "parallel", "rank", "record_comm", "run_mode", "shard_sizes", "shard_weights",
           "world_size"]
