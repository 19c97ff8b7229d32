"""Datasets for fine-tuning, calibration and evaluation.

The built-in data is scikit-learn's bundled digits (8x8 images, no download), upscaled to
1x32x32. A user can instead name a factory ``pkg.mod:fn`` that returns ``Splits``."""

import hashlib
from dataclasses import dataclass
from functools import cached_property
from typing import Tuple

import numpy as np

from optimizer.config import DataConfig
from optimizer.errors import RecipeError
from optimizer.factory import resolve


@dataclass(frozen=True)
class Splits:
    """Three disjoint splits; inputs are float32 arrays with the batch axis first."""

    train_x: np.ndarray
    train_y: np.ndarray
    calibration_x: np.ndarray
    evaluation_x: np.ndarray
    evaluation_y: np.ndarray

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Shape of one sample, without the batch axis."""
        return tuple(self.evaluation_x.shape[1:])

    @property
    def num_classes(self) -> int:
        return int(max(self.train_y.max(), self.evaluation_y.max())) + 1

    @cached_property
    def fingerprint(self) -> str:
        """Content hash of all splits; part of every cache key that depends on the data."""
        from optimizer.cache import content_key

        h = hashlib.sha256()
        for arr in (self.train_x, self.train_y, self.calibration_x, self.evaluation_x, self.evaluation_y):
            h.update(np.ascontiguousarray(arr).tobytes())
        return content_key(h.hexdigest(), self.input_shape)


def digits(cfg: DataConfig, seed: int = 0) -> Splits:
    """scikit-learn's digits, scaled to [0, 1], upscaled bilinearly to 32x32, split three ways."""
    import torch
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    x, y = x.numpy(), bunch.target.astype(np.int64)
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


def load_splits(cfg: DataConfig, seed: int = 0) -> Splits:
    """The splits named by ``data.source``."""
    if cfg.source == "digits":
        return digits(cfg, seed)
    fn = resolve(cfg.source, "data.source")
    try:
        splits = fn(**cfg.kwargs)
    except Exception as e:
        raise RecipeError(f"data.source {cfg.source!r} failed: {type(e).__name__}: {e}") from e
    if not isinstance(splits, Splits):
        raise RecipeError(f"data.source {cfg.source!r} must return optimizer.sources.data.Splits, got {type(splits).__name__}")
    return splits
