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
    if cfg.batch_axis:
        art = with_layout(art, dict(cfg.batch_axis), cache)
    if cfg.batch_axis:
        from optimizer.formats.onnx_layout import check_unbatched

        for split in ("train", "calibration", "evaluation"):
            check_unbatched(getattr(splits, split), art.meta["batch_axis"], split)
    io = read_io(art.path)
    carried = []
    if cfg.state:
        from optimizer.sources.state import check_pairs, missing_states

        check_pairs(io, dict(cfg.state))
        carried = missing_states(dict(cfg.state), splits)
    check_feeds(io, splits, f"model.source {cfg.source!r}", carried)
    return art.evolve(meta={"io": io.to_dict(), **({"state": dict(cfg.state)} if cfg.state else {})})


def with_constants(art: Artifact, constants: dict, cache: Cache) -> Artifact:
    """The model with ``model.constants`` folded into the graph (inputs fed unchanged, e.g. a sample rate),
    cached as its own entry: every later step, and the served model, no longer takes them."""
    from optimizer.formats.onnx_graph import fold_inputs

    return _rewritten(art, cache, "onnx-constants", constants, lambda src, dst: {
        "constants": fold_inputs(src, dst, constants, "model.constants")})


def with_layout(art: Artifact, axes: dict, cache: Cache) -> Artifact:
    """The model with the inputs and outputs named in ``model.batch_axis`` made batch-first (``onnx_layout``)."""
    from optimizer.formats.onnx_layout import batch_first

    return _rewritten(art, cache, "onnx-layout", axes, lambda src, dst: {"batch_axis": batch_first(src, dst, axes)})


def _rewritten(art: Artifact, cache: Cache, kind: str, values: dict, rewrite) -> Artifact:
    """``rewrite(src, dst) -> meta`` applied to ``art``'s graph, cached as its own entry."""
    key = content_key(kind, art.id, values)
    cached = cache.get(key, "model")
    if cached is not None:
        return cached

    def produce(directory: Path) -> Artifact:
        meta = rewrite(art.path, directory / "model.onnx")
        return art.evolve(path=directory / "model.onnx", meta=meta)

    return cache.put(key, produce)


def check(cfg: ModelConfig) -> None:
    existing(str(cfg.source))


def default_name(source: str) -> str:
    return PurePath(source).stem


def directory(source: str) -> Optional[Path]:
    return Path(source).expanduser().resolve().parent


def factories(source: str) -> frozenset:
    return frozenset()
