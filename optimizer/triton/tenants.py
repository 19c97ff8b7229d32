"""Tenants (``serving.tenants``): who sends the traffic, in which QoS tier, with what share of it (checked at plan
time by ``recipe.tenants``), placed into the Kubernetes manifests (``place``, called by ``kubernetes.for_run``).

- ``kubernetes.namespaces=per_tenant``: a ``Namespace`` per tenant (labelled with the tenant and its tier), in it a
  ``ResourceQuota`` and a ``LimitRange`` (the Triton container's requests and limits as the defaults), and the
  tenant's own copy of the workload (Deployment, Service, autoscaler, PodDisruptionBudget, claim) whose pods carry
  the tenant's tier's ``priorityClassName``: a namespace can only hold its own pods, so each tenant runs its own.
- ``shared``: one namespace (``<model>-serving``) with a ``ResourceQuota`` per tier used, scoped to that tier's
  ``PriorityClass`` (``scopeSelector``, operator ``In``); the workload is copied once per tier (names end in
  ``-<tier>``, a ``tier`` label in the selector), each with its tier's priority class, so each quota bounds exactly
  its tier's pods. A single Deployment for every tier would have one priority class, and every pod would count
  against that one tier's quota: the per-tier quotas would mean nothing.
- ``PriorityClass`` (``scheduling.k8s.io/v1``, named ``<model>-<tier>``) per tier used: level 1 (the first tier:
  premium) the highest value; a tier without an SLA (batch traffic) ``preemptionPolicy: Never``: it waits for room
  and never evicts a pod.
- Replicas: a tenant (or tier) gets ``ceil(share × min_replicas)`` .. ``ceil(share × max_replicas)``, at least one.
- Quota (null fields of ``quota``): pods = its share of the peak (``max_replicas``) replicas, rounded up, at least
  one, plus ``SURGE_PODS`` so a rolling update can start its new pod; cpu and memory = pods × the pod's requests;
  ``limits.*`` = pods × the pod's limits. Given values are used as they are (limits scaled by the pod's
  limit/request ratio); the tenant's replicas are then capped to what its quota admits."""

import copy
import math
from typing import Dict, List, Optional, Tuple

from optimizer.recipe.tenants import tiers

SURGE_PODS = 1  # a rolling update's extra pod (the Deployment's default maxSurge rounds up to one)
PRIORITY_BASE, PRIORITY_STEP = 100000, 1000  # PriorityClass values: the lowest tier, and the step per level


def slug(tier: str) -> str:
    """A tier's name as it appears in object names (RFC 1123: lowercase alphanumerics and '-')."""
    import re

    return re.sub(r"[^a-z0-9-]+", "-", tier.lower()).strip("-") or "tier"


def _cpu(value) -> float:
    text = str(value)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def _mib(value) -> float:
    text = str(value)
    return float(text[:-2]) if text.endswith("Mi") else float(text) / 2**20


def replicas(share: float, low: int, high: int, cap: Optional[int] = None) -> Tuple[int, int]:
    """A tenant's (or tier's) min and max replicas: its share of the run's, rounded up, at least one, at most
    ``cap`` (what its quota admits)."""
    hi = max(1, math.ceil(share * high - 1e-9))
    hi = min(hi, cap) if cap is not None else hi
    lo = min(hi, max(1, math.ceil(share * low - 1e-9)))
    return lo, max(1, hi)


def quota(tenant, high: int, pod: Dict) -> Dict[str, float]:
    """The tenant's hard limits: cpu (cores), memory (MiB), pods, and the limits from the pod's limit/request ratios."""
    q = tenant.quota
    pods = q.pods if q is not None and q.pods is not None else max(1, math.ceil(tenant.share * high - 1e-9)) + SURGE_PODS
    cpu = q.cpu if q is not None and q.cpu is not None else pods * pod["cpu"]
    mem = q.memory_mb if q is not None and q.memory_mb is not None else pods * pod["memory"]
    return {"pods": int(pods), "cpu": float(cpu), "memory_mb": float(mem),
            "limits_cpu": cpu * pod["limit_cpu"] / pod["cpu"], "limits_memory_mb": mem * pod["limit_memory"] / pod["memory"]}


