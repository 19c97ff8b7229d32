"""Structured channel pruning with torch-pruning, then fine-tuning on the train split.

Steps: rank channels, remove them (torch-pruning keeps coupled layers consistent), re-estimate
BatchNorm statistics on a few train batches, fine-tune, save the resized module. Params and MACs
before and after, and evaluation-split accuracy after pruning and after fine-tuning, go in the meta.

Removing whole channels shrinks every dense kernel, so the speed-up holds on any runtime.
The optional ``sparsity`` (unstructured magnitude pruning) only zeroes weights: dense
runtimes (ONNX Runtime, TensorRT, torch) run zeros at full cost, so it is never a speed-up."""

from dataclasses import dataclass, field
from enum import Enum
from typing import List

from optimizer.artifact import Artifact
from optimizer.errors import PassError
from optimizer.registry import register


class Importance(str, Enum):
    l1 = "l1"  # L1 norm of each channel's weights (magnitude)
    l2 = "l2"  # L2 norm of each channel's weights (magnitude)
    taylor = "taylor"  # |weight x gradient|, gradients from taylor_batches train batches


SPARSITY_WARNING = ("unstructured sparsity zeroes {pct:.0f}% of the weights but keeps their shapes: dense runtimes "
                    "(ONNX Runtime, TensorRT, torch) get no speed from it, only a smaller compressed file")


@dataclass(frozen=True)
class PruneConfig:
    ratio: float = 0.5  # share of channels removed from each prunable layer (torch-pruning's pruning_ratio)
    importance: Importance = Importance.l2  # how channels are ranked
    global_pruning: bool = False  # rank channels across all layers (uneven shares); false: each layer loses ratio
    max_layer_ratio: float = 0.9  # global_pruning: no layer loses more than this share of its channels
    round_to: int = 8  # kept channel counts are multiples of this (VNNI/AMX and tensor-core friendly)
    ignored_layers: List[str] = field(default_factory=list)  # submodule names left whole; the output layer always is
    taylor_batches: int = 4  # train batches of 64 whose gradients rank channels (importance=taylor)
    recalibration_batches: int = 8  # train batches of 64 that re-estimate BatchNorm statistics after pruning; 0 skips
    sparsity: float = 0.0  # then zero this share of each remaining layer's smallest weights (no speed-up)
    finetune_epochs: int = 3  # epochs of fine-tuning on the train split after pruning; 0 skips it
    lr: float = 1e-3  # peak learning rate of the fine-tuning
    batch_size: int = 32  # transformers (hf: sources): samples per fine-tuning step

    def __post_init__(self):
        if not 0.0 < self.ratio < 1.0:
            raise ValueError(f"ratio must be within (0, 1), got {self.ratio}")
        if not 0.0 < self.max_layer_ratio < 1.0:
            raise ValueError(f"max_layer_ratio must be within (0, 1), got {self.max_layer_ratio}")
        if not 0.0 <= self.sparsity < 1.0:
            raise ValueError(f"sparsity must be within [0, 1), got {self.sparsity}")
        if self.round_to < 1 or self.taylor_batches < 1 or self.recalibration_batches < 0:
            raise ValueError("round_to and taylor_batches must be at least 1, recalibration_batches non-negative")
        if self.finetune_epochs < 0 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError("finetune_epochs must be non-negative, lr positive and batch_size at least 1")


def requires(cfg: PruneConfig, recipe, where: str) -> None:
    """Before anything is loaded or timed: the source must be one prune can rebuild and cut."""
    from optimizer.passes.transformer_tune import check_source

    check_source(recipe, where)


def output_layer(module, example):
    """The last Linear or Conv whose output feeds the model output unchanged in width: the classifier."""
    import torch

    layers = [m for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))]
    if not layers:
        return None
    with torch.no_grad():
        width = module(example).shape[1]
    heads = [m for m in layers if getattr(m, "out_features", getattr(m, "out_channels", None)) == width]
    return (heads or layers)[-1]


def _ignored(module, cfg: PruneConfig, example, step: str) -> list:
    named = dict(module.named_modules())
    missing = [n for n in cfg.ignored_layers if n not in named]
    if missing:
        raise PassError(step, f"ignored_layers {missing} name no submodule; some valid names: {list(named)[1:9]}")
    head = output_layer(module, example)
    return [named[n] for n in cfg.ignored_layers] + ([head] if head is not None else [])


def _importance(cfg: PruneConfig):
    import torch_pruning as tp

    if cfg.importance == Importance.taylor:
        return tp.importance.GroupTaylorImportance()
    return tp.importance.GroupMagnitudeImportance(p=1 if cfg.importance == Importance.l1 else 2)


def _taylor_gradients(module, ctx, batches: int) -> None:
    """Accumulate loss gradients of a few train batches, which Taylor importance reads."""
    import torch

    from optimizer.sources.builtin import image_inputs

    x, y = image_inputs(ctx.data, f"step '{ctx.step}'")
    module.eval()  # BatchNorm statistics stay as trained
    module.zero_grad()
    for i in range(batches):
        xb, yb = x[i * 64 : (i + 1) * 64], y[i * 64 : (i + 1) * 64]
        if len(xb):
            torch.nn.functional.cross_entropy(module(xb), yb).backward()


