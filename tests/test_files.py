"""Atomic writes: the previous file survives any failure in the middle of a write."""
import os
import stat

import pytest
import torch

from camgrid.model.files import atomic_save, atomic_write


def test_atomic_write_replaces_the_file(tmp_path):
    target = tmp_path / "a.json"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failing_writer_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic_write(target, b"good")

    def half_written(tmp):
        tmp.write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_save(target, half_written)
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_written_files_get_the_permissions_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        plain = tmp_path / "plain.txt"
        with open(plain, "w") as f:
            f.write("x")
        atomic_write(tmp_path / "text.json", "x")
        atomic_save(tmp_path / "saved.pt", lambda tmp: torch.save({"a": torch.zeros(1)}, tmp))
    finally:
        os.umask(old)
    expected = 0o666 & ~umask
    assert stat.S_IMODE(plain.stat().st_mode) == expected
    for name in ("text.json", "saved.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
