"""Concurrent writers of one model repository take turns: each writes in a directory of its own under a lock on
the repository, the model directory is never left half-written, and a writer refused by ``check`` (another
recipe's model is there) changes nothing."""

import multiprocessing
from pathlib import Path

import numpy as np
import pytest

from optimizer.errors import RecipeError
from optimizer.triton import emit, repository
from tests.helpers import DEFAULT_IO, TUNING, tiny_onnx


def write(args):
    root, model, k = args
    config = emit.build_config("digits_resnet", "onnx", DEFAULT_IO, TUNING, gpu=False)
    repository.write_repository(Path(root), "digits_resnet", Path(model), config, {"k": np.array([k])})
    return k


def test_eight_concurrent_writers_all_succeed_and_leave_one_whole_model(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    root = tmp_path / "repo"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        done = pool.map(write, [(str(root), str(model), k) for k in range(8)])
    assert done == list(range(8))
    d = root / "digits_resnet"
    assert sorted(p.name for p in d.iterdir()) == ["1", "config.pbtxt", "reference.npz"]
    assert (d / "1" / "model.onnx").read_bytes() == model.read_bytes()
    assert int(np.load(d / "reference.npz")["k"][0]) in range(8)
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []  # no leftovers, no lock file


def test_a_refused_writer_changes_nothing(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx")
    root = tmp_path / "repo"
    write((str(root), str(model), 1))

    def refuse():
        raise RecipeError("another recipe's model")

    config = emit.build_config("digits_resnet", "onnx", DEFAULT_IO, TUNING, gpu=False)
    with pytest.raises(RecipeError, match="another recipe's model"):
        repository.write_repository(root, "digits_resnet", model, config, {"k": np.array([2])}, check=refuse)
    assert int(np.load(root / "digits_resnet" / "reference.npz")["k"][0]) == 1
    assert sorted(p.name for p in root.iterdir()) == ["digits_resnet"]
