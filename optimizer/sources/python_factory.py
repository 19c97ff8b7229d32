"""``model.source=pkg.mod:fn``: a Python factory returning a ``torch.nn.Module``, judged by the factory rule
before it is imported."""

from pathlib import Path
from typing import Optional

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.config import ModelConfig
from optimizer.errors import RecipeError
from optimizer.factory import Rule, check as check_factory, resolve
from optimizer.sources.data import Splits

FORMAT = "torch"


def matches(source: str) -> bool:
    return ":" in source


def load(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    """The factory's module, probed on the data and cached by its weights."""
    import torch

    from optimizer.sources.probe import module_artifact

    fn = resolve(cfg.source, "model.source", Rule.of(cfg))
    try:
        module = fn(**cfg.kwargs)
    except Exception as e:
        raise RecipeError(f"model.source {cfg.source!r} failed: {type(e).__name__}: {e}") from e
    if not isinstance(module, torch.nn.Module):
        raise RecipeError(f"model.source {cfg.source!r} must return a torch.nn.Module, got {type(module).__name__}")
    return module_artifact(module.eval(), cfg.source, dict(cfg.kwargs), splits, cache, {})


def check(cfg: ModelConfig) -> None:
    """The factory passes the factory rule (nothing is imported)."""
    check_factory(str(cfg.source), "model.source", Rule.of(cfg))


def default_name(source: str) -> str:
    module, _, function = source.partition(":")
    return function or module


def directory(source: str) -> Optional[Path]:
    """The directory of the factory's module, found without importing it; None when it cannot be found."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(source.split(":", 1)[0])
    except (ImportError, ValueError):
        return None
    return Path(spec.origin).resolve().parent if spec and spec.origin else None


def factories(source: str) -> frozenset:
    return frozenset({source})
