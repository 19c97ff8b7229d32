"""A run directory that fills up mid-run: one error line on stderr naming it (exit 1), summary.json where it still
fits, and nothing part-written (no empty error.txt, no temporaries). A file-size limit (ulimit -f) stands in for a
full disk anywhere; a tiny tmpfs is the real thing where this user may mount one."""

import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import FAST, ROOT, run_cli

TINY = ["recipe=baseline", "model.source=tests.factories:tiny_cnn", "model.name=tiny",
        "data.source=tests.factories:small_digits", "constraints.max_accuracy_drop=null", *FAST]


def _run(args, cache_dir: Path, run_dir: Path, limit=None):
    """The CLI in a subprocess (with ``limit``: no file it writes may grow past that many bytes; EFBIG, not a
    signal, when one tries); returns (exit code, stdout, stderr)."""
    def limited():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited through exec: the write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "optimizer", *args, f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, preexec_fn=limited if limit else None)
    return proc.returncode, proc.stdout, proc.stderr


def _nothing_part_written(run_dir: Path):
    files = [p for p in run_dir.rglob("*") if p.is_file() and ".hydra" not in p.parts]
    assert not [p for p in files if p.name.endswith(".tmp") or ".tmp-" in p.name or ".old-" in p.name], files
    assert not (run_dir / "error.txt").exists()
    assert not [p for p in files if p.stat().st_size == 0 and p.suffix != ".log"], files  # Hydra's own log may be


def _one_error_line(stderr: str, run_dir: Path, why: str) -> str:
    (line,) = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert line.startswith(f"error: run directory {str(run_dir)!r} is full") and f"({why}" in line
    assert line.endswith("or choose another with hydra.run.dir=DIR")
    assert "Traceback" not in stderr
    return line


def test_a_file_size_limit_in_the_run_directory_ends_the_run_in_one_line(cache_dir, tmp_path):
    code, out, _ = run_cli(TINY, cache_dir, tmp_path / "built")  # the cache is written by the same process
    assert code == 0, out
    run_dir = tmp_path / "run"
    code, out, err = _run(TINY, cache_dir, run_dir, limit=20_000)  # the plots (over 30 kB) cannot be written
    assert code == 1, out + err
    line = _one_error_line(err, run_dir, "File too large")
    summary = (run_dir / "summary.json").read_text()
    assert '"status": "error"' in summary and '"exit_code": 1' in summary and line[len("error: "):] in summary
    assert (run_dir / "report.md").exists() and (run_dir / "junit.xml").exists()
    assert not list(run_dir.glob("*.png"))
    _nothing_part_written(run_dir)


def test_a_full_tmpfs_run_directory_keeps_the_summary_that_fits(cache_dir, tmp_path):
    mount = tmp_path / "tiny"
    mount.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount") or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("mounting a tmpfs needs root (and mount) on Linux")
    try:
        run_dir = mount / "run"  # the Triton repository's reference.npz (about 260 kB) cannot fit
        code, out, err = _run([*TINY, "triton.emit=true"], cache_dir, run_dir)
        assert code == 1, out + err
        line = _one_error_line(err, run_dir, "No space left on device")
        summary = (run_dir / "summary.json").read_text()
        assert '"status": "error"' in summary and line[len("error: "):] in summary
        _nothing_part_written(run_dir)
    finally:
        subprocess.run(["umount", str(mount)], check=True)
