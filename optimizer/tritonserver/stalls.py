"""Host stalls: moments when this machine's CPUs were taken from every process on it, seen by a watcher that
has nothing to do but wake up on time.

A load test on a shared virtual machine can lose the CPUs for tens of milliseconds. Every request in flight
then gains that time, and a p99 over a few seconds moves by it, whatever the server's configuration.
``StallWatch`` runs a separate process that sleeps ``TICK_S`` at a time, at a raised priority where the system
allows (then the server's threads, at the default priority, cannot hold it off: only the kernel or the
hypervisor can), and records each wake-up that came ``STALL_MS`` or more late. Measured here: a CPU burner on
both cores never delayed that watcher by 20 ms in 30 s, while during overload probes of the smoke server it
woke 20-392 ms late, and both load-generator processes fell behind their schedules in the same seconds. A
probe or a smoke-test load level that misses while the host stalled is sent again (``triton.retune``,
``serve_check``); the record keeps what the watcher saw."""

import multiprocessing
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

STALL_MS = 20.0  # a wake-up this late (beyond its own sleep) counts as a host stall
TICK_S = 0.002  # the watcher's sleep between wake-ups
RESENDS = 2  # a load level or probe that missed while the host stalled is sent again, at most this often
NICE = -10  # the watcher's priority where allowed (a stall is then the host's, not the server's)


def _watch(conn, tick: float, threshold_ms: float) -> None:
    """The watcher process: says "ready", then until ``conn`` has a message, sleep ``tick`` and note each late wake-up
    (``[wall-clock seconds, ms late]``); then send ``{"gaps", "raised_priority"}`` back."""
    try:
        os.nice(NICE)
        raised = True
    except OSError:  # not permitted: the watcher shares the CPUs as an equal
        raised = False
    gaps: List[List[float]] = []
    conn.send("ready")
    last = time.perf_counter()
    while not conn.poll():
        time.sleep(tick)
        now = time.perf_counter()
        late_ms = (now - last - tick) * 1e3
        if late_ms >= threshold_ms:
            gaps.append([round(time.time() - late_ms / 1e3, 3), round(late_ms, 1)])
        last = now
    conn.send({"gaps": gaps, "raised_priority": raised})


class StallWatch:
    """``with StallWatch() as w: ...`` then ``w.summary()``: the host stalls seen while the block ran."""

    def __init__(self, threshold_ms: float = STALL_MS, tick: float = TICK_S):
        self.threshold_ms, self.tick = threshold_ms, tick
        self.result: Optional[Dict] = None

    def __enter__(self) -> "StallWatch":
        """Start the watcher and wait until it watches. A watcher that cannot start leaves the block unwatched
        (``summary`` then says so): a probe is not lost for want of its watcher."""
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_watch, args=(child, self.tick, self.threshold_ms), daemon=True)
        try:
            self._proc.start()
            if not (self._conn.poll(30.0) and self._conn.recv() == "ready"):
                raise OSError("the stall watcher did not start")
        except (OSError, EOFError):
            self._stop_process()
            self._proc = None
        return self

    def _stop_process(self) -> None:
        if self._proc.pid is None:  # not started
            return
        self._proc.join(5.0)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()

    def __exit__(self, *exc) -> None:
        if self._proc is None:  # never started
            return
        try:
            self._conn.send("stop")
            if self._conn.poll(10.0):
                self.result = self._conn.recv()
        except (OSError, EOFError):  # the watcher died: nothing to report
            self.result = None
        finally:
            self._stop_process()

    def summary(self) -> Dict:
        """``{"count", "max_ms", "total_ms", "threshold_ms", "raised_priority"}`` of the stalls seen (``count``
        None when the watcher could not report)."""
        if self.result is None:
            return {"count": None, "max_ms": None, "total_ms": None, "threshold_ms": self.threshold_ms,
                    "raised_priority": None}
        ms = [g[1] for g in self.result["gaps"]]
        return {"count": len(ms), "max_ms": max(ms, default=0.0), "total_ms": round(sum(ms), 1),
                "threshold_ms": self.threshold_ms, "raised_priority": self.result["raised_priority"]}


def stalled(summary: Optional[Dict]) -> bool:
    """Whether a watcher's summary saw at least one host stall."""
    return bool(summary and summary.get("count"))


def watched(send: Callable[[], Dict]) -> Dict:
    """``send()``'s record with ``host_stalls``: what a ``StallWatch`` saw while it ran."""
    with StallWatch() as watch:
        r = send()
    r["host_stalls"] = watch.summary()
    return r


def resend_while_stalled(send: Callable[[], Dict], missed: Callable[[Dict], bool], keep: Sequence[str],
                         first: Optional[Dict] = None) -> Dict:
    """``first`` (else ``send()``), sent again while it ``missed`` and its ``host_stalls`` saw a stall, at most
    ``RESENDS`` times; ``resent_after_stalls`` keeps the ``keep`` fields of each record that missed."""
    r = first if first is not None else send()
    resent: List[Dict] = []
    while missed(r) and stalled(r.get("host_stalls")) and len(resent) < RESENDS:
        resent.append({k: r.get(k) for k in keep})
        r = send()
    return {**r, "resent_after_stalls": resent} if resent else r
