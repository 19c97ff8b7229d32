"""The pass registry: ``@register(name, ConfigCls, takes=, makes=)``.

Every module under ``optimizer/passes/`` is imported by ``load_passes``, so adding a pass
touches no other file."""

import functools
import importlib
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional

from optimizer import formats

if TYPE_CHECKING:
    from optimizer.config import HardwareConfig
    from optimizer.sources.data import Splits

@dataclass(frozen=True)
class PassSpec:
    name: str
    config_cls: type
    fn: Callable
    takes: str  # artifact format the pass accepts
    makes: str  # artifact format the pass produces
    prepare: Optional[Callable] = None  # (config, recipe) -> config completed from the recipe at plan time
    requires: Optional[Callable] = None  # (config, recipe, where): RecipeError when this machine cannot run it


PASSES: Dict[str, PassSpec] = {}


def register(name: str, config_cls: type, *, takes: str, makes: str, prepare: Optional[Callable] = None,
             requires: Optional[Callable] = None) -> Callable:
    """Register ``fn(artifact, config, ctx) -> Artifact`` as pass ``name``. ``prepare`` fills config values
    that follow from the rest of the recipe (so they enter the cache key); ``requires`` checks, before any
    work, that this machine has what the pass needs (a GPU, a library)."""
    if takes not in formats.names() or makes not in formats.names():
        raise ValueError(f"pass {name}: formats must be among {tuple(formats.names())}")

    def wrap(fn: Callable) -> Callable:
        if name in PASSES and PASSES[name].fn is not fn:
            raise ValueError(f"pass {name!r} registered twice")
        PASSES[name] = PassSpec(name, config_cls, fn, takes, makes, prepare, requires)
        return fn

    return wrap


def load_passes() -> Dict[str, PassSpec]:
    """Import every module of ``optimizer.passes`` (cheap: heavy imports sit inside the passes)."""
    from optimizer import passes

    for info in pkgutil.iter_modules(passes.__path__):
        importlib.import_module(f"{passes.__name__}.{info.name}")
    return PASSES


@functools.lru_cache(maxsize=None)
def code_digest() -> str:
    """sha256 over the source of the passes and formats: part of every step's cache key, so a changed pass (an
    upgrade, a fix) never reuses what the old code produced."""
    from optimizer import passes
    from optimizer.files import content_key, file_digest

    roots = [Path(passes.__file__).parent, Path(formats.__file__).parent]
    return content_key([(p.name, file_digest(p)) for root in roots for p in sorted(root.glob("*.py"))])


@dataclass
class Context:
    """What a pass may use besides its input artifact and config."""

    out_dir: "Path"  # empty directory the pass writes its files into
    step: str  # the recipe's label for this step, for error messages
    data: "Splits"  # train / calibration / evaluation splits
    hardware: "HardwareConfig"  # target machine: device, cores, threads
    seed: int = 0  # seed for anything random
