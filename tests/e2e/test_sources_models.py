"""An ONNX file as the model source, run through the command line: fuse and quantize on top of it."""

from tests.helpers import FAST, run_cli


def test_onnx_file_source_runs_fuse_and_quantize(builtin, splits, cache_dir, tmp_path):
    """A user's ONNX file: the recipe drops the export step and quantizes it directly."""
    from optimizer.config import HardwareConfig
    from optimizer.passes.onnx_export import ExportConfig, onnx_export
    from optimizer.registry import Context

    exported = onnx_export(builtin, ExportConfig(), Context(tmp_path, "export", splits, HardwareConfig()))
    code, out, s = run_cli([f"model.source={exported.path}", "passes.export=null", *FAST], cache_dir, tmp_path / "run")
    assert code == 0, out
    assert [v["name"] for v in s["variants"]] == ["reference", "fuse", "quantize"]
    ref = s["variants"][0]
    assert ref["format"] == "onnx" and ref["evaluation"]["accuracy"] >= 97.0
    assert s["variants"][2]["evaluation"]["accuracy_drop"] <= 1.0
