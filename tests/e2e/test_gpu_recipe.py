"""The trt_fp16 recipe end to end on a GPU through the command line, its Triton repository included, and its engine
served from the cache on a second run. ``@pytest.mark.gpu``: conftest skips it where no GPU is visible, and
``experiments/gpu_check.sh`` runs it on a GPU machine."""

import pytest

from tests.helpers import FAST, run_cli

pytestmark = pytest.mark.gpu


def test_trt_fp16_recipe_end_to_end(cache_dir, builtin, tmp_path):
    fast = [a for a in FAST if not a.startswith("triton.emit")]
    code, out, s = run_cli(["recipe=trt_fp16", *fast, "serving.max_batch_cap=16"], cache_dir, tmp_path / "first")
    assert code == 0, out
    v = {r["name"]: r for r in s["variants"]}
    assert list(v) == ["reference", "export", "fuse", "fp16", "engine"]
    engine = v["engine"]
    assert engine["status"] == "ok" and engine["format"] == "tensorrt" and engine["deployable"]
    assert engine["meta"]["tensorrt"]["batch"] == [1, 8, 64]  # opt: largest benchmark batch; max: evaluation's 64
    assert engine["evaluation"]["accuracy_drop"] <= 0.5 and engine["gpu_memory_mb"] > 0
    assert v["reference"]["gpu_memory_mb"] > 0  # the torch reference ran on the same GPU
    if s["chosen"] == "engine":
        from google.protobuf import text_format
        from tritonclient.grpc import model_config_pb2 as mc

        c = text_format.Parse((tmp_path / "first" / s["triton"]["config"]).read_text(), mc.ModelConfig())
        assert c.platform == "tensorrt_plan" and c.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
        assert 1 <= c.max_batch_size <= 16
    code, out, again = run_cli(["recipe=trt_fp16", *fast, "serving.max_batch_cap=16"], cache_dir, tmp_path / "again")
    assert code == 0, out
    assert again["passes_run"] == 0  # the engine comes from the cache
