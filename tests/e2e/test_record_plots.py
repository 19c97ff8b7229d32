"""The PNGs written next to summary.json by a command-line run with tracking off."""

from optimizer.record.plots import ACCURACY, DASHBOARD, LATENCY, THROUGHPUT
from tests.helpers import FAST, PNG, run_cli


def test_plots_written_with_tracking_disabled(cache_dir, tmp_path, builtin):
    code, log, summary = run_cli(["recipe=baseline", *FAST, "tracking.enabled=false"], cache_dir, tmp_path / "r")
    assert code == 0, log
    assert summary["tracking"] == {"skipped": "tracking.enabled=false"}
    assert summary["plots"] == [LATENCY, THROUGHPUT, ACCURACY, DASHBOARD]
    for name in summary["plots"]:
        assert (tmp_path / "r" / name).read_bytes()[:8] == PNG
    assert "tracking" not in log
