"""Autoscaling on Triton's pending requests: the threshold is Little's law on the tuned batcher, each
``kubernetes.autoscaler`` emits manifests that validate offline (core APIs and the vendored CRDs), a PodMonitor
scrapes the metrics port, and the scaling pace follows the measured cold start."""

from pathlib import Path

import pytest
import yaml

from optimizer.config import Autoscaler, OptimizerConfig
from optimizer.triton import autoscale
from optimizer.triton import kubernetes as k8s
from optimizer.triton.tune import Tuning

pytest.importorskip("jsonschema")
pytest.importorskip("kubernetes_validate")

APP = "digits-resnet-triton"
TUNING = Tuning(feasible=True, reason="", sla_p99_ms=100.0, max_batch_size=32, max_queue_delay_us=300,
                p99_at_max_ms=5.0, overhead_ms=0.5, instances=2)
COST = {"min_replicas": 2, "max_replicas": 4}


def run(tmp_path: Path, autoscaler: str, cold_start_s=38.0, capacity_rps=2000.0, **kubernetes):
    """``for_run`` as deploy calls it; the summary block and the manifests read back from all.yaml."""
    cfg = OptimizerConfig()
    cfg.model.name = "digits_resnet"
    cfg.kubernetes.autoscaler = Autoscaler(autoscaler)
    for key, value in kubernetes.items():
        setattr(cfg.kubernetes, key, value)
    repo = tmp_path / "model_repository"
    repo.mkdir(parents=True, exist_ok=True)
    block = k8s.for_run(cfg, 37.5, 2, COST, repo, cold_start_s, TUNING, capacity_rps)
    return block, list(yaml.safe_load_all(Path(block["manifests"]).read_text()))


def by_kind(docs):
    return {d["kind"]: d for d in docs}


def test_the_threshold_is_littles_law_on_the_tuned_queue():
    # 0.7 × 2000 requests/s × (0.3 ms delay + 5.0 ms p99 + 0.5 ms overhead) = 8.12 pending requests per replica
    t = autoscale.threshold(2000.0, 0.7, 300, 5.0, 0.5)
    assert (t.value, round(t.pending, 6)) == (8.12, 8.12)
    assert t.derived == ("Little's law per replica: 0.7 × 2000.0 requests/s × (0.3 ms batcher delay + 5.50 ms one "
                         "execution at p99) = 8.12 pending requests")
    assert autoscale.threshold(2000.0, 0.7, 2000, 20.0, 0.5).value == 31.5  # 1400 × 22.5 ms, no float creep to 31.51
    assert autoscale.threshold(1000.0, 0.5, 0, 3.0, 0.333).value == 1.67  # 1.6665 rounded up
    low = autoscale.threshold(200.0, 0.7, 300, 5.0, 0.5)  # 140 × 5.8 ms = 0.812: under one request, the floor
    assert (low.value, round(low.pending, 3)) == (1.0, 0.812) and low.derived.endswith("raised to the floor of 1")
    none = autoscale.threshold(None, 0.7, 300, 5.0, 0.5)
    assert (none.value, none.pending) == (1.0, None) and "no capacity" in none.derived
    assert autoscale.of_tuning(TUNING, 2000.0, 0.7) == t
    assert [autoscale.number(v) for v in (31.5, 1.0, 8.12, 1234.56, 123456.7)] == ["31.5", "1", "8.12", "1234.56",
                                                                                    "123456.7"]


