"""The int8 recipe end to end through the command line: variants, accuracy, parity, cache reuse."""

import pytest

from tests.helpers import FAST, run_cli


@pytest.fixture(scope="module")
def int8_runs(cache_dir, tmp_path_factory, builtin):
    out = tmp_path_factory.mktemp("int8")
    first = run_cli(["recipe=int8", *FAST], cache_dir, out / "first")
    second = run_cli(["recipe=int8", *FAST], cache_dir, out / "second")
    return first, second


def test_int8_recipe_passes_its_gates(int8_runs):
    code, out, s = int8_runs[0]
    assert code == 0, out
    assert s["status"] == "passed" and s["exit_code"] == 0
    assert [v["name"] for v in s["variants"]] == ["reference", "export", "fuse", "quantize"]
    assert [v["chain"] for v in s["variants"]][-1] == ["export", "fuse", "quantize"]
    assert all(v["status"] == "ok" for v in s["variants"])
    assert s["chosen"] in {"export", "fuse", "quantize"}
    assert "quantize" in out and "chosen:" in out  # the table reached the terminal


def test_accuracy_and_parity(int8_runs):
    v = {x["name"]: x for x in int8_runs[0][2]["variants"]}
    assert v["reference"]["evaluation"]["accuracy"] >= 97.0
    assert v["reference"]["evaluation"]["samples"] == 449
    export = v["export"]["evaluation"]
    assert export["max_abs_diff"] < 1e-3 and export["top1_agreement"] == 100.0 and export["mean_cosine"] > 0.99999
    q = v["quantize"]
    assert q["precision"] == "int8" and q["meta"]["activation_type"] == "uint8" and q["meta"]["weight_type"] == "int8"
    assert q["evaluation"]["accuracy_drop"] <= 1.0
    assert q["evaluation"]["top1_agreement"] >= 98.0 and q["evaluation"]["mean_cosine"] > 0.99
    assert q["evaluation"]["relative_error_output"] == "logits" and 0 < q["evaluation"]["relative_error"] < 0.2
    assert q["size_bytes"] < 0.4 * v["fuse"]["size_bytes"]  # int8 weights
    ops = q["meta"]["op_counts"]
    assert ops.get("QuantizeLinear", 0) > 0 and ops.get("DequantizeLinear", 0) > 0
    assert v["fuse"]["meta"]["nodes_after"] <= v["fuse"]["meta"]["nodes_before"]


def test_benchmark_figures(int8_runs):
    s = int8_runs[0][2]
    assert s["benchmark_batch_sizes"] == [1, 8]
    for v in s["variants"]:
        for bs in ("1", "8"):
            b = v["benchmark"][bs]
            assert b["batch_size"] == int(bs) and b["calls"] >= 5
            assert 0 < b["p50_ms"] <= b["p90_ms"] <= b["p95_ms"] <= b["p99_ms"]
            assert b["throughput"] == pytest.approx(int(bs) * 1e3 / b["mean_ms"], rel=1e-6)
            assert b["cv"] >= 0
        assert v["speedup"]["1"] > 0
    assert s["variants"][0]["speedup"] == {"1": 1.0, "8": 1.0}


def test_second_run_executes_no_pass(int8_runs):
    (_, _, first), (code, out, second) = int8_runs
    assert code == 0, out
    assert first["passes_run"] + first["passes_cached"] == 3  # an earlier test may have cached the export
    assert first["passes_run"] >= 2 and second["passes_run"] == 0 and second["passes_cached"] == 3
    assert all(not v["ran"] and v["measurements_reused"] for v in second["variants"])
    ids = lambda s: [v["artifact_id"] for v in s["variants"]]  # noqa: E731
    assert ids(first) == ids(second)
    # the reused measurements are the ones taken in the first run
    assert second["variants"][3]["benchmark"] == first["variants"][3]["benchmark"]


def test_a_status_line_per_step(int8_runs):
    """Each step leaves one line: its label, what happened, and how long it took when it did work."""
    import re

    lines = {ln.split()[0]: ln.split()[1:] for ln in int8_runs[1][1].splitlines()
             if re.match(r"^(model|export|fuse|quantize|measure) +\w+", ln)}
    assert [lines[k][0] for k in ("export", "fuse", "quantize", "measure")] == ["cached"] * 3 + ["reused"]
    assert lines["export"][1:] == [] and lines["model"][0] == "loaded" and lines["model"][2] == "s"
    code, out, s = int8_runs[0]  # an earlier test in the session may have cached some of the passes
    shown = {ln.split()[0]: ln.split()[1] for ln in out.splitlines() if re.match(r"^(export|fuse|quantize) +(ran|cached)", ln)}
    assert shown == {v["name"]: "ran" if v["ran"] else "cached" for v in s["variants"][1:]}


def test_shared_prefix_and_changed_config(int8_runs, cache_dir, tmp_path):
    first = int8_runs[0][2]
    code, out, s = run_cli(["recipe=int8", "passes.quantize.per_channel=false", *FAST], cache_dir, tmp_path)
    assert code == 0, out
    ran = {v["name"]: v["ran"] for v in s["variants"]}
    assert ran == {"reference": False, "export": False, "fuse": False, "quantize": True}
    assert s["variants"][2]["artifact_id"] == first["variants"][2]["artifact_id"]
    assert s["variants"][3]["artifact_id"] != first["variants"][3]["artifact_id"]
    assert not s["variants"][3]["measurements_reused"]


def test_gate_failure_exit_code(int8_runs, cache_dir, tmp_path):
    code, out, s = run_cli(["recipe=int8", "constraints.max_p99_ms=0.0001", *FAST], cache_dir, tmp_path)
    assert code == 3, out
    assert s["status"] == "gate_failed" and s["chosen"] is None
    assert set(s["gate_failures"]) == {"reference", "export", "fuse", "quantize"}
    assert all("p99" in why[0] for why in s["gate_failures"].values())
