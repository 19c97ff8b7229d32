"""The results table fits the terminal: fewer columns at 80 and 120 columns, every column in report.md."""

import pytest
from rich.console import Console

from optimizer.record.summary import columns, markdown_table, table


def _summary():
    def variant(name, chain, precision, thr, speed, verdict="faster"):
        bench = {str(bs): {"p50_ms": 0.1 * bs, "p99_ms": 0.15 * bs, "throughput": thr * bs} for bs in (1, 8, 32)}
        return {"name": name, "chain": chain, "status": "ok", "ran": False, "precision": precision,
                "size_bytes": 1_250_000, "evaluation": {"metric": "accuracy", "score": 99.11, "score_drop": 0.0,
                                                        "mean_cosine": 0.9999},
                "benchmark": bench, "speedup": {"32": speed}, "verdict": {"32": verdict},
                "cost": {"cost_per_million": 0.0123, "target_qps": 500, "min_replicas": 1, "max_replicas": 2}}

    return {"recipe": "int8", "hardware": {"name": "aws-c7i.large"}, "benchmark_batch_sizes": [1, 8, 32],
            "chosen": "quantize", "triton": {},
            "variants": [variant("reference", [], "fp32", 3306, 1.0), variant("export", ["export"], "fp32", 5111, 1.55),
                         variant("fuse", ["export", "fuse"], "fp32", 5095, 0.8, "slower"),
                         variant("quantize", ["export", "fuse", "quantize"], "int8", 13251, 4.01)]}


def _render(width):
    console = Console(width=width, record=True, color_system=None)
    console.print(table(_summary(), width))
    return console.export_text()


@pytest.mark.parametrize("width", [80, 120])
def test_table_fits_the_terminal(width):
    text = _render(width)
    header = next(line for line in text.splitlines() if "variant" in line)
    assert max(len(line) for line in text.splitlines()) <= width
    for title in ("variant", "acc %", "p50/p99 ms b1", "samples/s b32", "speed-up b32"):
        assert title in header, header  # the essential columns stay whole
    assert "quantize ★" in text and "4.01x" in text and "0.80x slower" in text
    assert "more columns in summary.json and report.md" in text


def test_narrow_terminal_drops_low_priority_columns_first():
    h80 = next(line for line in _render(80).splitlines() if "variant" in line)
    h120 = next(line for line in _render(120).splitlines() if "variant" in line)
    assert "p50/p99 ms b8" not in h80 and "size KB" not in h80 and "replicas" not in h80
    assert "status" in h120 and "cosine" in h120 and "p50/p99 ms b8" not in h120 and "$/1M" not in h120
    assert "replicas @500 qps" in h120  # asked for with serving.target_qps: kept before cost and size


def test_wide_terminal_and_report_keep_every_column():
    titles = [c[0] for c in columns(_summary())]
    assert titles == ["variant", "precision", "status", "acc %", "Δ", "cosine", "rel err", "p50/p99 ms b1", "p50/p99 ms b8",
                      "p50/p99 ms b32", "samples/s b32", "speed-up b32", "size KB", "$/1M", "replicas @500 qps"]
    text = _render(250)
    assert "more columns" not in text and all(t in text for t in titles)
    md = markdown_table(_summary()).splitlines()
    assert md[0] == "| " + " | ".join(titles) + " |" and len(md) == 2 + 4
    assert "| fuse | fp32 | cached |" in md[4] and "0.80x slower" in md[4]


def test_step_status_lines_and_a_failed_step(capsys):
    from optimizer.console import progress, step

    with step("export") as shown:
        with progress("calibrating", 2) as advance:  # a bar inside a step shares its display
            advance(2)
    with step("fuse") as shown:
        shown["outcome"], shown["seconds"] = "cached", None
    with pytest.raises(ValueError):
        with step("quantize"):
            raise ValueError("bad")
    lines = [ln.split() for ln in capsys.readouterr().err.splitlines()]
    assert lines[0][:2] == ["export", "done"] and lines[0][3] == "s" and float(lines[0][2]) >= 0
    assert lines[1:] == [["fuse", "cached"], ["quantize", "failed", lines[2][2], "s"]]


def test_caption_carries_the_traffic_recommendation():
    from optimizer.record.summary import triton_caption

    values = {"instance_group": [{"count": 2, "kind": "KIND_CPU"}], "preferred_batch_size": [], "max_batch_size": 8}
    tr = {"emitted": True, "config": "repo/m/config.pbtxt", "values": values,
          "scaling": {"min_replicas": 2, "max_replicas": 6, "saving": 0.324, "fixed_replicas": 6, "trigger_used": 0.7}}
    assert "; traffic: 2–6 replicas autoscaled, 32% below a fixed fleet of 6, scale up at 70% of capacity" \
        in triton_caption(tr)
    assert "traffic" not in triton_caption({**tr, "scaling": {}})
