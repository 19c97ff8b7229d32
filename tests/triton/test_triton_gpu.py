"""Triton configs for GPU hardware: the tensorrt_plan platform, KIND_GPU instances, the ONNX Runtime backend's
TensorRT accelerator, and profiles and warm-up consistent with max_batch_size. Each config is written, then
parsed back with tritonclient's model_config_pb2 as Triton would read it."""

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from optimizer.triton import emit

IO = {"inputs": [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 1, 32, 32]}],
      "outputs": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [-1, 10]}]}
TEXT_IO = {"inputs": [{"name": "input_ids", "data_type": "TYPE_INT64", "dims": [-1, -1]},
                      {"name": "attention_mask", "data_type": "TYPE_INT64", "dims": [-1, -1]}],
           "outputs": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [-1, 2]}]}
TUNING = {"max_batch_size": 32, "preferred_batch_size": 8, "max_queue_delay_us": 500, "instances": 1, "threads": 4}


def _written(tmp_path, config, name="m"):
    """The config as Triton reads it: text written to <name>/config.pbtxt and parsed back."""
    (tmp_path / name).mkdir(exist_ok=True)
    path = tmp_path / name / "config.pbtxt"
    path.write_text(text_format.MessageToString(config))
    return path, text_format.Parse(path.read_text(), mc.ModelConfig())


def test_tensorrt_plan_config(tmp_path):
    path, c = _written(tmp_path, emit.build_config("m", "tensorrt", IO, TUNING, gpu=True))
    assert c.platform == "tensorrt_plan" and c.max_batch_size == 32
    assert [(g.kind, g.count) for g in c.instance_group] == [(mc.ModelInstanceGroup.KIND_GPU, 1)]
    assert not c.parameters  # no ONNX Runtime thread settings for a TensorRT engine
    assert list(c.input[0].dims) == [1, 32, 32] and c.input[0].data_type == mc.TYPE_FP32
    assert list(c.dynamic_batching.preferred_batch_size) == [8] and c.model_warmup[0].batch_size == 8
    assert emit.validate(path, IO, cores=4, max_profile_batch=64) == []


def test_config_beyond_the_engine_profile_is_caught(tmp_path):
    path, _ = _written(tmp_path, emit.build_config("m", "tensorrt", IO, TUNING, gpu=True))
    assert emit.validate(path, IO, cores=4, max_profile_batch=16) == [
        "max_batch_size 32 exceeds the engine's profile maximum 16"]


def test_onnx_on_gpu_with_the_tensorrt_accelerator(tmp_path):
    config = emit.build_config("m", "onnx", IO, TUNING, gpu=True)
    emit.tensorrt_accelerator(config, IO, "fp16", {"input": [1, 32, 32]})
    path, c = _written(tmp_path, config)
    assert c.platform == "onnxruntime_onnx" and c.instance_group[0].kind == mc.ModelInstanceGroup.KIND_GPU
    accs = c.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in accs] == ["tensorrt"]
    p = dict(accs[0].parameters)
    assert p["precision_mode"] == "FP16" and p["max_workspace_size_bytes"] == str(4096 << 20)
    assert p["trt_engine_cache_enable"] == "true" and p["trt_timing_cache_enable"] == "true"
    # the profile spans every batch Triton may form, its optimum the warm-up (preferred) batch
    assert (p["trt_profile_min_shapes"], p["trt_profile_opt_shapes"], p["trt_profile_max_shapes"]) == \
        ("input:1x1x32x32", "input:8x1x32x32", "input:32x1x32x32")
    assert emit.validate(path, IO, cores=4) == []
    accs[0].parameters["trt_profile_max_shapes"] = "input:16x1x32x32"
    path, _ = _written(tmp_path, c)
    assert emit.validate(path, IO, cores=4) == ["tensorrt accelerator profile of 'input' ends at batch 16 "
                                                "< max_batch_size 32"]


def test_accelerator_precision_and_sequence_profiles(tmp_path):
    config = emit.build_config("t", "onnx", TEXT_IO, {**TUNING, "preferred_batch_size": 0}, gpu=True,
                               sample={"input_ids": [128], "attention_mask": [128]})
    emit.tensorrt_accelerator(config, TEXT_IO, "int8", {"input_ids": [128], "attention_mask": [128]})
    _, c = _written(tmp_path, config, "t")
    p = dict(c.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters)
    assert p["precision_mode"] == "INT8"
    assert p["trt_profile_opt_shapes"] == "input_ids:1x128,attention_mask:1x128"  # warm-up at batch 1
    assert p["trt_profile_max_shapes"] == "input_ids:32x128,attention_mask:32x128"
    fp32 = emit.build_config("f", "onnx", IO, TUNING, gpu=True)
    emit.tensorrt_accelerator(fp32, IO, "fp32")
    assert fp32.optimization.execution_accelerators.gpu_execution_accelerator[0].parameters["precision_mode"] == "FP32"


def test_cpu_config_carries_no_accelerator():
    c = emit.build_config("m", "onnx", IO, {**TUNING, "instances": 2, "threads": 1}, gpu=False)
    assert not c.HasField("optimization") and c.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
