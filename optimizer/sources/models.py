"""Model sources: the ``SOURCES`` table owns every ``model.source`` kind, and this is the only place a source
is classified. A kind is one module plus one row here:

- ``builtin`` (``builtin``, ``builtin:<name>``): a built-in model, trained once and cached;
- ``hf`` (``hf:<dir>``): a Hugging Face directory, loaded offline;
- ``onnx`` (``<file>.onnx``): an ONNX file; ``torch.export`` (``<file>.pt2``): a saved program;
- ``factory`` (``pkg.mod:fn``): a Python factory under the factory rule (last: ``:`` is its only mark).

A kind's module offers ``FORMAT`` (the reference artifact's format), ``load(cfg, splits, cache, seed)``,
``check(cfg)`` (plan time: nothing loaded), ``default_name(source)`` (what an empty ``model.name`` is named
after), ``directory(source)`` (whose git revision the summary records) and ``factories(source)`` (the
factories a cached artifact of it may be rebuilt with). Every source records its named I/O in
``meta["io"]``, probed on the data."""

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, List, Optional, Union

from optimizer.artifact import Artifact
from optimizer.errors import RecipeError


@dataclass(frozen=True)
class SourceKind:
    name: str  # the kind, as messages name it
    matches: Callable[[str], bool]  # whether a model.source string is of this kind (the first match wins)
    module: Union[str, ModuleType]  # the kind's module (imported on first use), or the module itself
    usage: str  # how a recipe writes it, for the message about a source of no kind

    def impl(self) -> ModuleType:
        """The kind's module (``load``, ``check``, ``default_name``, ``directory``, ``factories``, ``FORMAT``)."""
        return importlib.import_module(self.module) if isinstance(self.module, str) else self.module


SOURCES: List[SourceKind] = [
    SourceKind("builtin", lambda s: s == "builtin" or s.startswith("builtin:"), "optimizer.sources.builtin",
               "'builtin', 'builtin:<name>'"),
    SourceKind("hf", lambda s: s.startswith("hf:"), "optimizer.sources.hf_dir", "'hf:<directory>'"),
    SourceKind("onnx", lambda s: s.endswith(".onnx"), "optimizer.sources.onnx_file", "a .onnx file"),
    SourceKind("torch.export", lambda s: s.endswith(".pt2"), "optimizer.sources.torch_program", "a .pt2 file"),
    SourceKind("factory", lambda s: ":" in s, "optimizer.sources.python_factory", "'package.module:function'"),
]


def kind_of(source: str) -> Optional[SourceKind]:
    """The kind of ``source`` (the first row that matches), or None."""
    return next((k for k in SOURCES if k.matches(str(source))), None)


def _kind(source: str) -> SourceKind:
    kind = kind_of(source)
    if kind is None:
        usages = [k.usage for k in SOURCES]
        raise RecipeError(f"model.source {source!r}: expected {', '.join(usages[:-1])} or {usages[-1]}")
    return kind


def load_source(cfg, splits, cache, seed: int) -> Artifact:
    """The reference artifact named by ``model.source`` (``cfg``: the recipe's ``model`` section)."""
    return _kind(cfg.source).impl().load(cfg, splits, cache, seed)


def check_source(cfg) -> None:
    """Plan-time checks of ``model.source`` (``cfg``: the ``model`` section), before anything is loaded: a file
    exists, a factory passes the factory rule, a pickled program is trusted. A source of no kind is left to
    ``load_source``, which names the kinds."""
    kind = kind_of(cfg.source)
    if kind is not None:
        kind.impl().check(cfg)
    if getattr(cfg, "component", "auto") != "auto" and (kind is None or kind.name != "hf"):
        raise RecipeError(f"model.component={cfg.component!r} picks a piece of an hf: encoder–decoder model; "
                          f"model.source {cfg.source!r} is not an hf: directory")
    onnx = kind is not None and kind.impl().FORMAT == "onnx"
    if cfg.constants and not onnx:
        raise RecipeError(f"model.constants: folds inputs of an ONNX model, and model.source {cfg.source!r} gives "
                          f"a torch model; bind the values in the model itself (a factory's model.kwargs)")
    for key in ("batch_axis", "state"):
        if getattr(cfg, key) and not onnx:
            raise RecipeError(f"model.{key}: applies to an ONNX model, and model.source {cfg.source!r} gives a torch "
                              f"model; export it to ONNX first (model.source=<file>.onnx)")


def source_format(source: str) -> str:
    """The format of the artifact ``source`` gives (torch for a source of no kind)."""
    kind = kind_of(source)
    return kind.impl().FORMAT if kind is not None else "torch"


# stems that say nothing about the model: two of them would become the same Triton model
GENERIC = frozenset({"model", "models", "onnx", "export", "exported", "weights", "checkpoint", "checkpoints",
                     "pytorch_model", "saved_model", "output", "outputs", "best", "last", "latest", "final", "src"})


def generic(name: str) -> bool:
    """``name`` says nothing about the model (``model``, ``onnx``, a version number)."""
    stem = name.strip().lower()
    return not stem or stem in GENERIC or stem.lstrip("v").isdigit()


def default_name(source: str) -> str:
    """What a model is named after when the recipe gives no ``model.name`` (not yet made safe as a path): the
    source's own name, or when that is generic (``model.onnx``, ``hf:out/model``) the nearest module or directory
    above it that is not."""
    source = str(source).strip() or "builtin"
    kind = kind_of(source)
    name = kind.impl().default_name(source) if kind is not None else source
    if kind is None or not generic(name):
        return name
    above = list(reversed(source.partition(":")[0].split("."))) if kind.name == "factory" else []
    where = source_directory(source)
    above += [p.name for p in ([where, *where.parents] if where is not None else [])]
    return next((part for part in above if not generic(part)), name)


def source_directory(source: str) -> Optional[Path]:
    """The directory the model comes from (a file's, the ``hf:`` directory, a factory's module, this package's
    for a built-in); None when it cannot be told."""
    kind = kind_of(source)
    try:
        return kind.impl().directory(str(source)) if kind is not None else None
    except (OSError, RuntimeError):  # a symlink loop, an unreadable path: the source's own check says why
        return None


def source_factories(source: str) -> frozenset:
    """The factories a cached artifact of ``source`` may ask to be rebuilt with."""
    kind = kind_of(source)
    return kind.impl().factories(str(source)) if kind is not None else frozenset()
