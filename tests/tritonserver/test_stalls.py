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


class _Watch:
    """A stand-in watcher that reports the next of the given stall counts."""

    counts: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def summary(self):
        n = _Watch.counts.pop(0)
        return {"count": n, "max_ms": 80.0 if n else 0.0, "total_ms": 80.0 * n, "threshold_ms": STALL_MS,
                "raised_priority": True}


def _level(p99_ms, rejected=0):
    return {"concurrency": 4, "p99_ms": p99_ms, "p99_ci_ms": [p99_ms, p99_ms], "rejected": rejected,
            "p99_counting_rejected_ms": None if rejected else p99_ms}


SLA = {"p99_ms": 100.0, "source": "given", "tiers": {}}


def _steady(monkeypatch, results, stalls):
    from optimizer.tritonserver import stalls as module
    from optimizer.tritonserver.loadtest import steady_level
    from optimizer.tritonserver.serve_check import sla_misses

    monkeypatch.setattr(module, "StallWatch", _Watch)
    _Watch.counts = list(stalls)
    sent = []

    def run(concurrency):
        sent.append(concurrency)
        return dict(results[len(sent) - 1])

    return steady_level(run, 4, lambda r: bool(sla_misses("m", {"sla": SLA, "load": [r]}))), sent


def test_a_load_level_refused_while_the_host_stalled_is_sent_again(monkeypatch):
    r, sent = _steady(monkeypatch, [_level(30.0, rejected=8), _level(31.0)], [2, 0])
    assert sent == [4, 4] and r["p99_ms"] == 31.0 and r["host_stalls"]["count"] == 0
    assert [(x["rejected"], x["host_stalls"]["count"]) for x in r["resent_after_stalls"]] == [(8, 2)]


def test_a_miss_on_a_quiet_host_counts_and_resends_are_bounded(monkeypatch):
    from optimizer.tritonserver.stalls import RESENDS

    r, sent = _steady(monkeypatch, [_level(150.0)], [0])  # no stall: the miss stands
    assert sent == [4] and r["p99_ms"] == 150.0 and "resent_after_stalls" not in r
    r, sent = _steady(monkeypatch, [_level(150.0 + i) for i in range(RESENDS + 1)], [1] * (RESENDS + 1))
    assert len(sent) == RESENDS + 1 and r["p99_ms"] == 150.0 + RESENDS
    assert [x["p99_ms"] for x in r["resent_after_stalls"]] == [150.0 + i for i in range(RESENDS)]
    r, sent = _steady(monkeypatch, [_level(40.0)], [3])  # within the SLA: a stall alone sends nothing again
    assert sent == [4] and "resent_after_stalls" not in r
