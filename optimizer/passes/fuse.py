"""Graph simplification and fusion: onnxslim, then ONNX Runtime's offline graph optimizer."""

from dataclasses import dataclass
from enum import Enum
from typing import Optional

from optimizer.artifact import Artifact
from optimizer.errors import PassError
from optimizer.registry import register


class OrtLevel(str, Enum):
    disabled = "disabled"
    basic = "basic"  # constant folding, Conv+BatchNorm and other fusions into standard ONNX ops
    extended = "extended"  # adds com.microsoft fused ops (FusedConv, ...): faster fp32, but quantize cannot read them


@dataclass(frozen=True)
class FuseConfig:
    slim: bool = True  # run onnxslim (constant folding, dead-node removal, shape inference)
    ort_level: OrtLevel = OrtLevel.basic  # ONNX Runtime offline optimization level
    transformer: Optional[str] = None  # model type for onnxruntime.transformers fusions (bert, gpt2, vit, ...)
    num_heads: int = 0  # attention heads for the transformer fusions; 0 lets them detect it
    hidden_size: int = 0  # hidden size for the transformer fusions; 0 lets them detect it


_LEVELS = {"disabled": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED"}


@register("fuse", FuseConfig, takes="onnx", makes="onnx")
def fuse(art: Artifact, cfg: FuseConfig, ctx) -> Artifact:
    import onnx
    import onnxruntime as ort

    from optimizer.onnx_utils import op_counts

    before = op_counts(art.path)
    current = str(art.path)
    try:
        if cfg.slim:
            import onnxslim

            slimmed = str(ctx.out_dir / "slim.onnx")
            onnxslim.slim(current, slimmed)
            current = slimmed
        if cfg.transformer:
            from onnxruntime.transformers.optimizer import optimize_model

            fused = str(ctx.out_dir / "transformer.onnx")
            optimize_model(current, model_type=cfg.transformer, num_heads=cfg.num_heads,
                           hidden_size=cfg.hidden_size, opt_level=0).save_model_to_file(fused)
            current = fused
        out = ctx.out_dir / "model.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[cfg.ort_level.value])
        opts.optimized_model_filepath = str(out)
        ort.InferenceSession(current, sess_options=opts, providers=["CPUExecutionProvider"])
        onnx.checker.check_model(str(out))
    except Exception as e:
        raise PassError(ctx.step, f"graph optimization failed: {type(e).__name__}: {str(e)[:300]}") from e
    for name in ("slim.onnx", "transformer.onnx"):
        (ctx.out_dir / name).unlink(missing_ok=True)
    after = op_counts(out)
    return art.evolve(path=out, meta={"op_counts_before": before, "op_counts": after,
                                      "nodes_before": sum(before.values()), "nodes_after": sum(after.values())})
