"""A run that stops on a full disk says so in one line naming what to free, and leaves nothing part-written:
summary.json (and its reports) only where they still fit, error.txt only when it was written whole."""

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from optimizer.errors import EXIT_FAILED, DiskFull, Interrupted, OptimizerError
from optimizer.record import stopped
from optimizer.recipe.files import composition_error

CFG = SimpleNamespace(description="d", model=SimpleNamespace(source="builtin", name="m"),
                      data=SimpleNamespace(source="digits"))
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _no_room_for(monkeypatch, *names):
    """Writes of files named ``names`` (their temporaries: write_atomic's ``.<name>.<random>.tmp``) fail half
    way, as on a full disk: part of the data lands, then ENOSPC."""
    real = Path.write_bytes

    def write_bytes(self, data):
        if any(self.name.startswith(f".{n}.") for n in names):
            real(self, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def _statvfs(free, total):
    return lambda path: SimpleNamespace(f_bavail=free, f_blocks=total, f_frsize=1)


def test_an_error_summary_leaves_out_the_reports_that_do_not_fit(tmp_path, monkeypatch):
    _no_room_for(monkeypatch, "junit.xml")
    stopped.write(CFG, "int8", tmp_path, DiskFull("run directory is full"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # report.md went with junit.xml
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "error" and summary["exit_code"] == EXIT_FAILED
    assert summary["error"] == "run directory is full" and "reports" not in summary


def test_an_error_summary_that_does_not_fit_leaves_nothing_and_hides_no_error(tmp_path, monkeypatch):
    _no_room_for(monkeypatch, "summary.json", "report.md")
    stopped.write(CFG, "int8", tmp_path, Interrupted("SIGTERM", 143))  # no OSError escapes
    assert list(tmp_path.iterdir()) == []


def test_a_full_run_directory_is_named_with_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "statvfs", _statvfs(free=4096, total=1 << 30))
    err = stopped.error(tmp_path, ENOSPC)
    assert isinstance(err, DiskFull) and err.exit_code == EXIT_FAILED == 1
    assert str(err) == (f"run directory {str(tmp_path)!r} is full (No space left on device): free space there or "
                        f"choose another with hydra.run.dir=DIR")
    named = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp_path / "model_repository" / "m" / "x"))
    monkeypatch.setattr(os, "statvfs", _statvfs(free=1 << 40, total=1 << 40))  # a file inside it: room is no matter
    assert str(stopped.error(tmp_path, named)).startswith(f"run directory {str(tmp_path)!r} is full (Disk quota")
    assert not (tmp_path / "error.txt").exists()


def test_a_file_size_limit_is_named_as_one(tmp_path):
    err = stopped.error(tmp_path, OSError(errno.EFBIG, os.strerror(errno.EFBIG)))
    assert str(err) == (f"run directory {str(tmp_path)!r} is full for this run (File too large: over the file-size "
                        f"limit, ulimit -f, or the filesystem's): raise it or choose another with hydra.run.dir=DIR")


def test_a_full_disk_elsewhere_is_not_blamed_on_the_run_directory(tmp_path, monkeypatch):
    elsewhere = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/cache/entry/model.onnx")
    assert str(stopped.error(tmp_path, elsewhere)) == ("no room to write '/cache/entry/model.onnx' "
                                                       "(No space left on device): free space on its disk")
    monkeypatch.setattr(os, "statvfs", _statvfs(free=1 << 40, total=1 << 41))
    assert str(stopped.error(tmp_path, ENOSPC)).startswith("a disk this run writes to is full (No space left on "
                                                           "device) but the run directory's has room: free space")


def test_a_defect_keeps_its_traceback_only_when_it_fits(tmp_path, monkeypatch):
    try:
        raise ValueError("boom")
    except ValueError as e:
        defect = e
    err = stopped.error(tmp_path, defect)
    assert type(err) is OptimizerError and str(err) == f"ValueError: boom (traceback: {tmp_path / 'error.txt'})"
    assert "raise ValueError" in (tmp_path / "error.txt").read_text()
    (tmp_path / "error.txt").unlink()
    _no_room_for(monkeypatch, "error.txt")
    err = stopped.error(tmp_path, defect)
    assert str(err) == "ValueError: boom (no traceback kept: [Errno 28] No space left on device)"
    assert list(tmp_path.iterdir()) == []  # no empty error.txt, no temporary


def test_other_os_errors_are_defects(tmp_path):
    err = stopped.error(tmp_path, PermissionError(errno.EACCES, "Permission denied"))
    assert not isinstance(err, DiskFull) and str(err).startswith("PermissionError: [Errno 13] Permission denied")


@pytest.mark.parametrize("number, why", [(28, "No space left on device"), (122, "Disk quota exceeded")])
def test_hydra_failing_to_write_into_a_full_run_directory_is_one_line(number, why):
    text = (f"Traceback (most recent call last):\n  File \"hydra/core/utils.py\", in _save_config\n"
            f"OSError: [Errno {number}] {why}\n")
    assert composition_error(text) == (f"error: the run directory is full ({why}): free space there or choose "
                                       f"another with hydra.run.dir=DIR")