def _recalibrate(module, ctx, batches: int) -> None:
    """Re-estimate BatchNorm running statistics, which no longer match the pruned inputs of their layers."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms or not batches:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a plain average over the batches
    from optimizer.sources.builtin import image_inputs

    x, _ = image_inputs(ctx.data, f"step '{ctx.step}'")
    module.train()
    with torch.no_grad():
        for i in range(batches):
            xb = x[i * 64 : (i + 1) * 64]
            if len(xb):
                module(xb)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    module.eval()


def _sparsify(module, share: float, ignored: list) -> list:
    """Mask the smallest-magnitude weights of every Conv/Linear not ignored; the masks hold through fine-tuning."""
    import torch
    from torch.nn.utils import prune as tprune

    layers = [m for m in module.modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd)) and all(m is not i for i in ignored)]
    for m in layers:
        tprune.l1_unstructured(m, "weight", amount=share)
    return layers


def _zeros(module) -> float:
    import torch

    weights = [m.weight for m in module.modules() if isinstance(m, (torch.nn.Linear, torch.nn.modules.conv._ConvNd))]
    total = sum(w.numel() for w in weights)
    return float(sum((w == 0).sum().item() for w in weights) / max(total, 1))


def _accuracy(module, ctx) -> float:
    from optimizer.formats.torch import logits

    return float((logits(module.eval(), ctx.data.evaluation).argmax(1) == ctx.data.evaluation_labels).mean() * 100.0)


@register("prune", PruneConfig, takes="torch", makes="torch", requires=requires)
def prune(art: Artifact, cfg: PruneConfig, ctx) -> Artifact:
    """Remove ``ratio`` of the channels (a transformer: of its heads and MLP channels), optionally mask
    weights, fine-tune, save the reshaped module."""
    from optimizer.passes.transformer_tune import is_transformer

    if is_transformer(art):
        from optimizer.passes.prune_transformer import prune_transformer

        out = prune_transformer(art, cfg, ctx)
        if cfg.sparsity > 0:
            warning = SPARSITY_WARNING.format(pct=100 * cfg.sparsity)
            out = out.evolve(meta={"sparsity": cfg.sparsity, "warnings": [*art.meta.get("warnings", []), warning]})
        return out
    return _prune_channels(art, cfg, ctx)


def _prune_channels(art: Artifact, cfg: PruneConfig, ctx) -> Artifact:
    import torch_pruning as tp
    from torch.nn.utils import prune as tprune

    from optimizer.sources.builtin import train
    from optimizer.formats.torch import load_module, save_module

    if "factory" not in art.meta:
        raise PassError(ctx.step, "prune needs a model built by a factory (builtin or pkg.mod:fn), not a .pt2 program")
    from optimizer.sources.builtin import image_inputs

    module = load_module(art)
    example = image_inputs(ctx.data, f"step '{ctx.step}'")[0][:1]
    ignored = _ignored(module, cfg, example, ctx.step)
    macs0, params0 = tp.utils.count_ops_and_params(module, example)
    pruner = tp.pruner.BasePruner(
        module, example, importance=_importance(cfg), pruning_ratio=cfg.ratio,
        global_pruning=cfg.global_pruning, max_pruning_ratio=cfg.max_layer_ratio,
        ignored_layers=ignored, round_to=cfg.round_to,
    )
    if cfg.importance == Importance.taylor:
        _taylor_gradients(module, ctx, cfg.taylor_batches)
    pruner.step()
    module.zero_grad(set_to_none=True)
    _recalibrate(module, ctx, cfg.recalibration_batches)
    macs1, params1 = tp.utils.count_ops_and_params(module, example)
    accuracy_pruned = _accuracy(module, ctx)
    masked = _sparsify(module, cfg.sparsity, ignored) if cfg.sparsity > 0 else []
    if cfg.finetune_epochs:
        train(module, ctx.data, cfg.finetune_epochs, ctx.seed, lr=cfg.lr, label=f"fine-tuning {ctx.step}")
    for m in masked:
        tprune.remove(m, "weight")  # bake the mask into plain weights
    meta = {
        "pruned": True, "prune_ratio": cfg.ratio, "prune_importance": cfg.importance.value,
        "prune_allocation": "global" if cfg.global_pruning else "uniform", "round_to": cfg.round_to,
        "params_before": int(params0), "params_after": int(params1),
        "macs_before": int(macs0), "macs_after": int(macs1),
        "param_reduction": 1.0 - params1 / params0, "mac_reduction": 1.0 - macs1 / macs0,
        "accuracy_after_prune": accuracy_pruned, "accuracy_after_finetune": _accuracy(module, ctx),
        "finetune_epochs": cfg.finetune_epochs,
        "retrained": ctx.step,  # later variants' parity is measured against this model, not the reference
    }
    if masked:
        meta["sparsity"] = _zeros(module)
        meta["warnings"] = [*art.meta.get("warnings", []), SPARSITY_WARNING.format(pct=100 * meta["sparsity"])]
    path = ctx.out_dir / "model.pt"
    save_module(module.eval(), path, pruned=True)
    return art.evolve(path=path, meta=meta)
