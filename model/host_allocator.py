"""Keep the memory of freed CPU tensors inside the process (glibc malloc), for the command line.

PyTorch allocates CPU tensors with plain malloc. glibc hands every block above its mmap threshold (128 KiB, raised
as such blocks are freed, to 32 MiB at most) to the kernel as a fresh mapping and unmaps it again on free, and it
returns the heap's free top to the kernel beyond its trim threshold. A sampler allocates the same large activations
in every block at every step, so each of them is page-faulted in again and again. With both thresholds raised,
freed blocks stay in the heap and are reused: the quick-start demo on 2 cores takes 41.1 s instead of 46.9 s, with
2.3 s of system time instead of 11.6 s and the same peak memory (medians of 3 runs,
benchmarks/bench_cpu_allocator.py).

The process then keeps its peak heap until it exits. That suits a command that runs one job and ends, not a host
such as ComfyUI, so only `python -m camgrid` calls this. CAMGRID_KEEP_FREED_MEMORY=0 turns it off.
"""
from __future__ import annotations

import ctypes
import os
import sys

OPT_OUT = "CAMGRID_KEEP_FREED_MEMORY"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3     # glibc's malloc.h
LARGEST = 2**31 - 1                             # mallopt takes an int
# a glibc that refuses an mmap threshold above 32 MiB gets the 32 MiB one (one run of the demo above with it:
# 41.4 s, 5.4 s of system time)
MMAP_THRESHOLDS = (LARGEST, 32 * 2**20)


def _glibc_mallopt():
    """glibc's mallopt, or None (not Linux, or another C library: musl has no gnu_get_libc_version)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds. True when both were set; False when turned off
    (CAMGRID_KEEP_FREED_MEMORY=0), not glibc, or refused (a refused mmap threshold leaves both as they were)."""
    if os.environ.get(OPT_OUT, "1").strip() == "0":
        return False
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    # the mmap threshold first: a trim threshold alone also stops glibc raising the mmap threshold (it stays at
    # 128 KiB or wherever it stood), which maps even more blocks afresh (the demo took twice as long)
    if not any(mallopt(M_MMAP_THRESHOLD, value) for value in MMAP_THRESHOLDS):
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, LARGEST))
