"""``model.source=hf:<dir>``: a Hugging Face model directory, loaded offline (``sources/hf.py``) and cached
as a torch artifact whose factory rebuilds it from the directory."""

from pathlib import Path, PurePath
from typing import Optional

from optimizer.errors import RecipeError
from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.config import ModelConfig
from optimizer.factory import HF_FACTORY
from optimizer.sources.data import Splits

FORMAT = "torch"
PREFIX = "hf:"


def matches(source: str) -> bool:
    return source.startswith(PREFIX)


def path_of(source: str) -> str:
    """The directory a ``hf:<dir>`` source names, as written."""
    return source[len(PREFIX):]


def load(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    """The directory's model with the head ``model.task`` names, probed on the data and cached."""
    from optimizer.sources import hf
    from optimizer.sources.probe import module_artifact

    directory = str(hf.check_directory(path_of(cfg.source), "model.source").resolve())
    info = hf.describe(directory, cfg.task, cfg.component)
    module = hf.load_module(directory, info["task"])
    meta = {"transformer": info["transformer"], "hf_task": info["task"],
            **({"warnings": info["warnings"]} if info["warnings"] else {})}
    return module_artifact(module, HF_FACTORY, {"directory": directory, "task": info["task"]}, splits, cache, meta)


def check(cfg: ModelConfig) -> None:
    """An empty ``hf:`` is refused (it would read the current directory); the directory is read when loaded."""
    from optimizer.sources.hf_seq2seq import COMPONENTS

    if not path_of(str(cfg.source)).strip():
        raise RecipeError("model.source 'hf:' names no directory; give hf:<directory of a save_pretrained model>")
    if getattr(cfg, "component", "auto") not in COMPONENTS:
        raise RecipeError(f"model.component={cfg.component!r} is not one of {', '.join(COMPONENTS)} (the piece of "
                          f"an encoder–decoder model to export)")


def default_name(source: str) -> str:
    return PurePath(path_of(source).rstrip("/\\") or "model").name


def directory(source: str) -> Optional[Path]:
    return Path(path_of(source)).expanduser().resolve()


def factories(source: str) -> frozenset:
    return frozenset({HF_FACTORY})
