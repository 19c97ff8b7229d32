"""How much CPU other processes took while the rounds were timed (Linux ``/proc``; nothing elsewhere).

The host's busy time (``/proc/stat``) minus what this run's own processes used (the coordinator and its
workers, ``/proc/<pid>/stat``) over the timed phase, as an average number of cores; plus the share of time
the hypervisor gave to other guests (``steal``). On a 2-core machine a busy co-tenant on one core moved
speed-ups against a 2-thread torch reference by 20-126 % at batches 8 and 32 (experiments/results/
measurement.txt), far outside the intervals over rounds, because every round saw the same load: the
intervals cannot show it, so the run measures it and says so."""

import os
import time
from typing import Dict, Iterable

from optimizer.host import host_ticks, process_ticks

class Meter:
    """Snapshots around a timed phase: ``start()`` then ``stop()`` -> the phase's record."""

    def __init__(self, pids: Iterable[int]):
        self.pids = [os.getpid(), *pids]
        self.begin = None

    def start(self) -> "Meter":
        self.begin = (host_ticks(), process_ticks(self.pids), time.monotonic())
        return self

    def stop(self) -> Dict[str, float]:
        """``{"foreign_cores": ..., "steal_share": ...}`` for the phase; empty without /proc."""
        host0, own0, t0 = self.begin
        host1, own1 = host_ticks(), process_ticks(self.pids)
        if host0 is None or host1 is None or host1[1] <= host0[1]:
            return {}
        busy, total, steal = (b - a for a, b in zip(host0, host1))
        cpus = os.cpu_count() or 1
        wall_ticks = max(total / cpus, 1e-9)  # elapsed jiffies per CPU
        foreign = max(busy - (own1 - own0), 0) / wall_ticks
        return {"foreign_cores": round(foreign, 3), "steal_share": round(steal / max(total, 1), 4),
                "seconds": round(time.monotonic() - t0, 3)}


def verdict(phases: Iterable[Dict[str, float]], limit: float) -> Dict:
    """The set's contention record: the largest foreign load over its timed phases, and ``contended`` when
    it exceeds ``limit`` cores (0 turns the check off)."""
    phases = [p for p in phases if p]
    if not phases:
        return {}
    foreign = max(p["foreign_cores"] for p in phases)
    steal = max(p["steal_share"] for p in phases)
    return {"foreign_cores": foreign, "steal_share": steal, "contended": bool(limit and foreign > limit)}
