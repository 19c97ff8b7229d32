"""The host-wide measurement lock: ``<cache>/measure.lock``, held with ``fcntl.flock`` while timed blocks run.

Two runs (or sweep jobs) sharing a machine and a cache directory then never time at the same moment; the
passes, evaluations and worker start-ups of one run still overlap the other's, outside the lock. The
kernel releases the lock when its holder dies, so a killed run never blocks the next one."""

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator

LOCK_NAME = "measure.lock"


@contextmanager
def host_lock(cache_root: Path) -> Iterator[Dict[str, float]]:
    """Hold the lock for the block; yields ``{"wait_seconds": ...}`` (0 where ``fcntl`` is missing)."""
    record = {"wait_seconds": 0.0}
    try:
        import fcntl
    except ImportError:  # not POSIX: nothing to share the lock with
        yield record
        return
    path = Path(cache_root) / LOCK_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        t0 = time.perf_counter()
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        record["wait_seconds"] = time.perf_counter() - t0
        try:
            yield record
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
