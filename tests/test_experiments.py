"""The benchmark scripts in experiments/ import the product's internals: keep those imports resolvable."""

import ast
import importlib
from pathlib import Path

import pytest

SCRIPTS = sorted((Path(__file__).resolve().parent.parent / "experiments").glob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[s.name for s in SCRIPTS])
def test_experiment_imports_resolve(script):
    missing = []
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "optimizer":
            module = importlib.import_module(node.module)
            missing += [f"{node.module}.{a.name}" for a in node.names if not _importable(module, a.name)]
    assert not missing, f"{script.name} imports names that no longer exist: {missing}"


def _importable(module, name: str) -> bool:
    """``from module import name``: an attribute, or a submodule not imported yet."""
    if hasattr(module, name):
        return True
    try:
        importlib.import_module(f"{module.__name__}.{name}")
        return True
    except ImportError:
        return False
