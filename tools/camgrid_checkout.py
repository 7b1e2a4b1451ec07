"""Make `import camgrid` resolve to THIS checkout, for the scripts that live beside the package: the tests
(tests/conftest.py), the benchmarks and example_workflows/make_workflows.py.

The repository root is the package, so it cannot be imported as `camgrid` by putting the root on sys.path
(that would import `model`, `kernels`, ... as top-level modules and shadow installed packages of those
names; see camgrid/__init__.py). Instead a folder holding one link, `camgrid -> <repository root>`, goes first
on sys.path and on PYTHONPATH (for subprocesses). The folder is per checkout (named by a hash of the root),
so a git worktree imports its own code whatever camgrid is installed. This file is not part of the package:
it is what makes the package importable.

    import sys; from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
    from camgrid_checkout import use_this_checkout
    use_this_checkout()
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def link_folder(root: Path = REPO_ROOT) -> Path:
    """The folder holding the link `camgrid -> root` (created, or repaired, atomically)."""
    tag = hashlib.sha1(str(root).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"camgrid-tests-{tag}"
    link = folder / "camgrid"
    if not (link.is_symlink() and link.resolve() == root):
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".camgrid-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(root, target_is_directory=True)
        os.replace(tmp, link)   # atomic: parallel runs never see a missing link
    return folder


def use_this_checkout(root: Path = REPO_ROOT) -> Path:
    """Put this checkout first for `import camgrid` here and in subprocesses; returns the link folder.

    Raises RuntimeError when another camgrid was already imported in this process (too late to switch)."""
    folder = str(link_folder(root))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if folder not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [folder, *paths] if p)
    loaded = sys.modules.get("camgrid")
    if loaded is not None and Path(loaded.__file__).resolve().parent != root:
        raise RuntimeError(f"camgrid was imported from {loaded.__file__} before {root} could be put first")
    return Path(folder)
