"""What scales the Deployment (``kubernetes.autoscaler``): Triton's own queue, not the CPU.

Triton's ``nv_inference_pending_request_count{model=...}`` (Triton docs, metrics: a per-model gauge of the requests
received but not yet executing, the batcher's queue and any backlog behind busy instances) grows as soon as a
replica falls behind, before its latency does; CPU is a weak signal for it (a batching server's CPU is busy at any
load it can serve, and saturated well before its queue says so). All three options emit a Prometheus Operator
``PodMonitor`` scraping each pod's ``metrics`` port (8002, ``/metrics``) every 15 s, copying the pod's
``app.kubernetes.io/name`` label onto the series (``app_kubernetes_io_name``):

- ``keda`` (the default): a KEDA ``ScaledObject`` whose ``prometheus`` trigger sums the metric's one-minute mean
  over this Deployment's pods; as ``AverageValue`` KEDA's HPA divides it by the replicas and scales to
  ``ceil(sum ÷ threshold)``. It needs KEDA and a Prometheus (``kubernetes.prometheus_url``), but nothing
  cluster-wide to edit: the query lives in the object, next to the Deployment it scales.
- ``hpa-custom``: an ``autoscaling/v2`` HPA on the ``Pods`` metric ``triton_pending_requests`` at the same
  threshold, and a ConfigMap holding the Prometheus Adapter rule that serves it (one rule for every Triton pod:
  merge its ``rules`` into the adapter's config, which is cluster-wide, e.g. the Helm chart's ``rules.custom``).
- ``cpu``: the HPA on ``serving.utilization`` average CPU; no Prometheus needed.

The threshold, pending requests per replica, is Little's law on the tuned batcher: a replica loaded at
``serving.utilization`` of its capacity receives ``λ = utilization × capacity`` requests/s (the capacity that sized
the replicas: measured on the smoke server when it ran, else the in-process estimate), and each waits before it
executes at most ``W = max_queue_delay`` (the batcher holding it) ``+ p99 at max_batch_size + overhead`` (one
running execution it queues behind), so ``threshold = λ × W``, rounded up to 0.01 and at least ``MIN_THRESHOLD``
(1): the gauge is an integer read at each scrape, and below one a single request caught in the queue would read
as many times the target load. Scale-up/-down pace is the measured cold start's ``behavior`` (kubernetes.py),
for KEDA through ``advanced.horizontalPodAutoscalerConfig``; KEDA's ``cooldownPeriod`` (it acts only when
scaling to zero, which ``minReplicaCount`` ≥ 1 never does) is the same scale-down window."""

import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

METRIC = "nv_inference_pending_request_count"  # Triton's per-model pending requests (a gauge)
ADAPTER_METRIC = "triton_pending_requests"  # the name the Prometheus Adapter serves it under (custom.metrics.k8s.io)
POD_LABEL, SERIES_LABEL = "app.kubernetes.io/name", "app_kubernetes_io_name"  # podTargetLabels copies it so
WINDOW = "1m"  # the mean over four 15 s scrapes: one instant's queue is noise
SCRAPE = "15s"
POLLING_S = 15  # KEDA's check of the trigger; the HPA it drives reads the metric every 15 s as well
MIN_THRESHOLD = 1.0
KEDA_API, MONITOR_API = "keda.sh/v1alpha1", "monitoring.coreos.com/v1"


@dataclass(frozen=True)
class Threshold:
    """Pending requests per replica to scale on, and where the number comes from."""

    value: float
    pending: Optional[float]  # Little's law before the floor; None without a capacity
    derived: str


def threshold(capacity_rps: Optional[float], utilization: float, queue_delay_us: float, p99_ms: float,
              overhead_ms: float) -> Threshold:
    """``max(MIN_THRESHOLD, utilization × capacity × (queue delay + p99 + overhead))``, rounded up to 0.01
    (see the module's docstring)."""
    if not capacity_rps or capacity_rps <= 0:
        return Threshold(MIN_THRESHOLD, None, f"no capacity measured or estimated: the floor, {MIN_THRESHOLD:g} "
                                              f"pending request per replica")
    rate, wait_ms = utilization * capacity_rps, queue_delay_us / 1000.0 + p99_ms + overhead_ms
    pending = rate * wait_ms / 1000.0
    value = max(MIN_THRESHOLD, math.ceil(round(pending * 100, 6)) / 100)
    derived = (f"Little's law per replica: {utilization:g} × {capacity_rps:.1f} requests/s × "
               f"({queue_delay_us / 1000:g} ms batcher delay + {p99_ms + overhead_ms:.2f} ms one execution at p99) "
               f"= {pending:.2f} pending requests")
    return Threshold(value, pending, derived + (f", raised to the floor of {MIN_THRESHOLD:g}"
                                                if pending < MIN_THRESHOLD else ""))


def of_tuning(tuning, capacity_rps: Optional[float], utilization: float) -> Threshold:
    """``threshold`` from a ``Tuning`` (its batcher delay, p99 at ``max_batch_size`` and overhead); the floor
    without one."""
    if tuning is None:
        return threshold(None, utilization, 0, 0, 0)
    return threshold(capacity_rps, utilization, tuning.max_queue_delay_us, tuning.p99_at_max_ms, tuning.overhead_ms)


