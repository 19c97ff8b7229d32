"""The host's measurement lock: ``<cache>/measure.<host>.lock``, held with ``fcntl.flock`` while timed blocks run.

Two runs (or sweep jobs) on one machine sharing a cache directory then never time at the same moment; the
passes, evaluations and worker start-ups of one run still overlap the other's, outside the lock. The file is
named after the host, so jobs on different nodes of a cluster that share the cache over a network
filesystem do not wait for each other (they do not share cores). Jobs on one host always share the lock;
whether ``flock`` on a network filesystem is also seen by other hosts depends on the mount (NFS, for one,
may emulate it with byte-range locks), which is why each host takes its own file. The kernel releases the
lock when its holder dies, so a killed run never blocks the next one."""

import re
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, Optional


def lock_name(host: Optional[str] = None) -> str:
    """``measure.<host>.lock``, the host name reduced to letters, digits, ``-``, ``_`` and ``.``."""
    host = host if host is not None else socket.gethostname()
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", host).strip("._") or "localhost"
    return f"measure.{safe[:64]}.lock"


@contextmanager
def host_lock(cache_root: Path) -> Iterator[Dict[str, float]]:
    """Hold the lock for the block; yields ``{"wait_seconds": ...}`` (0 where ``fcntl`` is missing)."""
    record = {"wait_seconds": 0.0}
    try:
        import fcntl
    except ImportError:  # not POSIX: nothing to share the lock with
        yield record
        return
    path = Path(cache_root) / lock_name()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        t0 = time.perf_counter()
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        record["wait_seconds"] = time.perf_counter() - t0
        try:
            yield record
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
