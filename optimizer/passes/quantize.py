"""Quantization with ONNX Runtime: static INT8 (QDQ, calibrated), dynamic INT8 weights, FP16."""

from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Dict, List, Optional

from optimizer.artifact import Artifact
from optimizer.errors import PassError
from optimizer.gpu import is_cuda
from optimizer.registry import register


class Mode(str, Enum):
    static = "static"  # int8 weights and activations; activation ranges calibrated on data
    dynamic = "dynamic"  # int8 weights; activation ranges computed per call
    fp16 = "fp16"  # half-precision weights and compute (a GPU format: CPUs mostly lack fp16 kernels)


class Calibration(str, Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"


class IntType(str, Enum):
    auto = "auto"  # activations uint8 on CPU (fuses into QLinearConv/VNNI), int8 on GPU; weights int8
    uint8 = "uint8"
    int8 = "int8"


@dataclass(frozen=True)
class QuantizeConfig:
    mode: Mode = Mode.static  # static needs the data's calibration split
    calibration_samples: int = 256  # samples drawn from data.calibration (static)
    calibration_method: Calibration = Calibration.minmax  # how activation ranges are chosen (static)
    percentile: float = 99.999  # kept share of the histogram with calibration_method=percentile
    per_channel: bool = True  # one scale per output channel of each weight
    activation_type: IntType = IntType.auto  # integer type of activations (static)
    weight_type: IntType = IntType.auto  # integer type of weights (static, dynamic)
    reduce_range: Optional[bool] = None  # 7-bit weights; null: on for a CPU without VNNI (see prepare)
    op_types: List[str] = field(default_factory=list)  # op types to quantize; empty: see default_ops
    op_types_to_exclude: List[str] = field(default_factory=list)  # op types kept in float (taken off the op list)
    nodes_to_exclude: List[str] = field(default_factory=list)  # node names kept in float
    quantize_embeddings: bool = True  # dynamic: int8 embedding tables too (Gather, EmbedLayerNormalization)
    pre_process: bool = True  # run quant_pre_process (shape inference, graph cleanup) first
    keep_io_types: bool = True  # fp16: keep float32 inputs and outputs
    accuracy_aware: bool = False  # static, dynamic: keep the most sensitive nodes in float until the bound is met
    target_cosine: Optional[float] = None  # accuracy_aware's bound (mean cosine to the input model); null: constraints.min_cosine, else 0.99
    max_score_drop: Optional[float] = None  # accuracy_aware: points of the task's metric it may lose vs the input model; null: constraints.max_accuracy_drop
    task: str = ""  # accuracy_aware: the evaluation task bounding it with max_score_drop (plan time: evaluation.task); "": cosine only
    search_samples: int = 64  # evaluation samples accuracy_aware measures the bound on; 0: the whole split (evaluation.max_samples)
    search_batch_size: int = 0  # samples per call measuring the bound (dynamic INT8's ranges are per call); 0: evaluation.batch_size

    def __post_init__(self):
        if self.calibration_samples < 1:
            raise ValueError(f"calibration_samples must be at least 1, got {self.calibration_samples}")
        if not 90.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be within [90, 100], got {self.percentile}")
        if self.target_cosine is not None and not 0.0 < self.target_cosine <= 1.0:
            raise ValueError(f"target_cosine must be within (0, 1], got {self.target_cosine}")
        if self.search_samples < 0 or self.search_batch_size < 0:
            raise ValueError(f"search_samples and search_batch_size must be 0 (see their defaults) or more, got "
                             f"{self.search_samples}, {self.search_batch_size}")
        if self.max_score_drop is not None and self.max_score_drop < 0:
            raise ValueError(f"max_score_drop must be non-negative, got {self.max_score_drop}")
        if self.accuracy_aware and self.mode == Mode.fp16:
            raise ValueError("accuracy_aware searches static and dynamic int8; mode is fp16")


def _types(cfg: QuantizeConfig, hardware):
    from onnxruntime.quantization import QuantType

    table = {IntType.uint8: QuantType.QUInt8, IntType.int8: QuantType.QInt8}
    act = cfg.activation_type
    if act == IntType.auto:
        act = IntType.int8 if is_cuda(hardware) else IntType.uint8
    weight = IntType.int8 if cfg.weight_type == IntType.auto else cfg.weight_type
    return table[act], table[weight], act.value, weight.value


# com.microsoft ops of onnxruntime.transformers' fusions: their presence marks a fused transformer graph.
TRANSFORMER_OPS = {"Attention", "MultiHeadAttention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu"}


def default_ops(cfg: QuantizeConfig, transformer: bool = False):
    """The op types handed to ONNX Runtime's quantizer; None means every op its registry knows."""
    if cfg.op_types:
        ops = list(cfg.op_types)
    elif cfg.mode == Mode.dynamic:
        # Dynamic Conv becomes ConvInteger, which ONNX Runtime's CPU provider runs slower than fp32.
        ops = ["MatMul", "Gemm", "Attention", "LSTM", "GRU"]
        ops += ["Gather", "EmbedLayerNormalization"] if cfg.quantize_embeddings else []
    elif transformer:
        # QDQ on LayerNorm/Softmax/Gelu/Add costs transformer parity for no speed; MatMul/Gemm carry the FLOPs.
        ops = ["MatMul", "Gemm"]
    elif cfg.op_types_to_exclude:
        from onnxruntime.quantization.registry import QDQRegistry

        ops = list(QDQRegistry)
    else:
        return None
    return [op for op in ops if op not in cfg.op_types_to_exclude]


def calibration_reader(feeds: Dict, batch: int, advance):
    """A calibration reader yielding ``{input name: batch slice}`` over named arrays of equal length."""
    from onnxruntime.quantization import CalibrationDataReader

    from optimizer.io import batches, count

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = batches(feeds, batch)

        def get_next(self):
            chunk = next(self.batches, None)
            if chunk is None:
                return None
            advance(count(chunk))
            return chunk

    return Reader()


def _calibration_feeds(src: str, cfg: QuantizeConfig, ctx) -> Dict:
    """The calibration split's arrays for every graph input, at most ``calibration_samples`` of them."""
    import onnxruntime as ort

    from optimizer.io import take

    names = [i.name for i in ort.InferenceSession(src, providers=["CPUExecutionProvider"]).get_inputs()]
    missing = [n for n in names if n not in ctx.data.calibration]
    if missing:
        raise PassError(ctx.step, f"calibration data has no array for model input(s) {missing} "
                                  f"(it has {sorted(ctx.data.calibration)})")
    return take({n: ctx.data.calibration[n] for n in names}, slice(0, cfg.calibration_samples))


def activation_matmuls(src: str) -> List[str]:
    """MatMul nodes whose inputs are both activations (attention scores and context): kept in float."""
    import onnx

    graph = onnx.load(src, load_external_data=False).graph
    weights = {i.name for i in graph.initializer} | {
        o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in graph.node if n.op_type == "MatMul" and not set(n.input[:2]) & weights]


def _static(src: str, out: Path, cfg: QuantizeConfig, ctx, transformer: bool) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from optimizer.console import progress

    act, weight, act_name, weight_name = _types(cfg, ctx.hardware)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    feeds = _calibration_feeds(src, cfg, ctx)
    n = len(next(iter(feeds.values())))
    ops = default_ops(cfg, transformer)
    exclude = sorted({*cfg.nodes_to_exclude, *(activation_matmuls(src) if transformer else [])})
    extra = {"CalibPercentile": cfg.percentile} if cfg.calibration_method == Calibration.percentile else {}
    symmetric = is_cuda(ctx.hardware)  # TensorRT takes Q/DQ only with zero points of 0
    if symmetric:
        extra.update(ActivationSymmetric=True, WeightSymmetric=True)
    warnings = []

    def run(options):
        with progress(f"calibrating ({cfg.calibration_method.value})", n) as advance:
            quantize_static(src, str(out), calibration_reader(feeds, 32, advance), quant_format=QuantFormat.QDQ,
                            per_channel=cfg.per_channel, reduce_range=reduce_range(cfg, ctx.hardware),
                            activation_type=act, weight_type=weight, op_types_to_quantize=ops,
                            nodes_to_exclude=exclude, calibrate_method=methods[cfg.calibration_method.value],
                            extra_options=options)

    try:
        run(extra)
    except Exception as e:  # ONNX Runtime's int32-bias weight-scale adjustment fails on some graphs
        from optimizer.passes.quantize_checks import raised_in

        if not raised_in(e, "_adjust_weight_scale_for_int32_bias"):
            raise
        run({**extra, "QDQDisableWeightAdjustForInt32Bias": True})
        warnings.append(f"passes.{ctx.step}: ONNX Runtime's weight-scale adjustment for int32 biases failed "
                        f"({type(e).__name__}: {str(e)[:120]}); quantized without it")
    meta = {"precision": "int8", "activation_type": act_name, "weight_type": weight_name,
            "calibration_samples": n, "calibration_method": cfg.calibration_method.value,
            "op_types": ops, "nodes_excluded": len(exclude), "symmetric": symmetric,
            "reduce_range": reduce_range(cfg, ctx.hardware)}
    if n < cfg.calibration_samples:  # asked for more than the split holds: say so, never cut silently
        warnings.append(f"passes.{ctx.step}.calibration_samples={cfg.calibration_samples} but "
                        f"the calibration split has {n} samples; calibrated on {n}")
    return {**meta, "warnings": warnings} if warnings else meta


def _dynamic(src: str, out: Path, cfg: QuantizeConfig, ctx, transformer: bool) -> dict:
    import onnx
    from onnxruntime.quantization import quantize_dynamic

    _, weight, _, weight_name = _types(cfg, ctx.hardware)
    ops = default_ops(cfg, transformer)
    # Fused com.microsoft ops carry no type information for the quantizer: their outputs are float.
    quantize_dynamic(src, str(out), per_channel=cfg.per_channel, reduce_range=reduce_range(cfg, ctx.hardware),
                     weight_type=weight, op_types_to_quantize=ops, nodes_to_exclude=list(cfg.nodes_to_exclude),
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    return {"precision": "int8-dynamic", "weight_type": weight_name, "op_types": ops,
            "reduce_range": reduce_range(cfg, ctx.hardware)}


def _fp16(src: str, out: Path, cfg: QuantizeConfig, ctx, transformer: bool) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(src), keep_io_types=cfg.keep_io_types)
    onnx.save(model, str(out))
    return {"precision": "fp16"}


_MODES = {Mode.static: _static, Mode.dynamic: _dynamic, Mode.fp16: _fp16}


def _pre_process(src: str, dst: Path) -> None:
    """quant_pre_process; symbolic shape inference gives up on some transformer graphs: then without it.
    A failed symbolic inference saves its model and external data into the working directory, so it runs
    in ``dst``'s directory and whatever else it leaves there is removed."""
    import os

    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = str(Path(src).resolve()), Path(dst).resolve()
    before, cwd = set(dst.parent.iterdir()), os.getcwd()
    os.chdir(dst.parent)
    try:
        quant_pre_process(src, str(dst))
    except Exception:
        quant_pre_process(src, str(dst), skip_symbolic_shape=True)
    finally:
        os.chdir(cwd)
        for stray in set(dst.parent.iterdir()) - before - {dst}:
            stray.unlink()


def prepare(cfg: QuantizeConfig, recipe) -> QuantizeConfig:
    """``reduce_range: null`` (and accuracy_aware's bound and how it is measured: ``quantize_search.planned``)
    decided at plan time (so they enter the cache key). reduce_range is on for CPU inference on an x86
    CPU without VNNI, where ONNX Runtime's u8*s8 kernels saturate and 8-bit weights cost accuracy (the built-in
    model: 99.3 % in float, 84.4 % with 8-bit weights, 99.3 % with 7-bit ones on an AVX2-only EPYC)."""
    if cfg.accuracy_aware:
        from optimizer.passes.quantize_search import planned

        cfg = replace(cfg, **planned(cfg, recipe))
    return replace(cfg, reduce_range=reduce_range(cfg, recipe.hardware))


def reduce_range(cfg: QuantizeConfig, hardware) -> bool:
    """The recipe's ``reduce_range``, or for null whether this CPU needs it (never for a GPU)."""
    from optimizer.host import int8_sums_saturate

    if cfg.reduce_range is not None:
        return cfg.reduce_range
    return not is_cuda(hardware) and int8_sums_saturate()


@register("quantize", QuantizeConfig, takes="onnx", makes="onnx", prepare=prepare)
def quantize(art: Artifact, cfg: QuantizeConfig, ctx) -> Artifact:
    from optimizer.errors import one_line
    from optimizer.formats.onnx_graph import op_counts
    from optimizer.passes.quantize_checks import check_output, fit_opset, label

    src = str(art.path)
    out = ctx.out_dir / "model.onnx"
    transformer = bool(art.meta.get("transformer")) or bool(TRANSFORMER_OPS & set(op_counts(art.path)))
    warnings: List[str] = []
    try:
        if cfg.mode != Mode.fp16:
            src, cfg, warnings = fit_opset(src, cfg, ctx.step, ctx.out_dir)
        if cfg.pre_process and cfg.mode != Mode.fp16:
            pre = ctx.out_dir / "pre.onnx"
            _pre_process(src, pre)
            src = str(pre)
        meta = _MODES[cfg.mode](src, out, cfg, ctx, transformer)
        if cfg.accuracy_aware:  # the search re-quantizes with nodes kept in float (quantize_search)
            from optimizer.passes.quantize_search import search

            meta = search(lambda keep, dst: _MODES[cfg.mode](src, dst, replace(cfg, nodes_to_exclude=[
                *cfg.nodes_to_exclude, *keep]), ctx, transformer), out, meta, src, str(art.path), cfg, ctx, art.meta)
    except PassError:
        raise
    except Exception as e:
        raise PassError(ctx.step, f"{cfg.mode.value} quantization failed: {type(e).__name__}: {one_line(e)}") from e
    finally:
        for scratch in ("pre.onnx", "opset.onnx"):
            (ctx.out_dir / scratch).unlink(missing_ok=True)
    check_output(out, cfg.mode.value, ctx.step)
    meta = label(out, {**meta, "warnings": [*warnings, *meta.get("warnings", [])]}, art.meta, ctx.step)
    # descendants inherit the meta: keep the warnings of earlier steps
    meta["warnings"] = [*art.meta.get("warnings", []), *meta["warnings"]]
    if not meta["warnings"]:
        del meta["warnings"]
    return art.evolve(path=out, meta={**meta, "op_counts": op_counts(out)})
