"""The emitted repository: golden config.pbtxt, Triton's schema, validation rules, bad inputs."""

from pathlib import Path

import numpy as np
import pytest

from optimizer.errors import RecipeError
from optimizer.triton import emit, repository
from tests.conftest import FAST, run_cli

# The default model's interface (what onnx_export writes for the built-in model).
DEFAULT_IO = {"inputs": [{"name": "input", "data_type": "TYPE_FP32", "dims": [-1, 1, 32, 32]}],
              "outputs": [{"name": "logits", "data_type": "TYPE_FP32", "dims": [-1, 10]}]}
TUNING = {"max_batch_size": 32, "preferred_batch_size": 8, "max_queue_delay_us": 2000, "instances": 2, "threads": 1}

GOLDEN = '''name: "digits_resnet"
platform: "onnxruntime_onnx"
version_policy {
  latest {
    num_versions: 1
  }
}
max_batch_size: 32
input {
  name: "input"
  data_type: TYPE_FP32
  dims: 1
  dims: 32
  dims: 32
}
output {
  name: "logits"
  data_type: TYPE_FP32
  dims: 10
}
instance_group {
  count: 2
  kind: KIND_CPU
}
dynamic_batching {
  preferred_batch_size: 8
  max_queue_delay_microseconds: 2000
}
parameters {
  key: "inter_op_thread_count"
  value {
    string_value: "1"
  }
}
parameters {
  key: "intra_op_thread_count"
  value {
    string_value: "1"
  }
}
model_warmup {
  name: "warmup_batch_8"
  batch_size: 8
  inputs {
    key: "input"
    value {
      data_type: TYPE_FP32
      dims: 1
      dims: 32
      dims: 32
      zero_data: true
    }
  }
}
'''


