"""Data for fine-tuning, calibration and evaluation: named feeds, labels optional.

The built-in data is the test set of the UCI ML handwritten digits (CC BY 4.0) as scikit-learn ships it (1,797
8x8 images, values 0-16), bundled here as ``digits.npz`` (45 KB, no download, no scikit-learn import: that import
alone cost every run 2 s), upscaled to 1x32x32. A user can instead name a factory ``pkg.mod:fn`` that returns ``Splits``."""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import List, Mapping, Optional, Tuple

import numpy as np

from optimizer.config import DataConfig
from optimizer.errors import RecipeError
from optimizer.factory import Rule, resolve
from optimizer.io import Feeds, TensorSpec, count, input_specs


@dataclass(frozen=True)
class Splits:
    """Three disjoint splits of named feeds (``{input name: array, batch axis first}``); labels optional.

    A bare array is shorthand for one input named ``input``. Construction checks the splits against each
    other and raises RecipeError naming the split and input to fix."""

    train: Feeds
    train_labels: Optional[np.ndarray]
    calibration: Feeds
    evaluation: Feeds
    evaluation_labels: Optional[np.ndarray]

    def __post_init__(self):
        for name in ("train", "calibration", "evaluation"):
            object.__setattr__(self, name, _feeds(getattr(self, name), name))
        for name in ("train_labels", "evaluation_labels"):
            labels = getattr(self, name)
            if labels is not None:
                object.__setattr__(self, name, np.asarray(labels))
        check(self)

    @property
    def input_names(self) -> List[str]:
        return list(self.evaluation)

    @property
    def has_labels(self) -> bool:
        return self.evaluation_labels is not None

    @property
    def num_classes(self) -> Optional[int]:
        """Classes seen in integer labels, or None without labels."""
        if not self.has_labels or not np.issubdtype(self.evaluation_labels.dtype, np.integer):
            return None
        return int(max(self.train_labels.max(), self.evaluation_labels.max())) + 1

    def inputs(self, dynamic: Mapping = ()) -> Tuple[TensorSpec, ...]:
        """The data's input specs (dynamic batch axis, a ``sequence`` axis for 2-D integer inputs)."""
        return input_specs(self.evaluation, dynamic)

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of all splits; part of every cache key that depends on the data."""
        from optimizer.files import content_key

        h = hashlib.sha256()
        for split in (self.train, self.calibration, self.evaluation):
            for name, arr in split.items():
                h.update(name.encode())
                h.update(np.ascontiguousarray(arr).tobytes())
        for labels in (self.train_labels, self.evaluation_labels):
            h.update(b"-" if labels is None else np.ascontiguousarray(labels).tobytes())
        return content_key(h.hexdigest(), [t.to_dict() for t in self.inputs()])


def _feeds(value, split: str) -> Feeds:
    if isinstance(value, np.ndarray):
        value = {"input": value}
    if not isinstance(value, Mapping) or not value:
        raise RecipeError(f"data: the {split} split must be an array or a non-empty dict of named arrays, "
                          f"got {type(value).__name__}")
    out = {}
    for name, arr in value.items():
        if not isinstance(arr, np.ndarray):
            raise RecipeError(f"data: {split} input {name!r} must be a numpy array, got {type(arr).__name__}")
        out[str(name)] = arr
    return out


def check(s: Splits) -> None:
    """The splits agree: same inputs, dtypes and sample shapes; no empty split; labels with every sample."""
    ref = s.evaluation
    for split in ("train", "calibration", "evaluation"):
        feeds = getattr(s, split)
        if set(feeds) != set(ref):
            raise RecipeError(f"data: the {split} split has inputs {sorted(feeds)}, the evaluation split {sorted(ref)}")
        sizes = {name: len(a) if a.ndim else 0 for name, a in feeds.items()}
        if len(set(sizes.values())) != 1:
            raise RecipeError(f"data: the {split} split's inputs have different sample counts: {sizes}")
        if not next(iter(sizes.values())):
            raise RecipeError(f"data: the {split} split is empty")
        for name, a in feeds.items():
            if a.dtype != ref[name].dtype or a.shape[1:] != ref[name].shape[1:]:
                raise RecipeError(f"data: {split} input {name!r} is {a.dtype.name} {list(a.shape[1:])} per sample, "
                                  f"the evaluation split's is {ref[name].dtype.name} {list(ref[name].shape[1:])}")
    if (s.train_labels is None) != (s.evaluation_labels is None):
        given = "train" if s.train_labels is not None else "evaluation"
        raise RecipeError(f"data: labels are given for the {given} split only; give them for train and evaluation, "
                          f"or for neither")
    for split in ("train", "evaluation"):
        labels = getattr(s, f"{split}_labels")
        if labels is not None and len(labels) != count(getattr(s, split)):
            raise RecipeError(f"data: the {split} split has {count(getattr(s, split))} samples but "
                              f"{len(labels)} labels")


def digits(cfg: DataConfig, seed: int = 0) -> Splits:
    """The bundled digits, scaled to [0, 1], upscaled bilinearly to 32x32, split three ways."""
    from pathlib import Path

    import torch

    with np.load(Path(__file__).with_name("digits.npz")) as bundled:
        images, target = bundled["images"], bundled["target"]
    x = torch.from_numpy(images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x, y = x.numpy(), target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_eval = int(round(len(y) * cfg.evaluation_fraction))
    n_cal = cfg.calibration_size
    if n_eval < 1 or n_cal < 1 or n_eval + n_cal >= len(y):
        raise RecipeError(
            f"data: evaluation_fraction={cfg.evaluation_fraction} and calibration_size={n_cal} "
            f"leave no training data out of {len(y)} digits samples"
        )
    ev, cal, tr = order[:n_eval], order[n_eval : n_eval + n_cal], order[n_eval + n_cal :]
    return Splits(x[tr], y[tr], x[cal], x[ev], y[ev])


def text(cfg: DataConfig, seed: int, model) -> Splits:
    """``text:<file>``: a .jsonl or .csv file tokenized with the ``hf:`` model directory's tokenizer."""
    from optimizer.sources import hf
    from optimizer.sources.models import kind_of
    from optimizer.sources.text import text_splits

    source = str(getattr(model, "source", ""))
    kind = kind_of(source)
    if kind is None or kind.name != "hf":
        raise RecipeError(f"data.source {cfg.source!r} is tokenized with the model's tokenizer: set model.source to "
                          f"'hf:<directory>' (got {source!r})")
    directory = str(hf.check_directory(kind.impl().path_of(source), "model.source"))
    names = hf.describe(directory, getattr(model, "task", "auto"), getattr(model, "component", "auto"))
    names = names["data_input_names"]  # a decoder step's data is made from its encoder's (hf_decoder_data)
    parts = text_splits(cfg.source[5:], directory, text_column=cfg.text_column, label_column=cfg.label_column,
                        max_length=cfg.max_length, evaluation_fraction=cfg.evaluation_fraction,
                        calibration_size=cfg.calibration_size, seed=seed, input_names=names)
    return Splits(**parts)


