"""``model.source=<file>.onnx``: an ONNX model file, used in place (its id is its content's digest)."""

from pathlib import Path, PurePath
from typing import Optional

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.config import ModelConfig
from optimizer.errors import RecipeError
from optimizer.files import content_key, file_digest
from optimizer.sources.data import Splits

FORMAT = "onnx"


def matches(source: str) -> bool:
    return source.endswith(".onnx")


def existing(source: str) -> Path:
    """The file a source names; RecipeError when there is none."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise RecipeError(f"model.source {source!r}: no such file")
    return path


def load(cfg: ModelConfig, splits: Splits, cache: Cache, seed: int) -> Artifact:
    """The file, checked to be ONNX and fed by the data."""
    from optimizer.formats.onnx import read_io
    from optimizer.formats.onnx_graph import check_onnx
    from optimizer.sources.probe import check_feeds

    path = existing(cfg.source)
    check_onnx(path, f"model.source {cfg.source!r}")
    art = Artifact(path=path.resolve(), format="onnx", id=content_key("file", file_digest(path)),
                   meta={"precision": "fp32"})
    if cfg.constants:
        art = with_constants(art, dict(cfg.constants), cache)
    io = read_io(art.path)
    check_feeds(io, splits, f"model.source {cfg.source!r}")
    return art.evolve(meta={"io": io.to_dict()})


def with_constants(art: Artifact, constants: dict, cache: Cache) -> Artifact:
    """The model with ``model.constants`` folded into the graph (inputs fed unchanged, e.g. a sample rate),
    cached as its own entry: every later step, and the served model, no longer takes them."""
    from optimizer.formats.onnx_graph import fold_inputs

    key = content_key("onnx-constants", art.id, constants)
    cached = cache.get(key, "model")
    if cached is not None:
        return cached

    def produce(directory: Path) -> Artifact:
        folded = fold_inputs(art.path, directory / "model.onnx", constants, "model.constants")
        return art.evolve(path=directory / "model.onnx", meta={"constants": folded})

    return cache.put(key, produce)


def check(cfg: ModelConfig) -> None:
    existing(str(cfg.source))


def default_name(source: str) -> str:
    return PurePath(source).stem


def directory(source: str) -> Optional[Path]:
    return Path(source).expanduser().resolve().parent


def factories(source: str) -> frozenset:
    return frozenset()