def number(value: float) -> str:
    """``31.5``, ``1``, ``1234.56``: a threshold as KEDA's string metadata holds it (no exponent, no rounding)."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


def query(model: str, app: str) -> str:
    """PromQL: the model's pending requests summed over the app's pods (each a one-minute mean)."""
    model = model.replace("\\", "\\\\").replace('"', '\\"')
    return f'sum(avg_over_time({METRIC}{{model="{model}",{SERIES_LABEL}="{app}"}}[{WINDOW}]))'


def pod_monitor(app: str, labels: Dict) -> Dict:
    """Scrape every pod of the Deployment on its ``metrics`` port (Prometheus must select this PodMonitor: the
    kube-prometheus-stack chart's Prometheus selects only its own release's unless told otherwise)."""
    return {"apiVersion": MONITOR_API, "kind": "PodMonitor", "metadata": {"name": app, "labels": labels},
            "spec": {"selector": {"matchLabels": labels}, "podTargetLabels": [POD_LABEL],
                     "podMetricsEndpoints": [{"port": "metrics", "path": "/metrics", "interval": SCRAPE}]}}


def scaled_object(app: str, labels: Dict, low: int, high: int, behavior: Dict, model: str, limit: Threshold,
                  prometheus_url: str) -> Dict:
    """KEDA's ScaledObject on the Deployment ``app``: ``low``..``high`` replicas at ``limit`` pending requests each."""
    return {"apiVersion": KEDA_API, "kind": "ScaledObject", "metadata": {"name": app, "labels": labels},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                     "pollingInterval": POLLING_S,
                     "cooldownPeriod": behavior["scaleDown"]["stabilizationWindowSeconds"],
                     "minReplicaCount": low, "maxReplicaCount": high,
                     "advanced": {"horizontalPodAutoscalerConfig": {"behavior": behavior}},
                     "triggers": [{"type": "prometheus", "metricType": "AverageValue", "metadata": {
                         "serverAddress": prometheus_url, "query": query(model, app),
                         "threshold": number(limit.value)}}]}}


def adapter_rules() -> Dict:
    """The Prometheus Adapter's ``rules:`` serving ``triton_pending_requests`` per pod (all of a pod's models)."""
    return {"rules": [{"seriesQuery": f'{METRIC}{{namespace!="",pod!=""}}',
                       "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                                   "pod": {"resource": "pod"}}},
                       "name": {"matches": f"^{METRIC}$", "as": ADAPTER_METRIC},
                       "metricsQuery": f"sum(avg_over_time(<<.Series>>{{<<.LabelMatchers>>}}[{WINDOW}])) "
                                       f"by (<<.GroupBy>>)"}]}


def custom_hpa(cpu_hpa: Dict, limit: Threshold) -> List[Dict]:
    """The HPA on the Pods metric (``cpu_hpa``'s target, replicas and behavior) and the adapter rule's ConfigMap."""
    import copy

    import yaml

    hpa = copy.deepcopy(cpu_hpa)
    hpa["spec"]["metrics"] = [{"type": "Pods", "pods": {"metric": {"name": ADAPTER_METRIC}, "target": {
        "type": "AverageValue", "averageValue": f"{round(limit.value * 1000)}m"}}}]
    meta = cpu_hpa["metadata"]
    rules = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": f"{meta['name']}-prometheus-adapter", "labels": meta["labels"]},
             "data": {"config.yaml": yaml.safe_dump(adapter_rules(), sort_keys=False)}}
    return [hpa, rules]


def scaling(autoscaler: str, cpu_hpa: Dict, model: str, limit: Threshold, prometheus_url: str
            ) -> Tuple[List[Dict], Dict]:
    """The objects that scale the Deployment in place of ``cpu_hpa`` (itself for ``cpu``), each followed by the
    PodMonitor; and the summary's ``autoscaling`` block: which autoscaler, on what metric, at what threshold, why."""
    meta, spec = cpu_hpa["metadata"], cpu_hpa["spec"]
    app, labels = meta["name"], meta["labels"]
    monitor = pod_monitor(app, labels)
    if autoscaler == "cpu":
        target = spec["metrics"][0]["resource"]["target"]["averageUtilization"]
        return [cpu_hpa, monitor], {"autoscaler": "cpu", "metric": "cpu", "threshold": target,
                                    "threshold_from": "serving.utilization: average CPU, % of the request",
                                    "scales_on": f"{target} % average CPU (a HorizontalPodAutoscaler)"}
    block = {"autoscaler": autoscaler, "metric": METRIC, "threshold": limit.value, "threshold_from": limit.derived,
             "pending_little": None if limit.pending is None else round(limit.pending, 3)}
    if autoscaler == "keda":
        so = scaled_object(app, labels, spec["minReplicas"], spec["maxReplicas"], spec["behavior"], model, limit,
                           prometheus_url)
        return [so, monitor], {**block, "query": so["spec"]["triggers"][0]["metadata"]["query"],
                               "prometheus_url": prometheus_url,
                               "scales_on": f"{number(limit.value)} pending requests per replica (a KEDA "
                                            f"ScaledObject's Prometheus trigger on {METRIC})"}
    if autoscaler == "hpa-custom":
        return [*custom_hpa(cpu_hpa, limit), monitor], {
            **block, "adapter_metric": ADAPTER_METRIC,
            "scales_on": f"{number(limit.value)} pending requests per replica (a HorizontalPodAutoscaler on the "
                         f"Prometheus Adapter's {ADAPTER_METRIC}; merge the ConfigMap's rule into the adapter)"}
    raise ValueError(f"kubernetes.autoscaler: unknown autoscaler {autoscaler!r} (keda, hpa-custom or cpu)")
