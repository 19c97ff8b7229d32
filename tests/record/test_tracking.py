"""MLflow tracking without a command-line run: files stored once per experiment, metric flattening, and importing the
package does not load mlflow (the runs against a real server are in tests/e2e/test_record_tracking.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT

pytest.importorskip("mlflow")


def test_same_bytes_uploaded_once_per_experiment(tmp_path):
    """A warm re-run's parent files that an earlier run already holds (the model repository's model file and
    reference.npz, unchanged plots) are not stored again: a ``file.<path>`` tag points at the earlier copy."""
    from mlflow import MlflowClient

    from optimizer.record.tracking import log_once
    from optimizer.record.tracking_values import repository_files

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("dedup", artifact_location=(tmp_path / "mlartifacts").as_uri())
    repo = tmp_path / "repo"
    (repo / "m" / "1").mkdir(parents=True)
    (repo / "m" / "1" / "model.onnx").write_bytes(b"onnx-bytes")
    (repo / "m" / "config.pbtxt").write_text("name: 'm'")
    (repo / ".m.reserved").write_text("{}")  # hidden entries are not the repository's: a run's claim on it,
    (repo / ".m.tmp-1" / "1").mkdir(parents=True)  # a killed writer's temporaries
    (repo / ".m.tmp-1" / "1" / "model.onnx").write_bytes(b"half")
    files = repository_files(repo)
    assert [(f.relative_to(repo).as_posix(), d) for f, d in files] == [
        ("m/1/model.onnx", "model_repository/m/1"), ("m/config.pbtxt", "model_repository/m")]
    first, second = (client.create_run(exp).info.run_id for _ in range(2))
    for f, where in files:
        log_once(client, exp, first, f, where)
    (repo / "m" / "config.pbtxt").write_text("name: 'm' # tuned again")  # the second run's config differs
    for f, where in files:
        log_once(client, exp, second, f, where)
    model = "model_repository/m/1/model.onnx"
    assert client.list_artifacts(second, "model_repository/m/1") == []
    assert [a.path for a in client.list_artifacts(second, "model_repository/m")] == ["model_repository/m/config.pbtxt"]
    tags = client.get_run(second).data.tags
    assert tags[f"file.{model}"] == f"{client.get_run(first).info.artifact_uri}/{model}"
    assert Path(client.download_artifacts(first, model, str(tmp_path / "dl"))).read_bytes() == b"onnx-bytes"
    assert sorted(v for k, v in client.get_run(first).data.tags.items() if k.startswith("sha256.")) == [
        model, "model_repository/m/config.pbtxt"]


def test_import_does_not_load_mlflow():
    code = ("import sys, optimizer, optimizer.pipeline, optimizer.record.tracking, optimizer.record.plots; "
            "print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_variant_metrics_flattening():
    from optimizer.record.tracking_values import flatten, variant_metrics

    rec = {"evaluation": {"accuracy": 98.0, "accuracy_drop": 1.0},
           "benchmark": {"1": {"p50_ms": 1.0, "p90_ms": 2.0, "p95_ms": 3.0, "p99_ms": 4.0, "mean_ms": 1.5,
                               "throughput": 900.0},
                         "8": {"p50_ms": 5.0, "p90_ms": 6.0, "p95_ms": 7.0, "p99_ms": 8.0, "mean_ms": 5.5,
                               "throughput": 1500.0}},
           "size_bytes": 2_000_000, "cost": {"cost_per_million": 0.02}}
    flat, series = variant_metrics(rec)
    assert flat["latency_p99_ms_b8"] == 8.0 and flat["throughput_b1"] == 900.0 and flat["size_mb"] == 2.0
    assert flat["cost_per_million"] == 0.02
    assert [(s, v) for k, v, s in series if k == "throughput_by_batch"] == [(1, 900.0), (8, 1500.0)]
    assert not {k for k, _, _ in series} & set(flat)  # no unsuffixed name holds one batch size's value
    assert flatten("m", {"a": {"b": [1, 2]}, "c": None}) == {"m.a.b": "[1, 2]", "m.c": "null"}
