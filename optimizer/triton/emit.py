"""A Triton model config from the tuned values: template .pbtxt -> Triton's ModelConfig protobuf, checked
against Triton's rules. ``repository.py`` writes it to disk."""

from pathlib import Path
from typing import Dict, List, Optional

from optimizer.errors import RecipeError
from optimizer.resources import TEMPLATES

ONNX_TO_TRITON = {  # onnx.TensorProto element type -> Triton data type name
    1: "TYPE_FP32", 2: "TYPE_UINT8", 3: "TYPE_INT8", 4: "TYPE_UINT16", 5: "TYPE_INT16", 6: "TYPE_INT32",
    7: "TYPE_INT64", 8: "TYPE_STRING", 9: "TYPE_BOOL", 10: "TYPE_FP16", 11: "TYPE_FP64", 12: "TYPE_UINT32",
    13: "TYPE_UINT64", 16: "TYPE_BF16",
}


def model_io(path: Path, fmt: str = "onnx") -> Dict[str, List[Dict]]:
    """Inputs and outputs of a model file as Triton sees them: name, Triton type, dims (-1 for dynamic axes)."""
    from optimizer import formats
    from optimizer.artifact import Artifact

    spec = formats.get(fmt).io(Artifact(path=Path(path), format=fmt))  # the file itself: that is what Triton loads

    def entry(t) -> Dict:
        import numpy as np

        from onnx.helper import np_dtype_to_tensor_dtype

        elem = np_dtype_to_tensor_dtype(np.dtype(t.dtype))
        if elem not in ONNX_TO_TRITON:
            raise RecipeError(f"model input/output {t.name!r}: type {t.dtype} has no Triton type")
        return {"name": t.name, "data_type": ONNX_TO_TRITON[elem],
                "dims": [d if isinstance(d, int) and d > 0 else -1 for d in t.shape]}

    return {"inputs": [entry(t) for t in spec.inputs], "outputs": [entry(t) for t in spec.outputs]}


TRITON_GRAPH_LEVEL = {"disabled": 2, "basic": -1, "extended": 1}  # onnxruntime backend's optimization.graph.level


def session_options(config, hw) -> None:
    """The hardware entry's (or the chosen trial's) ONNX Runtime session options, as the onnxruntime backend reads
    them: ``execution_mode`` 1 with ``inter_op_thread_count`` for parallel execution, and
    ``optimization.graph.level`` (unset: all optimizations, the backend's default)."""
    if hw.execution_mode.value == "parallel":
        config.parameters["execution_mode"].string_value = "1"
        config.parameters["inter_op_thread_count"].string_value = str(hw.inter_op_threads)
    if hw.graph_optimization_level.value in TRITON_GRAPH_LEVEL:
        config.optimization.graph.level = TRITON_GRAPH_LEVEL[hw.graph_optimization_level.value]


def batchable(io: Dict[str, List[Dict]]) -> bool:
    """Triton batching needs a dynamic first axis on every input and output."""
    return all(t["dims"] and t["dims"][0] == -1 for t in io["inputs"] + io["outputs"])


