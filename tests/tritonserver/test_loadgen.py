"""Load generation offline: Poisson schedules, the p99's order-statistic interval, level verdicts, loopback only.
The generator against a real server is in tests/test_triton_server.py."""

import numpy as np
import pytest

from optimizer.tritonserver.loadgen import (arrival_times, check_loopback, is_rejection, level_ok, p99_interval,
                                      quantile_ranks, summarize)


def test_poisson_schedule_has_the_rate_asked():
    t = arrival_times(500.0, 5000, seed=3)
    assert len(t) == 5000 and np.all(np.diff(t) > 0)
    assert 5000 / t[-1] == pytest.approx(500.0, rel=0.05)  # 5000 arrivals: the rate within a few %
    gaps = np.diff(t)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential gaps: CV 1
    with pytest.raises(ValueError):
        arrival_times(0, 10)


def test_p99_interval_from_order_statistics():
    assert quantile_ranks(200) == (195, None)  # 200 requests cannot bound a p99 from above
    lo, hi = quantile_ranks(2000)
    assert lo < 0.99 * 2000 < hi <= 2000 and hi - lo < 25
    x = np.arange(1, 2001, dtype=float)  # 1..2000 ms: the ranks are the values
    assert p99_interval(x) == [float(lo), float(hi)]
    assert p99_interval([]) == [None, None]
    # coverage: the interval holds the true p99 of an exponential in ≥ 95 % of 400 draws of 1000
    rng, true = np.random.default_rng(0), -np.log(0.01)
    hits = sum(lo <= true <= hi for lo, hi in (p99_interval(rng.exponential(1.0, 1000)) for _ in range(400)))
    assert hits >= 0.93 * 400


def test_level_verdicts():
    ok = summarize(100.0, list(np.arange(0, 1, 0.01)), [0.002] * 100, [], 1.0)
    assert ok["rate_sent"] == pytest.approx(100.0, rel=0.02) and ok["p99_ms"] == pytest.approx(2.0)
    assert level_ok(ok, 10.0) == (True, "served")
    assert not level_ok(ok, 1.0)[0]  # p99 2 ms > 1 ms
    rejected = summarize(100.0, list(np.arange(0, 1, 0.01)), [0.002] * 99, ["Exceeds maximum queue size"], 1.0)
    assert rejected["rejected"] == 1 and "1 rejected" in level_ok(rejected, 10.0)[1]
    schedule = list(np.arange(0, 0.5, 0.005))  # 200/s planned, sent over a whole second: the client fell behind
    slow_client = summarize(200.0, list(np.arange(0, 1, 0.01)), [0.002] * 100, [], 1.0, schedule)
    assert slow_client["rate_scheduled"] == pytest.approx(200, rel=0.02) and slow_client["send_lag_p99_ms"] > 400
    assert "client-bound" in level_ok(slow_client, 10.0)[1]


def test_load_goes_to_loopback_only():
    check_loopback("127.0.0.1:8001")
    check_loopback("localhost:8001")
    with pytest.raises(ValueError, match="local server only"):
        check_loopback("10.0.0.7:8001")


def test_rejections_are_the_queue_policys_refusals():
    assert is_rejection("[request id: <id_unknown>] Exceeds maximum queue size")
    assert is_rejection("Request timeout expired")
    assert not is_rejection("Request for unknown model: 'no_such_model' is not found")


def test_refused_requests_count_as_misses_against_the_sla():
    from optimizer.tritonserver.loadtest import percentiles
    from optimizer.tritonserver.serve_check import sla_misses

    ms = np.full(1000, 2.0)
    few = {"concurrency": 8, "rejected": 3, **percentiles(ms, 3)}  # 0.3 % refused: the p99 is still 2 ms
    many = {"concurrency": 8, "rejected": 20, **percentiles(ms, 20)}  # 2 %: the p99 is a miss
    assert few["p99_counting_rejected_ms"] == 2.0 and many["p99_counting_rejected_ms"] is None
    sla = {"p99_ms": 50.0, "source": "given", "tiers": {}}
    assert sla_misses("m", {"sla": sla, "load": [few]}) == []
    (line,) = sla_misses("m", {"sla": sla, "load": [many]})
    assert "20 request(s) at concurrency 8 refused by the queue policy" in line and "over 1 % refused" in line
