"""Structured pruning of a Hugging Face encoder (``hf:`` source): whole attention heads and MLP channels.

Each encoder layer loses ``ratio`` of its heads (at least one is kept) and of its MLP (intermediate)
channels (kept counts are multiples of ``round_to``). Heads are ranked by the norm of their query, key,
value rows and their attention-output columns; MLP channels by their up-projection row and
down-projection column. torch-pruning's layer functions cut the Linear weights; the hidden size, the
embeddings and the output head stay whole, so the model keeps its inputs and outputs. The pruned model
is then fine-tuned to reproduce the unpruned model's outputs (label-free), plus cross-entropy when the
data has labels. The per-layer head counts are plain attributes of the attention modules, which the
torch format saves and restores with the new weight shapes."""

from optimizer.artifact import Artifact
from optimizer.errors import PassError, RecipeError
from optimizer.passes import transformer_tune as tune


def _norms(weight, p: int, dim: int, groups: int):
    """Norm of each of ``groups`` equal slices of ``weight`` along ``dim`` (rows 0, columns 1)."""
    w = weight.detach().abs() if p == 1 else weight.detach().pow(2)
    w = w if dim == 0 else w.t()
    return w.reshape(groups, -1).sum(1)


def _keep(scores, kept: int):
    import torch

    return sorted(torch.argsort(scores, descending=True)[:kept].tolist())


def _prune_heads(attention, out_proj, ratio: float, p: int) -> int:
    import torch_pruning as tp

    size = attention.attention_head_size
    heads = attention.query.out_features // size
    kept = max(1, round(heads * (1 - ratio)))
    if kept < heads:
        scores = sum(_norms(getattr(attention, n).weight, p, 0, heads) for n in ("query", "key", "value"))
        scores = scores + _norms(out_proj.weight, p, 1, heads)
        keep = set(_keep(scores, kept))
        drop = [h * size + i for h in range(heads) if h not in keep for i in range(size)]
        for name in ("query", "key", "value"):
            tp.prune_linear_out_channels(getattr(attention, name), drop)
        tp.prune_linear_in_channels(out_proj, drop)
    attention.num_attention_heads = kept
    attention.all_head_size = kept * size
    return kept


def _prune_mlp(up, down, ratio: float, p: int, round_to: int) -> int:
    import torch_pruning as tp

    width = up.out_features
    kept = max(round_to, int(round(width * (1 - ratio) / round_to)) * round_to)
    if kept < width:
        scores = _norms(up.weight, p, 0, width) + _norms(down.weight, p, 1, width)
        keep = set(_keep(scores, kept))
        drop = [c for c in range(width) if c not in keep]
        tp.prune_linear_out_channels(up, drop)
        tp.prune_linear_in_channels(down, drop)
    return min(kept, width)


