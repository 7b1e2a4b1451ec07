"""The command line answers bad input with one line on stderr and exit status 2, before loading anything."""
import pytest
import torch

from camgrid.__main__ import main


def _one_line_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_demo_on_cuda_without_a_gpu_is_one_line(capsys, tmp_path):
    err = _one_line_error(capsys, ["demo", "--device", "cuda", "--out", str(tmp_path / "demo")])
    assert "--device 'cuda'" in err and "--device cpu" in err
    assert not (tmp_path / "demo").exists()


def test_demo_into_an_existing_file_is_one_line(capsys, tmp_path):
    target = tmp_path / "taken"
    target.write_text("keep me")
    err = _one_line_error(capsys, ["demo", "--out", str(target)])
    assert "existing file" in err and str(target) in err
    assert target.read_text() == "keep me"


def test_bad_device_name_is_one_line(capsys, tmp_path):
    err = _one_line_error(capsys, ["eval", "--device", "gpu0"])
    assert "gpu0" in err and "cpu" in err
