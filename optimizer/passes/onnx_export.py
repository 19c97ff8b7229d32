"""torch -> ONNX with a dynamic batch axis, verified against torch on real samples."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optimizer.artifact import Artifact
from optimizer.errors import ParityError, PassError
from optimizer.registry import register


@dataclass(frozen=True)
class ExportConfig:
    opset: int = 18  # ONNX opset of the exported graph (the torch.export-based exporter needs >= 18)
    dynamo: bool = True  # use the torch.export-based exporter; false uses the TorchScript exporter
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


def _export(module, sample, path: Path, cfg: ExportConfig) -> None:
    import torch

    kwargs = dict(input_names=["input"], output_names=["logits"], opset_version=cfg.opset, dynamo=cfg.dynamo)
    if cfg.dynamo:
        kwargs["dynamic_shapes"] = ({0: torch.export.Dim("batch", min=1, max=4096)},)
        kwargs["external_data"] = False
    else:
        kwargs["dynamic_axes"] = {"input": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(module, (sample,), str(path), **kwargs)


@register("onnx_export", ExportConfig, takes="torch", makes="onnx")
def onnx_export(art: Artifact, cfg: ExportConfig, ctx) -> Artifact:
    import logging
    import warnings

    import torch

    from optimizer.sources.models import load_module
    from optimizer.onnx_utils import op_counts
    from optimizer.formats import ort_session

    module = load_module(art)
    x = ctx.data.evaluation_x[: cfg.verify_samples]
    sample = torch.from_numpy(x[: min(2, len(x))])
    path = ctx.out_dir / "model.onnx"
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _export(module, sample, path, cfg)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise PassError(ctx.step, f"torch.onnx.export failed: {type(e).__name__}: {first[:300]}") from e
    with torch.inference_mode():
        expected = module(torch.from_numpy(x)).numpy()
    sess = ort_session(path, ctx.hardware)
    produced = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    worst = verify(expected, produced, sess.get_outputs()[0].name, ctx.step, cfg.atol, cfg.rtol)
    return art.evolve(
        path=path, format="onnx",
        meta={"opset": cfg.opset, "export_max_abs_diff": worst, "op_counts": op_counts(path)},
    )
