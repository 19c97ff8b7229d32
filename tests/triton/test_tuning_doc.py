"""tuning.md's sections that read only the record: the traffic profile's scaling."""

from optimizer.decide.traffic import diurnal, recommend
from optimizer.triton.tuning_doc import scaling_lines


def test_scaling_section_lists_the_recommendation_and_the_schedule():
    scaling = {"profile": "diurnal", **recommend(diurnal(300.0, 100.0, 14.0), 200.0, 0.7, 38.0, 60.0, None, 20.0)}
    lines = scaling_lines(scaling)
    assert lines[1] == "## Traffic and autoscaling"
    assert lines[3].startswith("`serving.traffic` (diurnal, capacity 200 requests/s per replica, 17,280,000 requests "
                               "a day): 2 replicas serve 95 % of the day's traffic within the p99 SLA of 20 ms")
    assert "| 14:00 | 300 | 3 | 3 |" in lines and len(lines) == 7 + 24
    assert scaling_lines({}) == []
