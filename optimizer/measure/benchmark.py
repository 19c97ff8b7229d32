"""Timed blocks, latency statistics, and peak memory.

Each timed block starts with an idle pause and untimed warm-up calls: the thread pools of
the variant timed before (ONNX Runtime, OpenMP, in another worker process) keep spinning for a
while after their last call and would otherwise inflate millisecond latencies on small machines."""

import time
from typing import Callable, Dict, List, Optional

import numpy as np

from optimizer.config import BenchmarkConfig
from optimizer.host import clear_peak_rss, status_bytes

WINDOW = 10  # calls per window; stability compares window medians


def time_calls(run: Callable[[], object], cfg: BenchmarkConfig) -> List[float]:
    """Seconds per call: pause, warm up, then time until stable or out of budget (the Triton tuning sweep)."""
    time.sleep(cfg.pause_seconds)
    warm_up(run, cfg.warmup_seconds, time.perf_counter)
    return timed(run, cfg.min_repeats, cfg.max_seconds, cfg.target_cv, time.perf_counter)


def warm_up(run: Callable[[], object], seconds: float, clock: Callable[[], float]) -> int:
    """Untimed calls for ``seconds`` (at least one); returns how many."""
    end = clock() + seconds
    run()
    calls = 1
    while clock() < end:
        run()
        calls += 1
    return calls


def timed(run: Callable[[], object], min_calls: int, seconds: float, target_cv: Optional[float],
          clock: Callable[[], float]) -> List[float]:
    """Seconds per call, timed until ``min_calls`` are done and the window medians vary by less than
    ``target_cv`` (None: never stop early), or ``seconds`` have passed (at least 5 calls)."""
    lat: List[float] = []
    floor = 5 if target_cv is not None else max(5, min_calls)  # calls needed before the deadline may stop it
    deadline = clock() + seconds
    while True:
        t0 = clock()
        run()
        t1 = clock()
        lat.append(t1 - t0)
        n = len(lat)
        if t1 > deadline and n >= floor:
            break
        if target_cv is not None and n >= min_calls and n % WINDOW == 0 and window_cv(lat) <= target_cv:
            break
    return lat


def timed_block(run: Callable[[], object], cfg: BenchmarkConfig, clock: Callable[[], float] = time.perf_counter,
                sleep: Callable[[float], None] = time.sleep, wall: Callable[[], float] = time.time) -> Dict:
    """One block of a measurement round: an idle pause, untimed warm-up calls, then timed calls for this
    block's share of the budget (``max_seconds / rounds``, at least ``min_repeats / rounds`` calls).

    Returns the raw latencies (s) and the block's log: when the pause began, how many warm-up calls ran,
    and the wall-clock start and end of the timed calls (``time.time()``, comparable across processes)."""
    rounds = max(int(cfg.rounds), 1)
    paused_at = wall()
    sleep(cfg.pause_seconds)
    warm = warm_up(run, cfg.warmup_seconds, clock)
    start = wall()
    lat = timed(run, -(-int(cfg.min_repeats) // rounds), cfg.max_seconds / rounds, None, clock)
    return {"latencies": lat, "pause_start": paused_at, "warmup_calls": warm, "start": start, "end": wall()}


def window_cv(lat: List[float]) -> float:
    """Coefficient of variation of the medians of consecutive windows of WINDOW calls."""
    medians = np.median(np.asarray(lat[: len(lat) // WINDOW * WINDOW]).reshape(-1, WINDOW), axis=1)
    return float(medians.std() / medians.mean()) if len(medians) > 1 else float("inf")


def summarize(lat: List[float], batch: int) -> Dict[str, float]:
    ms = np.asarray(lat) * 1e3
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    return {
        "batch_size": batch, "calls": len(lat), "mean_ms": float(ms.mean()),
        "p50_ms": float(p50), "p90_ms": float(p90), "p95_ms": float(p95), "p99_ms": float(p99),
        "cv": float(ms.std() / ms.mean()),
        "throughput": float(batch * len(lat) / np.sum(lat)),  # samples per second
    }


def reset_peak() -> Optional[int]:
    """Reset this process's RSS high-water mark (Linux); the current RSS in bytes, None elsewhere."""
    try:
        clear_peak_rss()
        return status_bytes("VmRSS")
    except (OSError, KeyError):
        return None


def peak_since(base: Optional[int]) -> Dict[str, float]:
    """``{"peak_memory_mb": ...}``: the high-water mark above ``base`` (from ``reset_peak``); empty without one."""
    if base is None:
        return {}
    return {"peak_memory_mb": max(status_bytes("VmHWM") - base, 0) / 2**20}
