"""The GPU path on a GPU: TensorRT engines (FP16, INT8 from Q/DQ), parser errors naming the node, the GPU
runtimes (torch on CUDA, ONNX Runtime's CUDA provider); the trt_fp16 recipe end to end is in
tests/e2e/test_gpu_recipe.py. Every test here is ``@pytest.mark.gpu``: conftest skips them where no GPU is visible, and
``experiments/gpu_check.sh`` runs them on a GPU machine."""

import numpy as np
import pytest

from optimizer.config import Device, HardwareConfig
from optimizer.errors import PassError

pytestmark = pytest.mark.gpu

GPU = HardwareConfig(name="gpu", device=Device.cuda, cores=4)


def _step(name, art, splits, tmp_path, hw=GPU, **params):
    from optimizer.recipe.plan import typed
    from optimizer.registry import Context, load_passes

    spec = load_passes()[name]
    out = tmp_path / f"{name}-{len(list(tmp_path.iterdir()))}"
    out.mkdir()
    return spec.fn(art, typed(spec.config_cls, params, f"passes.{name}"), Context(out, name, splits, hw))


def _outputs(art, x, hw=GPU):
    from optimizer.formats import load

    session = load(art, hw)
    try:
        return session({"input": x})["logits"]
    finally:
        session.close()


def _cosine(a, b):
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


@pytest.fixture(scope="module")
def exported(builtin, splits, tmp_path_factory):
    return _step("onnx_export", builtin, splits, tmp_path_factory.mktemp("export"), hw=HardwareConfig())


def test_fp16_engine_matches_onnx_runtime(exported, splits, tmp_path):
    half = _step("quantize", exported, splits, tmp_path, mode="fp16")
    engine = _step("tensorrt", half, splits, tmp_path, opt_batch=32, max_batch=64)
    info = engine.meta["tensorrt"]
    assert engine.format == "tensorrt" and engine.path.name == "model.plan" and engine.meta["precision"] == "fp16"
    assert info["version"] and info["gpu"] and info["compute_capability"] and info["batch"] == [1, 32, 64]
    assert info["profile"]["input"] == [[1, 1, 32, 32], [32, 1, 32, 32], [64, 1, 32, 32]]
    assert (engine.path.parent / "io.json").exists() and (engine.path.parent / "layers.json").exists()
    assert info["timing_cache"] and (tmp_path / "tensorrt").is_dir()
    x = splits.evaluation["input"][:64]
    from optimizer.formats.tensorrt import layer_times

    times = layer_times(engine, GPU, {"input": x[:32]}, runs=5)
    assert times and all(ms >= 0 for ms in times.values())
    ref = _outputs(exported, x, HardwareConfig())
    for batch in (1, 7, 64):  # every batch within the profile
        out = _outputs(engine, x[:batch])
        assert out.shape == (batch, 10) and out.dtype == np.float32
        assert _cosine(out, ref[:batch]) > 0.999 and (out.argmax(1) == ref[:batch].argmax(1)).mean() >= 0.98


def test_int8_engine_from_symmetric_qdq(exported, splits, tmp_path):
    q = _step("quantize", exported, splits, tmp_path, mode="static", calibration_samples=128)
    assert q.meta["activation_type"] == "int8" and q.meta["symmetric"] is True
    engine = _step("tensorrt", q, splits, tmp_path, opt_batch=32, max_batch=64)
    assert engine.meta["precision"] == "int8"
    x, y = splits.evaluation["input"], splits.evaluation_labels
    out = np.concatenate([_outputs(engine, x[i:i + 64]) for i in range(0, len(x), 64)])
    ref = np.concatenate([_outputs(exported, x[i:i + 64], HardwareConfig()) for i in range(0, len(x), 64)])
    assert (out.argmax(1) == y).mean() * 100 >= (ref.argmax(1) == y).mean() * 100 - 1.5
    assert _cosine(out, ref) > 0.99


def test_parser_error_names_the_node(splits, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from optimizer.artifact import Artifact

    node = helper.make_node("NoSuchOp", ["input"], ["logits"], name="mystery_node", domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                      helper.make_opsetid("com.example", 1)]), path)
    with pytest.raises(PassError, match=r"could not parse bad.onnx: .*mystery_node.*NoSuchOp"):
        _step("tensorrt", Artifact(path=path, format="onnx"), splits, tmp_path, opt_batch=1, max_batch=4)


def test_torch_and_onnx_runtime_on_cuda(builtin, exported, splits):
    x = splits.evaluation["input"][:32]
    cpu = _outputs(exported, x, HardwareConfig())
    assert _cosine(_outputs(builtin, x), cpu) > 0.9999
    assert _cosine(_outputs(exported, x), cpu) > 0.9999


def test_onnx_runtime_tensorrt_provider(exported, splits):
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        pytest.skip("this onnxruntime has no TensorRT execution provider")
    from optimizer.formats import load

    hw = HardwareConfig(name="gpu", device=Device.cuda, onnx_provider="tensorrt")
    session = load(exported.evolve(id="exported"), hw)  # an artifact with an id keeps its engines beside it
    try:
        x = splits.evaluation["input"][:32]
        out = session({"input": x})["logits"]
    finally:
        session.close()
    assert _cosine(out, _outputs(exported, x, HardwareConfig())) > 0.999
    assert (exported.path.parent / "ort_tensorrt").is_dir()  # engines cached beside the artifact
