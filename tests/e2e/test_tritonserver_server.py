"""The smoke test on a real tritonserver (no mocks): start, READY, infer, compare, load, stop.

Skips when no server is installed or provisioned (``python -m optimizer.tritonserver.provision``);
with ``OPTIMIZER_TRITON_REQUIRED=1`` (CI) a missing server fails instead. Every server runs on
127.0.0.1 in its own process group, which each test checks is gone afterwards."""

import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from optimizer.errors import RecipeError
from tests.helpers import ROOT
from tests.helpers import TUNING, tiny_repository


@pytest.fixture(scope="module")
def install():
    from optimizer.tritonserver.server import find_server

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

    from optimizer.tritonserver.server import stage

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
    from optimizer.tritonserver.expected import reference
    from optimizer.tritonserver.serve_check import compare, load_test
    from optimizer.tritonserver.server import serve

    repo = tiny_repository(tmp_path)
    server, notes, tmp = serve(repo, install)
    pgid = server.proc.pid
    try:
        ready = server.wait_ready("digits_resnet", timeout=60)
        assert 0 < ready < 60
        inputs, expected, _ = reference(repo / "digits_resnet")
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


def test_queue_policy_tiers_and_cache_load_and_serve(install, tmp_path):
    """One server on a config with every serving field: the server echoes them; mixed-priority traffic is
    answered per tier; the open-loop generator keeps its rate and its bounds; the capacity search runs."""
    from optimizer.tritonserver.expected import reference
    from optimizer.tritonserver.loadtest import infer_request
    from optimizer.tritonserver.server import serve

    repo = _three_model_repository(tmp_path)
    server, _, tmp = serve(repo, install)
    try:
        server.wait_ready("digits_resnet", timeout=60)
        server.wait_ready("overloaded", timeout=60)
        server.wait_ready("tiered", timeout=60)
        _check_echoed_config(server)
        inputs, _, _ = reference(repo / "digits_resnet")
        one = {k: v[:1] for k, v in inputs.items()}
        _check_mixed_priority_load(server, one)
        payload = infer_request("digits_resnet", one)
        _check_open_loop_bounds(server, payload)
        _check_queue_refusals(server, one)
        _check_capacity_search(server, one, payload)
        _check_tiered_overload_probe(server, one)
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    assert group_gone(server.proc.pid)


def _three_model_repository(tmp_path):
    """digits_resnet with every serving field, "overloaded" (a queue of one) and "tiered" (plus a batch tier)."""
    from tests.helpers import QUEUED

    repo = tiny_repository(tmp_path, tuning=QUEUED, response_cache=True)
    tight = {**TUNING, "preferred_batch_size": 0, "max_queue_delay_us": 0, "instances": 1, "max_queue_size": 1}
    tiny_repository(tmp_path, tuning=tight, name="overloaded")  # a second model in the same repository
    tiered = {**tight, "default_priority_level": 1, "tiers": [  # the same tight queue, with an unbounded batch tier
        {"name": "premium", "level": 1, "p99_ms": 50.0, "max_queue_size": 1, "timeout_us": 30300},
        {"name": "batch", "level": 2, "p99_ms": None, "max_queue_size": 0, "timeout_us": 0}]}
    tiny_repository(tmp_path, tuning=tiered, name="tiered")
    return repo


def _check_echoed_config(server) -> None:
    """The server echoes the queue policies, the priority levels and the response cache."""
    import tritonclient.http as http

    client = http.InferenceServerClient(server.http_url)
    try:
        echoed = client.get_model_config("digits_resnet")
    finally:
        client.close()
    db = echoed["dynamic_batching"]
    assert db["default_queue_policy"]["max_queue_size"] == 75
    assert int(db["default_queue_policy"]["default_timeout_microseconds"]) == 30300
    assert db["default_queue_policy"]["timeout_action"] == "REJECT"
    assert (int(db["priority_levels"]), int(db["default_priority_level"])) == (3, 2)
    assert sorted(db["priority_queue_policy"]) == ["1", "2", "3"]  # the batch tier's own (unbounded) policy
    assert db["priority_queue_policy"]["2"]["max_queue_size"] == 200
    assert echoed["response_cache"]["enable"] is True


def _check_mixed_priority_load(server, one: dict) -> None:
    """Mixed-priority closed-loop traffic is answered, and reported, per tier."""
    from optimizer.tritonserver.loadtest import load_test

    tiers = {"premium": 1, "standard": 2, "batch": 3}
    mixed = load_test(server.grpc_url, "digits_resnet", one, concurrency=4, max_requests=300, max_seconds=10,
                      tiers=tiers)
    assert mixed["errors"] == 0 and mixed["requests"] == 300
    assert sorted(mixed["tiers"]) == sorted(tiers) and sum(t["answered"] for t in mixed["tiers"].values()) == 300
    assert all(t["answered"] == 100 and 0 < t["p50_ms"] <= t["p99_ms"] for t in mixed["tiers"].values())


