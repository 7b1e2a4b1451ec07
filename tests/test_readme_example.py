"""The README's library example runs as printed: its Python block, with the file paths and sizes swapped for
tiny stand-in files in the real layouts (component_helpers.py) and a CPU-sized grid."""
import re
from pathlib import Path

import pytest
import torch

from component_helpers import save_comfy_umt5, save_original_vae, tiny_spiece, tiny_umt5, tiny_wan_vae
from grid_helpers import tiny_model

from camgrid.model import save_grid_dit

README = Path(__file__).resolve().parents[1] / "README.md"
pytest.importorskip("sentencepiece", reason="umT5's tokenizer needs sentencepiece (test extra)")
pytest.importorskip("imageio_ffmpeg", reason="the example writes mp4 files (test extra)")


def library_block() -> str:
    section = README.read_text(encoding="utf-8").split("## Library", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the Library section should hold one Python block"
    return blocks[0]


def with_values(code: str, values: dict) -> str:
    for name, value in values.items():
        code, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", code, count=1, flags=re.M)
        assert count == 1, f"the README example no longer sets {name}"
    return code


def test_readme_library_example_runs(tmp_path, monkeypatch):
    save_grid_dit(tiny_model("syncammaster", seed=2), tmp_path / "syncammaster.safetensors")
    save_original_vae(tiny_wan_vae(seed=1), tmp_path / "wan_2.1_vae.safetensors")
    save_comfy_umt5(tiny_umt5(seed=3), tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors", tiny_spiece(), fp8=True)
    code = with_values(library_block(), {
        "DIT": repr(str(tmp_path / "syncammaster.safetensors")), "VAE": repr(str(tmp_path / "wan_2.1_vae.safetensors")),
        "TEXT_ENCODER": repr(str(tmp_path / "umt5_xxl_fp8_e4m3fn_scaled.safetensors")), "DEVICE": '"cpu"',
        "WIDTH, HEIGHT, FRAMES, VIEWS, STEPS": "32, 32, 5, 2, 2"})
    monkeypatch.chdir(tmp_path)
    scope, threads = {}, torch.get_num_threads()
    torch.set_num_threads(1)   # tiny tensors gain nothing from more threads, and a busy machine loses a lot
    try:
        exec(compile(code, "README.md (Library)", "exec"), scope)
    finally:
        torch.set_num_threads(threads)
    assert scope["frames"].shape == (2, 5, 32, 32, 3) and scope["velocity"].shape == (1, 2, 16, 2, 4, 4)
    assert scope["grid"].shape == (1, 2, 16, 2, 4, 4) and torch.isfinite(scope["grid"]).all()
    assert (tmp_path / "grid.mp4").stat().st_size > 0 and (tmp_path / "grid_steps.mp4").stat().st_size > 0
