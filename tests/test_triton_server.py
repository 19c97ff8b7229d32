"""The smoke test on a real tritonserver (no mocks): start, READY, infer, compare, load, stop.

Skips when no server is installed or provisioned (``python -m optimizer.triton.provision``);
with ``OPTIMIZER_TRITON_REQUIRED=1`` (CI) a missing server fails instead. Every server runs on
127.0.0.1 in its own process group, which each test checks is gone afterwards."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from optimizer.errors import RecipeError
from tests.conftest import ROOT
from tests.test_triton_emit import TUNING, tiny_repository


@pytest.fixture(scope="module")
def install():
    from optimizer.triton.server import find_server

    try:
        return find_server()
    except RecipeError as e:
        if os.environ.get("OPTIMIZER_TRITON_REQUIRED") == "1":
            pytest.fail(f"OPTIMIZER_TRITON_REQUIRED=1 but {e}")
        pytest.skip(f"no Triton server: {e}")


def group_gone(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


def test_staged_config_is_the_emitted_one_but_the_platform(install, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    from optimizer.triton.server import stage

    repo = tiny_repository(tmp_path)
    notes = stage(repo, install, tmp_path / "staged")
    emitted = text_format.Parse((repo / "digits_resnet" / "config.pbtxt").read_text(), mc.ModelConfig())
    staged = text_format.Parse((tmp_path / "staged" / "digits_resnet" / "config.pbtxt").read_text(), mc.ModelConfig())
    if install.full:
        assert staged == emitted and notes == []
    else:
        assert (staged.platform, staged.backend) == ("", "python")
        assert "swapped" in notes[0] and (tmp_path / "staged" / "digits_resnet" / "1" / "model.py").exists()
        staged.backend, staged.platform = "", "onnxruntime_onnx"
        assert staged == emitted


def test_start_ready_infer_compare_stop(install, tmp_path):
    from optimizer.triton.serve_check import _reference, compare, load_test
    from optimizer.triton.server import serve

    repo = tiny_repository(tmp_path)
    server, notes, tmp = serve(repo, install)
    pgid = server.proc.pid
    try:
        ready = server.wait_ready("digits_resnet", timeout=60)
        assert 0 < ready < 60
        inputs, expected, _ = _reference(repo / "digits_resnet")
        diff = compare(server.http_url, "digits_resnet", inputs, expected, chunk=TUNING["max_batch_size"])
        assert diff <= 1e-4
        one = {k: v[:1] for k, v in inputs.items()}
        load = load_test(server.grpc_url, "digits_resnet", one, concurrency=4, max_requests=40, max_seconds=3,
                         counters=lambda: server.counters("digits_resnet"))
        assert load["errors"] == 0 and load["requests"] == 40 and load["requests_per_s"] > 0
        assert 0 < load["p50_ms"] <= load["p99_ms"]
        # 40 one-sample requests at concurrency 4: between 1 and 4 samples per execution the batcher ran
        assert 1.0 <= load["avg_batch"] <= 4.0
        # CPU is read in clock ticks: a short burst on a busy machine can read as 0
        assert load["server_cpu_ms_per_request"] >= 0 and load["client_cpu_ms_per_request"] >= 0
        wrong = load_test(server.grpc_url, "no_such_model", one, concurrency=2, max_requests=6, max_seconds=3)
        assert wrong["errors"] == wrong["requests"] == 6 and wrong["requests_per_s"] == 0
        assert "no_such_model" in wrong["first_error"]
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    assert server.proc.poll() is not None and group_gone(pgid)


def test_config_error_is_reported_verbatim(install, tmp_path):
    from optimizer.triton.server import ServerError, serve

    bad = {**TUNING, "preferred_batch_size": 64}  # > max_batch_size 32: Triton refuses the config
    repo = tiny_repository(tmp_path, tuning=bad)
    server, _, tmp = serve(repo, install)
    try:
        with pytest.raises(ServerError, match="Poll failed for model directory 'digits_resnet'"):
            server.wait_ready("digits_resnet", timeout=30)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    assert group_gone(server.proc.pid)


def test_serve_check_command_line(install, tmp_path):
    repo = tiny_repository(tmp_path)
    args = [str(repo), "--concurrency", "1,4", "--requests", "40", "--seconds", "3", "--sla-ms", "1000",
            "--json", str(tmp_path / "r.json")]
    proc = subprocess.run([sys.executable, "-m", "optimizer.triton.serve_check", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "READY in" in proc.stdout and "max |diff| vs reference 0" in proc.stdout and "passed" in proc.stdout
    if not install.full:
        assert "swapped for backend python" in proc.stdout
    import json

    r = json.loads((tmp_path / "r.json").read_text())
    m = r["models"]["digits_resnet"]
    assert r["passed"] and m["within_sla"] and [x["concurrency"] for x in m["load"]] == [1, 4]
    assert m["sla"] == {"p99_ms": 1000.0, "source": "given", "tiers": {}}
    lo, hi = m["load"][0]["p99_ci_ms"]  # 40 requests bound no p99 from above
    assert lo is not None and lo <= m["load"][0]["p99_ms"] and hi is None


def test_serve_check_enforces_the_sla_from_tuning_json(install, tmp_path):
    import json

    repo = tiny_repository(tmp_path)
    tuning = repo / "digits_resnet" / "tuning.json"
    record = json.loads(tuning.read_text())
    record["tuning"]["sla_p99_ms"] = 0.001  # no server answers in a microsecond
    tuning.write_text(json.dumps(record))
    args = [str(repo), "--concurrency", "2", "--requests", "600", "--seconds", "5", "--json", str(tmp_path / "r.json")]
    proc = subprocess.run([sys.executable, "-m", "optimizer.triton.serve_check", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stdout + proc.stderr  # answers right, SLA missed
    assert "SLA: p99 ≤ 0.001 ms (from " in proc.stdout and "tuning.json" in proc.stdout
    assert "SLA MISSED: digits_resnet: p99 " in proc.stdout and "exceeds the SLA 0.001 ms (95 % interval" in proc.stdout
    r = json.loads((tmp_path / "r.json").read_text())
    m = r["models"]["digits_resnet"]
    assert not r["passed"] and r["sla_missed"] and not m["within_sla"] and m["max_abs_diff"] <= 1e-4
    level = m["load"][0]
    assert level["requests"] == 600 and level["errors"] == 0
    lo, hi = level["p99_ci_ms"]  # 600 requests: both sides of the p99 bounded, around the estimate
    assert lo <= level["p99_ms"] <= hi


def test_serve_check_reports_a_mismatch(install, tmp_path):
    from optimizer.triton.serve_check import check_repository

    repo = tiny_repository(tmp_path)
    ref = dict(np.load(repo / "digits_resnet" / "reference.npz"))
    ref["out.logits"] = ref["out.logits"] + 1.0  # wrong expected answers
    np.savez(repo / "digits_resnet" / "reference.npz", **ref)
    r = check_repository(repo, None, None, [1], 5, 1.0, install=install)
    assert not r["passed"] and "max diff 1 > 0.0001" in r["error"]