def build_config(name: str, fmt: str, io: Dict, tuning: Dict, gpu: bool, sample: Optional[Dict[str, List[int]]] = None,
                 response_cache: bool = False, hardware=None):
    """The ModelConfig protobuf: the platform's template, filled from the model and the tuning.

    ``response_cache`` turns on Triton's response cache (identical requests answered from the cache; only
    right for a deterministic model; the server must run with ``--cache-config``).
    ``sample`` gives each input's per-sample shape in the data: the warm-up request needs concrete dims where
    the model's are dynamic (Triton refuses a warm-up with -1 dims). ``hardware``: its ONNX Runtime session
    options (``session_options``) go into an onnxruntime model's config."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from optimizer import formats

    platform = formats.get(fmt).triton_platform
    if platform is None:
        raise RecipeError(f"no Triton template for a {fmt} model; add an onnx_export step to the recipe")
    config = text_format.Parse((TEMPLATES / f"{platform}.pbtxt").read_text(), mc.ModelConfig())
    config.name = name
    batch = tuning["max_batch_size"] if batchable(io) else 0
    config.max_batch_size = batch
    for field, tensors in (("input", io["inputs"]), ("output", io["outputs"])):
        for t in tensors:
            entry = getattr(config, field).add()
            entry.name, entry.data_type = t["name"], mc.DataType.Value(t["data_type"])
            entry.dims.extend(t["dims"][1:] if batch > 0 else t["dims"])
    group = config.instance_group.add()
    group.kind = mc.ModelInstanceGroup.Kind.Value("KIND_GPU" if gpu else "KIND_CPU")
    group.count = tuning["instances"]
    if not gpu:
        config.parameters["intra_op_thread_count"].string_value = str(tuning["threads"])
    if batch > 0:  # no preferred size is Triton's default: batch what is queued, as much as fits
        config.dynamic_batching.SetInParent()
        if tuning["preferred_batch_size"] > 0:
            config.dynamic_batching.preferred_batch_size.append(tuning["preferred_batch_size"])
        config.dynamic_batching.max_queue_delay_microseconds = tuning["max_queue_delay_us"]
        queue_policies(config.dynamic_batching, tuning)
    if response_cache:
        config.response_cache.enable = True
    if hardware is not None and platform == "onnxruntime_onnx":
        session_options(config, hardware)
    warm = config.model_warmup.add()
    warm.batch_size = max(1, tuning["preferred_batch_size"]) if batch > 0 else 1
    warm.name = f"warmup_batch_{warm.batch_size}"
    for t in io["inputs"]:
        data = warm.inputs[t["name"]]
        data.data_type = mc.DataType.Value(t["data_type"])
        dims = t["dims"][1:] if batch > 0 else t["dims"]
        known = (sample or {}).get(t["name"]) or [1] * len(t["dims"])
        known = known if batch > 0 else [1, *known]
        data.dims.extend(d if d > 0 else int(k) for d, k in zip(dims, known))
        data.zero_data = True
    return config


# Triton's ONNX Runtime backend maps these keys of its "tensorrt" GPU accelerator onto the TensorRT EP's options.
PRECISION_MODES = {"fp16": "FP16", "int8": "INT8"}  # anything else: FP32


def profile_shapes(io: Dict, sample: Optional[Dict[str, List[int]]], batches) -> Dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` strings for the inputs' -1 dims: the batch axis takes ``batches``
    (min, opt, max), other dynamic axes their size in ``sample`` (per-sample shapes, batch axis excluded)."""
    from optimizer.formats.tensorrt import profile_shapes as shapes, profile_strings
    from optimizer.io import IOSpec, TensorSpec

    spec = IOSpec(tuple(TensorSpec(t["name"], "float32", tuple(d if d > 0 else ("batch" if i == 0 else f"dim{i}")
                                                               for i, d in enumerate(t["dims"]))) for t in io["inputs"]), ())
    return profile_strings(shapes(spec, batches, {}, sample or {}, fallback=1, every_input=True))


def tensorrt_accelerator(config, io: Dict, precision: str, sample: Optional[Dict[str, List[int]]] = None,
                         workspace_mb: int = 4096, cache_path: str = "/tmp/triton_ort_tensorrt") -> None:
    """Add ``optimization.execution_accelerators.gpu_execution_accelerator [{name: "tensorrt"}]`` to an ONNX
    model's config: FP16/INT8 as the model is, engine and timing caches, and one shape profile whose batch
    axis spans 1 .. max_batch_size with the warm-up batch as its optimum."""
    acc = config.optimization.execution_accelerators.gpu_execution_accelerator.add()
    acc.name = "tensorrt"
    params = {"precision_mode": PRECISION_MODES.get(precision, "FP32"),
              "max_workspace_size_bytes": str(int(workspace_mb) << 20),
              "trt_builder_optimization_level": "3",
              "trt_engine_cache_enable": "true", "trt_engine_cache_path": cache_path,
              "trt_timing_cache_enable": "true", "trt_timing_cache_path": cache_path}
    if config.max_batch_size > 0:
        opt = max(1, min(config.max_batch_size, max([w.batch_size for w in config.model_warmup] or [1])))
        for key, value in profile_shapes(io, sample, (1, opt, config.max_batch_size)).items():
            params[f"trt_profile_{key}_shapes"] = value
    for key, value in params.items():
        acc.parameters[key] = value


def _profile_problems(c, max_profile_batch: Optional[int]) -> List[str]:
    """A config whose batches exceed the engine's (or the accelerator's) shape profile fails at load or run."""
    problems = []
    if max_profile_batch is not None and c.max_batch_size > max_profile_batch:
        problems.append(f"max_batch_size {c.max_batch_size} exceeds the engine's profile maximum {max_profile_batch}")
    for acc in c.optimization.execution_accelerators.gpu_execution_accelerator:
        shapes = acc.parameters.get("trt_profile_max_shapes", "")
        for part in filter(None, shapes.split(",")):
            name, dims = part.rsplit(":", 1)
            if c.max_batch_size > 0 and int(dims.split("x")[0]) < c.max_batch_size:
                problems.append(f"tensorrt accelerator profile of {name!r} ends at batch {dims.split('x')[0]} "
                                f"< max_batch_size {c.max_batch_size}")
    return problems