def tiny_onnx(path: Path, batch=None) -> Path:
    """A linear classifier with the default model's interface (``input`` [N,1,32,32] -> ``logits`` [N,10])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n = batch if batch else "N"
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((1024, 10)).astype(np.float32) * 0.05, "w")
    shape = numpy_helper.from_array(np.array([-1, 1024], dtype=np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["input", "shape"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [n, 1, 32, 32])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [n, 10])], [w, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def tiny_repository(root: Path, tuning=TUNING, name="digits_resnet", response_cache=False) -> Path:
    """A repository written by the emitter for the tiny model, with reference answers from ONNX Runtime."""
    from optimizer.artifact import Artifact
    from optimizer.config import HardwareConfig
    from optimizer.triton.deploy import reference

    model = tiny_onnx(root / "tiny.onnx")
    io = emit.model_io(model)
    config = emit.build_config(name, "onnx", io, tuning, gpu=False, response_cache=response_cache)
    x = np.random.default_rng(1).standard_normal((16, 1, 32, 32)).astype(np.float32)
    repo = root / "model_repository"
    repository.write_repository(repo, name, model, config, "# tuning\n", {"tuning": tuning},
                          reference(Artifact(path=model, format="onnx"), io, {"input": x}, tuning["max_batch_size"],
                                    HardwareConfig()))
    return repo


def test_model_io_of_the_default_interface(tmp_path):
    assert emit.model_io(tiny_onnx(tmp_path / "m.onnx")) == DEFAULT_IO
    fixed = emit.model_io(tiny_onnx(tmp_path / "f.onnx", batch=4))
    assert fixed["inputs"][0]["dims"] == [4, 1, 32, 32] and not emit.batchable(fixed)


def test_golden_config(tmp_path):
    from google.protobuf import text_format

    config = emit.build_config("digits_resnet", "onnx", DEFAULT_IO, TUNING, gpu=False)
    assert text_format.MessageToString(config) == GOLDEN


def test_written_repository_parses_and_validates(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    repo = tiny_repository(tmp_path)
    d = repo / "digits_resnet"
    assert sorted(p.name for p in d.iterdir()) == ["1", "config.pbtxt", "reference.npz", "tuning.json", "tuning.md"]
    assert (d / "1" / "model.onnx").read_bytes() == (tmp_path / "tiny.onnx").read_bytes()
    c = text_format.Parse((d / "config.pbtxt").read_text(), mc.ModelConfig())
    assert c.max_batch_size == 32 and list(c.dynamic_batching.preferred_batch_size) == [8]
    assert emit.validate(d / "config.pbtxt", DEFAULT_IO, cores=2) == []


def test_provenance_heads_the_config(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    config = emit.build_config("digits_resnet", "onnx", DEFAULT_IO, TUNING, gpu=False)
    prov = {"tool": "optimizer 0.1.0", "recipe": "int8", "overrides": ["serving.p99_ms=20", "hardware=x"],
            "artifact_id": "abc123", "measurement_session": "5e551011", "date": "2026-11-29T14:00:00+00:00"}
    d = repository.write_repository(tmp_path, "digits_resnet", tiny_onnx(tmp_path / "m.onnx"), config, "", {}, {"x": np.zeros(1)},
                              provenance=prov)
    text = (d / "config.pbtxt").read_text()
    assert text.startswith("# Generated by optimizer")
    assert "# overrides: serving.p99_ms=20 hardware=x\n" in text and "# measurement_session: 5e551011\n" in text
    assert text_format.Parse(text, mc.ModelConfig()) == config  # comments are skipped by Triton's parser
    assert text.endswith(GOLDEN)


def test_no_preferred_size_is_tritons_default_batcher():
    from google.protobuf import text_format

    flat = {**TUNING, "preferred_batch_size": 0, "max_queue_delay_us": 0}
    text = text_format.MessageToString(emit.build_config("digits_resnet", "onnx", DEFAULT_IO, flat, gpu=False))
    assert "dynamic_batching {\n}\n" in text  # exactly what Triton's docs recommend starting from
    assert "preferred_batch_size" not in text and "max_queue_delay" not in text
    assert 'name: "warmup_batch_1"\n  batch_size: 1\n' in text


QUEUED = {**TUNING, "max_queue_size": 75, "queue_timeout_us": 30300, "default_priority_level": 2,
          "tiers": [{"name": "premium", "level": 1, "p99_ms": 50.0, "max_queue_size": 75, "timeout_us": 30300},
                    {"name": "standard", "level": 2, "p99_ms": 100.0, "max_queue_size": 200, "timeout_us": 80300},
                    {"name": "batch", "level": 3, "p99_ms": None, "max_queue_size": 0, "timeout_us": 0}]}


def test_queue_policy_and_priority_levels(tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    c = emit.build_config("digits_resnet", "onnx", DEFAULT_IO, QUEUED, gpu=False)
    db = c.dynamic_batching
    q = db.default_queue_policy
    assert (q.max_queue_size, q.default_timeout_microseconds, q.timeout_action) == (75, 30300, mc.ModelQueuePolicy.REJECT)
    assert (db.priority_levels, db.default_priority_level) == (3, 2)
    # every level has its own policy: Triton would give a level without one the bounded default_queue_policy
    assert sorted(db.priority_queue_policy) == [1, 2, 3]
    batch = db.priority_queue_policy[3]  # the batch tier: unbounded (0), no timeout
    assert (batch.max_queue_size, batch.default_timeout_microseconds) == (0, 0)
    assert (db.priority_queue_policy[2].max_queue_size, db.priority_queue_policy[2].default_timeout_microseconds) \
        == (200, 80300)
    text = text_format.MessageToString(c)
    assert "max_queue_size: 75" in text and "priority_levels: 3" in text
    (tmp_path / "digits_resnet").mkdir()
    (tmp_path / "digits_resnet" / "config.pbtxt").write_text(text)
    assert emit.validate(tmp_path / "digits_resnet" / "config.pbtxt", DEFAULT_IO, cores=2) == []
    db.default_priority_level = 4
    (tmp_path / "digits_resnet" / "config.pbtxt").write_text(text_format.MessageToString(c))
    assert "default_priority_level 4 is outside 1..priority_levels (3)" in \
        emit.validate(tmp_path / "digits_resnet" / "config.pbtxt", DEFAULT_IO, cores=2)[0]
    off = emit.build_config("m", "onnx", DEFAULT_IO, TUNING, gpu=False)  # serving.queue_policy=false
    assert not off.dynamic_batching.HasField("default_queue_policy") and off.dynamic_batching.priority_levels == 0


def test_fixed_batch_model_gets_no_batching(tmp_path):
    io = emit.model_io(tiny_onnx(tmp_path / "f.onnx", batch=4))
    c = emit.build_config("m", "onnx", io, TUNING, gpu=False)
    assert c.max_batch_size == 0 and not c.HasField("dynamic_batching")
    assert list(c.input[0].dims) == [4, 1, 32, 32] and c.model_warmup[0].batch_size == 1


def test_gpu_config(tmp_path):
    c = emit.build_config("m", "onnx", DEFAULT_IO, TUNING, gpu=True)
    assert c.instance_group[0].kind == c.instance_group[0].KIND_GPU and "intra_op_thread_count" not in c.parameters


def test_validation_catches_the_rules_that_bite(tmp_path):
    from google.protobuf import text_format

    c = emit.build_config("m", "onnx", DEFAULT_IO, TUNING, gpu=False)
    c.dynamic_batching.preferred_batch_size[:] = [64]
    c.output[0].name = "input"
    c.output[0].dims[:] = [12]
    c.instance_group[0].count = 4
    (tmp_path / "m").mkdir()
    path = tmp_path / "m" / "config.pbtxt"
    path.write_text(text_format.MessageToString(c))
    problems = " | ".join(emit.validate(path, DEFAULT_IO, cores=2))
    assert "preferred_batch_size 64 is outside 1..max_batch_size (32)" in problems
    assert "names are not unique" in problems
    assert "output 'logits'" in problems
    assert "4 CPU instances × 1 threads exceed 2 cores" in problems


@pytest.mark.parametrize("name", ["a/b", "..", "../x", "", ".hidden"])
def test_bad_model_names(name):
    with pytest.raises(RecipeError, match="model.name"):
        emit.check_name(name)


def test_refuses_a_repository_holding_another_model(tmp_path):
    repo = tiny_repository(tmp_path)
    other = tiny_onnx(tmp_path / "other.onnx", batch=2)
    with pytest.raises(RecipeError, match=r"already holds another model \(digits_resnet \(a different model.onnx\)\)"):
        repository.check_target(repo, "digits_resnet", other, overwrite=False)
    with pytest.raises(RecipeError, match="triton.overwrite=true"):
        repository.check_target(repo, "another_name", other, overwrite=False)
    repository.check_target(repo, "digits_resnet", tmp_path / "tiny.onnx", overwrite=False)  # same model: a re-run
    repository.check_target(repo, "another_name", other, overwrite=True)


# ---- through the command line -----------------------------------------------------------------

@pytest.fixture(scope="module")
def emitted(cache_dir, tmp_path_factory, builtin):
    from optimizer.triton.server import find_server

    out = tmp_path_factory.mktemp("emit") / "run"
    try:
        find_server()
        smoke = ["triton.smoke_test=true", "triton.smoke_requests=50", "triton.smoke_seconds=2",
                 "triton.smoke_concurrency=[1,4]", "triton.overload_seconds=2"]
    except RecipeError:
        smoke = []
    args = ["recipe=int8", *FAST, "triton.emit=true", "serving.target_qps=500", "hardware=aws_c7i_large", "tracking.enabled=false", *smoke]
    return (*run_cli(args, cache_dir, out), out, bool(smoke))


def test_pipeline_emits_a_valid_tuned_repository(emitted):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    code, out, s, run_dir, smoke = emitted
    assert code == 0, out
    assert s["model_repository"] == "model_repository"  # relative to the run directory
    repo = run_dir / s["model_repository"]
    d = repo / "digits_resnet"
    c = text_format.Parse((d / "config.pbtxt").read_text(), mc.ModelConfig())
    t = s["triton"]
    assert t["emitted"] and t["variant"] == s["chosen"]
    assert emit.model_io(d / "1" / "model.onnx") == DEFAULT_IO
    assert emit.validate(d / "config.pbtxt", DEFAULT_IO, cores=2) == []
    tuning = t["tuning"]
    assert c.max_batch_size == tuning["max_batch_size"] >= 1
    assert c.HasField("dynamic_batching")
    # the built-in model runs no faster per sample in bigger batches on a CPU (its knee is batch 1), so the
    # batcher just sends what is queued: no preferred size, no delay; a knee above 1 would become the size
    if tuning["knee_batch_size"] == 1:
        assert list(c.dynamic_batching.preferred_batch_size) == [] and tuning["preferred_batch_size"] == 0
        assert c.dynamic_batching.max_queue_delay_microseconds == 0 and c.model_warmup[0].batch_size == 1
    else:
        assert list(c.dynamic_batching.preferred_batch_size) == [tuning["preferred_batch_size"]]
        assert 2 <= tuning["preferred_batch_size"] <= tuning["max_batch_size"]
        assert 0 <= c.dynamic_batching.max_queue_delay_microseconds <= 2000
    assert c.instance_group[0].count * int(c.parameters["intra_op_thread_count"].string_value) <= 2
    curve = tuning["curves"][str(tuning["threads"])]
    fits = [p for p in curve if 2 * (p["p99_ms"] + tuning["overhead_ms"]) <= tuning["sla_p99_ms"]]  # queued
    assert tuning["max_batch_size"] == max(p["batch_size"] for p in fits) or len(fits) < len(curve)
    md = (d / "tuning.md").read_text()
    for field in ("max_batch_size", "preferred_batch_size", "max_queue_delay_microseconds", "instance_group",
                  "intra_op_thread_count", "model_warmup", "per 1M inferences", "replica"):
        assert field in md, field
    assert t["cost"]["cost_per_million"] > 0 and t["cost"]["min_replicas"] >= 1
    for v in s["variants"]:
        assert "pareto" in v and v["cost"]["cost_per_million"] > 0 and v["cost"]["min_replicas"] >= 1
    assert "replicas" in out  # the terminal table
    text = (d / "config.pbtxt").read_text()
    record = __import__("json").loads((d / "tuning.json").read_text())
    prov = record["provenance"]
    assert prov["recipe"] == "int8" and prov["artifact_id"] == record["artifact_id"]
    assert prov["measurement_session"] == s["measurement"]["id"] and "serving.target_qps=500" in prov["overrides"]
    assert prov["tool"].startswith("optimizer ") and text.startswith("# Generated by optimizer")
    assert f"# measurement_session: {s['measurement']['id']}" in text and "## Provenance" in md
    q = c.dynamic_batching.default_queue_policy  # overload protection, on by default
    assert q.max_queue_size == tuning["max_queue_size"] >= c.max_batch_size
    assert q.default_timeout_microseconds == tuning["queue_timeout_us"] > 0
    assert q.timeout_action == mc.ModelQueuePolicy.REJECT
    assert "default_queue_policy.max_queue_size" in md and "timeout_action | REJECT" in md
    k = t["kubernetes"]  # manifests beside the repository, carrying the recommended replicas
    manifests = run_dir / k["manifests"]  # relative to the run directory
    docs = list(__import__("yaml").safe_load_all(manifests.read_text()))
    assert manifests.parent == run_dir / "kubernetes" and not Path(k["manifests"]).is_absolute()
    hpa = next(d for d in docs if d["kind"] == "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (t["cost"]["min_replicas"], t["cost"]["max_replicas"])
    pytest.importorskip("kubernetes_validate")
    from optimizer.triton.kubernetes import validate

    assert validate(docs) == [] and k["validated"].startswith("against the Kubernetes")
    cap = t["capacity"]  # which capacity sized replicas and cost, and the estimate beside it
    assert t["cost"]["capacity_source"] == cap["source"] and cap["estimate"] == pytest.approx(tuning["throughput"], abs=0.1)
    assert "Cost and replicas use" in (d / "tuning.md").read_text()
    if smoke:
        st = t["smoke_test"]
        assert st["passed"], st
        m = st["models"]["digits_resnet"]
        assert m["max_abs_diff"] <= 1e-4 and m["sla"]["p99_ms"] == tuning["sla_p99_ms"]
        assert cap["measured"] == m["capacity"]["capacity_rps"]
        assert cap["source"].startswith("measured" if cap["measured"] else "estimate")
        over = t["overload"]  # probes at 1.5x the measured capacity; whether they held depends on the machine
        if cap["measured"]:
            probes = over["probes"]
            assert 1 <= len(probes) <= 5 and all(p["factor"] == 1.5 and p["requests"] > 0 for p in probes)
            resent = probes[0].get("resent_after_stalls")  # the smoke test's probe missed while the host stalled
            if resent:
                assert resent[0]["p99_ms"] == m["overload"]["p99_ms"] and resent[0]["host_stalls"]["count"] >= 1
            else:
                assert probes[0] == {**m["overload"], **{k: probes[0][k] for k in ("timeout_us", "max_queue_size",
                                                                                  "wait_budget_ms", "max_batch_size")}}
            assert all(p["host_stalls"]["count"] is not None for p in probes)  # the stall watcher reported
            assert all(p["max_batch_size"] == c.max_batch_size for p in probes)  # only the queue is re-tuned
            in_force = probes[over["in_force"]]  # the policy in config.pbtxt is the one that probe ran with
            assert (in_force["timeout_us"], in_force["max_queue_size"]) == (q.default_timeout_microseconds,
                                                                          q.max_queue_size)
            assert over["held"] == any(p["within_sla"] for p in probes) and "## Overload check" in md
            assert (len(probes) > 1) == (not probes[0]["within_sla"] and "error" not in probes[0])
            assert "own_under_load_ms" in tuning if over["in_force"] else "own_under_load_ms" not in tuning
            assert "← in force" in (d / "tuning.md").read_text()
        else:
            assert over is None
    else:
        assert cap["measured"] is None and cap["source"].startswith("estimate: in-process")


def test_a_repository_with_another_model_is_refused(emitted, cache_dir, tmp_path):
    code, out, s, run_dir, _ = emitted
    repository = run_dir / s["model_repository"]  # summary paths are relative to the run directory
    args = ["recipe=int8", *FAST, "triton.emit=true", "model.name=other_model", f"triton.repository={repository}"]
    code, out, _ = run_cli(args, cache_dir, tmp_path / "again")
    assert code == 2 and "already holds another model (digits_resnet)" in out and "triton.overwrite=true" in out


@pytest.mark.parametrize("override, message", [
    ("model.name=a/b", "model.name 'a/b'"),
    ("model.name=..", "model.name '..'"),
    ("serving.target_qps=0", "serving.target_qps must be positive"),
    ("objective=cost", "has no price_per_hour"),
    ("serving.tiers=[{name:premium,p99_ms:-1}]", "serving.tiers[0] (premium): p99_ms must be positive"),
    ("serving.default_tier=gold", "serving.default_tier 'gold' is not one of serving.tiers (none defined)"),
])
def test_bad_serving_inputs_exit_2(cache_dir, tmp_path, override, message):
    code, out, _ = run_cli(["recipe=int8", *FAST, "triton.emit=true", override], cache_dir, tmp_path / "bad")
    assert code == 2 and message in out, out
    assert "Traceback" not in out


def test_unmeetable_sla_fails_the_gate(emitted, cache_dir, tmp_path):
    # the same hardware as ``emitted``: its measurements and tuning sweep are reused from the cache
    args = ["recipe=int8", *FAST, "triton.emit=true", "hardware=aws_c7i_large", "serving.p99_ms=0.01", "tracking.enabled=false"]
    code, out, s = run_cli(args, cache_dir, tmp_path / "sla")
    assert code == 3, out
    assert s["status"] == "gate_failed" and s["model_repository"] is None
    assert "cannot be met even at batch 1" in s["gate_failures"]["triton"][0]
    assert not (tmp_path / "sla" / "model_repository").exists()
    assert "serving.p99_ms=0.01 cannot be met" in out
