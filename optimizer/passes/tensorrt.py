"""TensorRT: an ONNX model built into a serialized engine (``model.plan``) for the GPU it runs on.

TensorRT 11 networks are strongly typed: the ONNX model's own types decide the precision (an FP16 model from
``quantize`` mode fp16 runs FP16, Q/DQ nodes from static quantization run INT8). TensorRT 10 still has the
weak-typing builder flags; there they are set from the model's precision (feature-detected). Every dynamic
input gets an optimization profile: the batch axis from the recipe's batch sizes, other named axes
(``sequence``) from ``axes`` or the data. The builder's timing cache persists in the cache directory, so
later builds on the same GPU and TensorRT skip most kernel timing. ``tensorrt`` is imported only inside
``build``; the plan refuses the step, before any work, where TensorRT or a GPU is missing."""

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from optimizer.artifact import Artifact
from optimizer.errors import PassError, RecipeError
from optimizer.files import content_key, write_atomic
from optimizer.formats.onnx import read_io
from optimizer.formats.tensorrt import Range, profile_shapes
from optimizer.io import IOSpec
from optimizer.registry import register

@dataclass(frozen=True)
class TensorRTConfig:
    workspace_mb: int = 4096  # builder scratch memory limit (MemoryPoolType.WORKSPACE), MiB
    optimization_level: int = 3  # builder_optimization_level, 0 (fast build) .. 5 (most tactics tried)
    min_batch: int = 1  # smallest batch the engine accepts
    opt_batch: int = 0  # batch the kernels are tuned for; 0: the largest of benchmark.batch_sizes
    max_batch: int = 0  # largest batch; 0: the largest of benchmark.batch_sizes, serving.max_batch_cap, evaluation.batch_size
    axes: Dict[str, List[int]] = field(default_factory=dict)  # [min, opt, max] of other named dynamic axes (sequence); default: the data's size
    timing_cache: bool = True  # reuse and extend <cache>/tensorrt/timing-*.cache across builds
    layer_info: bool = True  # profiling verbosity DETAILED; the engine inspector's per-layer JSON saved as layers.json
    target: str = ""  # set at plan time: TensorRT version, GPU name and compute capability (part of the cache key)

    def __post_init__(self):
        if self.workspace_mb < 1:
            raise ValueError(f"workspace_mb must be at least 1, got {self.workspace_mb}")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"optimization_level must be within 0..5, got {self.optimization_level}")
        if self.min_batch < 1 or self.opt_batch < 0 or self.max_batch < 0:
            raise ValueError("min_batch must be ≥ 1, opt_batch and max_batch ≥ 0 (0: from the recipe)")
        for name, r in self.axes.items():
            if len(r) != 3 or not 1 <= r[0] <= r[1] <= r[2]:
                raise ValueError(f"axes.{name} must be [min, opt, max] with 1 ≤ min ≤ opt ≤ max, got {list(r)}")


def batch_range(cfg: TensorRTConfig, batch_sizes: Sequence[int], max_batch_cap: int, evaluation_batch: int = 1) -> Range:
    """The batch axis's profile: every batch the run sends (benchmark sizes, the Triton sweep's cap, the
    evaluation's batches), unless set explicitly."""
    largest = max(int(b) for b in batch_sizes)
    hi = cfg.max_batch or max(largest, int(max_batch_cap), int(evaluation_batch))
    opt = cfg.opt_batch or min(largest, hi)
    lo = cfg.min_batch
    if not lo <= opt <= hi:
        raise ValueError(f"the batch profile needs min_batch ≤ opt_batch ≤ max_batch, got {lo}, {opt}, {hi}")
    if hi < max(largest, int(evaluation_batch)):
        raise ValueError(f"max_batch {hi} is below the batches the run sends (benchmark.batch_sizes up to {largest}, "
                         f"evaluation.batch_size {evaluation_batch}); raise it or lower those")
    return lo, opt, hi


