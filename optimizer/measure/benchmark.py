"""Latency and throughput per batch size, and peak memory.

Each timed block starts with an idle pause and untimed warm-up calls: the thread pools of
the variant timed before (ONNX Runtime, OpenMP) keep spinning for a while after their last
call and would otherwise inflate millisecond latencies by tens of percent on small machines."""

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List

import numpy as np

from optimizer.config import BenchmarkConfig
from optimizer.io import Feeds, batch_of

WINDOW = 10  # calls per window; stability compares window medians


def time_calls(run: Callable[[], object], cfg: BenchmarkConfig) -> List[float]:
    """Seconds per call: pause, warm up, then time until stable or out of budget."""
    time.sleep(cfg.pause_seconds)
    end = time.perf_counter() + cfg.warmup_seconds
    run()
    while time.perf_counter() < end:
        run()
    lat: List[float] = []
    deadline = time.perf_counter() + cfg.max_seconds
    while True:
        t0 = time.perf_counter()
        run()
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        n = len(lat)
        if t1 > deadline and n >= 5:
            break
        if n >= cfg.min_repeats and n % WINDOW == 0 and window_cv(lat) <= cfg.target_cv:
            break
    return lat


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


def benchmark(session, pool: Feeds, cfg: BenchmarkConfig, advance=lambda n=1: None) -> Dict[str, Dict]:
    """Timings of ``session`` for every batch size in ``cfg``, keyed by batch size (as str)."""
    out = {}
    for bs in cfg.batch_sizes:
        x = batch_of(pool, bs)
        out[str(bs)] = summarize(time_calls(lambda: session(x), cfg), bs)
        advance()
    return out


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


@contextmanager
def peak_memory() -> Iterator[Dict[str, float]]:
    """Peak resident memory added while the block runs, in MiB (Linux; empty elsewhere).

    Resets the process's high-water mark through /proc/self/clear_refs so each variant is
    measured on its own."""
    record: Dict[str, float] = {}
    try:
        Path("/proc/self/clear_refs").write_text("5")
        base = _status("VmRSS")
    except (OSError, KeyError):
        yield record
        return
    yield record
    record["peak_memory_mb"] = max(_status("VmHWM") - base, 0) / 2**20