def queue_policies(batching, tuning: Dict) -> None:
    """Overload protection and QoS tiers (see tune.py): ``default_queue_policy``, and with tiers
    ``priority_levels``, ``default_priority_level`` and one ``priority_queue_policy`` per level, written even
    for an unbounded tier (``max_queue_size: 0``, no timeout): Triton gives a level without its own policy the
    ``default_queue_policy``, which would bound and time out the batch tier.

    ``timeout_action`` is set to REJECT, Triton's default (enum 0), which the text format leaves out."""
    from tritonclient.grpc import model_config_pb2 as mc

    def fill(policy, size: int, timeout_us: int) -> None:
        policy.max_queue_size = size
        policy.default_timeout_microseconds = timeout_us
        policy.timeout_action = mc.ModelQueuePolicy.REJECT
        policy.allow_timeout_override = False

    if tuning.get("max_queue_size"):
        fill(batching.default_queue_policy, tuning["max_queue_size"], tuning.get("queue_timeout_us", 0))
    tiers = tuning.get("tiers") or []
    if tiers:
        batching.priority_levels = len(tiers)
        batching.default_priority_level = tuning["default_priority_level"]
        for tier in tiers:  # every level gets its own policy: a level without one falls back to default_queue_policy
            fill(batching.priority_queue_policy[tier["level"]], tier["max_queue_size"], tier["timeout_us"])


def validate(config_path: Path, io: Dict, cores: Optional[int] = None,
             max_profile_batch: Optional[int] = None) -> List[str]:
    """Triton's rules that bite people, checked on the file as written (parsed back)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    c = text_format.Parse(Path(config_path).read_text(), mc.ModelConfig())
    problems = []
    if c.name != Path(config_path).parent.name:
        problems.append(f"name {c.name!r} differs from its directory {Path(config_path).parent.name!r}")
    names = [t.name for t in list(c.input) + list(c.output)]
    if len(set(names)) != len(names):
        problems.append(f"input/output names are not unique: {names}")
    for p in c.dynamic_batching.preferred_batch_size:
        if p > c.max_batch_size or p < 1:
            problems.append(f"preferred_batch_size {p} is outside 1..max_batch_size ({c.max_batch_size})")
    if c.HasField("dynamic_batching") and c.max_batch_size == 0:
        problems.append("dynamic_batching needs max_batch_size > 0")
    for w in c.model_warmup:
        if c.max_batch_size and w.batch_size > c.max_batch_size:
            problems.append(f"model_warmup {w.name!r} batch_size {w.batch_size} > max_batch_size")
        for name, data in w.inputs.items():
            if any(d < 1 for d in data.dims):
                problems.append(f"model_warmup {w.name!r} input {name!r} has variable dims {list(data.dims)}")
    db = c.dynamic_batching
    if db.priority_levels and not 1 <= db.default_priority_level <= db.priority_levels:
        problems.append(f"default_priority_level {db.default_priority_level} is outside 1..priority_levels "
                        f"({db.priority_levels})")
    if any(level < 1 or level > db.priority_levels for level in db.priority_queue_policy):
        problems.append(f"priority_queue_policy levels {sorted(db.priority_queue_policy)} exceed priority_levels "
                        f"({db.priority_levels})")
    if c.max_batch_size > 0 and not batchable(io):
        problems.append("max_batch_size > 0 but the model has a fixed first axis")
    held = {s.input_name: s for s in c.sequence_batching.state}  # implicit state: declared there, not as I/O
    held.update({s.output_name: s for s in c.sequence_batching.state})
    for field, tensors in (("input", io["inputs"]), ("output", io["outputs"])):
        declared = {t.name: (mc.DataType.Name(t.data_type), list(t.dims)) for t in getattr(c, field)}
        declared.update({n: (mc.DataType.Name(s.data_type), list(s.dims)) for n, s in held.items() if n not in declared})
        for t in tensors:
            want = (t["data_type"], t["dims"][1:] if c.max_batch_size > 0 else t["dims"])
            if declared.get(t["name"]) != want:
                problems.append(f"{field} {t['name']!r}: config says {declared.get(t['name'])}, model has {want}")
    threads = int(c.parameters["intra_op_thread_count"].string_value or 0) \
        if "intra_op_thread_count" in c.parameters else 0
    for g in c.instance_group:
        if cores and g.kind == mc.ModelInstanceGroup.KIND_CPU and g.count * max(threads, 1) > cores:
            problems.append(f"{g.count} CPU instances × {threads} threads exceed {cores} cores")
    return problems + _profile_problems(c, max_profile_batch)
