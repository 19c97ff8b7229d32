"""The Triton repository emitted by a command-line run: a valid tuned config (smoke-tested when a server is found),
another model's repository refused, bad serving inputs exit 2, an unmeetable SLA fails the gate."""

from pathlib import Path

import pytest

from optimizer.errors import RecipeError
from optimizer.triton import emit
from tests.helpers import DEFAULT_IO, FAST, run_cli


@pytest.fixture(scope="module")
def emitted(cache_dir, tmp_path_factory, builtin):
    from optimizer.tritonserver.server import find_server

    out = tmp_path_factory.mktemp("emit") / "run"
    try:
        find_server()
        smoke = ["triton.smoke_test=true", "triton.smoke_requests=50", "triton.smoke_seconds=2",
                 "triton.smoke_concurrency=[1,4]", "triton.overload_seconds=2"]
    except RecipeError:
        smoke = []
    # an SLA set (none by default): the smoke test measures the capacity within it and runs the overload check;
    # 100 ms leaves the queue a wait budget well above one batch-64 execution on a busy 2-core host
    args = ["recipe=int8", *FAST, "triton.emit=true", "serving.target_qps=500", "serving.p99_ms=100",
            "hardware=aws_c7i_large", "tracking.enabled=false", *smoke]
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
    _check_batching(c, tuning)
    md = (d / "tuning.md").read_text()
    _check_tuning_doc_and_cost(md, s, out)
    _check_provenance(d, s, md)
    _check_queue_policy(c, tuning, md)
    _check_kubernetes(run_dir, t)  # skips the rest without kubernetes_validate
    cap = t["capacity"]  # which capacity sized replicas and cost, and the estimate beside it
    assert t["cost"]["capacity_source"] == cap["source"] and cap["estimate"] == pytest.approx(tuning["throughput"], abs=0.1)
    assert "Cost and replicas use" in (d / "tuning.md").read_text()
    if smoke:
        _check_smoke_test(t, c, d, md)
    else:
        assert cap["measured"] is None and cap["source"].startswith("estimate: in-process")


def _check_batching(c, tuning: dict) -> None:
    """The batcher, the instances and the batch size as tuned from the measured curve."""
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


def _check_tuning_doc_and_cost(md: str, s: dict, out: str) -> None:
    """tuning.md names every tuned field; the chosen variant and every variant carry a cost."""
    t = s["triton"]
    for field in ("max_batch_size", "preferred_batch_size", "max_queue_delay_microseconds", "instance_group",
                  "intra_op_thread_count", "model_warmup", "per 1M inferences", "replica"):
        assert field in md, field
    assert t["cost"]["cost_per_million"] > 0 and t["cost"]["min_replicas"] >= 1
    for v in s["variants"]:
        assert "pareto" in v and v["cost"]["cost_per_million"] > 0 and v["cost"]["min_replicas"] >= 1
    assert "replicas" in out  # the terminal table


def _check_provenance(d: Path, s: dict, md: str) -> None:
    """tuning.json, config.pbtxt and tuning.md say which run and measurement produced them."""
    text = (d / "config.pbtxt").read_text()
    record = __import__("json").loads((d / "tuning.json").read_text())
    prov = record["provenance"]
    assert prov["recipe"] == "int8" and prov["artifact_id"] == record["artifact_id"]
    assert prov["measurement_session"] == s["measurement"]["id"] and "serving.target_qps=500" in prov["overrides"]
    assert prov["tool"].startswith("optimizer ") and text.startswith("# Generated by optimizer")
    assert f"# measurement_session: {s['measurement']['id']}" in text and "## Provenance" in md


def _check_queue_policy(c, tuning: dict, md: str) -> None:
    """The default queue policy: overload protection, on by default."""
    from tritonclient.grpc import model_config_pb2 as mc

    q = c.dynamic_batching.default_queue_policy  # overload protection, on by default
    assert q.max_queue_size == tuning["max_queue_size"] >= c.max_batch_size
    assert q.default_timeout_microseconds == tuning["queue_timeout_us"] > 0
    assert q.timeout_action == mc.ModelQueuePolicy.REJECT
    assert "default_queue_policy.max_queue_size" in md and "timeout_action | REJECT" in md


def _check_kubernetes(run_dir: Path, t: dict) -> None:
    """The manifests beside the repository; skips the test (as before) without kubernetes_validate."""
    from optimizer.triton.autoscale import number

    k = t["kubernetes"]  # manifests beside the repository, carrying the recommended replicas
    manifests = run_dir / k["manifests"]  # relative to the run directory
    docs = list(__import__("yaml").safe_load_all(manifests.read_text()))
    assert manifests.parent == run_dir / "kubernetes" and not Path(k["manifests"]).is_absolute()
    scaler = next(d for d in docs if d["kind"] == "ScaledObject")  # kubernetes.autoscaler=keda, the default
    assert "HorizontalPodAutoscaler" not in {d["kind"] for d in docs}  # KEDA makes its own
    assert (scaler["spec"]["minReplicaCount"], scaler["spec"]["maxReplicaCount"]) == (t["cost"]["min_replicas"],
                                                                                      t["cost"]["max_replicas"])
    a = k["autoscaling"]  # Little's law on the capacity that sized the replicas and the tuned batcher
    assert scaler["spec"]["triggers"][0]["metadata"]["threshold"] == number(a["threshold"]) and a["threshold"] >= 1
    assert a["threshold_from"].startswith(f"Little's law per replica: 0.7 × {t['capacity']['used']:.1f} requests/s")
    ready = ((t.get("smoke_test") or {}).get("models", {}).get("digits_resnet") or {}).get("ready_seconds")
    assert k["cold_start_seconds"] == ready  # measured by the smoke test when it ran, else None
    assert {d["kind"] for d in docs} >= {"PodDisruptionBudget", "PersistentVolumeClaim", "PodMonitor"}
    pytest.importorskip("kubernetes_validate")
    from optimizer.triton.kubernetes import validate

    assert validate(docs) == [] and k["validated"].startswith("against the Kubernetes")


def _check_smoke_test(t: dict, c, d: Path, md: str) -> None:
    """The smoke test passed, measured the capacity and ran the overload check."""
    tuning, cap = t["tuning"], t["capacity"]
    st = t["smoke_test"]
    assert st["passed"], st
    m = st["models"]["digits_resnet"]
    assert m["max_abs_diff"] <= 1e-4 and m["sla"]["p99_ms"] == tuning["sla_p99_ms"]
    assert cap["measured"] == m["capacity"]["capacity_rps"]
    assert cap["source"].startswith("measured" if cap["measured"] else "estimate")
    over = t["overload"]  # probes at 1.5x the measured capacity; whether they held depends on the machine
    if cap["measured"]:
        _check_overload_probes(over, m, tuning, c, d, md)
    else:
        assert over is None


def _check_overload_probes(over: dict, m: dict, tuning: dict, c, d: Path, md: str) -> None:
    """The overload check's probes, and the queue policy in force is the one its probe ran with."""
    q = c.dynamic_batching.default_queue_policy
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
