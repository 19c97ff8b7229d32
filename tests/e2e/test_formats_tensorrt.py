"""The GPU recipe through the command line on a machine without a GPU or TensorRT: exit 2 and a summary before any
step runs."""

from optimizer.errors import EXIT_RECIPE
from tests.helpers import FAST, run_cli, without_gpu_path


@without_gpu_path()
def test_cli_stops_before_any_work_with_exit_2_and_a_summary(cache_dir, tmp_path):
    code, out, summary = run_cli(["recipe=trt_fp16", *FAST], cache_dir, tmp_path)
    assert code == EXIT_RECIPE, out
    assert "Traceback" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: passes.engine: the tensorrt pass")
    assert summary["status"] == "error" and summary["exit_code"] == EXIT_RECIPE and summary["variants"] == []
    assert "passes.engine" in summary["error"]
    assert not (tmp_path / "export.log").exists()  # no step ran
