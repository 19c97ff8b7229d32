"""torch -> ONNX with named inputs and outputs and dynamic axes, every output verified against torch.

Inputs keep the model's own names and order (``meta["io"]``, probed on the data); every input's first
axis is ``batch``, the second axis of 2-D integer inputs (token ids, masks) is ``sequence``, and
``dynamic_axes`` names more. Transformers (``meta["transformer"]``) are exported with the TorchScript-based
exporter by default: its graphs are the ones ONNX Runtime's transformer optimizer fuses into Attention."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from optimizer.artifact import Artifact
from optimizer.errors import ParityError, PassError, one_line
from optimizer.registry import register


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 18  # ONNX opset of the exported graph (the torch.export-based exporter needs >= 18)
    dynamo: Optional[bool] = None  # torch.export-based exporter; false: TorchScript-based; null: false for transformers
    dynamic_axes: Dict[str, Any] = field(default_factory=dict)  # more named dynamic axes: {input: {axis: name}}
    verify_samples: int = 64  # evaluation samples run through torch and ONNX Runtime to compare
    atol: float = 1e-4  # absolute tolerance of the output comparison
    rtol: float = 1e-3  # relative tolerance of the output comparison

    def __post_init__(self):
        if not 7 <= self.opset <= 23:
            raise ValueError(f"opset must be between 7 and 23, got {self.opset}")
        if self.verify_samples < 1:
            raise ValueError("verify_samples must be at least 1")


def verify(reference: np.ndarray, produced: np.ndarray, name: str, step: str, atol: float, rtol: float) -> float:
    """Raise ParityError naming output ``name`` when the two arrays differ beyond tolerance."""
    if reference.shape != produced.shape:
        raise ParityError(step, f"output {name!r} has shape {produced.shape}, torch gives {reference.shape}")
    diff = np.abs(reference.astype(np.float64) - produced.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    if not np.all(diff <= atol + rtol * np.abs(reference)):
        raise ParityError(
            step, f"output {name!r} differs from torch by up to {worst:.3g} (atol={atol}, rtol={rtol})"
        )
    return worst


def _positional(module, order: List[str], outputs: List[str]):
    """``module`` as ``forward(*tensors) -> tuple``: feeds in ``order``, outputs in ``outputs``' order."""
    import torch

    from optimizer.formats.torch import call, named_outputs

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *tensors):
            out = named_outputs(call(self.inner, dict(zip(order, tensors)), order), outputs)
            return tuple(out[n] for n in outputs)

    return Positional().eval()


def axes(io, extra: Dict[str, Any]) -> Dict[str, Dict[int, str]]:
    """``{input: {axis: name}}``: the named (string) dims of the I/O spec, plus the recipe's."""
    out = {t.name: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in io.inputs}
    for name, more in (extra or {}).items():
        if name not in out:
            raise ValueError(f"dynamic_axes names input {name!r}; the model's inputs are {list(out)}")
        out[name].update({int(k): str(v) for k, v in dict(more).items()})
    return out


def _export(module, io, sample: tuple, path: Path, cfg: ExportConfig, dynamo: bool) -> None:
    import torch

    dyn = axes(io, cfg.dynamic_axes)
    kwargs = dict(input_names=io.input_names, output_names=io.output_names, opset_version=cfg.opset, dynamo=dynamo)
    if dynamo:
        dims: Dict[str, Any] = {}
        per_input = tuple({a: dims.setdefault(n, torch.export.Dim(n, min=1, max=1 << 16)) for a, n in dyn[t].items()}
                          for t in io.input_names)
        kwargs["dynamic_shapes"] = (per_input,)  # forward(*tensors): one varargs entry
        kwargs["external_data"] = False
    else:
        kwargs["dynamic_axes"] = {**dyn, **{o: {0: "batch"} for o in io.output_names}}
    torch.onnx.export(module, sample, str(path), **kwargs)


@register("onnx_export", ExportConfig, takes="torch", makes="onnx")
def onnx_export(art: Artifact, cfg: ExportConfig, ctx) -> Artifact:
    import logging
    import warnings

    import torch

    from optimizer import formats
    from optimizer.formats.onnx import ort_session, read_io
    from optimizer.io import take
    from optimizer.formats.onnx_graph import op_counts
    from optimizer.formats.torch import load_module

    io = formats.io(art)
    wrapped = _positional(load_module(art), io.input_names, io.output_names)
    feeds = take(ctx.data.evaluation, slice(0, cfg.verify_samples))
    sample = tuple(torch.from_numpy(feeds[n][:2]) for n in io.input_names)
    dynamo = cfg.dynamo if cfg.dynamo is not None else "transformer" not in art.meta
    path = ctx.out_dir / "model.onnx"
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export(wrapped, io, sample, path, cfg, dynamo)
    except ValueError as e:
        raise PassError(ctx.step, str(e)) from e
    except Exception as e:
        raise PassError(ctx.step, f"torch.onnx.export failed: {type(e).__name__}: {one_line(e)}") from e
    with torch.inference_mode():
        expected = wrapped(*(torch.from_numpy(feeds[n]) for n in io.input_names))
    sess = ort_session(path, ctx.hardware)
    produced = sess.run(io.output_names, {i.name: feeds[i.name] for i in sess.get_inputs()})
    worst = max(verify(e.numpy(), p, n, ctx.step, cfg.atol, cfg.rtol)
                for n, e, p in zip(io.output_names, expected, produced))
    return art.evolve(
        path=path, format="onnx",
        meta={"opset": cfg.opset, "exporter": "dynamo" if dynamo else "torchscript", "export_max_abs_diff": worst,
              "op_counts": op_counts(path), "io": read_io(path).to_dict()},
    )
