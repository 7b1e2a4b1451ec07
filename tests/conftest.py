"""Fixtures shared by all tests; plain helpers live in grid_helpers.py.

First, `import camgrid` is pointed at *this* checkout, installed or not (a fresh clone, a git worktree,
the ComfyUI-style install that only ran `pip install -r requirements.txt`): tools/camgrid_checkout.py puts a
folder holding one link, `camgrid -> <repository root>`, first on sys.path and on PYTHONPATH (for the tests'
subprocesses). The repository root itself is never put on sys.path: its folders (`kernels`, `model`, ...)
would shadow installed distributions of those names (see camgrid/__init__.py).
"""
import os
import sys
from pathlib import Path

import pytest

# Tests call the command line's main() in this process (test_cli_errors, test_pipeline, ...), and main() first
# raises glibc's malloc thresholds for the rest of the process (model/host_allocator.py). Turned off here, so
# every test runs under glibc's defaults whatever ran before it (test_rig_fuzz measures memory growth);
# test_host_allocator.py turns it back on for its own tests and children.
os.environ["CAMGRID_KEEP_FREED_MEMORY"] = "0"

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "tools"))
from camgrid_checkout import use_this_checkout  # noqa: E402

use_this_checkout(REPO_ROOT)

try:   # a Python without camgrid's requirements: say what to run instead of failing deep in a helper's import
    import torch  # noqa: E402,F401
except ModuleNotFoundError as missing:
    pytest.exit(f"the tests need camgrid's requirements and this Python ({sys.executable}) lacks {missing.name}: "
                f"from the repository root run `pip install -e \".[test]\"` with this Python first (README, Quick "
                f"start; without a GPU install the CPU build of torch before it), then `python -m pytest -q`",
                returncode=4)

from grid_helpers import REFERENCE_DATA  # noqa: E402


@pytest.fixture
def reference_data():
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"reference data folder {REFERENCE_DATA} is absent (it sits beside the checkout in CI)")
    return REFERENCE_DATA
