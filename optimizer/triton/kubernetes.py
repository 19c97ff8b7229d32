"""Kubernetes manifests beside the model repository: a Deployment running tritonserver on it, a Service,
what scales it within the replica recommendation (``kubernetes.autoscaler``, see autoscale.py: by default a KEDA
ScaledObject on Triton's pending requests; a PodMonitor has Prometheus scrape its metrics), and a
PodDisruptionBudget (one replica stays through a node drain). The YAML is plain (no anchors).

- CPU request (and limit) = the hardware entry's cores: the tuning gave instances × intra-op threads
  of exactly those cores, so a pod with fewer would oversubscribe them.
- memory request = ``TRITON_BASE_MB`` (the server and its backend) + instances × the variant's measured
  peak memory (what loading and running one copy added to its worker); the limit is twice that.
- readiness on ``/v2/health/ready`` (READY only once every model loaded), liveness on ``/v2/health/live``.
- the autoscaler keeps ``min_replicas``..``max_replicas`` (from ``serving.target_qps`` and ``serving.burst_factor``, or
  ``serving.traffic``'s trough and peak: ``decide.traffic.manifest_replicas``); ``manifests`` emits the CPU HPA (at
  ``serving.utilization``, or the profile's earlier scale-up trigger), which ``for_run`` replaces by the autoscaler.

The model store is ``triton.model_store``: a path inside the pod, filled by an init container from
``triton.repository_image`` (``kubernetes/Dockerfile.repository`` builds it from the run directory) or mounted read-only
from the emitted PersistentVolumeClaim ``<name>-model-repository`` (``_`` becomes ``-``; twice the repository's size,
the repository copied in once), or a URL tritonserver reads itself (``s3://…``, ``gs://…``, ``as://…``; no volume)."""

import math
from pathlib import Path
from typing import Dict, List, Optional

from optimizer.gpu import is_cuda

TRITON_BASE_MB = 512  # tritonserver with one backend loaded, before any model
HTTP, GRPC, METRICS = 8000, 8001, 8002
K8S_VERSION = "1.30.0"  # manifests are validated against this API (autoscaling/v2beta2 was removed in 1.26)
WRITTEN = {"deployment", "service", "horizontalpodautoscaler", "scaledobject", "podmonitor", "configmap",
           "poddisruptionbudget", "persistentvolumeclaim"}  # the kinds write() may leave, lowercased
REMOVED = {("HorizontalPodAutoscaler", "autoscaling/v2beta2"), ("HorizontalPodAutoscaler", "autoscaling/v2beta1")}


def dns_name(name: str) -> str:
    """A Kubernetes object name (RFC 1123 label: lowercase alphanumerics and '-') from a Triton model name."""
    import re

    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return out[:50] or "model"


def memory_mb(peak_mb: Optional[float], instances: int) -> int:
    """Memory request in MiB: the server's base plus each instance's measured peak, rounded up to 64 MiB."""
    need = TRITON_BASE_MB + instances * max(peak_mb or 0.0, 0.0)
    return int(math.ceil(need / 64.0) * 64)


def startup_probe(cold_start_s: Optional[float]) -> Dict:
    """Liveness and readiness wait for this probe: it allows three times the measured cold start (the smoke test's
    process start to model ready), at least a minute; an image pull is on top and not measured."""
    allow = max(60.0, 3.0 * (cold_start_s or 0.0))
    return {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5,
            "failureThreshold": int(math.ceil(allow / 5.0))}


