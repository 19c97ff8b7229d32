"""Model and data sources: built-in, Python factory, ONNX file, torch.export program."""

import numpy as np
import pytest
import torch

from optimizer.cache import Cache
from optimizer.config import DataConfig, ModelConfig
from optimizer.sources.data import load_splits
from optimizer.errors import RecipeError
from optimizer.sources.builtin import digits_resnet
from optimizer.formats.torch import load_module, logits
from optimizer.sources.models import load_source


def test_digits_splits_are_disjoint(splits):
    assert splits.evaluation["input"].shape[1:] == (1, 32, 32) and splits.num_classes == 10
    assert len(splits.evaluation_labels) == 449 and len(splits.calibration["input"]) == 256
    assert len(splits.train_labels) + 449 + 256 == 1797
    rows = lambda a: {r.tobytes() for r in a.reshape(len(a), -1)}  # noqa: E731
    assert not rows(splits.train["input"]) & rows(splits.evaluation["input"])
    assert not rows(splits.calibration["input"]) & rows(splits.evaluation["input"])


def test_builtin_is_accurate_and_cached(builtin, splits, cache_dir):
    module = load_module(builtin)
    acc = (logits(module, splits.evaluation["input"]).argmax(1) == splits.evaluation_labels).mean() * 100
    assert acc >= 97.0
    again = load_source(ModelConfig(), splits, Cache(cache_dir), seed=0)  # cached: no training
    assert again.id == builtin.id and again.path == builtin.path


def test_factory_source(splits, tmp_path):
    art = load_source(ModelConfig(source="tests.factories:tiny_cnn"), splits, Cache(tmp_path), seed=0)
    assert art.format == "torch" and art.meta["factory"] == "tests.factories:tiny_cnn"
    assert logits(load_module(art), splits.evaluation["input"][:3]).shape == (3, 10)


def test_factory_errors_name_the_source(splits, tmp_path):
    with pytest.raises(RecipeError, match=r"model.source 'tests.factories:broken' failed: RuntimeError: weights"):
        load_source(ModelConfig(source="tests.factories:broken"), splits, Cache(tmp_path), seed=0)
    with pytest.raises(RecipeError, match=r"has no callable 'nothing'"):
        load_source(ModelConfig(source="tests.factories:nothing"), splits, Cache(tmp_path), seed=0)


def test_data_factory():
    s = load_splits(DataConfig(source="tests.factories:small_digits"))
    assert len(s.evaluation_labels) == 180 and len(s.calibration["input"]) == 64
    with pytest.raises(RecipeError, match="must return optimizer.sources.data.Splits"):
        load_splits(DataConfig(source="tests.factories:tiny_cnn"))


def test_torch_export_program_source(splits, tmp_path):
    module = digits_resnet(width=8).eval()
    program = torch.export.export(module, (torch.from_numpy(splits.evaluation["input"][:2]),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    path = tmp_path / "model.pt2"
    torch.export.save(program, str(path))
    art = load_source(ModelConfig(source=str(path), trust_pickle=True), splits, Cache(tmp_path), seed=0)
    assert art.format == "torch"
    np.testing.assert_allclose(logits(load_module(art), splits.evaluation["input"][:5]),
                               logits(module, splits.evaluation["input"][:5]), atol=1e-5)
