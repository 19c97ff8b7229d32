"""Scaling and tenants through the command line: a diurnal traffic profile sizes the autoscaled schedule and the
manifests' replica range, two tenants get their namespaces, quotas and priority classes, KEDA scales each on its own
pods' queue, every manifest validates offline, and the chargeback splits the run's cost to the cent."""

import csv

import pytest

from tests.helpers import FAST, run_cli

pytest.importorskip("kubernetes_validate")

SETTINGS = [
    "hardware=aws_c7i_large", "serving.target_qps=200", "serving.max_batch_cap=4", "serving.thread_options=[0]",
    "triton.emit=true", "serving.traffic.profile=diurnal", "serving.traffic.peak=3000", "serving.traffic.trough=1000",
    "+serving.tenants=[{name:acme,tier:premium,share:0.6},{name:initech,tier:batch,share:0.4}]",
]


def test_a_diurnal_day_for_two_tenants(cache_dir, builtin, tmp_path):
    import yaml

    from optimizer.triton.kubernetes import validate

    code, out, s = run_cli(["recipe=baseline", *FAST, *SETTINGS], cache_dir, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    t = s["triton"]
    scaling, k = t["scaling"], t["kubernetes"]
    assert scaling["max_replicas"] > scaling["min_replicas"] >= 1 and 0 < scaling["saving"] < 1
    assert scaling["cost_per_day"] < scaling["fixed_cost_per_day"]  # autoscaled below the fixed peak fleet
    docs = list(yaml.safe_load_all((tmp_path / "run" / "kubernetes" / "all.yaml").read_text()))
    assert validate(docs) == []
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == ["acme", "initech"]
    assert docs[0]["kind"] == "Namespace" and {d["kind"] for d in docs} >= {
        "PriorityClass", "ResourceQuota", "LimitRange", "Deployment", "ScaledObject", "PodMonitor"}
    scaled = {d["metadata"]["namespace"]: d["spec"] for d in docs if d["kind"] == "ScaledObject"}
    assert sorted(scaled) == ["acme", "initech"]
    for ns, spec in scaled.items():
        assert f'namespace="{ns}"' in spec["triggers"][0]["metadata"]["query"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= k["max_replicas"]
    classes = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PriorityClass"}
    premium = next(c for n, c in classes.items() if n.endswith("premium"))
    batch = next(c for n, c in classes.items() if n.endswith("batch"))
    assert premium["value"] > batch["value"] and batch["preemptionPolicy"] == "Never"
    rows = list(csv.DictReader((tmp_path / "run" / "chargeback.csv").open()))
    assert [r["tenant"] for r in rows] == ["acme", "initech", "total"] and rows[0]["unit"].startswith("$")
    acme, initech, total = (float(r["amount"]) for r in rows)
    assert acme > initech > 0 and acme + initech == pytest.approx(total, abs=1e-6)  # premium: larger share and weight
