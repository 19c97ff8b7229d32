"""Models from other toolchains through the whole CLI: an opset-12 ONNX file (exported the way many published
models were) runs the default int8 recipe to a valid INT8 variant, with the export step skipped."""

import pytest

from tests.helpers import FAST, run_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter, used on purpose


def test_the_int8_recipe_on_an_opset_12_onnx_file(cache_dir, tmp_path):
    import torch

    from tests.factories import tiny_cnn

    path = tmp_path / "cnn.onnx"
    torch.onnx.export(tiny_cnn().eval(), torch.randn(1, 1, 32, 32), str(path), opset_version=12, dynamo=False,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    code, out, s = run_cli(["recipe=int8", f"model.source={path}", "data.source=tests.factories:small_digits",
                            "constraints.max_accuracy_drop=null", *FAST], cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    by = {v["name"]: v for v in s["variants"]}
    assert by["export"]["status"] == "skipped" and by["export"]["error"] == "model.source already gives onnx: nothing to export"
    q = by["quantize"]
    assert q["status"] == "ok" and q["precision"] == "int8" and q["meta"]["quantized_nodes"]["Conv"] == 2
    assert q["evaluation"]["mean_cosine"] > 0.99 and "evaluation" in by["fuse"]
    assert any("opset 12 was upgraded to 13" in w for w in s["warnings"]) and s["failed_steps"] == []
