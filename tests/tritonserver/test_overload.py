"""The overload probe's verdict on synthetic records: when a probe holds with the margin."""

from optimizer.tritonserver import overload
from optimizer.tritonserver.expected import OVERLOAD_MARGIN

SLA = 50.0


def test_a_probe_holds_only_when_its_whole_p99_interval_is_under_the_margin():
    # 43.6 ms is under 45 ms (50 ms less 10 %), but its interval reaches 45.9 ms: the next 8 s gave 47-52 ms
    assert overload.high({"p99_ms": 43.6, "p99_ci_ms": [39.9, 45.9]}) == 45.9
    assert overload.high({"p99_ms": 43.6, "p99_ci_ms": [39.9, None]}) == 43.6  # too few requests to bound it
    assert not overload.within(45.9, SLA, OVERLOAD_MARGIN) and overload.within(45.0, SLA, OVERLOAD_MARGIN)