def check_text(cfg: DataConfig, model) -> None:
    """Plan time, for ``text:`` data of an ``hf:`` model: ``data.max_length`` fits the model's position
    embeddings (read from config.json alone). Every other problem of the directory is named when it is loaded."""
    from optimizer.sources.models import kind_of
    from optimizer.sources.text import position_limit

    kind = kind_of(str(getattr(model, "source", "")))
    if not str(cfg.source).startswith("text:") or kind is None or kind.name != "hf":
        return
    found = position_limit(kind.impl().path_of(str(model.source)))
    if found is not None and cfg.max_length > found[0]:
        raise RecipeError(f"data.max_length={cfg.max_length} is more than the {found[0]} tokens the model takes "
                          f"({found[1]}); set data.max_length to at most {found[0]}")


def load_splits(cfg: DataConfig, seed: int = 0, model=None) -> Splits:
    """The splits named by ``data.source`` (``text:`` data needs the model's config for its tokenizer); for the
    decoder step of an ``hf:`` encoder–decoder, made into its inputs by running the encoder on them."""
    splits = _splits(cfg, seed, model)
    if getattr(model, "component", "auto") != "decoder_step" or not str(model.source).startswith("hf:"):
        return splits
    from optimizer.sources import hf
    from optimizer.sources.hf_decoder_data import decoder_parts

    directory = str(hf.check_directory(str(model.source)[3:], "model.source").resolve())
    hf.describe(directory, model.task, model.component)  # a model that has no decoder step says so first
    return Splits(**decoder_parts(directory, splits, seed))


def _splits(cfg: DataConfig, seed: int, model) -> Splits:
    if cfg.source == "digits":
        return digits(cfg, seed)
    if cfg.source.startswith("text:"):
        return text(cfg, seed, model)
    fn = resolve(cfg.source, "data.source", Rule.of(model) if model is not None else None)
    try:
        splits = fn(**cfg.kwargs)
    except RecipeError:
        raise
    except Exception as e:
        raise RecipeError(f"data.source {cfg.source!r} failed: {type(e).__name__}: {e}") from e
    if not isinstance(splits, Splits):
        raise RecipeError(f"data.source {cfg.source!r} must return optimizer.sources.data.Splits, got {type(splits).__name__}")
    return splits
