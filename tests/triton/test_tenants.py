"""Tenants in the Kubernetes manifests: namespaces per tenant or one shared with quotas per tier (PriorityClass
scopes), quotas from the shares, priority classes ordered by tier; every object valid offline (Kubernetes 1.30,
strict)."""

import pytest
import yaml

from optimizer.recipe.compose import compose
from optimizer.recipe.plan import plan
from optimizer.triton import kubernetes as k8s
from optimizer.triton import tenants

pytest.importorskip("kubernetes_validate")

THREE = ("+serving.tenants=[{name:acme,tier:premium,share:0.5},{name:globex,tier:standard,share:0.3},"
         "{name:initech,tier:batch,share:0.2}]")


def base():  # 2 cores and 640 MiB requested per pod (1280 MiB limit), 3..6 replicas
    return k8s.manifests("digits_resnet", "nvcr.io/nvidia/tritonserver:24.10-py3", "/models", 2, 640, 3, 6)


def placed(mode, spec=THREE):
    cfg = compose("int8", [spec, f"kubernetes.namespaces={mode}"])
    plan(cfg)
    return tenants.place(cfg, base(), 3, 6, "digits-resnet")


def kinds(docs):
    return [d["kind"] for d in docs]


def test_per_tenant_namespaces_quotas_and_limit_ranges_validate(tmp_path):
    docs, block = placed("per_tenant")
    assert k8s.validate(docs) == []
    assert kinds(docs)[:6] == ["Namespace"] * 3 + ["PriorityClass"] * 3  # namespaces first
    spaces = [d for d in docs if d["kind"] == "Namespace"]
    assert [(n["metadata"]["name"], n["metadata"]["labels"]) for n in spaces] == [
        ("acme", {"optimizer/tenant": "acme", "optimizer/tier": "premium"}),
        ("globex", {"optimizer/tenant": "globex", "optimizer/tier": "standard"}),
        ("initech", {"optimizer/tenant": "initech", "optimizer/tier": "batch"})]
    quotas = {d["metadata"]["namespace"]: d["spec"]["hard"] for d in docs if d["kind"] == "ResourceQuota"}
    # acme: ceil(0.5 × 6) = 3 pods + 1 surge pod, × 2 cores and 640 MiB (limits 1280 MiB)
    assert quotas["acme"] == {"requests.cpu": "8", "requests.memory": "2560Mi", "limits.cpu": "8",
                              "limits.memory": "5120Mi", "pods": "4"}
    assert quotas["globex"]["pods"] == "3" and quotas["globex"]["requests.memory"] == "1920Mi"  # ceil(1.8) + 1
    assert quotas["initech"]["pods"] == "3"  # ceil(1.2) + 1
    ranges = [d for d in docs if d["kind"] == "LimitRange"]
    assert len(ranges) == 3 and ranges[0]["spec"]["limits"][0] == {
        "type": "Container", "defaultRequest": {"cpu": "2", "memory": "640Mi"},
        "default": {"cpu": "2", "memory": "1280Mi"}}
    deployments = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "Deployment"}
    assert {n: d["spec"]["template"]["spec"]["priorityClassName"] for n, d in deployments.items()} == {
        "acme": "digits-resnet-premium", "globex": "digits-resnet-standard", "initech": "digits-resnet-batch"}
    hpa = {d["metadata"]["namespace"]: d["spec"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"}
    assert (hpa["acme"]["minReplicas"], hpa["acme"]["maxReplicas"]) == (2, 3)  # ceil(0.5 × 3), ceil(0.5 × 6)
    assert (hpa["initech"]["minReplicas"], hpa["initech"]["maxReplicas"]) == (1, 2)
    assert block["tenants"]["acme"]["quota"]["pods"] == "4" and block["namespaces"] == "per_tenant"
    path = k8s.write(tmp_path / "kubernetes", docs)
    assert list(yaml.safe_load_all(path.read_text())) == docs
    assert len(list(yaml.safe_load_all((path.parent / "namespace.yaml").read_text()))) == 3  # one file per kind


def test_shared_namespace_has_a_quota_per_tier_scoped_by_priority_class():
    docs, block = placed("shared")
    assert k8s.validate(docs) == []
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["digits-resnet-serving"]
    quotas = [d for d in docs if d["kind"] == "ResourceQuota"]
    assert [q["spec"]["scopeSelector"]["matchExpressions"] for q in quotas] == [
        [{"scopeName": "PriorityClass", "operator": "In", "values": [f"digits-resnet-{t}"]}]
        for t in ("premium", "standard", "batch")]
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    assert [d["metadata"]["name"] for d in deployments] == [f"digits-resnet-triton-{t}"
                                                            for t in ("premium", "standard", "batch")]
    for d, tier in zip(deployments, ("premium", "standard", "batch")):
        assert d["spec"]["selector"]["matchLabels"]["optimizer/tier"] == tier
        assert d["spec"]["template"]["metadata"]["labels"]["optimizer/tier"] == tier
        assert d["spec"]["template"]["spec"]["priorityClassName"] == f"digits-resnet-{tier}"
    services = [d for d in docs if d["kind"] == "Service"]
    assert services[0]["spec"]["selector"]["optimizer/tier"] == "premium"
    assert block["tiers"]["premium"]["quota"]["pods"] == "4"


def test_priority_classes_are_ordered_and_batch_never_preempts():
    docs, _ = placed("per_tenant")
    classes = [d for d in docs if d["kind"] == "PriorityClass"]
    values = [c["value"] for c in classes]
    assert [c["metadata"]["name"] for c in classes] == ["digits-resnet-premium", "digits-resnet-standard",
                                                         "digits-resnet-batch"]
    assert values == sorted(values, reverse=True) and len(set(values)) == 3
    assert [c["preemptionPolicy"] for c in classes] == ["PreemptLowerPriority", "PreemptLowerPriority", "Never"]


def test_only_the_tiers_used_get_a_class_and_recipe_tiers_set_the_order():
    tiers = "serving.tiers=[{name:Gold_1,p99_ms:10},{name:silver,p99_ms:50},{name:bulk,p99_ms:null}]"
    cfg = compose("int8", [tiers, "+serving.tenants=[{name:a,tier:bulk,share:0.4},{name:b,tier:Gold_1,share:0.6}]",
                           "kubernetes.namespaces=shared"])
    plan(cfg)
    docs, _ = tenants.place(cfg, base(), 3, 6, "m")
    classes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PriorityClass"}
    assert sorted(classes) == ["m-bulk", "m-gold-1"]  # a tier's name made fit for object names
    assert classes["m-gold-1"]["value"] > classes["m-bulk"]["value"]
    assert classes["m-bulk"]["preemptionPolicy"] == "Never"
    assert k8s.validate(docs) == []


def test_a_given_quota_is_used_and_caps_the_replicas():
    docs, block = placed("per_tenant", THREE.replace("share:0.5}", "share:0.5,quota:{cpu:4,pods:5}}"))
    hard = next(d["spec"]["hard"] for d in docs if d["kind"] == "ResourceQuota" and d["metadata"]["namespace"] == "acme")
    assert hard["requests.cpu"] == "4" and hard["pods"] == "5" and hard["requests.memory"] == "3200Mi"  # 5 × 640
    assert block["tenants"]["acme"]["max_replicas"] == 1  # 4 cores admit 2 pods of 2, one kept for a rollout's surge
    assert k8s.validate(docs) == []


def test_the_runs_manifests_carry_the_tenants(tmp_path):
    cfg = compose("int8", [THREE, "model.name=digits_resnet"])
    plan(cfg)
    repo = tmp_path / "model_repository"
    repo.mkdir()
    block = k8s.for_run(cfg, 37.5, 2, {"min_replicas": 3, "max_replicas": 6}, repo)
    loaded = list(yaml.safe_load_all((tmp_path / "kubernetes" / "all.yaml").read_text()))
    assert kinds(loaded)[:3] == ["Namespace"] * 3 and k8s.validate(loaded) == []
    assert sorted(block["tenants"]["tenants"]) == ["acme", "globex", "initech"]
    assert len([d for d in loaded if d["kind"] == "Deployment"]) == 3  # one per tenant namespace
    scaled = {d["metadata"]["namespace"]: d for d in loaded if d["kind"] == "ScaledObject"}  # the default: keda
    assert sorted(scaled) == ["acme", "globex", "initech"]
    for ns, so in scaled.items():  # each tenant's replicas scale on its own pods' queue, not on every tenant's
        assert f'namespace="{ns}"' in so["spec"]["triggers"][0]["metadata"]["query"]
        assert so["spec"]["scaleTargetRef"]["name"] == next(
            d["metadata"]["name"] for d in loaded if d["kind"] == "Deployment" and d["metadata"]["namespace"] == ns)
    assert "tenants" not in k8s.for_run(compose("int8", ["model.name=digits_resnet"]), 37.5, 2, {}, repo)
