"""MLflow tracking through the command line against a real ``mlflow server`` (SQLite backend, HTTP on 127.0.0.1),
read back with ``MlflowClient``; the server-down path; the default offline SQLite store."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import FAST, run_cli

pytest.importorskip("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """``mlflow server`` on a free port; its whole process group is killed in teardown."""
    root = tmp_path_factory.mktemp("mlflow_server")
    port = _free_port()
    log = open(root / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},  # no huey job workers: a lighter server
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield uri
    finally:
        # uvicorn and the huey job consumers share the group; they ignore SIGTERM for a while, so
        # a short grace period, then SIGKILL for whatever of the group is left
        for sig, grace in ((signal.SIGTERM, 3), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        log.close()


@pytest.fixture(scope="module")
def tracked(mlflow_server, cache_dir, tmp_path_factory, builtin):
    """A sweep: baseline, then int8 (which shares the export prefix), into one experiment, with registration."""
    out = tmp_path_factory.mktemp("tracked")
    code, log, _ = run_cli(["-m", "recipe=baseline,int8", *FAST, "tracking.enabled=true", "triton.emit=true", f"tracking.uri={mlflow_server}",
                            "tracking.experiment=compare", "tracking.register=true",
                            "tracking.registered_model=digits_chosen", f"hydra.sweep.dir={out}"],
                           cache_dir, out / "unused")
    assert code == 0, log
    runs = {}
    for job, recipe in enumerate(("baseline", "int8")):  # Hydra numbers the sweep's jobs in order
        summary = json.loads((out / str(job) / "summary.json").read_text())
        assert summary["recipe"] == recipe
        runs[recipe] = (summary, log, out / str(job))
    return runs


@pytest.fixture(scope="module")
def client(mlflow_server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)


def _children(client, summary):
    t = summary["tracking"]
    runs = client.search_runs([t["experiment_id"]], f"tags.mlflow.parentRunId = '{t['parent_run_id']}'")
    return {r.data.tags["variant"]: r for r in runs}


def test_one_parent_per_recipe_one_child_per_variant(tracked, client):
    exp = client.get_experiment_by_name("compare")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert sorted(r.info.run_name for r in parents) == ["baseline", "int8"]
    assert len(runs) == 2 + 2 + 4  # two parents; reference+export, reference+export+fuse+quantize
    for summary, log, _ in tracked.values():
        t = summary["tracking"]
        assert "skipped" not in t and t["experiment_id"] == exp.experiment_id
        assert f"tracking: run {t['parent_run_id']}" in log
        kids = _children(client, summary)
        assert sorted(kids) == sorted(v["name"] for v in summary["variants"])
        assert {k: r.info.run_id for k, r in kids.items()} == t["child_run_ids"]
        assert all(r.info.status == "FINISHED" for r in kids.values())
        parent = client.get_run(t["parent_run_id"])
        assert parent.info.status == "FINISHED" and parent.data.tags["chosen"] == summary["chosen"]


def test_child_metrics_equal_summary(tracked, client):
    summary = tracked["int8"][0]
    kids = _children(client, summary)
    for v in summary["variants"]:
        run = kids[v["name"]]
        m = run.data.metrics
        assert m["accuracy"] == v["evaluation"]["accuracy"]
        assert m["accuracy_drop"] == v["evaluation"]["accuracy_drop"]
        assert m["size_bytes"] == v["size_bytes"] and m["peak_memory_mb"] == v["peak_memory_mb"]
        if v["chain"]:
            assert m["top1_agreement"] == v["evaluation"]["top1_agreement"]
            assert m["max_abs_diff"] == v["evaluation"]["max_abs_diff"]
        for bs, b in v["benchmark"].items():
            for p in ("p50", "p90", "p95", "p99"):
                assert m[f"latency_{p}_ms_b{bs}"] == b[f"{p}_ms"]
            assert m[f"throughput_b{bs}"] == b["throughput"]
        history = client.get_metric_history(run.info.run_id, "latency_p99_ms_by_batch")
        assert {h.step: h.value for h in history} == {int(bs): b["p99_ms"] for bs, b in v["benchmark"].items()}
        tags = run.data.tags
        assert tags["artifact_id"] == v["artifact_id"] and tags["chain"] == (">".join(v["chain"]) or "source")
        assert tags.get("parent_id") == v["parent_id"]
    assert kids["quantize"].data.tags["chain"] == "export>fuse>quantize"
    params = kids["quantize"].data.params
    assert params["pass.quantize.mode"] == "static" and params["pass.export.opset"] == "18"
    assert params["model.name"] == "digits_resnet" and params["hardware.name"] == "local-cpu"
    assert "pass.quantize.mode" not in kids["export"].data.params  # only the passes in the variant's chain


def test_shared_prefix_is_a_cache_hit(tracked, client):
    summary = tracked["int8"][0]
    export = next(v for v in summary["variants"] if v["name"] == "export")
    assert export["ran"] is False  # baseline ran it (or an earlier test did): the cache served int8
    assert _children(client, summary)["export"].data.tags["cached"] == "true"
    base_export = next(v for v in tracked["baseline"][0]["variants"] if v["name"] == "export")
    assert base_export["artifact_id"] == export["artifact_id"]


def test_artifacts_and_plots(tracked, client, tmp_path):
    summary, _, out_dir = tracked["int8"]
    parent = summary["tracking"]["parent_run_id"]
    names = {a.path for a in client.list_artifacts(parent)}
    assert {"summary.json", "recipe", "plots"} <= names
    assert {a.path for a in client.list_artifacts(parent, "plots")} == {
        "plots/latency_vs_batch.png", "plots/throughput_vs_batch.png", "plots/accuracy_vs_p99.png", "plots/cumulative.png"}
    assert client.get_run(parent).data.tags["verdict"] == ". ".join(summary["story"]["verdict"])  # the verdict in words
    assert "recipe/config.yaml" in {a.path for a in client.list_artifacts(parent, "recipe")}
    for png in summary["plots"]:
        assert (out_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if summary.get("model_repository"):
        assert "model_repository" in names
    logged = json.loads(Path(client.download_artifacts(parent, "summary.json", str(tmp_path))).read_text())
    assert logged["variants"] == summary["variants"]
    assert logged["tracking"]["parent_run_id"] == parent
    quantize = _children(client, summary)["quantize"].info.run_id
    assert {a.path for a in client.list_artifacts(quantize, "model")} == {"model/model.onnx", "model/artifact.json"}


def test_model_files_uploaded_once_per_artifact_id(tracked, client):
    """baseline and int8 share the export artifact: its file is uploaded by the first run only; the second run's
    child points at that upload."""
    base, int8 = tracked["baseline"][0], tracked["int8"][0]
    base_export = _children(client, base)["export"]
    int8_kids = _children(client, int8)
    assert base_export.data.tags["model_uploaded"] == "true"
    assert {a.path for a in client.list_artifacts(base_export.info.run_id, "model")} == {"model/model.onnx",
                                                                                         "model/artifact.json"}
    shared = int8_kids["export"]
    assert "model_uploaded" not in shared.data.tags and client.list_artifacts(shared.info.run_id, "model") == []
    assert shared.data.tags["model_uri"] == f"{base_export.info.artifact_uri}/model"
    assert shared.data.tags["model_run_id"] == base_export.info.run_id
    uploads = [r for r in client.search_runs([base["tracking"]["experiment_id"]], "tags.model_uploaded = 'true'")]
    ids = [r.data.tags["artifact_id"] for r in uploads]
    assert len(ids) == len(set(ids))  # one upload per artifact id across both runs
    # reference, export (baseline) + fuse, quantize (int8); the shared reference is uploaded once too
    assert len(ids) == len({v["artifact_id"] for s in (base, int8) for v in s["variants"]})


def test_parent_run_headline_gates_and_times(tracked, client):
    summary, log, _ = tracked["int8"]
    t = summary["tracking"]
    parent = client.get_run(t["parent_run_id"])
    chosen = next(v for v in summary["variants"] if v["name"] == summary["chosen"])
    m = parent.data.metrics
    assert m["chosen_score"] == chosen["evaluation"]["score"]
    assert m["chosen_throughput_b8"] == chosen["benchmark"]["8"]["throughput"]
    assert m["chosen_speedup_b8"] == chosen["speedup"]["8"]
    assert parent.data.tags["gates"] == "passed"
    from datetime import datetime

    started = datetime.fromisoformat(summary["started"]).timestamp() * 1000
    assert parent.info.start_time == int(started)
    assert parent.info.end_time > parent.info.start_time  # the run's own start, not the moment logging began
    assert {"report.md", "junit.xml"} <= {a.path for a in client.list_artifacts(t["parent_run_id"])}
    assert f"{t['uri']}/#/experiments/{t['experiment_id']}" in log and "/runs/" not in t.get("ui", "")


def test_chosen_variant_registered(tracked, client):
    versions = client.search_model_versions("name = 'digits_chosen'")
    assert len(versions) == 2
    for summary, *_ in tracked.values():
        reg = summary["tracking"]["registered"]
        mv = client.get_model_version("digits_chosen", reg["version"])
        assert mv.run_id == summary["tracking"]["child_run_ids"][summary["chosen"]]
        chosen = next(v for v in summary["variants"] if v["name"] == summary["chosen"])
        assert mv.tags["artifact_id"] == chosen["artifact_id"]


def test_server_down_skips_tracking_and_completes(cache_dir, tmp_path, builtin):
    uri = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    code, log, summary = run_cli(["recipe=baseline", *FAST, "tracking.enabled=true", f"tracking.uri={uri}"], cache_dir, tmp_path / "run")
    assert code == 0, log
    assert summary["status"] == "passed"
    skipped = summary["tracking"]["skipped"]
    assert uri in skipped and "unreachable" in skipped
    lines = [line for line in log.splitlines() if "tracking" in line]
    status = [line for line in lines if line.split()[:2] == ["tracking", "done"]]  # the step's status line
    assert len(status) == 1, log
    lines.remove(status[0])
    assert len(lines) == 1 and lines[0].startswith("tracking skipped:") and uri in lines[0], log
    assert "Traceback" not in log
    assert len(summary["plots"]) == 4  # a hang is bounded by run_cli's timeout, not by a duration assertion


def test_default_store_is_offline_sqlite_in_cache(cache_dir, tmp_path, builtin, monkeypatch):
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # the default follows it when set

    code, log, summary = run_cli(["recipe=baseline", *FAST, "tracking.enabled=true", "tracking.experiment=offline"], cache_dir, tmp_path / "r")
    assert code == 0, log
    t = summary["tracking"]
    assert t["uri"] == f"sqlite:///{Path(cache_dir).resolve() / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=t["uri"])
    exp = client.get_experiment_by_name("offline")
    assert exp.artifact_location == (Path(cache_dir).resolve() / "mlartifacts").as_uri()
    run = client.get_run(t["child_run_ids"]["export"])
    assert run.data.metrics["accuracy"] == summary["variants"][1]["evaluation"]["accuracy"]
    runs_table = f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs"
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # MLflow 3's UI: the runs, not GenAI
    assert f"mlflow ui --backend-store-uri {t['uri']}, then open {runs_table}" in log
    assert not [line for line in log.splitlines() if " INFO " in line or line.startswith("INFO")], log  # a fresh store