def _admits(q: Dict[str, float], pod: Dict) -> int:
    """Pods the quota admits beside a rollout's surge pod."""
    fit = min(q["pods"], math.floor(q["cpu"] / pod["cpu"] + 1e-9), math.floor(q["memory_mb"] / pod["memory"] + 1e-9))
    return max(1, fit - SURGE_PODS)


def _hard(q: Dict[str, float]) -> Dict[str, str]:
    def cores(c: float) -> str:
        milli = math.ceil(c * 1000 - 1e-6)
        return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"

    def mib(m: float) -> str:
        return f"{math.ceil(m - 1e-6)}Mi"

    return {"requests.cpu": cores(q["cpu"]), "requests.memory": mib(q["memory_mb"]),
            "limits.cpu": cores(q["limits_cpu"]), "limits.memory": mib(q["limits_memory_mb"]), "pods": str(q["pods"])}


def _resource_quota(name: str, namespace: str, labels: Dict, q: Dict, scope: Optional[str] = None) -> Dict:
    spec: Dict = {"hard": _hard(q)}
    if scope:
        spec["scopeSelector"] = {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In",
                                                       "values": [scope]}]}
    return {"apiVersion": "v1", "kind": "ResourceQuota",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)}, "spec": spec}


def _limit_range(namespace: str, labels: Dict, resources: Dict) -> Dict:
    return {"apiVersion": "v1", "kind": "LimitRange",
            "metadata": {"name": "triton-defaults", "namespace": namespace, "labels": dict(labels)},
            "spec": {"limits": [{"type": "Container", "defaultRequest": dict(resources["requests"]),
                                 "default": {k: v for k, v in resources["limits"].items() if k in ("cpu", "memory")}}]}}


def priority_classes(model: str, serving, used: List[str], prefix: str) -> Dict[str, Dict]:
    """tier -> its PriorityClass ``<prefix>-<tier>``, for the tiers ``used``: level 1 the highest value; no SLA:
    preemptionPolicy Never."""
    order = tiers(serving)
    out = {}
    for level, (tier, sla) in enumerate(order, start=1):
        if tier in used:
            out[tier] = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                         "metadata": {"name": f"{prefix}-{slug(tier)}"[:63].strip("-"),
                                      "labels": {"optimizer/tier": slug(tier)}},
                         "value": PRIORITY_BASE + PRIORITY_STEP * (len(order) - level), "globalDefault": False,
                         "preemptionPolicy": "PreemptLowerPriority" if sla else "Never",
                         "description": f"{model} tier {tier} (priority level {level} of {len(order)}"
                                        f"{'' if sla else ', no SLA: never preempts'})"}
    return out


def _rename(name: str, suffix: str) -> str:
    return f"{name[:63 - len(suffix)].rstrip('-')}{suffix}" if suffix else name


def workload(docs: List[Dict], namespace: str, suffix: str, extra: Dict, priority_class: str,
             lo: int, hi: int) -> List[Dict]:
    """A copy of the run's workload ``docs`` in ``namespace``: names + ``suffix``, ``extra`` labels on every object
    and selector, the pods' ``priorityClassName``, replicas ``lo``..``hi``."""
    out = []
    for doc in docs:
        doc = copy.deepcopy(doc)  # each alone: the run's objects share one labels dict
        meta = doc["metadata"]
        meta.update(name=_rename(meta["name"], suffix), namespace=namespace, labels={**meta.get("labels", {}), **extra})
        spec = doc.get("spec", {})
        for trigger in spec.get("triggers", []):  # a ScaledObject's query: this namespace's pods only
            query = trigger["metadata"].get("query", "")
            trigger["metadata"]["query"] = query.replace("}", f',namespace="{namespace}"}}', 1)
        sel = spec.get("selector")
        if isinstance(sel, dict) and "matchLabels" in sel:  # Deployment, PodDisruptionBudget
            sel["matchLabels"] = {**sel["matchLabels"], **extra}
        elif isinstance(sel, dict):  # Service
            spec["selector"] = {**sel, **extra}
        if "template" in spec:
            spec["replicas"] = lo
            pod = spec["template"]
            pod["metadata"]["labels"] = {**pod["metadata"].get("labels", {}), **extra}
            pod["spec"]["priorityClassName"] = priority_class
            for vol in pod["spec"].get("volumes", []):
                if "persistentVolumeClaim" in vol:
                    vol["persistentVolumeClaim"]["claimName"] = _rename(vol["persistentVolumeClaim"]["claimName"], suffix)
        if "scaleTargetRef" in spec:
            spec["scaleTargetRef"]["name"] = _rename(spec["scaleTargetRef"]["name"], suffix)
        for lo_key, hi_key in (("minReplicas", "maxReplicas"), ("minReplicaCount", "maxReplicaCount")):
            if lo_key in spec:
                spec[lo_key], spec[hi_key] = lo, hi
        out.append(doc)
    return out