def format_parser_errors(errors: Sequence[Mapping]) -> str:
    """TensorRT's ONNX parser errors on one line, each naming the failing node: ``node 12 'Conv_3' (Conv):
    desc``. ``errors`` are dicts with ``node`` (index, -1 unknown), ``name``, ``op`` and ``desc``."""
    parts = []
    for e in errors:
        where = []
        if e.get("node", -1) is not None and int(e.get("node", -1)) >= 0:
            where.append(f"node {e['node']}")
        if e.get("name"):
            where.append(repr(e["name"]))
        if e.get("op"):
            where.append(f"({e['op']})")
        desc = " ".join(str(e.get("desc", "")).split())
        parts.append(f"{' '.join(where) or 'model'}: {desc}" if desc else " ".join(where))
    return "; ".join(parts) or "the ONNX parser failed without saying why"


def target(trt_version: Optional[str], devices) -> str:
    """What the engine is built for: TensorRT version, GPU name, compute capability (device 0)."""
    gpu = f"{devices[0].name} (compute capability {devices[0].compute_capability})" if devices else "no GPU"
    return f"tensorrt {trt_version or 'absent'} on {gpu}"


def prepare(cfg: TensorRTConfig, recipe) -> TensorRTConfig:
    """At plan time: the batch profile from the recipe and the build target, so both enter the cache key."""
    from optimizer import gpu

    lo, opt, hi = batch_range(cfg, recipe.benchmark.batch_sizes, recipe.serving.max_batch_cap,
                              recipe.evaluation.batch_size)
    devices = gpu.gpus() if gpu.is_cuda(recipe.hardware) else []
    return replace(cfg, min_batch=lo, opt_batch=opt, max_batch=hi, target=target(gpu.tensorrt_version(), devices))


def requires(cfg: TensorRTConfig, recipe, where: str) -> None:
    """Before any work: a GPU hardware entry, TensorRT and a visible GPU, or one line saying what is missing."""
    from optimizer import gpu

    device = recipe.hardware.device.value
    missing = gpu.missing_for_tensorrt(device, gpu.tensorrt_version(), gpu.gpus() if gpu.is_cuda(recipe.hardware) else [])
    if missing:
        raise RecipeError(f"{where}: the tensorrt pass builds an engine on an NVIDIA GPU and needs "
                          f"{' and '.join(filter(None, ['; '.join(missing[:-1]), missing[-1]]))}")


def legacy_flags(precision: str, has_flag) -> List[str]:
    """TensorRT 10's weak-typing builder flags for a model of ``precision`` (none on TensorRT 11, which has no
    such flags: ``has_flag(name)`` is false there)."""
    wanted = {"fp16": ["FP16"], "int8": ["INT8", "FP16"]}.get(precision, [])
    return [f for f in wanted if has_flag(f)]


class ParseError(Exception):
    def __init__(self, errors: List[Dict]):
        super().__init__(format_parser_errors(errors))
        self.errors = errors


class BuildError(Exception):
    pass


def _logger(trt):
    """A TensorRT logger that keeps warnings and errors, so a failed build can say why."""

    class Log(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)
            self.lines: List[str] = []

        def log(self, severity, msg):
            if int(severity) <= int(trt.ILogger.Severity.WARNING):
                self.lines.append(" ".join(str(msg).split()))

    return Log()


def _parser_errors(parser) -> List[Dict]:
    def field(error, method: str, default):
        return getattr(error, method)() if hasattr(error, method) else default  # node_name: TensorRT >= 8.6

    return [{"node": field(e, "node", -1), "name": field(e, "node_name", ""), "op": field(e, "node_operator", ""),
             "desc": field(e, "desc", str(e))} for e in map(parser.get_error, range(parser.num_errors))]


def _timing_cache_file(directory: Path, trt, info: str) -> Path:
    return directory / f"timing-{content_key(trt.__version__, info)[:16]}.cache"


