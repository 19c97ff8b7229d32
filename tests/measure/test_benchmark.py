"""Timing statistics, and that one variant's timings do not depend on what ran before it."""

import numpy as np
import pytest

from optimizer.io import batch_of
from optimizer.measure.benchmark import summarize, time_calls, window_cv
from optimizer.config import BenchmarkConfig


def test_summarize_percentiles():
    lat = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    s = summarize(lat, batch=4)
    assert s["calls"] == 100 and s["batch_size"] == 4
    assert s["p50_ms"] == pytest.approx(50.5) and s["p99_ms"] == pytest.approx(99.01)
    assert s["p90_ms"] == pytest.approx(90.1) and s["p95_ms"] == pytest.approx(95.05)
    assert s["throughput"] == pytest.approx(4 * 100 / sum(lat))
    assert s["cv"] == pytest.approx(np.std(np.arange(1, 101)) / 50.5)


def test_window_cv_needs_two_windows():
    assert window_cv([1.0] * 15) == float("inf")
    assert window_cv([1.0] * 20) == 0.0
    assert window_cv([1.0] * 10 + [2.0] * 10) == pytest.approx(1 / 3)


def test_batch_of_repeats_real_samples():
    x = np.arange(6, dtype=np.float32).reshape(3, 2)
    b = batch_of({"x": x, "ids": np.arange(3)}, 7)
    assert b["ids"].tolist() == [0, 1, 2, 0, 1, 2, 0]
    b = b["x"]
    assert b.shape == (7, 2) and b.flags["C_CONTIGUOUS"]
    assert np.array_equal(b[3:6], x)


def test_time_calls_stops_when_stable():
    # any spread counts as stable, so no stall on a loaded machine can keep it going past min_repeats
    cfg = BenchmarkConfig(pause_seconds=0, warmup_seconds=0, min_repeats=20, max_seconds=5, target_cv=1e9)
    calls = []
    lat = time_calls(lambda: calls.append(1), cfg)
    assert len(lat) == 20 and len(calls) == 21  # one untimed warm-up call, then 20 timed
