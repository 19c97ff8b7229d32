"""The three PNGs drawn from a summary dict, and the accuracy view's axis, floor, SLA and front."""

from optimizer.record.plots import ACCURACY, LATENCY, THROUGHPUT, write_plots
from tests.helpers import PNG


def _variant(name, acc, p99_b1, scale, pareto=False):
    bench = {str(bs): {"p50_ms": scale * bs, "p90_ms": scale * bs * 1.2, "p95_ms": scale * bs * 1.3,
                       "p99_ms": p99_b1 * bs, "mean_ms": scale * bs, "throughput": 1000 / scale}
             for bs in (1, 8, 32)}
    return {"name": name, "status": "ok", "chain": [name], "precision": "fp32", "evaluation": {"metric": "accuracy", "score": acc},
            "benchmark": bench, "pareto": pareto}


def _summary():
    failed = {"name": "broken", "status": "failed", "chain": ["broken"], "error": "PassError"}
    return {"recipe": "demo", "chosen": "fast", "benchmark_batch_sizes": [1, 8, 32],
            "variants": [_variant("reference", 99.0, 10.0, 2.0, pareto=True), _variant("slow", 98.0, 20.0, 3.0),
                         _variant("fast", 98.5, 2.0, 0.5, pareto=True), failed]}


def test_three_pngs_from_a_summary(tmp_path):
    names = write_plots(_summary(), tmp_path)
    assert names == [LATENCY, THROUGHPUT, ACCURACY]
    for name in names:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == PNG and len(data) > 10_000  # a drawn figure, not an empty canvas
    assert not list(tmp_path.glob(".*.tmp"))  # written to a temporary name and renamed


def test_nothing_measured_writes_nothing(tmp_path):
    s = _summary()
    s["variants"] = [s["variants"][-1]]  # only the failed variant
    assert write_plots(s, tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_accuracy_view_clips_the_axis_and_draws_floor_sla_and_front():
    from optimizer.record.plots import accuracy_view

    s = _summary()
    s["variants"][0]["evaluation"]["score"] = 99.9  # near the top: the axis must still end at 100
    s["constraints"] = {"max_accuracy_drop": 1.0, "max_p99_ms": 15.0}
    view = accuracy_view(s)
    assert view["ylim"][1] == 100.0 and 0.0 <= view["ylim"][0] < 98.0
    assert view["floor"] == 99.9 - 1.0 and view["sla"] == 15.0 and view["sla_label"] == "max_p99_ms"
    assert view["front"] == [(2.0, 98.5), (10.0, 99.9)]  # sorted by latency: the line runs left to right
    s["constraints"] = {"max_accuracy_drop": None, "max_p99_ms": None}
    s["triton"] = {"tuning": {"sla_p99_ms": 50.0}}
    view = accuracy_view(s)
    assert view["floor"] is None and (view["sla"], view["sla_label"]) == (50.0, "serving SLA")
