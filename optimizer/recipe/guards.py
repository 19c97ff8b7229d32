"""Plan-time guards on what a recipe may make the tool do with the file system and with code:

- names that become file or directory names (step labels, ``model.name``: the Triton model directory)
  are letters, digits and ``_-.``, with no separator, no ``..`` and no leading dot; an empty
  ``model.name`` is named after the source (``default_model_name``), never after the built-in model;
- every factory the recipe names passes the factory rule (``optimizer/factory.py``), judged by its
  module name before anything is imported;
- a ``.pt2`` program is only loaded with ``model.trust_pickle=true``: ``torch.export.load`` unpickles.

Each mistake is a RecipeError naming the key (exit 2), raised before any model or data is loaded."""

import re

from optimizer.errors import RecipeError
from optimizer.factory import Rule, check

NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_name(value, key: str) -> None:
    """``value`` is safe as one file or directory name; RecipeError naming ``key`` otherwise."""
    name = str(value)
    if not NAME.fullmatch(name) or ".." in name or name.startswith("."):
        raise RecipeError(f"{key} {name!r}: a name may only hold letters, digits and '_-.', "
                          f"with no '/', no '..' and no leading '.'")


def default_model_name(source: str) -> str:
    """The model's name when the recipe gives none: the built-in's name, the factory's function, the Hugging Face
    directory's or the file's name, made safe as one path component (``mypkg.nets:resnet18`` -> ``resnet18``,
    ``hf:models/bert-tiny/`` -> ``bert-tiny``, ``exports/model v2.onnx`` -> ``model_v2``)."""
    from pathlib import PurePath

    source = str(source).strip()
    kind, _, rest = source.partition(":")
    if source in ("", "builtin"):
        name = "digits_resnet"
    elif kind == "builtin":
        name = rest
    elif kind == "hf":
        name = PurePath(rest.rstrip("/\\") or "model").name
    elif source.endswith((".onnx", ".pt2")):
        name = PurePath(source).stem
    else:
        name = rest or kind
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).lstrip(".").replace("..", "_")
    return name or "model"


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
    rule = Rule.of(cfg.model)
    source = str(cfg.model.source)
    if source.endswith(".pt2") and not getattr(cfg.model, "trust_pickle", False):
        raise RecipeError(f"model.source {source!r}: a .pt2 program is loaded with torch.export.load, which unpickles "
                          f"Python objects and can run code; set model.trust_pickle=true only for a file you trust")
    if not source.endswith((".onnx", ".pt2")) and _is_factory(source, ("builtin", "hf")):
        check(source, "model.source", rule)
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
