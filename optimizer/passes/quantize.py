"""Quantization with ONNX Runtime: static INT8 (QDQ, calibrated), dynamic INT8 weights, FP16."""

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import List

from optimizer.artifact import Artifact
from optimizer.config import Device
from optimizer.errors import PassError
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
    reduce_range: bool = False  # 7-bit weights, for CPUs without VNNI where u8*s8 sums saturate
    op_types: List[str] = field(default_factory=list)  # op types to quantize; empty: see _default_ops
    pre_process: bool = True  # run quant_pre_process (shape inference, graph cleanup) first
    keep_io_types: bool = True  # fp16: keep float32 inputs and outputs

    def __post_init__(self):
        if self.calibration_samples < 1:
            raise ValueError(f"calibration_samples must be at least 1, got {self.calibration_samples}")
        if not 90.0 <= self.percentile <= 100.0:
            raise ValueError(f"percentile must be within [90, 100], got {self.percentile}")


def _types(cfg: QuantizeConfig, device: Device):
    from onnxruntime.quantization import QuantType

    table = {IntType.uint8: QuantType.QUInt8, IntType.int8: QuantType.QInt8}
    act = cfg.activation_type
    if act == IntType.auto:
        act = IntType.int8 if device == Device.cuda else IntType.uint8
    weight = IntType.int8 if cfg.weight_type == IntType.auto else cfg.weight_type
    return table[act], table[weight], act.value, weight.value


def _default_ops(cfg: QuantizeConfig):
    if cfg.op_types:
        return list(cfg.op_types)
    # Dynamic Conv becomes ConvInteger, which ONNX Runtime's CPU provider runs slower than fp32.
    return ["MatMul", "Gemm", "Attention", "LSTM", "GRU"] if cfg.mode == Mode.dynamic else None


def _reader(feeds, batch: int, advance):
    """Calibration batches of ``batch`` samples of every named input."""
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


def _static(src: str, out: Path, cfg: QuantizeConfig, ctx) -> dict:
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    from optimizer.console import progress

    act, weight, act_name, weight_name = _types(cfg, ctx.hardware.device)
    methods = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
    from optimizer.io import count, take

    names = [i.name for i in ort.InferenceSession(src, providers=["CPUExecutionProvider"]).get_inputs()]
    x = take({n: ctx.data.calibration[n] for n in names}, slice(0, cfg.calibration_samples))
    extra = {"CalibPercentile": cfg.percentile} if cfg.calibration_method == Calibration.percentile else {}
    with progress(f"calibrating ({cfg.calibration_method.value})", count(x)) as advance:
        quantize_static(src, str(out), _reader(x, 32, advance), quant_format=QuantFormat.QDQ, per_channel=cfg.per_channel,
                        reduce_range=cfg.reduce_range, activation_type=act, weight_type=weight,
                        op_types_to_quantize=_default_ops(cfg),
                        calibrate_method=methods[cfg.calibration_method.value], extra_options=extra)
    return {"precision": "int8", "activation_type": act_name, "weight_type": weight_name,
            "calibration_samples": count(x), "calibration_method": cfg.calibration_method.value}


def _dynamic(src: str, out: Path, cfg: QuantizeConfig, ctx) -> dict:
    from onnxruntime.quantization import quantize_dynamic

    _, weight, _, weight_name = _types(cfg, ctx.hardware.device)
    quantize_dynamic(src, str(out), per_channel=cfg.per_channel, reduce_range=cfg.reduce_range,
                     weight_type=weight, op_types_to_quantize=_default_ops(cfg))
    return {"precision": "int8-dynamic", "weight_type": weight_name, "quantized_ops": _default_ops(cfg)}


def _fp16(src: str, out: Path, cfg: QuantizeConfig, ctx) -> dict:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(src), keep_io_types=cfg.keep_io_types)
    onnx.save(model, str(out))
    return {"precision": "fp16"}


_MODES = {Mode.static: _static, Mode.dynamic: _dynamic, Mode.fp16: _fp16}


@register("quantize", QuantizeConfig, takes="onnx", makes="onnx")
def quantize(art: Artifact, cfg: QuantizeConfig, ctx) -> Artifact:
    from optimizer.onnx_utils import op_counts

    src = str(art.path)
    out = ctx.out_dir / "model.onnx"
    try:
        if cfg.pre_process and cfg.mode != Mode.fp16:
            from onnxruntime.quantization.shape_inference import quant_pre_process

            pre = ctx.out_dir / "pre.onnx"
            quant_pre_process(src, str(pre))
            src = str(pre)
        meta = _MODES[cfg.mode](src, out, cfg, ctx)
    except PassError:
        raise
    except Exception as e:
        raise PassError(ctx.step, f"{cfg.mode.value} quantization failed: {type(e).__name__}: {str(e)[:300]}") from e
    finally:
        (ctx.out_dir / "pre.onnx").unlink(missing_ok=True)
    return art.evolve(path=out, meta={**meta, "op_counts": op_counts(out)})
