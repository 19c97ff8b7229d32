"""The SOURCES seam: a new model source kind is one module plus one row. A toy kind registered from the test
itself is classified, checked at plan time, named, and loaded through ``load_source``."""

import types

import numpy as np
import pytest

from optimizer.artifact import Artifact
from optimizer.config import ModelConfig
from optimizer.errors import RecipeError
from optimizer.recipe.guards import default_model_name, recipe_factories
from optimizer.sources import models
from optimizer.sources.models import SourceKind, check_source, load_source, source_format


def toy_module(calls):
    """A source kind ``toy:<n>`` giving an ONNX-format artifact of ``n`` (no real model is built)."""
    mod = types.ModuleType("toy_source")
    mod.FORMAT = "onnx"

    def load(cfg, splits, cache, seed):
        calls.append(("load", cfg.source, seed))
        return Artifact(path=cache / "toy.onnx", format="onnx", id=f"toy-{cfg.source[4:]}", meta={"io": {}})

    def check(cfg):
        calls.append(("check", cfg.source))
        if not cfg.source[4:].isdigit():
            raise RecipeError(f"model.source {cfg.source!r}: toy:<number>")

    mod.load, mod.check = load, check
    mod.default_name = lambda source: f"toy number {source[4:]}"
    mod.directory = lambda source: None
    mod.factories = lambda source: frozenset({"toys.mod:make"})
    return mod


@pytest.fixture
def toy(monkeypatch):
    calls = []
    kind = SourceKind("toy", lambda s: s.startswith("toy:"), toy_module(calls), "'toy:<number>'")
    monkeypatch.setattr(models, "SOURCES", [kind, *models.SOURCES])
    return calls


def test_a_toy_kind_is_one_row(toy, tmp_path):
    cfg = ModelConfig(source="toy:7")
    check_source(cfg)
    art = load_source(cfg, splits=None, cache=tmp_path, seed=3)
    assert art.id == "toy-7" and art.format == "onnx"
    assert toy == [("check", "toy:7"), ("load", "toy:7", 3)]
    assert source_format("toy:7") == "onnx"
    assert default_model_name("toy:7") == "toy_number_7"
    with pytest.raises(RecipeError, match="toy:<number>"):
        check_source(ModelConfig(source="toy:x"))


def test_the_plan_asks_the_table(toy):
    cfg = types.SimpleNamespace(model=ModelConfig(source="toy:2"), passes={"d": {"student": "pkg.s:net"}})
    assert {"toys.mod:make", "pkg.s:net"} <= recipe_factories(cfg)


def test_a_source_of_no_kind_names_every_kind(toy):
    with pytest.raises(RecipeError, match=r"expected 'toy:<number>', 'builtin'.* or 'package.module:function'"):
        load_source(ModelConfig(source="nothing"), None, None, 0)


def test_the_shipped_kinds():
    assert [k.name for k in models.SOURCES] == ["builtin", "hf", "onnx", "torch.export", "factory"]
    kinds = {s: models.kind_of(s).name for s in ("builtin", "builtin:vit_digits", "hf:d", "m.onnx", "m.pt2", "a.b:c")}
    assert kinds == {"builtin": "builtin", "builtin:vit_digits": "builtin", "hf:d": "hf", "m.onnx": "onnx",
                     "m.pt2": "torch.export", "a.b:c": "factory"}
    assert models.kind_of("nothing") is None and np.all([source_format("m.onnx") == "onnx", source_format("x:y") == "torch"])
