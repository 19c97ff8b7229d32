"""``gates.baseline`` is checked when it is loaded (before any work): a regular file holding a summary with
measured figures; a baseline from another recipe, model or task is compared with a note saying so."""

import json
import os

import pytest

from optimizer.config import GatesConfig
from optimizer.decide.gates import compare, load_baseline
from optimizer.errors import RecipeError

MEASURED = {"name": "export", "evaluation": {"score": 99.0, "mean_cosine": 1.0}, "benchmark": {"8": {"p99_ms": 2.0}},
            "speedup": {"8": 3.0}, "size_bytes": 1000, "status": "ok"}


@pytest.mark.parametrize("content, why", [
    ([], "no 'variants' list"),
    ({"variants": "export"}, "no 'variants' list"),
    ({"variants": [{"evaluation": {}}]}, "every variant needs a 'name'"),
    ({"variants": [{**MEASURED, "benchmark": [1, 2]}]}, "variant 'export': 'benchmark' is not a mapping"),
    ({"variants": [MEASURED], "chosen": "int8"}, "'chosen' names 'int8', which is not one of its variants"),
    ({"status": "error", "variants": [{"name": "reference", "status": "ok"}]},
     "no variant has measured figures (its status is 'error')"),
])
def test_a_baseline_of_the_wrong_shape_is_refused(tmp_path, content, why):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(content))
    with pytest.raises(RecipeError, match=f"gates.baseline '{path}': not an optimizer summary.json to compare with"):
        load_baseline(str(path))
    with pytest.raises(RecipeError) as e:
        load_baseline(str(path))
    assert str(e.value).endswith(f"({why})")


def test_a_fifo_is_refused_without_being_opened(tmp_path):
    fifo = tmp_path / "summary.json"
    os.mkfifo(fifo)  # opening it for reading would block forever
    with pytest.raises(RecipeError, match="not a regular file"):
        load_baseline(str(fifo))


def test_a_baseline_from_another_recipe_model_and_task_says_so(tmp_path):
    new = {"recipe": "int8", "task": "classification", "model": {"source": "builtin"}, "chosen": None,
           "variants": [MEASURED], "hardware": {"host": {"cpu": "x"}}}
    old = {**new, "recipe": "fp16", "task": "embedding", "model": {"source": "hf:/models/bert"}}
    record = compare(GatesConfig(baseline="b.json"), new, old)
    assert ("; the baseline comes from another recipe 'fp16' (this run: 'int8'), model "
                                   "'hf:/models/bert' (this run: 'builtin'), task 'embedding' (this run: "
                                   "'classification')") in record["note"]
    assert "another" not in compare(GatesConfig(baseline="b.json"), new, new)["note"]
