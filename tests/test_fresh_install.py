"""A fresh install must work from any directory, the repository root included.

The registry package `kernels` (which transformers pulls in and diffusers imports when present) shares
its name with our `kernels/` folder; so do other folders of the pack with other distributions. These tests
fail if any of our folders can shadow an installed distribution."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _run_from_root(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_registry_kernels_package_is_installed_for_this_check():
    spec = importlib.util.find_spec("kernels")
    assert spec is not None and spec.origin, "the test extra must install the registry package `kernels`"
    assert not Path(spec.origin).resolve().is_relative_to(REPO_ROOT), (
        f"`import kernels` resolves to the pack's folder {spec.origin}: the repository root is on sys.path")


def test_diffusers_wan_classes_and_peft_loader_import_in_the_test_process():
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from diffusers.loaders import peft

    import kernels

    assert not Path(kernels.__file__).resolve().is_relative_to(REPO_ROOT)
    assert WanTransformer3DModel.__name__ and AutoencoderKLWan.__name__ and peft.PeftAdapterMixin


def test_cli_started_from_repository_root_imports_diffusers_wan_vae():
    # `python -c` and `python -m` both put the current directory first on sys.path: the trap itself.
    help_run = _run_from_root("-m", "camgrid", "--help")
    assert help_run.returncode == 0, help_run.stderr
    assert "generate" in help_run.stdout
    probe = _run_from_root("-c", (
        "import camgrid.__main__, kernels\n"
        "from diffusers import AutoencoderKLWan, WanTransformer3DModel\n"
        "from diffusers.loaders import peft\n"
        "print(kernels.__file__)\n"))
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert not Path(probe.stdout.strip()).resolve().is_relative_to(REPO_ROOT), probe.stdout


def test_pack_folders_never_stay_on_sys_path_after_import():
    probe = _run_from_root("-c", (
        "import os, sys, camgrid\n"
        "root = os.path.realpath(os.path.dirname(camgrid.__file__))\n"
        "print(sum(os.path.realpath(p or '.') == root for p in sys.path))\n"))
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.strip() == "0"


def test_test_suite_imports_this_checkout():
    import camgrid

    assert Path(camgrid.__file__).resolve().parent == REPO_ROOT
    assert str(REPO_ROOT) not in [os.path.realpath(p or ".") for p in sys.path]