@pytest.mark.parametrize("autoscaler, kinds", [
    ("keda", ["Deployment", "Service", "ScaledObject", "PodMonitor", "PodDisruptionBudget", "PersistentVolumeClaim"]),
    ("hpa-custom", ["Deployment", "Service", "HorizontalPodAutoscaler", "ConfigMap", "PodMonitor",
                    "PodDisruptionBudget", "PersistentVolumeClaim"]),
    ("cpu", ["Deployment", "Service", "HorizontalPodAutoscaler", "PodMonitor", "PodDisruptionBudget",
             "PersistentVolumeClaim"]),
])
def test_each_autoscaler_emits_manifests_that_validate(tmp_path, autoscaler, kinds):
    block, docs = run(tmp_path, autoscaler)
    assert [d["kind"] for d in docs] == kinds and k8s.validate(docs) == []
    assert block["validated"] == ("against the Kubernetes 1.30.0 schemas and the vendored CRD schemas ("
                                  + ("PodMonitor, ScaledObject" if autoscaler == "keda" else "PodMonitor") + ")")
    assert sorted(p.name for p in Path(block["manifests"]).parent.glob("*.yaml")) == sorted(
        ["all.yaml", *(f"{k.lower()}.yaml" for k in kinds)])
    m = by_kind(docs)
    monitor = m["PodMonitor"]["spec"]  # all three: Prometheus scrapes the pods' metrics port
    assert monitor["podMetricsEndpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "15s"}]
    assert monitor["selector"]["matchLabels"] == m["Deployment"]["spec"]["selector"]["matchLabels"]
    assert monitor["podTargetLabels"] == ["app.kubernetes.io/name"]
    assert {"name": "metrics", "port": 8002, "targetPort": "metrics"} in m["Service"]["spec"]["ports"]
    assert block["autoscaling"]["autoscaler"] == autoscaler


def test_keda_scales_on_pending_requests_at_the_threshold(tmp_path):
    block, docs = run(tmp_path, "keda", prometheus_url="http://prometheus.example:9090")
    spec = by_kind(docs)["ScaledObject"]["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": APP}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"], spec["pollingInterval"]) == (2, 4, 15)
    (trigger,) = spec["triggers"]
    assert (trigger["type"], trigger["metricType"]) == ("prometheus", "AverageValue")
    assert trigger["metadata"] == {
        "serverAddress": "http://prometheus.example:9090", "threshold": "8.12",
        "query": 'sum(avg_over_time(nv_inference_pending_request_count{model="digits_resnet",'
                 'app_kubernetes_io_name="digits-resnet-triton"}[1m]))'}
    s = block["autoscaling"]
    assert (s["metric"], s["threshold"], s["pending_little"]) == ("nv_inference_pending_request_count", 8.12, 8.12)
    assert s["threshold_from"].startswith("Little's law per replica: 0.7 × 2000.0 requests/s")
    assert s["query"] == trigger["metadata"]["query"] and s["prometheus_url"] == "http://prometheus.example:9090"
    assert "HorizontalPodAutoscaler" not in by_kind(docs)  # KEDA makes its own; a second one would fight it


def test_hpa_custom_scales_on_the_adapters_pods_metric(tmp_path):
    block, docs = run(tmp_path, "hpa-custom")
    m = by_kind(docs)
    hpa = m["HorizontalPodAutoscaler"]["spec"]
    assert hpa["metrics"] == [{"type": "Pods", "pods": {"metric": {"name": "triton_pending_requests"},
                                                        "target": {"type": "AverageValue", "averageValue": "8120m"}}}]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4)
    (rule,) = yaml.safe_load(m["ConfigMap"]["data"]["config.yaml"])["rules"]
    assert rule["seriesQuery"] == 'nv_inference_pending_request_count{namespace!="",pod!=""}'
    assert rule["name"] == {"matches": "^nv_inference_pending_request_count$", "as": "triton_pending_requests"}
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}, "pod": {"resource": "pod"}}
    assert rule["metricsQuery"] == "sum(avg_over_time(<<.Series>>{<<.LabelMatchers>>}[1m])) by (<<.GroupBy>>)"
    assert m["ConfigMap"]["metadata"]["name"] == f"{APP}-prometheus-adapter"
    assert (block["autoscaling"]["adapter_metric"], block["autoscaling"]["threshold"]) == ("triton_pending_requests",
                                                                                          8.12)


def test_cpu_keeps_the_cpu_hpa(tmp_path):
    block, docs = run(tmp_path, "cpu")
    hpa = by_kind(docs)["HorizontalPodAutoscaler"]["spec"]
    assert hpa["metrics"][0]["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    assert (block["autoscaling"]["metric"], block["autoscaling"]["threshold"]) == ("cpu", 70)


@pytest.mark.parametrize("cold, window", [(38.0, 380), (None, 300), (75.0, 750)])
def test_the_scaling_pace_follows_the_measured_cold_start(tmp_path, cold, window):
    _, keda = run(tmp_path / "keda", "keda", cold_start_s=cold)
    spec = by_kind(keda)["ScaledObject"]["spec"]
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior == k8s.behavior(cold)  # scale up at once, down after ten cold starts (at least 5 minutes)
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == spec["cooldownPeriod"] == window
    assert behavior["scaleUp"]["stabilizationWindowSeconds"] == 0
    _, custom = run(tmp_path / "custom", "hpa-custom", cold_start_s=cold)
    assert by_kind(custom)["HorizontalPodAutoscaler"]["spec"]["behavior"] == behavior


def test_another_autoscaler_replaces_the_earlier_files(tmp_path):
    first, _ = run(tmp_path, "cpu")
    directory = Path(first["manifests"]).parent
    assert (directory / "horizontalpodautoscaler.yaml").exists()
    run(tmp_path, "keda")
    assert not (directory / "horizontalpodautoscaler.yaml").exists()  # kubectl apply -f kubernetes/: no HPA to fight
    assert (directory / "scaledobject.yaml").exists()


def test_no_tuning_scales_at_the_floor(tmp_path):
    cfg = OptimizerConfig()
    cfg.model.name = "digits_resnet"
    (tmp_path / "model_repository").mkdir()
    block = k8s.for_run(cfg, None, 1, {}, tmp_path / "model_repository")
    assert (block["autoscaling"]["threshold"], block["autoscaling"]["pending_little"]) == (1.0, None)
    assert (block["min_replicas"], block["max_replicas"]) == (1, 2)
