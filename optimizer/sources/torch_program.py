"""``model.source=<file>.pt2``: a saved ``torch.export`` program. ``torch.export.load`` unpickles Python
objects and can run code, so it is loaded only with ``model.trust_pickle=true``."""

from pathlib import Path, PurePath
from typing import Optional

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.config import ModelConfig
from optimizer.errors import RecipeError
from optimizer.files import content_key, file_digest
from optimizer.sources import onnx_file
from optimizer.sources.data import Splits

FORMAT = "torch"


def matches(source: str) -> bool:
    return source.endswith(".pt2")


def load(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    """The program, probed on the data; used in place (its id is its content's digest)."""
    import torch

    from optimizer.sources.probe import probe_meta

    check(cfg)
    path = Path(cfg.source).expanduser()

    try:
        module = torch.export.load(str(path)).module()
    except Exception as e:
        raise RecipeError(f"model.source {cfg.source!r} is not a torch.export program ({type(e).__name__})") from e
    return Artifact(path=path.resolve(), format="torch", id=content_key("file", file_digest(path)),
                    meta=probe_meta(module, splits))


def check(cfg: ModelConfig) -> None:
    """Only a trusted program is loaded, and the file exists (trust is checked first)."""
    if not getattr(cfg, "trust_pickle", False):
        raise RecipeError(f"model.source {cfg.source!r}: a .pt2 program is loaded with torch.export.load, which "
                          f"unpickles Python objects and can run code; set model.trust_pickle=true only for a "
                          f"file you trust")
    onnx_file.existing(str(cfg.source))


def default_name(source: str) -> str:
    return PurePath(source).stem


def directory(source: str) -> Optional[Path]:
    return Path(source).expanduser().resolve().parent


def factories(source: str) -> frozenset:
    return frozenset()
