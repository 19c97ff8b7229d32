"""What the quantize pass checks around ONNX Runtime's quantizer, so that a quantized variant is valid and
labelled for what it holds: the opset the options need (per-channel QDQ writes ``DequantizeLinear`` with an
``axis``, which exists from opset 13), the written model (``onnx.checker`` and an ONNX Runtime session, inside
the pass: an invalid model is a failed step with its cause), and what was actually quantized (node counts
per op type; none is a warning and the variant keeps its parent's precision)."""

from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Tuple

from optimizer.errors import PassError, one_line

PER_CHANNEL_OPSET = 13  # DequantizeLinear's axis attribute
MIN_OPSET = 11  # what ONNX Runtime's quantizer works on


def fit_opset(src: str, cfg, step: str, out_dir: Path) -> Tuple[str, object, List[str]]:
    """``(model, options, warnings)``: ``src`` upgraded to the opset the options need (``onnx.version_converter``),
    or, when it cannot be converted, per-channel weights turned off with a warning."""
    from optimizer.formats.onnx_graph import opset, upgrade_opset

    have = opset(Path(src))
    need = PER_CHANNEL_OPSET if cfg.per_channel else MIN_OPSET
    if have >= need:
        return src, cfg, []
    dst = Path(out_dir) / "opset.onnx"
    try:
        upgrade_opset(Path(src), dst, need)
    except Exception as e:  # noqa: BLE001 - the converter's failures are many; each is reported
        dst.unlink(missing_ok=True)
        if not cfg.per_channel or have < MIN_OPSET:
            raise PassError(step, f"the model's opset {have} is below {need}, which quantization needs, and "
                                  f"onnx.version_converter could not upgrade it: {one_line(e, 200)}") from e
        return src, replace(cfg, per_channel=False), [
            f"passes.{step}: per-channel weights need opset {need}; the model has opset {have} and could not be "
            f"upgraded ({one_line(e, 120)}): quantized with one scale per tensor"]
    return str(dst), cfg, [f"passes.{step}: the model's opset {have} was upgraded to {need} for "
                           f"{'per-channel ' if cfg.per_channel else ''}quantization"]


def check_output(out: Path, mode: str, step: str) -> None:
    """An int8 model passes ``onnx.checker`` and loads in ONNX Runtime; PassError with the cause otherwise. An
    fp16 model is not checked here: the converter writes graphs out of topological order, which runtimes accept
    and the checker does not, and CPUs lack many fp16 kernels (it is loaded when measured)."""
    from optimizer.formats.onnx_graph import check_runs

    if mode == "fp16":
        return
    try:
        check_runs(out)
    except Exception as e:  # noqa: BLE001
        raise PassError(step, f"{mode} quantization wrote an invalid model: {one_line(e)}") from e


def label(out: Path, meta: Dict, parent_meta: Dict, step: str) -> Dict:
    """``meta`` with what was quantized (``quantized_nodes`` per op type, ``quantized_ops``); nothing
    quantized: the parent's precision and a warning."""
    from optimizer.formats.onnx_graph import quantized_nodes

    if meta.get("precision") == "fp16":
        return meta
    found = quantized_nodes(out)
    meta = {**meta, "quantized_nodes": found, "quantized_ops": sorted(found)}
    if not found:
        asked = meta.get("op_types") or "every op type ONNX Runtime can quantize"
        meta["precision"] = parent_meta.get("precision", "fp32")
        meta["warnings"] = [*meta.get("warnings", []),
                            f"passes.{step}: nothing was quantized (no node of {asked} could be quantized in this "
                            f"graph); the variant stays {meta['precision']}"]
    return meta


def raised_in(e: BaseException, function: str) -> bool:
    """``e`` was raised inside ``function`` (a frame of its traceback has that name)."""
    import traceback

    return any(frame.name == function for frame in traceback.extract_tb(e.__traceback__))
