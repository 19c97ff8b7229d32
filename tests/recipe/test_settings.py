"""Every numeric setting is checked at plan time: finite and within its domain, with the key in the message."""

import pytest

from optimizer.errors import RecipeError
from optimizer.recipe.compose import compose
from optimizer.recipe.plan import plan


@pytest.mark.parametrize("override, message", [
    ("serving.p99_ms=nan", "serving.p99_ms must be a finite number, got nan"),
    ("serving.p99_ms=inf", "serving.p99_ms must be a finite number, got inf"),
    ("serving.target_qps=-inf", "serving.target_qps must be a finite number, got -inf"),
    ("constraints.min_cosine=nan", "constraints.min_cosine must be a finite number, got nan"),
    ("+passes.quantize.percentile=nan", "passes.quantize.percentile must be a finite number, got nan"),
    ("triton.overload_factor=1e12", "triton.overload_factor must be in (1, 10], got 1000000000000.0"),
    ("triton.overload_factor=1", "triton.overload_factor must be in (1, 10], got 1.0"),
    ("triton.overload_seconds=0", "triton.overload_seconds must be positive, got 0.0"),
    ("triton.overload_seconds=-3", "triton.overload_seconds must be positive, got -3.0"),
    ("triton.capacity_seconds=0", "triton.capacity_seconds must be positive, got 0.0"),
    ("triton.smoke_requests=0", "triton.smoke_requests must be at least 1, got 0"),
    ("triton.smoke_seconds=-1", "triton.smoke_seconds must be positive, got -1.0"),
    ("triton.response_cache_mb=0", "triton.response_cache_mb must be at least 1, got 0"),
    ("triton.smoke_concurrency=[]", "triton.smoke_concurrency must be a non-empty list of counts ≥ 1, got []"),
    ("triton.smoke_concurrency=[4,0]", "triton.smoke_concurrency must be a non-empty list of counts ≥ 1, got [4, 0]"),
    ("tracking.timeout_seconds=-1", "tracking.timeout_seconds must be in (0, 600] seconds, got -1.0"),
    ("tracking.timeout_seconds=0", "tracking.timeout_seconds must be in (0, 600] seconds, got 0.0"),
    ("data.max_length=0", "data.max_length must be at least 1 token, got 0"),
    ("data.max_length=-5", "data.max_length must be at least 1 token, got -5"),
    ("seed=-1", "seed must be an integer in [0, 2**32), got -1"),
    ("kubernetes.prometheus_url=prometheus:9090", "kubernetes.prometheus_url must be an http:// or https:// URL "
                                                  "of the Prometheus server (kubernetes.autoscaler=keda queries it), "
                                                  "got prometheus:9090"),
    ("tracking.registered_model=a/b", "tracking.registered_model 'a/b': an MLflow registered model name cannot "
                                      "contain '/' or ':'"),
])
def test_a_bad_number_is_refused_at_plan_time_naming_its_key(override, message):
    with pytest.raises(RecipeError) as e:
        plan(compose("int8", [override]))
    assert str(e.value).startswith(message)


def test_the_shipped_recipes_pass():
    from optimizer.recipe.compose import available

    for name in available():
        if not name.startswith("trt_"):  # planned on a GPU only
            plan(compose(name))


def test_a_max_length_past_the_models_positions_is_refused_at_plan_time(tmp_path):
    pytest.importorskip("transformers")
    import json

    from tests.helpers import tiny_bert

    d = tiny_bert(tmp_path / "bert")  # max_position_embeddings 64
    overrides = [f"model.source=hf:{d}", f"data.source=text:{tmp_path / 'absent.jsonl'}"]
    plan(compose("transformer_int8", [*overrides, "data.max_length=64"]))
    with pytest.raises(RecipeError) as e:
        plan(compose("transformer_int8", [*overrides, "data.max_length=65"]))
    assert str(e.value) == (f"data.max_length=65 is more than the 64 tokens the model takes (max_position_embeddings "
                            f"64 in {d / 'config.json'}); set data.max_length to at most 64")
    (d / "config.json").write_text(json.dumps({"model_type": "roberta", "max_position_embeddings": 64,
                                               "pad_token_id": 1}))  # positions start past the padding index
    with pytest.raises(RecipeError, match="data.max_length=63 is more than the 62 tokens the model takes"):
        plan(compose("transformer_int8", [*overrides, "data.max_length=63"]))
    (d / "config.json").write_text(json.dumps({"model_type": "modernbert", "max_position_embeddings": 64,
                                               "global_rope_theta": 1e4}))  # rotary: no table to run past
    plan(compose("transformer_int8", [*overrides, "data.max_length=65"]))