def _cut(module, cfg, step: str):
    """Prune every encoder layer not named in ``ignored_layers``; (heads before, after, MLP before, after)."""
    name, layers, layout = tune.layers_or_error(module, f"step '{step}'")
    names = [f"{name}.{i}" for i in range(len(layers))]
    unknown = [n for n in cfg.ignored_layers if n not in names]
    if unknown:
        raise RecipeError(f"step '{step}': ignored_layers {unknown} name no encoder layer; they are {names}")
    p = 1 if cfg.importance.value == "l1" else 2
    shape = {"heads_before": [], "heads_after": [], "mlp_before": [], "mlp_after": []}
    for label, layer in zip(names, layers):
        attention, out_proj, up, down = [tune.part(layer, path) for path in layout]
        shape["head_size"] = attention.attention_head_size
        shape["heads_before"].append(attention.query.out_features // attention.attention_head_size)
        shape["mlp_before"].append(up.out_features)
        whole = label in cfg.ignored_layers
        shape["heads_after"].append(_prune_heads(attention, out_proj, 0.0 if whole else cfg.ratio, p))
        shape["mlp_after"].append(_prune_mlp(up, down, 0.0 if whole else cfg.ratio, p, 1 if whole else cfg.round_to))
    return shape


def _refuse(cfg, step: str) -> None:
    if cfg.importance.value == "taylor":
        raise PassError(step, "importance=taylor needs loss gradients, which are zero while the pruned model still "
                              "equals its teacher: use importance l1 or l2 on a transformer")
    if cfg.global_pruning:
        raise PassError(step, "global_pruning is for convolutional models: a transformer loses ratio of the heads "
                              "and MLP channels of every layer; remove global_pruning")


def prune_transformer(art: Artifact, cfg, ctx) -> Artifact:
    """Remove ``ratio`` of every layer's heads and MLP channels, recover by matching the unpruned model."""
    import copy

    from torch.nn.utils import prune as tprune

    from optimizer.formats.torch import load_module, save_module

    _refuse(cfg, ctx.step)
    teacher = load_module(art)
    module = copy.deepcopy(teacher)
    order = list(module.input_names)
    what = f"step '{ctx.step}'"
    try:
        feeds = tune.tensors(ctx.data.train, order, what)
        evaluation = tune.tensors(ctx.data.evaluation, order, what, "evaluation")
        params0 = tune.params(module)
        shape = _cut(module, cfg, ctx.step)
    except RecipeError as e:
        raise PassError(ctx.step, str(e).removeprefix(f"{what}: ")) from e
    params1 = tune.params(module)
    reference = tune.outputs(teacher, evaluation, order)
    pruned_out = tune.outputs(module, evaluation, order)
    masked = _sparsify(module, cfg.sparsity) if cfg.sparsity > 0 else []
    loss_value = None
    if cfg.finetune_epochs:
        embedding = module.task == "feature_extraction"
        loss = tune.match_loss(embedding, temperature=2.0, alpha=0.5)
        loss_value = tune.fit(module, feeds, order, tune.outputs(teacher, feeds, order), tune.labels_of(ctx.data),
                              loss, epochs=cfg.finetune_epochs, lr=cfg.lr, batch=cfg.batch_size, seed=ctx.seed,
                              label=f"recovering {ctx.step}")
    for m in masked:
        tprune.remove(m, "weight")  # bake the mask into plain weights
    heads = shape["heads_after"][0] if len(set(shape["heads_after"])) == 1 else 0
    info = dict(art.meta.get("transformer") or {})  # what fuse tells ORT; 0 lets ORT read it from the graph
    info.update(num_heads=heads, hidden_size=heads * shape["head_size"])
    meta = {
        "pruned": True, "prune_ratio": cfg.ratio, "prune_importance": cfg.importance.value,
        "prune_allocation": "uniform", "round_to": cfg.round_to, "transformer": info, **shape,
        "params_before": params0, "params_after": params1, "param_reduction": 1.0 - params1 / params0,
        **_cosines(pruned_out, reference, "after_prune"),
        **_cosines(tune.outputs(module, evaluation, order), reference, "after_finetune"),
        "finetune_epochs": cfg.finetune_epochs, "finetune_loss": loss_value,
        "retrained": ctx.step,  # later variants' parity is measured against this model, not the reference
    }
    path = ctx.out_dir / "model.pt"
    save_module(module.eval(), path, pruned=True)
    return art.evolve(path=path, meta=meta)


def _sparsify(module, share: float) -> list:
    """Mask the smallest weights of the encoder layers' Linear layers (no speed-up on dense runtimes)."""
    import torch
    from torch.nn.utils import prune as tprune

    layers = [m for m in tune.encoder_layers(module)[1].modules() if isinstance(m, torch.nn.Linear)]
    for m in layers:
        tprune.l1_unstructured(m, "weight", amount=share)
    return layers


def _cosines(out, reference, when: str) -> dict:
    return {f"cosine_{when}": tune.cosine(out, reference), f"centered_cosine_{when}": tune.centered_cosine(out, reference)}
