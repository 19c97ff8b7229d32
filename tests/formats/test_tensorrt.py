"""The GPU path as far as a CPU can check it: TensorRT profiles, parser errors, build flags, the plan-time
refusal without a GPU or TensorRT, GPU providers for ONNX Runtime, the engine format's I/O."""

import json
import subprocess
import sys

import pytest

from optimizer.gpu import is_cuda
from optimizer import gpu
from optimizer.errors import RecipeError
from optimizer.io import IOSpec, TensorSpec
from optimizer.formats.tensorrt import profile_shapes
from optimizer.passes.tensorrt import TensorRTConfig, batch_range, format_parser_errors, legacy_flags, target
from optimizer.recipe.plan import check_environment, plan
from optimizer.recipe.compose import compose
from tests.helpers import ROOT, without_gpu_path

IMAGE = IOSpec((TensorSpec("input", "float32", ("batch", 1, 32, 32)),), (TensorSpec("logits", "float32", ("batch", 10)),))
without_gpu = pytest.mark.skipif(bool(gpu.gpus()), reason="this machine has a GPU")

TEXT = IOSpec((TensorSpec("input_ids", "int64", ("batch", "sequence")), TensorSpec("attention_mask", "int64", ("batch", "sequence")),
               TensorSpec("static", "float32", (1, 4))),
              (TensorSpec("logits", "float32", ("batch", 2)),))


def test_profile_of_an_image_input():
    assert profile_shapes(IMAGE, (1, 32, 64), {}, {}) == {"input": ((1, 1, 32, 32), (32, 1, 32, 32), (64, 1, 32, 32))}


def test_profile_of_sequence_inputs_from_the_data_or_the_recipe():
    sample = {"input_ids": [128], "attention_mask": [128], "static": [4]}
    shapes = profile_shapes(TEXT, (1, 8, 16), {}, sample)
    assert set(shapes) == {"input_ids", "attention_mask"}  # a fully static input needs no profile
    assert shapes["input_ids"] == ((1, 128), (8, 128), (16, 128))
    ranged = profile_shapes(TEXT, (1, 8, 16), {"sequence": [16, 64, 128]}, sample)
    assert ranged["attention_mask"] == ((1, 16), (8, 64), (16, 128))


def test_profile_with_an_unknown_axis_names_it():
    io = IOSpec((TensorSpec("x", "float32", ("batch", "width")),), ())
    with pytest.raises(RecipeError, match=r"input 'x' axis 1 \('width'\).*axes.width=\[min,opt,max\]"):
        profile_shapes(io, (1, 1, 1), {}, {})


def test_batch_range_follows_the_recipe():
    assert batch_range(TensorRTConfig(), [1, 8, 32], 64) == (1, 32, 64)
    assert batch_range(TensorRTConfig(), [1, 8, 128], 64) == (1, 128, 128)
    assert batch_range(TensorRTConfig(max_batch=32), [1, 8, 32], 64) == (1, 32, 32)
    assert batch_range(TensorRTConfig(min_batch=4, opt_batch=8, max_batch=8), [1], 64) == (4, 8, 8)
    with pytest.raises(ValueError, match="min_batch ≤ opt_batch ≤ max_batch"):
        batch_range(TensorRTConfig(opt_batch=64, max_batch=32), [1], 64)
    assert batch_range(TensorRTConfig(), [1, 8], 16, evaluation_batch=64) == (1, 8, 64)  # evaluation batches fit
    with pytest.raises(ValueError, match="max_batch 16 is below the batches the run sends"):
        batch_range(TensorRTConfig(max_batch=16), [1, 8], 64, evaluation_batch=64)


def test_parser_errors_name_the_failing_node():
    text = format_parser_errors([{"node": 12, "name": "/layer1/Conv", "op": "Conv", "desc": "Assertion failed:\n  kernel"},
                                 {"node": -1, "name": "", "op": "", "desc": "unsupported opset 99"}])
    assert text == "node 12 '/layer1/Conv' (Conv): Assertion failed: kernel; model: unsupported opset 99"
    assert format_parser_errors([]) == "the ONNX parser failed without saying why"