def pod_resources(docs: List[Dict]) -> Dict:
    """The Triton container's resources (as written) and its cpu/memory requests and limits as numbers."""
    dep = next(d for d in docs if d["kind"] == "Deployment")
    res = dep["spec"]["template"]["spec"]["containers"][0]["resources"]
    return {"resources": res, "cpu": _cpu(res["requests"]["cpu"]), "memory": _mib(res["requests"]["memory"]),
            "limit_cpu": _cpu(res["limits"]["cpu"]), "limit_memory": _mib(res["limits"]["memory"])}


def place(cfg, docs: List[Dict], low: int, high: int, prefix: str) -> Tuple[List[Dict], Dict]:
    """The run's ``docs`` placed for ``serving.tenants`` by ``kubernetes.namespaces``: namespaces first, then priority
    classes, quotas, limit ranges and the workload copies; and the summary's ``tenants`` block. ``prefix``: the
    model's DNS name (``kubernetes.dns_name``), which names the priority classes and the shared namespace."""
    s, pod = cfg.serving, pod_resources(docs)
    mode = getattr(cfg.kubernetes.namespaces, "value", cfg.kubernetes.namespaces)
    used = [n for n, _ in tiers(s) if any(t.tier == n for t in s.tenants)]
    classes = priority_classes(cfg.model.name, s, used, prefix)
    quotas = {t.name: quota(t, high, pod) for t in s.tenants}
    block: Dict = {"namespaces": mode, "priority_classes": {
        t: {"name": c["metadata"]["name"], "value": c["value"], "preemption": c["preemptionPolicy"]}
        for t, c in classes.items()}, "tenants": {}}
    head: List[Dict] = []
    if mode == "per_tenant":
        setup, work = [], []
        for t in s.tenants:
            labels = {"optimizer/tenant": t.name, "optimizer/tier": slug(t.tier)}
            head.append({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": t.name, "labels": labels}})
            setup += [_resource_quota("triton-quota", t.name, labels, quotas[t.name]),
                      _limit_range(t.name, labels, pod["resources"])]
            lo, hi = replicas(t.share, low, high, _admits(quotas[t.name], pod))
            work += workload(docs, t.name, "", {}, classes[t.tier]["metadata"]["name"], lo, hi)
            block["tenants"][t.name] = {"namespace": t.name, "tier": t.tier, "share": t.share,
                                        "min_replicas": lo, "max_replicas": hi, "quota": _hard(quotas[t.name])}
        return head + list(classes.values()) + setup + work, block
    ns = f"{prefix}-serving"
    head.append({"apiVersion": "v1", "kind": "Namespace",
                 "metadata": {"name": ns, "labels": {"optimizer/tenancy": "shared"}}})
    setup, work = [], []
    for tier in used:
        members = [t for t in s.tenants if t.tier == tier]
        q = {k: sum(quotas[t.name][k] for t in members) for k in quotas[members[0].name]}
        q["pods"] = int(q["pods"])
        share = sum(t.share for t in members)
        pc = classes[tier]["metadata"]["name"]
        setup.append(_resource_quota(f"triton-quota-{slug(tier)}", ns, {"optimizer/tier": slug(tier)}, q, scope=pc))
        lo, hi = replicas(share, low, high, _admits(q, pod))
        work += workload(docs, ns, f"-{slug(tier)}", {"optimizer/tier": slug(tier)}, pc, lo, hi)
        block["tenants"].update({t.name: {"namespace": ns, "tier": t.tier, "share": t.share} for t in members})
        block.setdefault("tiers", {})[tier] = {"share": share, "min_replicas": lo, "max_replicas": hi,
                                               "quota": _hard(q)}
    return head + list(classes.values()) + setup + [_limit_range(ns, {"optimizer/tenancy": "shared"},
                                                                 pod["resources"])] + work, block
