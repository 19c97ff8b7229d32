"""Recipes through the command line: bad input gives one clear line and exit 2 before any model loads; --cfg job
prints the composed recipe."""

import pytest

from optimizer.errors import EXIT_RECIPE
from tests.helpers import error_lines, run_cli


def _user_recipe(tmp_path, body: str):
    (tmp_path / "recipe").mkdir()
    (tmp_path / "recipe" / "mine.yaml").write_text("# @package _global_\n" + body)
    return ["--config-dir", str(tmp_path), "recipe=mine"]


TYPO = "passes:\n  export: {type: onnx_export}\n  quantize: {type: quantize, calibraton_samples: 8}\n"
ORDER = "passes:\n  quantize: {type: quantize}\n  export: {type: onnx_export}\n"


@pytest.mark.parametrize(
    "args, first_line",
    [
        (["recipe=int9"], "error: unknown recipe 'int9'; available: auto, baseline"),
        ("typo", "error: passes.quantize.calibraton_samples: unknown key"),
        (["passes.quantize.mode=int4"], "error: passes.quantize.mode: Invalid value 'int4', expected one of"),
        ("order", "error: passes.quantize: pass 'quantize' takes a onnx model but model.source gives torch"),
        (["model.source=tests.nowhere:build"], "error: model.source 'tests.nowhere:build': cannot import module"),
        (["model.source=/nonexistent/m.onnx", "passes.export=null"], "error: model.source '/nonexistent/m.onnx': no such file"),
        ("corrupt", "error: model.source"),
        (["benchmark.batch_sizes=[-1]"], "error: benchmark.batch_sizes: every batch size must be a positive integer"),
    ],
    ids=["unknown-recipe", "typo", "enum", "order", "factory", "missing-onnx", "corrupt-onnx", "batch-size"],
)
def test_cli_bad_input(args, first_line, tmp_path, cache_dir):
    if args == "typo":
        args = _user_recipe(tmp_path, TYPO)
    elif args == "order":
        args = _user_recipe(tmp_path, ORDER)
    elif args == "corrupt":
        bad = tmp_path / "corrupt.onnx"
        bad.write_bytes(b"\x08\x07 this is not a protobuf")
        args = [f"model.source={bad}", "passes.export=null"]
    code, out, summary = run_cli(args, cache_dir, tmp_path / "run")
    lines = [line for line in out.strip().splitlines() if line.strip()]
    (error,) = error_lines(out)  # on stderr: after the status line of the step it stopped at, if any
    assert code == EXIT_RECIPE, out
    assert error.startswith(first_line), out
    assert len(lines) <= 2 and "Traceback" not in out, out
    if first_line.startswith("error: model.source") and "no such file" not in error:
        # found while loading the model, after planning: the summary records the failure
        assert summary["status"] == "error" and summary["exit_code"] == EXIT_RECIPE
        assert summary["error"] == error[len("error: "):]
    else:
        assert summary is None  # planning failed: nothing ran, nothing written
    if first_line.startswith("error: model.source") and "corrupt" in str(args):
        assert "is not a valid ONNX model" in error


def test_cli_prints_composed_recipe(cache_dir, tmp_path):
    code, out, _ = run_cli(["recipe=int8", "passes.quantize.per_channel=false", "--cfg", "job"], cache_dir, tmp_path)
    assert code == 0, out
    assert "per_channel: false" in out and "type: quantize" in out and "calibration_samples: 256" in out