def _check_open_loop_bounds(server, payload) -> None:
    """The open-loop generator keeps the rate asked, and stops at its time bound or its count bound."""
    from optimizer.tritonserver.loadgen import open_loop

    by_time = open_loop(server.grpc_url, "digits_resnet", payload, rate=200, max_requests=1000, max_seconds=1.5,
                        keep_times=True)
    sent = by_time["sent_at"]
    assert by_time["errors"] == 0 and by_time["answered"] == by_time["requests"] == len(sent)
    assert sent[-1] <= 1.5 and len(sent) < 1000  # the time bound stopped it
    assert (len(sent) - 1) / (sent[-1] - sent[0]) == pytest.approx(200, rel=0.2)  # the rate asked, from timestamps
    assert by_time["rate_sent"] == pytest.approx(200, rel=0.2)
    by_count = open_loop(server.grpc_url, "digits_resnet", payload, rate=500, max_requests=40, max_seconds=10)
    assert by_count["requests"] == by_count["answered"] == 40  # the count bound stopped it


def _check_queue_refusals(server, one: dict) -> None:
    """A full queue refuses the excess at once; the batch tier's unbounded policy refuses nothing."""
    from optimizer.tritonserver.loadgen import open_loop
    from optimizer.tritonserver.loadtest import infer_request

    # one instance, a queue of one request, 3000 requests/s: the excess is refused at once, and counted so
    flood = open_loop(server.grpc_url, "overloaded", infer_request("overloaded", one), rate=3000, max_requests=1500,
                      max_seconds=0.5)
    # refusals, not failures (a loaded machine may add a stray transport error or two)
    assert flood["rejected"] > 0 and flood["errors"] - flood["rejected"] <= max(2, flood["errors"] // 100)
    assert "Exceeds maximum queue size" in flood["first_error"]
    # the same flood at the batch tier's level: its own unbounded policy, not the default one, applies
    batch = open_loop(server.grpc_url, "tiered", infer_request("tiered", one, priority=2), rate=3000,
                      max_requests=600, max_seconds=5)  # the count bound stops it; 5 s to drain the queue
    assert batch["requests"] == 600 and batch["rejected"] == 0, batch.get("first_error")
    assert batch["errors"] == 0 and batch["answered"] == 600, batch.get("first_error")


def _check_capacity_search(server, one: dict, payload) -> None:
    """The capacity search serves every level it can; a level that misses is sent again before it ends."""
    from optimizer.tritonserver.loadgen import find_capacity
    from optimizer.tritonserver.loadtest import infer_request

    cap = find_capacity(server.grpc_url, "digits_resnet", payload, sla_ms=1000.0, estimate=100.0,
                        fractions=(0.5, 1.0), seconds=0.5)
    assert cap["capacity_rps"] == 100.0 and [r["verdict"] for r in cap["levels"]] == ["served", "served"]
    # a level that misses is sent once more before it ends the search (one stall is not the capacity)
    fails = find_capacity(server.grpc_url, "overloaded", infer_request("overloaded", one), sla_ms=1000.0,
                          estimate=3000.0, fractions=(1.0,), seconds=0.3)
    assert fails["capacity_rps"] == 0 and len(fails["levels"]) == 2
    assert fails["levels"][0]["verdict"].endswith("; sent again") and "rejected" in fails["levels"][1]["verdict"]


def _check_tiered_overload_probe(server, one: dict) -> None:
    """The overload probe of a tiered model: an equal share per tier, each tier from its own client process."""
    from optimizer.tritonserver.overload import line, probe

    tiers = {"premium": {"priority": 1, "p99_ms": 1000.0}, "batch": {"priority": 2, "p99_ms": None}}
    over = probe(server.grpc_url, "tiered", one, 1000.0, capacity=80.0, factor=1.5, seconds=1.0, tiers=tiers)
    assert sorted(over["tiers"]) == ["batch", "premium"] and over["tier"] == "premium"
    for name, r in over["tiers"].items():  # 60 requests/s each for 1 s
        assert 20 <= r["requests"] <= int(60 * 1.2) + 10 and r["answered"] > 0, (name, r)
        assert r["answered"] + r["rejected"] == r["requests"], (name, r)  # a queue of one may refuse a few
        assert r["sla_p99_ms"] == tiers[name]["p99_ms"]
    assert over["within_sla"] == (over["tiers"]["premium"]["p99_ms"] <= 1000.0)  # the batch tier has no SLA
    assert over["sla_p99_ms"] == 1000.0 and over["p99_ms"] == over["tiers"]["premium"]["p99_ms"]
    assert "premium: p99 " in line(over) and "batch: p99 " in line(over) and "(no SLA)" in line(over)
    assert line(over).count("client lag p99 ") == 2  # each tier's client: behind its schedule or not
    h = over["host_stalls"]  # a stall watcher ran beside the probe
    assert h["count"] >= 0 and h["threshold_ms"] == 20.0 and isinstance(h["raised_priority"], bool)


def test_config_error_is_reported_verbatim(install, tmp_path):
    from optimizer.tritonserver.server import ServerError, serve

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


def test_a_port_taken_after_it_was_chosen_ends_the_wait_at_once(install, tmp_path):
    """A port taken between the check and the server's start (a listener that accepts and never answers): the wait
    for READY ends with the server's own line about the port, not after a readiness request's minute-long stall."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    from optimizer.tritonserver.server import ServerError, serve

    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    port = held.getsockname()[1]
    server, _, tmp = serve(tiny_repository(tmp_path), install, ports=(port, 0))
    try:
        with ThreadPoolExecutor(1) as pool:
            wait = pool.submit(server.wait_ready, "digits_resnet", 120)
            with pytest.raises(ServerError, match=f"Socket '127.0.0.1:{port}' already in use"):
                wait.result(timeout=30)  # a hang guard only
    finally:
        held.close()  # a stalled readiness request gets its answer: the connection ends
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    for _ in range(100):  # the server exited at once, leaving its backend stubs for init to reap
        if group_gone(server.proc.pid):
            break
        time.sleep(0.1)
    assert group_gone(server.proc.pid)


def test_serve_check_command_line(install, tmp_path):
    import json

    repo = tiny_repository(tmp_path, {**TUNING, "max_queue_size": 256, "queue_timeout_us": 900000})  # a queue policy
    tuning = repo / "digits_resnet" / "tuning.json"
    tuning.write_text(json.dumps({"tuning": {"throughput": 100.0}}))  # the in-process estimate the search steps around
    args = [str(repo), "--concurrency", "1,4", "--requests", "40", "--seconds", "3", "--sla-ms", "1000",
            "--capacity", "--capacity-seconds", "0.5", "--overload", "1.5", "--overload-seconds", "0.5",
            "--json", str(tmp_path / "r.json")]
    proc = subprocess.run([sys.executable, "-m", "optimizer.tritonserver.serve_check", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "READY in" in proc.stdout and "max |diff| vs reference 0" in proc.stdout and "passed" in proc.stdout
    if not install.full:
        assert "swapped for backend python" in proc.stdout

    r = json.loads((tmp_path / "r.json").read_text())
    m = r["models"]["digits_resnet"]
    assert r["passed"] and m["within_sla"] and [x["concurrency"] for x in m["load"]] == [1, 4]
    assert m["sla"] == {"p99_ms": 1000.0, "source": "given", "tiers": {}}
    lo, hi = m["load"][0]["p99_ci_ms"]  # 40 requests bound no p99 from above
    assert lo is not None and lo <= m["load"][0]["p99_ms"] and hi is None
    cap = m["capacity"]  # 25 .. 140 requests/s against a 1000 ms SLA: every step served
    assert "capacity (open loop, Poisson arrivals): 140.0 requests/s" in proc.stdout
    assert cap["capacity_rps"] == 140.0 and len(cap["levels"]) == 7 and cap["stopped"] == "every level served"
    assert all(r["errors"] == 0 and r["requests"] <= max(10, int(r["rate_asked"] * 0.5)) for r in cap["levels"])
    over = m["overload"]  # 1.5 x 140 requests/s for 0.5 s; a report, not part of passing
    assert over["factor"] == 1.5 and over["rate_asked"] == 210.0 and over["capacity_rps"] == 140.0
    assert 0 < over["requests"] <= int(210 * 0.5 * 1.2) + 10 and over["sla_p99_ms"] == 1000.0
    assert over["answered"] + over["errors"] <= over["requests"] and "rejected_share" in over
    assert "  overload: " in proc.stdout and "/s sent (1.5× 140/s) for " in proc.stdout
    no_capacity = subprocess.run([sys.executable, "-m", "optimizer.tritonserver.serve_check", str(repo), "--overload", "1.5"],
                                 cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert no_capacity.returncode == 2 and "--overload needs --capacity" in no_capacity.stderr


def test_serve_check_enforces_the_sla_from_tuning_json(install, tmp_path):
    import json

    repo = tiny_repository(tmp_path)
    tuning = repo / "digits_resnet" / "tuning.json"
    record = json.loads(tuning.read_text())
    record["tuning"]["sla_p99_ms"] = 0.001  # no server answers in a microsecond
    tuning.write_text(json.dumps(record))
    args = [str(repo), "--concurrency", "2", "--requests", "600", "--seconds", "5", "--json", str(tmp_path / "r.json")]
    proc = subprocess.run([sys.executable, "-m", "optimizer.tritonserver.serve_check", *args],
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
    from optimizer.tritonserver.serve_check import Settings, check_repository

    repo = tiny_repository(tmp_path)
    ref = dict(np.load(repo / "digits_resnet" / "reference.npz"))
    ref["out.logits"] = ref["out.logits"] + 1.0  # wrong expected answers
    np.savez(repo / "digits_resnet" / "reference.npz", **ref)
    r = check_repository(repo, Settings([1], 5, 1.0), install=install)
    assert not r["passed"] and "max diff 1 > 0.0001" in r["error"]