def behavior(cold_start_s: Optional[float]) -> Dict:
    """Scale up at once (a replica only serves after its cold start, so waiting adds to it), two pods at a time;
    scale down only after ten cold starts of steady lower load (at least 5 minutes), one pod a minute, so a dip
    does not cost a cold start when the load comes back."""
    down = int(max(300, math.ceil(10 * (cold_start_s or 0.0))))
    return {"scaleUp": {"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 2, "periodSeconds": 15}]},
            "scaleDown": {"stabilizationWindowSeconds": down,
                          "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}


def manifests(name: str, image: str, model_store: str, cores: int, memory: int, min_replicas: int,
              max_replicas: int, cpu_target: int = 70, server_args: Optional[List[str]] = None,
              gpus: int = 0, repository_image: str = "", storage_gi: int = 1,
              cold_start_s: Optional[float] = None) -> List[Dict]:
    """Deployment, Service, HorizontalPodAutoscaler and PodDisruptionBudget for one model repository (``gpus``:
    ``nvidia.com/gpu`` per pod, for GPU hardware entries), and where the repository comes from (``_store``)."""
    app = f"{dns_name(name)}-triton"
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/component": "inference"}
    remote = "://" in model_store
    container = {
        "name": "tritonserver", "image": image,
        "command": ["tritonserver"],
        "args": [f"--model-repository={model_store}", "--strict-readiness=true", *(server_args or [])],
        "ports": [{"name": "http", "containerPort": HTTP}, {"name": "grpc", "containerPort": GRPC},
                  {"name": "metrics", "containerPort": METRICS}],
        "resources": {"requests": {"cpu": str(cores), "memory": f"{memory}Mi"},
                      "limits": {"cpu": str(cores), "memory": f"{2 * memory}Mi"}},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", "port": "http"}, "periodSeconds": 5,
                           "failureThreshold": 3},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", "port": "http"}, "periodSeconds": 10,
                          "failureThreshold": 6},
        "startupProbe": startup_probe(cold_start_s),
    }
    if gpus:
        container["resources"]["limits"]["nvidia.com/gpu"] = gpus
    pod: Dict = {"containers": [container]}
    claim = None if remote else _store(pod, container, name, model_store, repository_image, storage_gi, labels)
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app, "labels": labels},
                  "spec": {"replicas": min_replicas, "selector": {"matchLabels": labels},
                           "template": {"metadata": {"labels": labels}, "spec": pod}}}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": app, "labels": labels},
               "spec": {"selector": labels, "ports": [{"name": n, "port": p, "targetPort": n}
                                                      for n, p in (("http", HTTP), ("grpc", GRPC), ("metrics", METRICS))]}}
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": app, "labels": labels},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                    "minReplicas": min_replicas, "maxReplicas": max_replicas,
                    "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                        "type": "Utilization", "averageUtilization": cpu_target}}}],
                    "behavior": behavior(cold_start_s)}}
    budget = {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": app, "labels": labels},
              "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}}  # a node drain keeps one replica serving
    return [deployment, service, hpa, budget, *([claim] if claim else [])]


def _store(pod: Dict, container: Dict, name: str, model_store: str, repository_image: str, storage_gi: int,
           labels: Dict) -> Optional[Dict]:
    """Mount the repository at ``model_store``: copied from ``repository_image`` by an init container into an
    ``emptyDir`` (the pod then needs nothing else), or read from a PersistentVolumeClaim, returned to be emitted
    too (the repository is copied into it once: see the README)."""
    container["volumeMounts"] = [{"name": "model-repository", "mountPath": model_store, "readOnly": True}]
    if repository_image:
        pod["initContainers"] = [{"name": "model-repository", "image": repository_image,  # its /models stays visible
                                  "command": ["sh", "-c", "cp -R /models/. /repository/"],
                                  "volumeMounts": [{"name": "model-repository", "mountPath": "/repository"}]}]
        pod["volumes"] = [{"name": "model-repository", "emptyDir": {}}]
        return None
    claim_name = f"{dns_name(name)}-model-repository"
    pod["volumes"] = [{"name": "model-repository", "persistentVolumeClaim": {"claimName": claim_name, "readOnly": True}}]
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim_name, "labels": labels},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{storage_gi}Gi"}}}}


DOCKERFILE = """# The model repository as an image: docker build -f kubernetes/Dockerfile.repository -t <registry>/<name>-models .
# (from the run directory), then triton.repository_image=<registry>/<name>-models: an init container copies it.
FROM busybox:1.36
COPY model_repository /models
"""


