"""What a run that stopped early leaves in its run directory: ``summary.json`` (status ``error``,
``interrupted``, or ``failed`` when no step produced a model), report.md and junit.xml, each only if it still fits, and for a defect its traceback in
``error.txt``. A write that fails here never hides the error that stopped the run, and leaves no part-written
file (every write is atomic)."""

import contextlib
import errno
import os
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Optional

from optimizer.errors import DiskFull, Interrupted, OptimizerError, one_line
from optimizer.files import write_atomic
from optimizer.formats import versions
from optimizer.records import RunSummary, VariantRecord

FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # no space left, a quota, a file-size limit (ulimit -f)


def error(out_dir: Path, e: BaseException) -> OptimizerError:
    """The one-line error for an exception no stage turned into one: a full disk (``disk_full``), or a defect,
    whose traceback goes to ``error.txt`` when that still fits."""
    full = disk_full(out_dir, e)
    if full is not None:
        return full
    path = Path(out_dir) / "error.txt"
    try:
        write_atomic(path, "".join(traceback.format_exception(e)).encode())
        kept = f"traceback: {path}"
    except OSError as w:
        kept = f"no traceback kept: {one_line(w)}"
    return OptimizerError(f"{type(e).__name__}: {one_line(e)} ({kept})")


def disk_full(out_dir: Path, e: BaseException) -> Optional[DiskFull]:
    """``e`` as a ``DiskFull`` naming what to free when it is a full disk (ENOSPC, EDQUOT, EFBIG), else None.

    The run directory is named unless the OS named a file elsewhere, or named none while the run directory's
    disk still has room (then the full disk is the cache's or the temporary directory's)."""
    if not isinstance(e, OSError) or e.errno not in FULL:
        return None
    why, root = e.strerror or str(e), Path(out_dir).resolve()
    if e.filename not in (None, ""):
        where = Path(os.fsdecode(e.filename)).resolve()
        if where != root and root not in where.parents:
            return DiskFull(f"no room to write {str(where)!r} ({why}): free space on its disk")
    elif e.errno != errno.EFBIG and _has_room(root):
        return DiskFull(f"a disk this run writes to is full ({why}) but the run directory's has room: free space "
                        f"for the cache (cache_dir) or the temporary directory (TMPDIR)")
    if e.errno == errno.EFBIG:
        return DiskFull(f"run directory {str(out_dir)!r} is full for this run ({why}: over the file-size limit, "
                        f"ulimit -f, or the filesystem's): raise it or choose another with hydra.run.dir=DIR")
    return DiskFull(f"run directory {str(out_dir)!r} is full ({why}): free space there or choose another with "
                    f"hydra.run.dir=DIR")


def _has_room(path: Path) -> bool:
    """The filesystem holding ``path`` has at least 64 MiB and 5% of its size free."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize >= max(64 << 20, st.f_blocks * st.f_frsize // 20)


def write(cfg, recipe: str, out_dir: Path, e: OptimizerError) -> None:
    """summary.json with status ``error`` (``interrupted`` for a signal), the exit code and the one-line error,
    and the reports it lists: report.md and junit.xml both or neither, then summary.json, each if it fits."""
    from optimizer.record import ci, provenance
    from optimizer.record.summary import write_summary

    variants = getattr(e, "variants", None) or []  # chain.NothingProduced: what each step did
    status = "interrupted" if isinstance(e, Interrupted) else "failed" if variants else "error"
    summary = RunSummary(recipe, cfg.description, status, e.exit_code, error=str(e),
                         variants=tuple(VariantRecord(v.name, tuple(v.chain), v.status, v.ran, v.seconds, v.error)
                                        for v in variants),
                         failed_steps=tuple(v.name for v in variants if v.status == "failed"),
                         model={"source": cfg.model.source, "name": cfg.model.name},
                         data={"source": cfg.data.source}, output_dir=str(out_dir), versions=versions(),
                         provenance=provenance.record(cfg.model.source, out_dir, provenance.now()))
    try:
        summary = replace(summary, reports=ci.write(summary.to_dict(), out_dir))
    except OSError:  # the run directory is full: a report without the other is no use, and frees room
        for name in (ci.REPORT, ci.JUNIT):
            (Path(out_dir) / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # no room even for the summary: the error line on stderr is all
        write_summary(summary.to_dict(), out_dir)
