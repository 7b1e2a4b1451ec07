"""model/host_allocator.py: the command line keeps freed CPU tensors' memory in the process (glibc)."""
import json
import os
import subprocess
import sys

import pytest

from camgrid.model import host_allocator

GLIBC = host_allocator._glibc_mallopt() is not None


@pytest.fixture(autouse=True)
def allocator_not_opted_out(monkeypatch):
    """conftest.py opts the test process out; these tests and their children need the default (on)."""
    monkeypatch.delenv(host_allocator.OPT_OUT, raising=False)


# in a child process, so this test process keeps glibc's defaults (the tests below that call keep_freed_memory in
# this process replace glibc's mallopt): page faults of allocating, touching and freeing a 64 MiB tensor 20 times,
# with or without keep_freed_memory()
CHILD = """
import json, resource, sys, torch
from camgrid.model import host_allocator
kept = host_allocator.keep_freed_memory() if sys.argv[1] == "keep" else None
torch.ones(1).add_(1)                       # torch's own first-use allocations before counting
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    t = torch.empty(16 * 2**20)
    t.fill_(1.0)
    del t
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def _child(mode: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                         env={**os.environ, **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only (Linux with glibc; CI runs on one)")
def test_freed_blocks_are_reused_instead_of_mapped_afresh():
    plain, kept = _child("plain"), _child("keep")
    assert kept["kept"] is True
    pages = 64 * 2**20 // 4096
    assert plain["faults"] > 10 * pages, plain          # glibc maps each 64 MiB block afresh: every page faults
    assert kept["faults"] < 3 * pages, kept             # the first block's pages, then the same heap again


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt only")
def test_opt_out_changes_nothing():
    child = _child("keep", CAMGRID_KEEP_FREED_MEMORY="0")
    assert child["kept"] is False
    assert child["faults"] > 10 * 64 * 2**20 // 4096


def test_not_glibc_is_a_no_op(monkeypatch):
    monkeypatch.setattr(host_allocator, "_glibc_mallopt", lambda: None)
    assert host_allocator.keep_freed_memory() is False


def test_a_refused_mmap_threshold_sets_no_trim_threshold(monkeypatch):
    calls = []

    def refusing(option, value):
        calls.append(option)
        return 0
    monkeypatch.setattr(host_allocator, "_glibc_mallopt", lambda: refusing)
    assert host_allocator.keep_freed_memory() is False
    assert calls and host_allocator.M_TRIM_THRESHOLD not in calls   # alone it would map every block afresh


def test_the_command_line_calls_it(monkeypatch):
    import camgrid.__main__ as cli
    called = []
    monkeypatch.setattr(host_allocator, "keep_freed_memory", lambda: called.append(True) or True)
    assert cli.main(["--help"]) == 0
    assert called == [True]
