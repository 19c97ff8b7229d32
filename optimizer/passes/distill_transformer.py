"""Distillation of a Hugging Face encoder (``hf:`` source) into a shallower student of the same family.

The student is the teacher with fewer encoder layers: ``layers`` of them (a share of the teacher's, or a
count), picked evenly from the first (every other layer at 0.5) and initialised with those layers'
weights; embeddings, hidden size and output head are the teacher's. It is trained label-free to reproduce
the teacher's outputs (pooled embeddings: cosine and MSE; logits: KL at ``temperature``), plus
cross-entropy on labels, weighted ``1 - alpha``, when the data has them. The kept layer count is saved
with the weights, so the student reloads from the teacher's own factory."""

from optimizer.artifact import Artifact
from optimizer.errors import PassError, RecipeError
from optimizer.passes import transformer_tune as tune


def kept_layers(total: int, layers: float) -> list:
    """Indices of the teacher's layers the student starts from: evenly spaced from layer 0."""
    count = int(layers) if layers >= 1 else max(1, round(total * layers))
    if count > total:
        raise RecipeError(f"layers={layers:g} asks for {count} layers but the teacher has {total}")
    return sorted({int(i * total / count) for i in range(count)})


def _student(teacher, layers: float, what: str):
    """A copy of ``teacher`` keeping only ``kept_layers``: (student, kept indices, teacher's layer count)."""
    import copy

    student = copy.deepcopy(teacher)
    _, stack, _ = tune.layers_or_error(student, what)
    total = len(stack)
    kept = kept_layers(total, layers)
    chosen = [stack[i] for i in kept]
    del stack[:]
    stack.extend(chosen)
    for i, layer in enumerate(stack.modules()):
        if hasattr(layer, "layer_idx") and isinstance(layer.layer_idx, int):
            layer.layer_idx = i  # only read by a KV cache; kept consistent
    config = getattr(getattr(student, "model", None), "config", None)
    if config is not None and hasattr(config, "num_hidden_layers"):
        config.num_hidden_layers = len(kept)
    for p in student.parameters():
        p.requires_grad_(True)
    return student, kept, total


def distill_transformer(art: Artifact, cfg, ctx) -> Artifact:
    """Train a shallower copy of the incoming encoder against its outputs; the student is the output."""
    from optimizer.formats.torch import load_module, save_module

    what = f"step '{ctx.step}'"
    teacher = load_module(art)
    for p in teacher.parameters():
        p.requires_grad_(False)
    order = list(teacher.input_names)
    try:
        student, kept, total = _student(teacher, cfg.layers, what)
        feeds = tune.tensors(ctx.data.train, order, what)
        evaluation = tune.tensors(ctx.data.evaluation, order, what, "evaluation")
    except RecipeError as e:
        raise PassError(ctx.step, str(e).removeprefix(f"{what}: ")) from e
    reference = tune.outputs(teacher, evaluation, order)
    before = tune.outputs(student, evaluation, order)
    loss = tune.match_loss(teacher.task == "feature_extraction", cfg.temperature, cfg.alpha)
    last = tune.fit(student, feeds, order, tune.outputs(teacher, feeds, order), tune.labels_of(ctx.data), loss,
                    epochs=cfg.epochs, lr=cfg.lr, batch=cfg.batch_size, seed=ctx.seed, label=f"distilling {ctx.step}")
    after = tune.outputs(student, evaluation, order)
    path = ctx.out_dir / "model.pt"
    save_module(student.eval(), path, pruned=True)  # with the shortened layer list and its attributes
    meta = {
        "pruned": True, "warnings": list(art.meta.get("warnings", [])),  # reloads reshaped from the teacher's factory
        "teacher_layers": total, "student_layers": len(kept), "student_layers_from": kept,
        "teacher_params": tune.params(teacher), "student_params": tune.params(student),
        "cosine_before_training": tune.cosine(before, reference),
        "centered_cosine_before_training": tune.centered_cosine(before, reference),
        "cosine_to_teacher": tune.cosine(after, reference),
        "centered_cosine_to_teacher": tune.centered_cosine(after, reference),
        "distill_temperature": cfg.temperature, "distill_alpha": cfg.alpha, "distill_epochs": cfg.epochs,
        "distill_loss": last,
        "retrained": ctx.step,  # later variants' parity is measured against this model, not the reference
    }
    return art.evolve(path=path, meta=meta)
