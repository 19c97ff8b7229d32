"""Graph simplification and fusion: onnxruntime.transformers fusions for transformers, onnxslim,
then ONNX Runtime's offline graph optimizer."""

from dataclasses import dataclass
from enum import Enum
from typing import Optional, Tuple

from optimizer.artifact import Artifact
from optimizer.errors import PassError
from optimizer.formats.onnx import GRAPH_LEVELS
from optimizer.registry import register


class OrtLevel(str, Enum):
    disabled = "disabled"
    basic = "basic"  # constant folding, Conv+BatchNorm and other fusions into standard ONNX ops
    extended = "extended"  # adds com.microsoft fused ops (FusedConv, ...): faster fp32, but quantize cannot read them


class Transformer(str, Enum):
    auto = "auto"  # fuse when the artifact's meta names a transformer (meta["transformer"]["model_type"])
    none = "none"  # no transformer fusions (null means the same)
    bert = "bert"  # BERT, RoBERTa, DistilBERT, ALBERT, ELECTRA, XLM-R encoders
    bart = "bart"
    clip = "clip"
    conformer = "conformer"
    gpt2 = "gpt2"
    gpt_neox = "gpt_neox"
    phi = "phi"
    swin = "swin"
    t5 = "t5"
    vit = "vit"


# Hugging Face config.model_type -> onnxruntime.transformers model_type. Not T5: its fusion (written for ONNX
# Runtime's own T5 exports) fuses no attention in an hf: encoder or decoder step, and writes RMSNorm as an op in
# the ONNX domain that onnx.checker and the quantizer refuse.
HF_TYPES = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "camembert": "bert", "distilbert": "bert",
    "albert": "bert", "electra": "bert", "vit": "vit", "deit": "vit", "gpt2": "gpt2", "bart": "bart",
    "mbart": "bart", "swin": "swin", "clip": "clip", "gpt_neox": "gpt_neox", "phi": "phi",
}
ATTENTION_OPS = ("Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention")
SDPA_HINT = ("it was likely exported with SDPA attention or dynamo=True; export with dynamo: false and the "
             "model's eager attention (attn_implementation='eager')")


@dataclass(frozen=True)
class FuseConfig:
    slim: bool = True  # run onnxslim (constant folding, dead-node removal); after the transformer fusions
    ort_level: OrtLevel = OrtLevel.basic  # ONNX Runtime offline optimization level
    transformer: Optional[Transformer] = Transformer.auto  # onnxruntime.transformers fusions; null = none
    num_heads: int = 0  # attention heads; 0 takes meta["transformer"]["num_heads"], else lets ORT detect it
    hidden_size: int = 0  # hidden size; 0 takes meta["transformer"]["hidden_size"], else lets ORT detect it

    def __post_init__(self):
        if self.num_heads < 0 or self.hidden_size < 0:
            raise ValueError(f"num_heads and hidden_size must be >= 0, got {self.num_heads}, {self.hidden_size}")
        if self.num_heads and self.hidden_size and self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not a multiple of num_heads {self.num_heads}")


def transformer_plan(meta, cfg: FuseConfig) -> Tuple[Optional[Tuple[str, int, int]], Optional[str]]:
    """((ORT model_type, num_heads, hidden_size) or None, a warning or None) for this artifact."""
    info = dict(meta.get("transformer") or {})
    choice = cfg.transformer or Transformer.none
    if choice == Transformer.none:
        return None, None
    heads = cfg.num_heads or int(info.get("num_heads") or 0)
    hidden = cfg.hidden_size or int(info.get("hidden_size") or 0)
    if choice != Transformer.auto:
        return (choice.value, heads, hidden), None
    if not info:
        return None, None
    hf_type = str(info.get("model_type", ""))
    if hf_type not in HF_TYPES:
        return None, (f"transformer auto: no onnxruntime.transformers fusion for model_type {hf_type!r}; ran the "
                      f"standard fusions only (set passes.fuse.transformer to one of "
                      f"{', '.join(t.value for t in Transformer if t not in (Transformer.auto, Transformer.none))})")
    return (HF_TYPES[hf_type], heads, hidden), None