def test_weak_typing_flags_only_where_tensorrt_has_them():
    trt10 = lambda name: name in ("FP16", "INT8", "BF16")  # noqa: E731
    trt11 = lambda name: False  # noqa: E731 - strongly typed: the precision is the ONNX model's
    assert legacy_flags("fp16", trt10) == ["FP16"] and legacy_flags("int8", trt10) == ["INT8", "FP16"]
    assert legacy_flags("fp32", trt10) == [] and legacy_flags("int8", trt11) == []


def test_what_is_missing_for_an_engine_build():
    a10 = [gpu.Gpu(0, "NVIDIA A10G", "8.6")]
    assert gpu.missing_for_tensorrt("cuda", "11.4.0", a10) == []
    missing = gpu.missing_for_tensorrt("cpu", None, [])
    assert len(missing) == 3 and "hardware=aws_g5_xlarge" in missing[0]
    assert "pip install 'optimizer[tensorrt]'" in missing[1] and "libcuda" in missing[2]
    assert target("11.4.0", a10) == "tensorrt 11.4.0 on NVIDIA A10G (compute capability 8.6)"
    assert target(None, []) == "tensorrt absent on no GPU"


def test_gpu_memory_of_this_process_from_nvidia_smi():
    text = "4242, 812\n17, 100\n4242, 20\n[N/A], 3\n"
    assert gpu.parse_smi_apps(text, 4242) == 832.0 and gpu.parse_smi_apps(text, 1) is None


def test_plan_fills_the_profile_and_target_into_the_config():
    steps = plan(compose("trt_fp16", ["benchmark.batch_sizes=[1,4,16]", "serving.max_batch_cap=32",
                                      "evaluation.batch_size=32"]))
    assert [s.label for s in steps] == ["export", "fuse", "fp16", "engine"]
    engine = steps[-1]
    assert engine.spec.takes == "onnx" and engine.spec.makes == "tensorrt"
    c = engine.config
    assert (c.min_batch, c.opt_batch, c.max_batch) == (1, 16, 32) and c.target.startswith("tensorrt ")
    q = plan(compose("trt_int8"))[2]
    assert q.config.mode.value == "static" and q.config.activation_type.value == "auto"


@pytest.mark.parametrize("overrides, message", [
    (["passes.engine.optimization_level=9"], "passes.engine: optimization_level must be within 0..5"),
    (["+passes.engine.opt_batch=128", "+passes.engine.max_batch=64"], "passes.engine: the batch profile needs"),
    (["+passes.engine.precision=fp16"], "passes.engine.precision: unknown key"),
])
def test_bad_engine_settings_name_the_key(overrides, message):
    with pytest.raises(RecipeError) as err:
        plan(compose("trt_fp16", overrides))
    assert str(err.value).startswith(message)


@without_gpu_path()
def test_gpu_recipe_without_gpu_or_tensorrt_names_what_is_missing():
    with pytest.raises(RecipeError) as err:
        check_environment(plan(compose("trt_int8")), compose("trt_int8"))
    text = str(err.value)
    assert text.startswith("passes.engine: the tensorrt pass builds an engine on an NVIDIA GPU and needs ")
    assert "\n" not in text
    if gpu.tensorrt_version() is None:
        assert "TensorRT (not installed: pip install 'optimizer[tensorrt]')" in text
    if not gpu.gpus():
        assert "an NVIDIA GPU (the CUDA driver, libcuda.so.1, sees none on this machine)" in text


def test_tensorrt_step_on_cpu_hardware_is_refused():
    cfg = compose("trt_int8", ["hardware=local_cpu"])
    with pytest.raises(RecipeError, match="a GPU hardware entry"):
        check_environment(plan(cfg), cfg)