def build_engine(src, out: Path, cfg: TensorRTConfig, shapes: Dict, precision: str,
                 timing_dir: Optional[Path], io: IOSpec) -> Dict:
    """Parse ``src``, build and serialize the engine to ``out``; its I/O and build facts. Needs a GPU."""
    import tensorrt as trt

    from optimizer import gpu

    log = _logger(trt)
    builder = trt.Builder(log)
    network = builder.create_network(0)  # explicit batch is the only mode since TensorRT 10
    parser = trt.OnnxParser(network, log)
    if not parser.parse_from_file(str(src)):
        raise ParseError(_parser_errors(parser))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, cfg.workspace_mb << 20)
    config.builder_optimization_level = cfg.optimization_level
    if cfg.layer_info:
        config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED
    flags = legacy_flags(precision, lambda name: hasattr(trt.BuilderFlag, name))
    for name in flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if shapes:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in shapes.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    devices = gpu.gpus()
    device = f"{devices[0].name} {devices[0].compute_capability}" if devices else "unknown"
    cache_file = _timing_cache_file(timing_dir, trt, device) if timing_dir else None
    blob = cache_file.read_bytes() if cache_file and cache_file.exists() else b""
    timing = config.create_timing_cache(blob)
    config.set_timing_cache(timing, False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise BuildError("; ".join(log.lines[-3:]) or "build_serialized_network returned nothing")
    plan = bytes(plan)
    write_atomic(out, plan)
    if cache_file:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cache_file, bytes(timing.serialize()))
    runtime = trt.Runtime(log)  # must outlive the engine
    engine = runtime.deserialize_cuda_engine(plan)
    layers = None
    if cfg.layer_info:
        text = engine.create_engine_inspector().get_engine_information(trt.LayerInformationFormat.JSON)
        (out.parent / "layers.json").write_text(text)
        try:
            layers = len(json.loads(text).get("Layers", []))
        except ValueError:
            layers = None
    return {"io": engine_io(engine, trt, io).to_dict(),
            "info": {"version": trt.__version__, "gpu": devices[0].name if devices else None,
                     "compute_capability": devices[0].compute_capability if devices else None,
                     "flags": flags, "strongly_typed": not hasattr(trt.BuilderFlag, "FP16"), "layers": layers,
                     "timing_cache": str(cache_file) if cache_file else None, "size_bytes": len(plan)}}


def engine_io(engine, trt, onnx_io: IOSpec) -> IOSpec:
    """The engine's named I/O: dtypes as the engine has them, -1 dims named as in the ONNX model."""
    import numpy as np

    from optimizer.io import TensorSpec

    named = {t.name: t.shape for t in (*onnx_io.inputs, *onnx_io.outputs)}
    ins, outs = [], []
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        dims = list(engine.get_tensor_shape(name))
        known = named.get(name, ())
        shape = tuple(d if d >= 0 else (known[k] if k < len(known) and isinstance(known[k], str) else
                                       ("batch" if k == 0 else f"dim{k}")) for k, d in enumerate(dims))
        spec = TensorSpec(name, np.dtype(trt.nptype(engine.get_tensor_dtype(name))).name, shape)
        (ins if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outs).append(spec)
    return IOSpec(tuple(ins), tuple(outs))


@register("tensorrt", TensorRTConfig, takes="onnx", makes="tensorrt", prepare=prepare, requires=requires)
def build(art: Artifact, cfg: TensorRTConfig, ctx) -> Artifact:
    io = IOSpec.from_dict(art.meta["io"]) if "io" in art.meta else None
    if io is None:
        io = read_io(art.path)
    sample = {k: list(v.shape[1:]) for k, v in ctx.data.calibration.items()}
    shapes = profile_shapes(io, (cfg.min_batch, cfg.opt_batch, cfg.max_batch), cfg.axes, sample)
    precision = str(art.meta.get("precision", "fp32"))
    cache_root = Path(ctx.out_dir).resolve().parent  # the pass writes into a fresh entry of the cache
    t0 = time.perf_counter()
    try:
        built = build_engine(art.path, ctx.out_dir / "model.plan", cfg, shapes, precision,
                             cache_root / "tensorrt" if cfg.timing_cache else None, io)
    except ParseError as e:
        raise PassError(ctx.step, f"TensorRT could not parse {Path(art.path).name}: "
                                  f"{format_parser_errors(e.errors)}") from None
    except BuildError as e:
        raise PassError(ctx.step, f"TensorRT engine build failed: {e}") from None
    (ctx.out_dir / "io.json").write_text(json.dumps(built["io"], indent=2))
    info = {**built["info"], "build_seconds": round(time.perf_counter() - t0, 2), "target": cfg.target,
            "profile": {k: [list(s) for s in v] for k, v in shapes.items()},
            "batch": [cfg.min_batch, cfg.opt_batch, cfg.max_batch],
            "workspace_mb": cfg.workspace_mb, "optimization_level": cfg.optimization_level}
    return art.evolve(path=ctx.out_dir / "model.plan", format="tensorrt",
                      meta={"precision": precision, "io": built["io"], "tensorrt": info})