def _fuse_transformer(src: str, dst: str, model_type: str, heads: int, hidden: int) -> dict:
    """Run onnxruntime.transformers' fusions on ``src``; return the fused op counts (non-zero, plus Attention)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model = optimize_model(src, model_type=model_type, num_heads=heads, hidden_size=hidden, opt_level=0)
    model.save_model_to_file(dst)
    stats = model.get_fused_operator_statistics() or {}
    return {"Attention": 0, **{k: int(v) for k, v in stats.items() if v}}


def _no_attention_warning(model_type: str, before: dict) -> str:
    softmax = before.get("Softmax", 0)
    if softmax:
        return (f"transformer fusion ({model_type}) fused no Attention although the graph has {softmax} Softmax: "
                f"{SDPA_HINT}")
    return (f"transformer fusion ({model_type}) fused no Attention: the graph has no attention pattern "
            f"(no Softmax); is it a {model_type} transformer?")


def _run_transformer(art: Artifact, cfg: FuseConfig, ctx, plan, before: dict):
    """(path of the fused graph or None, fused op counts, warnings)."""
    model_type, heads, hidden = plan
    fused = str(ctx.out_dir / "transformer.onnx")
    try:
        counts = _fuse_transformer(str(art.path), fused, model_type, heads, hidden)
    except Exception as e:
        reason = f"{type(e).__name__}: {str(e).strip()[:200]}"
        if cfg.transformer != Transformer.auto:
            raise PassError(ctx.step, f"transformer fusion ({model_type}) failed: {reason}; {SDPA_HINT}") from e
        note = f"transformer fusion ({model_type}) failed ({reason}); ran the standard fusions only; {SDPA_HINT}"
        return None, {}, [note]
    attention = sum(counts.get(op, 0) for op in ATTENTION_OPS)
    return fused, counts, ([] if attention else [_no_attention_warning(model_type, before)])


@register("fuse", FuseConfig, takes="onnx", makes="onnx")
def fuse(art: Artifact, cfg: FuseConfig, ctx) -> Artifact:
    import onnx
    import onnxruntime as ort

    from optimizer.formats.onnx_graph import op_counts

    before = op_counts(art.path)
    plan, note = transformer_plan(art.meta, cfg)
    warnings = [note] if note else []
    fused_ops = None
    current = str(art.path)
    if plan:  # onnxslim first would rewrite the attention subgraphs past the fusion's patterns
        fused, fused_ops, notes = _run_transformer(art, cfg, ctx, plan, before)
        current, warnings = fused or current, warnings + notes
    try:
        if cfg.slim:
            import onnxslim

            slimmed = str(ctx.out_dir / "slim.onnx")
            onnxslim.slim(current, slimmed)
            current = slimmed
        out = ctx.out_dir / "model.onnx"
        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, GRAPH_LEVELS[cfg.ort_level.value])
        opts.optimized_model_filepath = str(out)
        ort.InferenceSession(current, sess_options=opts, providers=["CPUExecutionProvider"])
        onnx.checker.check_model(str(out))
    except Exception as e:
        raise PassError(ctx.step, f"graph optimization failed: {type(e).__name__}: {str(e)[:300]}") from e
    for name in ("slim.onnx", "transformer.onnx"):
        (ctx.out_dir / name).unlink(missing_ok=True)
    after = op_counts(out)
    meta = {"op_counts_before": before, "op_counts": after,
            "nodes_before": sum(before.values()), "nodes_after": sum(after.values())}
    if plan:
        meta.update(fused_ops=fused_ops, transformer_fusion={"model_type": plan[0], "num_heads": plan[1],
                                                              "hidden_size": plan[2]})
    if warnings:
        meta["warnings"] = [*art.meta.get("warnings", []), *warnings]
    return art.evolve(path=out, meta=meta)