def validate(docs: List[Dict], version: str = K8S_VERSION) -> List[str]:
    """Problems of each manifest against the Kubernetes ``version`` API schemas (offline, strict: unknown
    fields are errors); removed APIs such as ``autoscaling/v2beta2`` are refused by name; the custom resources
    (ScaledObject, PodMonitor) against their CRDs' schemas vendored in ``schemas/`` (crd.py)."""
    import kubernetes_validate

    from optimizer.triton import crd

    problems = []
    for doc in docs:
        what = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')!r} ({doc.get('apiVersion')})"
        if doc.get("kind") in crd.KINDS:
            problems += [f"{what}: {p}" for p in crd.validate(doc)]
            continue
        if (doc.get("kind"), doc.get("apiVersion")) in REMOVED:
            problems.append(f"{what}: this API was removed in Kubernetes 1.26; use autoscaling/v2")
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            problems.append(f"{what}: {'.'.join(str(p) for p in e.path)}: {e.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as e:
            problems.append(f"{what}: no schema in Kubernetes {version} ({type(e).__name__} {e})")
    return problems


def write(directory: Path, docs: List[Dict]) -> Path:
    """``<directory>/<kind>.yaml`` with the manifests of each kind and ``all.yaml`` with every one, in order
    (``kubectl apply -f``: namespaces come first); a ``<kind>.yaml`` of ``WRITTEN`` left by an earlier run (another
    autoscaler) is removed: an HPA beside a ScaledObject would fight it."""
    import yaml

    from optimizer.files import write_atomic

    class Plain(yaml.SafeDumper):  # no &id001 anchors for shared label dicts: plain YAML, as Kubernetes examples are
        def ignore_aliases(self, data):
            return True

    directory.mkdir(parents=True, exist_ok=True)
    for kind in WRITTEN - {doc["kind"].lower() for doc in docs}:
        (directory / f"{kind}.yaml").unlink(missing_ok=True)
    for kind in dict.fromkeys(doc["kind"] for doc in docs):  # several of a kind (tenants' namespaces): one file
        same = [doc for doc in docs if doc["kind"] == kind]
        write_atomic(directory / f"{kind.lower()}.yaml", yaml.dump_all(same, Dumper=Plain, sort_keys=False).encode())
    write_atomic(directory / "all.yaml", yaml.dump_all(docs, Dumper=Plain, sort_keys=False).encode())
    write_atomic(directory / "Dockerfile.repository", DOCKERFILE.encode())
    return directory / "all.yaml"


def for_run(cfg, peak_memory_mb: Optional[float], instances: int, cost: Dict, repo: Path,
            cold_start_s: Optional[float] = None, tuning=None, capacity_rps: Optional[float] = None) -> Dict:
    """The run's manifests in ``<repository>/../kubernetes/``, validated offline (RecipeError if not): the
    recipe's image, model store and hardware, the chosen variant's measured peak memory, the tuned
    ``instances`` and the replicas of ``cost``, scaled by ``kubernetes.autoscaler`` on a threshold from the
    ``tuning`` (batcher delay, p99) and ``capacity_rps`` (requests/s one replica serves); the summary's
    ``kubernetes`` block."""
    from optimizer.errors import RecipeError
    from optimizer.triton import autoscale, crd

    low = cost.get("min_replicas", 1)
    high = cost.get("max_replicas", max(low, math.ceil(cfg.serving.burst_factor)))
    memory = memory_mb(peak_memory_mb, instances)
    flags = [f"--cache-config=local,size={cfg.triton.response_cache_mb * 2**20}"] if cfg.triton.response_cache else []
    size = sum(f.stat().st_size for f in repo.rglob("*") if f.is_file()) if repo.is_dir() else 0
    target = round(cost.get("trigger_used", cfg.serving.utilization) * 100)  # a fast-ramping profile scales earlier
    docs = manifests(cfg.model.name, cfg.triton.image, cfg.triton.model_store, cfg.hardware.cores, memory, low,
                     high, target, flags, gpus=1 if is_cuda(cfg.hardware) else 0,
                     repository_image=cfg.triton.repository_image, storage_gi=max(1, math.ceil(2 * size / 2**30)),
                     cold_start_s=cold_start_s)
    at = next(i for i, d in enumerate(docs) if d["kind"] == "HorizontalPodAutoscaler")
    docs[at:at + 1], scaling = autoscale.scaling(cfg.kubernetes.autoscaler.value, docs[at], cfg.model.name,
                                                 autoscale.of_tuning(tuning, capacity_rps, target / 100),
                                                 cfg.kubernetes.prometheus_url)
    placed = None
    if cfg.serving.tenants:  # namespaces, priority classes, quotas, and the workload per tenant or tier
        from optimizer.triton.tenants import place

        docs, placed = place(cfg, docs, low, high, dns_name(cfg.model.name))
    try:
        problems = validate(docs)
        custom = sorted({d["kind"] for d in docs if d["kind"] in crd.KINDS})
        validated = f"against the Kubernetes {K8S_VERSION} schemas and the vendored CRD schemas ({', '.join(custom)})"
    except ImportError:  # kubernetes-validate is a test dependency
        problems, validated = [], "not checked offline (pip install kubernetes-validate)"
    if problems:
        raise RecipeError(f"Kubernetes manifests for {cfg.model.name!r} do not validate: {'; '.join(problems)}")
    path = write(repo.parent / "kubernetes", docs)
    return {"manifests": str(path), "min_replicas": low, "max_replicas": high, "memory_mb": memory,
            "cpu": cfg.hardware.cores, "cpu_target": target, "image": cfg.triton.image, "validated": validated,
            "model_store": cfg.triton.model_store, "autoscaling": scaling,
            "cold_start_seconds": cold_start_s, "cold_start_from": "the smoke test: tritonserver start to model ready"
            if cold_start_s is not None else "not measured (triton.smoke_test=false): probes and scaling use defaults",
            "replicas_from": cost.get("replicas_from") or "serving.target_qps" if "min_replicas" in cost else
            "no serving.target_qps: 1 replica, up to serving.burst_factor", **({"tenants": placed} if placed else {})}
