"""Kubernetes manifests: validated offline against the 1.30 API schemas (kubernetes-validate), replicas from
the recommendation, resources from the hardware and measured memory, removed APIs refused."""

import copy

import pytest
import yaml

from optimizer.triton import kubernetes as k8s

pytest.importorskip("kubernetes_validate")


def docs(**kw):
    args = dict(name="digits_resnet", image="nvcr.io/nvidia/tritonserver:24.10-py3", model_store="/models", cores=2,
                memory=k8s.memory_mb(37.5, 2), min_replicas=3, max_replicas=6)
    return k8s.manifests(**{**args, **kw})


def test_manifests_validate_and_carry_the_recommendation(tmp_path):
    deployment, service, hpa, budget, claim = docs()
    assert k8s.validate([deployment, service, hpa, budget, claim]) == []
    assert [d["kind"] for d in (deployment, service, hpa, budget)] == ["Deployment", "Service", "HorizontalPodAutoscaler",
                                                                       "PodDisruptionBudget"]
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}}
    assert deployment["metadata"]["name"] == "digits-resnet-triton"  # RFC 1123: no '_'
    assert deployment["spec"]["replicas"] == 3
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "640Mi"}  # 512 + 2 × 37.5, rounded up to 64 MiB
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert "--model-repository=/models" in c["args"] and c["volumeMounts"][0]["mountPath"] == "/models"
    # the claim the Deployment mounts is emitted too: kubectl apply leaves no pod Pending on a missing claim
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]
    assert claim["kind"] == "PersistentVolumeClaim" and claim["metadata"]["name"] == volume["claimName"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    path = k8s.write(tmp_path / "kubernetes", [deployment, service, hpa, budget, claim])
    loaded = list(yaml.safe_load_all(path.read_text()))
    assert loaded == [deployment, service, hpa, budget, claim] and k8s.validate(loaded) == []
    assert "&id" not in path.read_text() and "*id" not in path.read_text()  # plain YAML: no anchors or aliases
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "Dockerfile.repository", "all.yaml", "deployment.yaml", "horizontalpodautoscaler.yaml",
        "persistentvolumeclaim.yaml", "poddisruptionbudget.yaml", "service.yaml"]
    assert "COPY model_repository /models" in (path.parent / "Dockerfile.repository").read_text()


def test_a_repository_image_fills_the_pod_by_an_init_container():
    emitted = docs(repository_image="registry.example/digits-models:1")
    assert [d["kind"] for d in emitted] == ["Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"]
    pod = emitted[0]["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["image"] == "registry.example/digits-models:1" and init["command"][-1] == "cp -R /models/. /repository/"
    assert init["volumeMounts"] == [{"name": "model-repository", "mountPath": "/repository"}]  # not over its /models
    assert pod["volumes"] == [{"name": "model-repository", "emptyDir": {}}] and k8s.validate(emitted) == []


def test_remote_model_store_and_server_flags():
    remote = docs(model_store="s3://bucket/models", server_args=["--cache-config=local,size=1024"])
    assert "PersistentVolumeClaim" not in [d["kind"] for d in remote]  # tritonserver reads the store itself
    deployment = remote[0]
    pod = deployment["spec"]["template"]["spec"]
    assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0]
    assert pod["containers"][0]["args"][-1] == "--cache-config=local,size=1024"
    assert k8s.validate([deployment]) == []
    gpu = docs(gpus=1)[0]
    assert gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert k8s.validate([gpu]) == []


def test_removed_or_misspelled_apis_are_refused():
    hpa = docs()[2]
    old = {**copy.deepcopy(hpa), "apiVersion": "autoscaling/v2beta2"}
    assert "removed in Kubernetes 1.26; use autoscaling/v2" in k8s.validate([old])[0]
    typo = copy.deepcopy(hpa)
    typo["spec"]["minReplica"] = typo["spec"].pop("minReplicas")
    assert "'minReplica' was unexpected" in k8s.validate([typo])[0]


def test_memory_request():
    assert k8s.memory_mb(None, 2) == 512
    assert k8s.memory_mb(100.0, 2) == 768  # 712 rounded up
    assert k8s.dns_name("My_Model.v2") == "my-model-v2"


def test_the_measured_cold_start_sets_the_startup_probe_and_the_scaling_pace():
    measured = docs(cold_start_s=38.0)
    deployment, hpa = measured[0], measured[2]
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 3 * 38.0  # 3 × the start
    assert c["startupProbe"]["failureThreshold"] == 23  # ceil(114 / 5)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 380  # ten cold starts
    assert hpa["spec"]["behavior"]["scaleUp"]["stabilizationWindowSeconds"] == 0
    assert k8s.validate(measured) == []
    unmeasured = docs()
    assert unmeasured[0]["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["failureThreshold"] == 12  # 60 s
    assert unmeasured[2]["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300


def test_a_traffic_profile_sets_the_replica_range(tmp_path):
    from optimizer.decide.traffic import manifest_replicas
    from optimizer.recipe.compose import compose

    scaling = {"profile": "diurnal", "min_replicas": 2, "max_replicas": 7, "trigger_used": 0.55}
    (tmp_path / "repo").mkdir()
    replicas = manifest_replicas({"min_replicas": 3, "max_replicas": 6}, scaling)
    keda = k8s.for_run(compose("int8", []), 40.0, 2, replicas, tmp_path / "repo", 38.0)  # the default autoscaler
    so = yaml.safe_load((tmp_path / "kubernetes" / "scaledobject.yaml").read_text())
    assert (so["spec"]["minReplicaCount"], so["spec"]["maxReplicaCount"]) == (2, 7) and keda["cpu_target"] == 55
    out = k8s.for_run(compose("int8", ["kubernetes.autoscaler=cpu"]), 40.0, 2, replicas, tmp_path / "repo", 38.0)
    assert (out["min_replicas"], out["max_replicas"]) == (2, 7)
    assert out["replicas_from"] == "serving.traffic (diurnal): the trough's and the peak's replicas"
    hpa = yaml.safe_load((tmp_path / "kubernetes" / "horizontalpodautoscaler.yaml").read_text())
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 7)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == out["cpu_target"] == 55  # the trigger
    assert k8s.for_run(compose("int8", []), 40.0, 2, {"min_replicas": 3, "max_replicas": 6}, tmp_path / "repo",
                       38.0)["replicas_from"] == "serving.target_qps"
