"""The host-stall watcher: it must see a pause of its own process (what a host stall looks like from inside),
report nothing it did not see, and say so when it could not report."""

import os
import signal
import time

from optimizer.tritonserver.stalls import STALL_MS, StallWatch, stalled


def test_a_pause_of_the_watcher_is_seen_as_a_stall_of_about_its_length():
    with StallWatch() as w:
        time.sleep(0.2)
        os.kill(w._proc.pid, signal.SIGSTOP)  # the CPUs taken away from the watcher for 250 ms
        time.sleep(0.25)
        os.kill(w._proc.pid, signal.SIGCONT)
        time.sleep(0.2)
    s = w.summary()
    assert s["count"] >= 1 and s["max_ms"] >= 200.0 and s["total_ms"] >= s["max_ms"] and stalled(s)
    assert s["threshold_ms"] == STALL_MS and isinstance(s["raised_priority"], bool)


def test_a_threshold_above_anything_seen_reports_no_stall():
    with StallWatch(threshold_ms=60_000.0) as w:
        time.sleep(0.2)
    s = w.summary()
    assert s == {"count": 0, "max_ms": 0.0, "total_ms": 0, "threshold_ms": 60_000.0,
                 "raised_priority": s["raised_priority"]} and not stalled(s)


def test_a_watcher_that_died_reports_nothing_rather_than_no_stall():
    with StallWatch() as w:
        w._proc.kill()
        w._proc.join()
    s = w.summary()
    assert s["count"] is None and s["max_ms"] is None and not stalled(s)


def test_a_watcher_that_cannot_start_leaves_the_block_unwatched(monkeypatch):
    import multiprocessing.context as context

    def refuse(self):
        raise OSError("no more processes")

    monkeypatch.setattr(context.SpawnProcess, "start", refuse)
    ran = []
    with StallWatch() as w:
        ran.append(True)  # the block (a probe) still runs
    assert ran and w.summary()["count"] is None and not stalled(w.summary())
