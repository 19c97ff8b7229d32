"""Knowledge distillation: the incoming model teaches a smaller student on the train split.

Loss (Hinton et al.): ``alpha * T² * KL(teacher_T ‖ student_T) + (1 - alpha) * CE(student, labels)``
where ``x_T = softmax(logits / T)``; the T² keeps the soft term's gradients at the scale of
the hard term's as T grows."""

from dataclasses import dataclass, field
from typing import Any, Dict

from optimizer.artifact import Artifact
from optimizer.errors import PassError, RecipeError
from optimizer.registry import register


@dataclass(frozen=True)
class DistillConfig:
    student: str = ""  # factory "pkg.mod:fn" building the student; empty: the built-in architecture at width_multiplier
    student_kwargs: Dict[str, Any] = field(default_factory=dict)  # keyword arguments passed to the student factory
    width_multiplier: float = 0.5  # built-in student's width relative to the teacher's (when student is empty)
    temperature: float = 4.0  # softens both distributions; higher shares more of the teacher's dark knowledge
    alpha: float = 0.7  # weight of the soft (teacher) term; 1 - alpha weighs the cross-entropy on labels
    epochs: int = 12  # training epochs of the student on the train split
    lr: float = 3e-3  # peak learning rate of the student's training
    layers: float = 0.5  # transformers (hf: sources): the student's encoder layers, a share (< 1) or a count
    batch_size: int = 32  # transformers (hf: sources): samples per training step

    def __post_init__(self):
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be within [0, 1], got {self.alpha}")
        if not 0.0 < self.width_multiplier <= 1.0:
            raise ValueError(f"width_multiplier must be within (0, 1], got {self.width_multiplier}")
        if self.epochs < 1 or self.lr <= 0:
            raise ValueError("epochs must be at least 1 and lr positive")
        if self.layers <= 0 or (self.layers > 1 and self.layers != int(self.layers)) or self.batch_size < 1:
            raise ValueError(f"layers must be a share in (0, 1] or a whole count, got {self.layers}; "
                             f"batch_size at least 1, got {self.batch_size}")
        if self.student:  # a factory that does not import fails here, at plan time
            from optimizer.factory import resolve

            try:
                resolve(self.student, "student")
            except RecipeError as e:
                raise ValueError(str(e)) from None


def _student(teacher: Artifact, cfg: DistillConfig, step: str):
    """(module, factory, kwargs) of the untrained student."""
    from optimizer.factory import resolve
    from optimizer.sources.builtin import BUILTIN_FACTORY

    if cfg.student:
        try:
            return resolve(cfg.student, "student")(**cfg.student_kwargs), cfg.student, dict(cfg.student_kwargs)
        except RecipeError:
            raise
        except Exception as e:
            raise PassError(step, f"student {cfg.student!r} failed: {type(e).__name__}: {e}") from e
    if teacher.meta.get("factory") != BUILTIN_FACTORY:
        raise PassError(step, "the teacher is not the built-in architecture: name a student (student: pkg.mod:fn)")
    kwargs = dict(teacher.meta.get("kwargs", {}))
    kwargs["width"] = max(1, round(kwargs.get("width", 32) * cfg.width_multiplier))
    return resolve(BUILTIN_FACTORY, "student")(**kwargs), BUILTIN_FACTORY, kwargs


def _check_shapes(student, teacher, example, spec: str, step: str) -> None:
    import torch

    with torch.no_grad():
        try:
            s = student.eval()(example)
        except Exception as e:
            raise PassError(step, f"student {spec!r} cannot run the data's inputs "
                                  f"{tuple(example.shape)}: {type(e).__name__}: {e}") from e
        t = teacher(example)
    if not isinstance(s, torch.Tensor) or s.shape != t.shape:
        got = tuple(s.shape) if isinstance(s, torch.Tensor) else type(s).__name__
        raise PassError(step, f"student {spec!r} outputs shape {got} but the teacher outputs {tuple(t.shape)}")


def _loss(teacher, cfg: DistillConfig):
    import torch
    import torch.nn.functional as F

    T, alpha = cfg.temperature, cfg.alpha

    def loss(logits, xb, yb):
        with torch.no_grad():
            soft = F.softmax(teacher(xb) / T, dim=1)
        kl = F.kl_div(F.log_softmax(logits / T, dim=1), soft, reduction="batchmean")
        return alpha * kl * T * T + (1.0 - alpha) * F.cross_entropy(logits, yb)

    return loss


def _profile(module, ctx) -> Dict[str, float]:
    """Accuracy on the evaluation split (inference only), params and MACs of one sample."""
    import torch_pruning as tp

    from optimizer.sources.builtin import image_inputs
    from optimizer.formats.torch import logits

    macs, params = tp.utils.count_ops_and_params(module, image_inputs(ctx.data, f"step '{ctx.step}'")[0][:1])
    accuracy = (logits(module.eval(), ctx.data.evaluation).argmax(1) == ctx.data.evaluation_labels).mean() * 100.0
    return {"accuracy": float(accuracy), "params": int(params), "macs": int(macs)}


def requires(cfg: DistillConfig, recipe, where: str) -> None:
    """Before anything is loaded or timed: without a student factory, the source must be one distill can
    rebuild and shorten (a teacher of a named student only has to run)."""
    from optimizer.passes.transformer_tune import check_source

    if not cfg.student:
        check_source(recipe, where)


@register("distill", DistillConfig, takes="torch", makes="torch", requires=requires)
def distill(art: Artifact, cfg: DistillConfig, ctx) -> Artifact:
    """Train a student against the incoming model's softened logits (a transformer: a shallower copy of it
    against its outputs); the student is the output."""
    import torch

    from optimizer.passes.transformer_tune import is_transformer

    if is_transformer(art) and not cfg.student:  # a named student trains as for any other teacher
        from optimizer.passes.distill_transformer import distill_transformer

        return distill_transformer(art, cfg, ctx)

    from optimizer.sources.builtin import image_inputs, train
    from optimizer.formats.torch import load_module, save_module

    teacher = load_module(art)
    torch.manual_seed(ctx.seed)  # the student's initial weights
    student, factory, kwargs = _student(art, cfg, ctx.step)
    if not isinstance(student, torch.nn.Module):
        raise PassError(ctx.step, f"student {factory!r} must return a torch.nn.Module, got {type(student).__name__}")
    _check_shapes(student, teacher, image_inputs(ctx.data, f"step '{ctx.step}'")[0][:2], factory, ctx.step)
    for p in teacher.parameters():
        p.requires_grad_(False)
    before = _profile(teacher, ctx)
    train(student, ctx.data, cfg.epochs, ctx.seed, lr=cfg.lr, label=f"distilling {ctx.step}", loss=_loss(teacher, cfg))
    after = _profile(student, ctx)
    path = ctx.out_dir / "model.pt"
    save_module(student.eval(), path)
    meta = {
        "factory": factory, "kwargs": kwargs, "pruned": False, "warnings": [],  # a fresh dense module
        "teacher_accuracy": before["accuracy"], "student_accuracy": after["accuracy"],
        "teacher_params": before["params"], "student_params": after["params"],
        "teacher_macs": before["macs"], "student_macs": after["macs"],
        "distill_temperature": cfg.temperature, "distill_alpha": cfg.alpha, "distill_epochs": cfg.epochs,
        "retrained": ctx.step,  # later variants' parity is measured against this model, not the reference
    }
    return art.evolve(path=path, meta=meta)
