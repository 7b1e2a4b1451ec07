"""Fixtures shared by all tests; plain helpers live in grid_helpers.py.

First, `import camgrid` is pointed at *this* checkout, installed or not (a fresh clone, a git worktree,
the ComfyUI-style install that only ran `pip install -r requirements.txt`): a folder holding one link,
`camgrid -> <repository root>`, goes first on sys.path and on PYTHONPATH (for the tests' subprocesses).
The repository root itself is never put on sys.path: its folders (`kernels`, `model`, ...) would shadow
installed distributions of those names (see camgrid/__init__.py).
"""
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _import_this_checkout() -> None:
    tag = hashlib.sha1(str(REPO_ROOT).encode()).hexdigest()[:12]
    link_dir = Path(tempfile.gettempdir()) / f"camgrid-tests-{tag}"
    link = link_dir / "camgrid"
    if not (link.is_symlink() and link.resolve() == REPO_ROOT):
        link_dir.mkdir(parents=True, exist_ok=True)
        tmp = link_dir / f".camgrid-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(REPO_ROOT, target_is_directory=True)
        os.replace(tmp, link)   # atomic: parallel test runs never see a missing link
    sys.path.insert(0, str(link_dir))
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(link_dir), os.environ.get("PYTHONPATH")) if p)
    loaded = sys.modules.get("camgrid")
    if loaded is not None and Path(loaded.__file__).resolve().parent != REPO_ROOT:
        raise RuntimeError(f"camgrid was imported from {loaded.__file__} before the tests of {REPO_ROOT} started")


_import_this_checkout()

from grid_helpers import REFERENCE_DATA  # noqa: E402


@pytest.fixture
def reference_data():
    if not REFERENCE_DATA.is_dir():
        pytest.skip(f"reference data folder {REFERENCE_DATA} is absent (it sits beside the checkout in CI)")
    return REFERENCE_DATA
