"""The custom resources are checked offline against the vendored CRD schemas: a misspelt or mistyped field of a
ScaledObject or a PodMonitor is an error naming it, through the same ``validate`` as the core manifests."""

import copy

import pytest

from optimizer.triton import autoscale, crd
from optimizer.triton import kubernetes as k8s

pytest.importorskip("jsonschema")
pytest.importorskip("kubernetes_validate")

LABELS = {"app.kubernetes.io/name": "digits-resnet-triton", "app.kubernetes.io/component": "inference"}


def scaled_object():
    behavior = k8s.behavior(38.0)
    limit = autoscale.threshold(2000.0, 0.7, 300, 5.0, 0.5)
    return autoscale.scaled_object("digits-resnet-triton", LABELS, 2, 4, behavior, "digits_resnet", limit,
                                   "http://prometheus-operated.monitoring.svc:9090")


def test_the_vendored_schemas_are_draft4_schemas_of_one_version_each():
    import jsonschema

    for kind in crd.KINDS:
        jsonschema.Draft4Validator.check_schema(crd.schema(kind))
    assert crd.schema("ScaledObject")["properties"]["apiVersion"]["enum"] == ["keda.sh/v1alpha1"]
    assert crd.schema("PodMonitor")["properties"]["apiVersion"]["enum"] == ["monitoring.coreos.com/v1"]
    assert crd.validate(scaled_object()) == []
    assert crd.validate(autoscale.pod_monitor("digits-resnet-triton", LABELS)) == []


def test_a_broken_scaled_object_names_the_field():
    what = "ScaledObject 'digits-resnet-triton' (keda.sh/v1alpha1): "
    typo = scaled_object()
    typo["spec"]["pollingIntervall"] = typo["spec"].pop("pollingInterval")
    assert k8s.validate([typo]) == [what + "spec: Additional properties are not allowed ('pollingIntervall' was "
                                           "unexpected)"]
    deep = scaled_object()  # deep inside: the HPA behavior KEDA passes through
    deep["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]["stabilisationWindowSeconds"] = 0
    (problem,) = k8s.validate([deep])
    assert problem.startswith(what + "spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp: ")
    assert "'stabilisationWindowSeconds' was unexpected" in problem
    wrong = scaled_object()
    wrong["spec"]["triggers"][0]["metadata"]["threshold"] = 8.12  # every scaler option is a string
    wrong["spec"]["minReplicaCount"] = "2"
    wrong["spec"]["cooldownPeriod"] = 380.0  # int32 in the CRD: a float is refused
    assert k8s.validate([wrong]) == [what + "spec.cooldownPeriod: 380.0 is not of type 'integer'",
                                     what + "spec.minReplicaCount: '2' is not of type 'integer'",
                                     what + "spec.triggers.0.metadata.threshold: 8.12 is not of type 'string'"]
    missing = scaled_object()
    del missing["spec"]["scaleTargetRef"]["name"]
    assert k8s.validate([missing]) == [what + "spec.scaleTargetRef: 'name' is a required property"]
    other = {**scaled_object(), "apiVersion": "keda.sh/v2"}
    assert k8s.validate([other]) == ["ScaledObject 'digits-resnet-triton' (keda.sh/v2): apiVersion: 'keda.sh/v2' is "
                                     "not one of ['keda.sh/v1alpha1']"]


def test_a_broken_pod_monitor_names_the_field():
    what = "PodMonitor 'digits-resnet-triton' (monitoring.coreos.com/v1): "
    good = autoscale.pod_monitor("digits-resnet-triton", LABELS)
    typo = copy.deepcopy(good)
    typo["spec"]["podMetricEndpoints"] = typo["spec"].pop("podMetricsEndpoints")
    assert k8s.validate([typo]) == [what + "spec: Additional properties are not allowed ('podMetricEndpoints' was "
                                           "unexpected)"]
    wrong = copy.deepcopy(good)
    endpoint = wrong["spec"]["podMetricsEndpoints"][0]
    endpoint["interval"], endpoint["portNumber"] = 15, 80020  # a duration is a string; a port at most 65535
    assert k8s.validate([wrong]) == [what + "spec.podMetricsEndpoints.0.interval: 15 is not of type 'string'",
                                     what + "spec.podMetricsEndpoints.0.portNumber: 80020 is greater than the "
                                            "maximum of 65535"]
    bad_duration = copy.deepcopy(good)
    bad_duration["spec"]["podMetricsEndpoints"][0]["interval"] = "15 seconds"
    assert "spec.podMetricsEndpoints.0.interval: '15 seconds' does not match" in k8s.validate([bad_duration])[0]
    no_selector = copy.deepcopy(good)
    del no_selector["spec"]["selector"]
    assert k8s.validate([no_selector]) == [what + "spec: 'selector' is a required property"]