@without_gpu
def test_cuda_hardware_without_a_gpu_is_refused():
    cfg = compose("int8", ["hardware=aws_g5_xlarge"])
    with pytest.raises(RecipeError, match="hardware entry .aws-g5.xlarge. is for a GPU.*hardware=local_cpu"):
        check_environment(plan(cfg), cfg)


def test_unknown_onnx_provider_is_refused():
    cfg = compose("int8", ["hardware.onnx_provider=vulkan"])
    with pytest.raises(RecipeError, match="hardware.onnx_provider: expected cuda or tensorrt"):
        check_environment(plan(cfg), cfg)


def test_cpu_recipe_never_loads_tensorrt_or_cuda():
    code = ("import sys; from optimizer.recipe.plan import plan, check_environment; from optimizer.recipe.compose import compose;"
            "from optimizer.registry import load_passes; load_passes();"
            "cfg = compose('int8'); check_environment(plan(cfg), cfg);"
            "maps = open('/proc/self/maps').read();"
            "print(json.dumps({'tensorrt': 'tensorrt' in sys.modules, 'libcuda': 'libcuda' in maps,"
            " 'torch': 'torch' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"tensorrt": False, "libcuda": False, "torch": False}


def test_onnx_runtime_gpu_providers():
    from optimizer.config import Device, HardwareConfig
    from optimizer.formats.onnx import gpu_providers
    from optimizer.formats.tensorrt import profile_strings

    hw = HardwareConfig(name="g5", device=Device.cuda)
    with pytest.raises(RecipeError, match="pip install onnxruntime-gpu"):
        gpu_providers(hw, ["CPUExecutionProvider"])
    available = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert [p if isinstance(p, str) else p[0] for p in gpu_providers(hw, available)] == \
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
    hw = HardwareConfig(name="g5", device=Device.cuda, onnx_provider="tensorrt")
    shapes = profile_strings(profile_shapes(IMAGE, (1, 32, 64), {}, {}))
    name, options = gpu_providers(hw, available, "int8", "/c/ort", shapes)[0]
    assert name == "TensorrtExecutionProvider"
    assert options["trt_int8_enable"] and options["trt_fp16_enable"] and options["trt_engine_cache_path"] == "/c/ort"
    assert options["trt_timing_cache_enable"] and options["trt_profile_max_shapes"] == "input:64x1x32x32"
    assert options["trt_profile_min_shapes"] == "input:1x1x32x32"
    with pytest.raises(RecipeError, match="no TensorRT execution provider"):
        gpu_providers(hw, available[1:])


def test_engine_format_reads_its_io_without_a_gpu(tmp_path):
    from optimizer import formats
    from optimizer.artifact import Artifact
    from optimizer.triton.emit import model_io

    fmt = formats.get("tensorrt")
    assert (fmt.file_name, fmt.triton_platform) == ("model.plan", "tensorrt_plan")
    (tmp_path / "model.plan").write_bytes(b"not an engine")
    (tmp_path / "io.json").write_text(json.dumps(IMAGE.to_dict()))
    assert fmt.io(Artifact(path=tmp_path / "model.plan", format="tensorrt")) == IMAGE
    assert model_io(tmp_path / "model.plan", "tensorrt") == {
        "inputs": [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 1, 32, 32]}],
        "outputs": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [-1, 10]}]}
    with pytest.raises(RecipeError, match="runs on a GPU"):
        formats.load(Artifact(path=tmp_path / "model.plan", format="tensorrt", meta={"io": IMAGE.to_dict()}),
                     __import__("optimizer.config", fromlist=["HardwareConfig"]).HardwareConfig())


def test_gpu_recipes_are_priced():
    from optimizer.decide.cost import price

    cfg = compose("trt_fp16")
    assert is_cuda(cfg.hardware) and cfg.hardware.gpu == "A10G"
    assert price(cfg.hardware.price_per_hour, 10_000.0)["cost_per_million"] == pytest.approx(1.006 / (10_000 * 3600) * 1e6)
