"""``write_atomic``: a reader sees the old file or the new one, and a failed write (a full disk) leaves nothing."""

import errno
from pathlib import Path

import pytest

from optimizer.files import write_atomic


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "summary.json"
    target.write_text("old")
    real = Path.write_bytes

    def full(self, data):
        real(self, data[:3])  # part of it reached the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(target, b"new contents")
    monkeypatch.undo()
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    write_atomic(target, b"new")
    assert target.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
