"""Shared fixtures. One cache directory per test session, so the built-in model is trained once
and every test that needs it reuses it; tests never touch the user's ~/.cache."""

import os
from pathlib import Path

import pytest

from tests.helpers import small_teacher

E2E = Path(__file__).resolve().parent / "e2e"


def pytest_collection_modifyitems(config, items):
    """Tests under tests/e2e/ (command-line runs) carry ``e2e``; ``@pytest.mark.gpu`` tests skip where the CUDA
    driver sees no GPU (asked only when such a test is collected)."""
    for item in items:
        if E2E in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
    marked = [item for item in items if "gpu" in item.keywords]
    if not marked:
        return
    from optimizer.gpu import gpus

    if gpus():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: the CUDA driver (libcuda.so.1) sees none")
    for item in marked:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["OPTIMIZER_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def splits():
    from optimizer.config import DataConfig
    from optimizer.sources.data import load_splits

    return load_splits(DataConfig())


@pytest.fixture(scope="session")
def builtin(cache_dir, splits):
    """The built-in reference artifact, trained once per test session."""
    from optimizer.cache import Cache
    from optimizer.config import ModelConfig
    from optimizer.sources.models import load_source

    return load_source(ModelConfig(), splits, Cache(cache_dir), seed=0)


@pytest.fixture(scope="session")
def teacher(cache_dir, splits):
    return small_teacher(cache_dir, splits)
