"""Plan-time guards on what a recipe may make the tool do with the file system and with code:

- names that become file or directory names (step labels, ``model.name``: the Triton model directory)
  are letters, digits and ``_-.``, with no separator, no ``..`` and no leading dot (``files.check_name``); an empty
  ``model.name`` is named after the source (``default_model_name``), never after the built-in model;
- every factory the recipe names passes the factory rule (``optimizer/factory.py``), judged by its
  module name before anything is imported;
- ``model.source`` passes its kind's own check (``sources.models.check_source``): a file exists, a factory
  passes the rule, a ``.pt2`` program is only loaded with ``model.trust_pickle=true`` (``torch.export.load``
  unpickles).

Each mistake is a RecipeError naming the key (exit 2), raised before any model or data is loaded."""

from optimizer.factory import BUILTIN_FACTORIES, Rule, check
from optimizer.files import check_name, safe_name
from optimizer.sources.models import check_source, default_name, source_factories

def default_model_name(source: str) -> str:
    """The model's name when the recipe gives none: the built-in's name, the factory's function, the Hugging Face
    directory's or the file's name (the source's kind says which), made safe as one path component
    (``mypkg.nets:resnet18`` -> ``resnet18``, ``hf:models/bert-tiny/`` -> ``bert-tiny``, ``exports/model v2.onnx``
    -> ``model_v2``)."""
    return safe_name(default_name(source))


def recipe_factories(cfg) -> frozenset:
    """Every factory the recipe names (``model.source``, distill students) plus the built-in ones: the only
    factories a cached artifact may ask to be rebuilt with."""
    names = set(BUILTIN_FACTORIES) | source_factories(str(cfg.model.source))
    for entry in (cfg.passes or {}).values():
        student = entry.get("student") if hasattr(entry, "get") else None
        if student:
            names.add(str(student))
    return frozenset(names)


def _is_factory(source: str, plain=()) -> bool:
    return ":" in source and source.partition(":")[0] not in plain


def check_recipe(cfg) -> None:
    """Names, factories and pickled programs a recipe names, checked before anything is imported or run.
    An empty ``model.name`` is set from the source here, so every later step sees the name."""
    if not str(cfg.model.name or ""):
        cfg.model.name = default_model_name(cfg.model.source)
    check_name(cfg.model.name, "model.name")
    for label, entry in (cfg.passes or {}).items():
        check_name(label, "passes: step label")
    check_source(cfg.model)  # a file exists, a factory passes the rule, a pickled program is trusted
    rule = Rule.of(cfg.model)
    data = str(cfg.data.source)
    if _is_factory(data, ("text",)):
        check(data, "data.source", rule)
    task = str(cfg.evaluation.task)
    if ":" in task:
        check(task, "evaluation.task", rule)
    for label, entry in (cfg.passes or {}).items():
        student = entry.get("student") if hasattr(entry, "get") else None
        if student:
            check(str(student), f"passes.{label}.student", rule)
