"""report.md and junit.xml next to summary.json, and the regression gate through the command line: the same
measurements pass against themselves; a baseline ten times faster fails with exit 3 and names the metric."""

import json

import pytest

from optimizer.errors import EXIT_GATE, EXIT_RECIPE
from tests.helpers import FAST, junit_suite, run_cli

junitparser = pytest.importorskip("junitparser")
BASELINE = ["recipe=baseline", *FAST, "benchmark.profile_batch_size=8"]  # with the time breakdown


@pytest.fixture(scope="module")
def first_run(cache_dir, builtin, tmp_path_factory):
    out = tmp_path_factory.mktemp("ci") / "first"
    code, log, summary = run_cli([*BASELINE], cache_dir, out)
    assert code == 0, log
    return out, summary


def test_report_and_junit_of_a_passing_run(first_run):
    out, summary = first_run
    assert summary["reports"] == {"markdown": "report.md", "junit": "junit.xml"}
    md = (out / "report.md").read_text()
    assert md.startswith("## optimizer: recipe `baseline` on local-cpu — ✅ passed")
    assert f"**Chosen: `{summary['chosen']}`**" in md
    assert "| variant | precision | status | acc % |" in md and "| export ★ |" in md
    assert "- [latency_vs_batch.png](latency_vs_batch.png)" in md and "- [cumulative.png](cumulative.png)" in md
    # the story: verdict in words, cumulative factors of the reference at batch 1, where the time goes
    board = summary["story"]["dashboard"]
    ref, export = summary["variants"]
    assert board["rows"][0]["throughput"] == round(ref["benchmark"]["1"]["throughput"], 1)
    best = max(export["benchmark"].values(), key=lambda b: b["throughput"])
    assert board["rows"][-1]["throughput_x"] == round(best["throughput"] / ref["benchmark"]["1"]["throughput"], 2)
    assert summary["story"]["verdict"][0].startswith("export (fp32) ") and "### Verdict" in md
    assert "### Cumulative improvements (factors of reference at batch 1, one replica)" in md
    assert export["profile"]["op_types"] and 0.0 < export["profile"]["covered"] <= 1.0 + 1e-6
    assert "| export | 8 | Conv " in md and "aten::" in ref["profile"]["top_nodes"][0]["name"]
    suite = junit_suite(out / "junit.xml")
    names = [case.name for case in suite]
    assert names == ["variant reference", "variant export", "constraints"]
    assert suite.tests == 3 and suite.failures == 0 and suite.errors == 0
    assert all(case.is_passed for case in suite)


def test_summary_records_provenance_and_relative_paths(first_run):
    out, s = first_run
    assert s["schema_version"] == 2 and s["started"] <= s["finished"] and s["started"].endswith("+00:00")
    assert "recipe=baseline" in s["overrides"] and "tracking.enabled=false" in s["overrides"]
    assert len(s["git"]["commit"]) == 40  # the built-in model's source lives in this checkout
    assert s["paths"]["run_dir"] == str(out) and s["paths"]["summary"] == str(out / "summary.json")
    assert s["variants"][1]["path"] == f"{s['variants'][1]['artifact_id']}/model.onnx"  # under paths.cache_dir
    assert not any(str(out) in json.dumps(v) for k, v in s.items() if k != "paths")


def test_same_measurements_pass_against_themselves(first_run, cache_dir, tmp_path):
    out, _ = first_run
    code, log, s = run_cli([*BASELINE, f"gates.baseline={out / 'summary.json'}"], cache_dir, tmp_path)
    assert code == 0, log
    reg = s["regression"]
    assert reg["same_host"] and reg["passed"] and reg["baseline_chosen"] == "export"
    assert {g["name"] for g in reg["gates"]} >= {"throughput_b1", "throughput_b8", "p99_b1", "score", "parity", "size"}
    suite = junit_suite(tmp_path / "junit.xml")
    regression = [c for c in suite if c.name.startswith("regression export ")]
    assert len(regression) == len(reg["gates"]) and all(c.is_passed for c in regression)
    assert "### Regression gates" in (tmp_path / "report.md").read_text()


def test_faster_baseline_fails_the_gate(first_run, cache_dir, tmp_path):
    out, summary = first_run
    fast = json.loads(json.dumps(summary))
    for r in fast["variants"]:
        if r["name"] == "export":
            for b in r["benchmark"].values():
                b["median_throughput"] *= 10
                b["throughput"] *= 10
    baseline = tmp_path / "baseline.json"
    baseline.write_text(json.dumps(fast))
    code, log, s = run_cli([*BASELINE, f"gates.baseline={baseline}"], cache_dir, tmp_path / "run")
    assert code == EXIT_GATE, log
    assert s["status"] == "gate_failed" and s["exit_code"] == EXIT_GATE
    failed = [g for g in s["regression"]["gates"] if not g["passed"]]
    assert {g["name"] for g in failed} == {"throughput_b1", "throughput_b8"}
    assert "gate: regression: export throughput_b1: median-call throughput at batch 1" in log
    n = len(s["regression"]["gates"])
    assert f"regression gates: {n - 2}/{n} passed against {baseline}; baseline measured on this host" in log
    suite = junit_suite(tmp_path / "run" / "junit.xml")
    assert suite.failures == 2
    case = next(c for c in suite if c.name == "regression export throughput_b8")
    assert not case.is_passed and "vs baseline" in case.result[0].message
    md = (tmp_path / "run" / "report.md").read_text()
    assert "❌ gate failed" in md and "| throughput_b8 | export |" in md


def test_missing_baseline_is_a_recipe_error(cache_dir, tmp_path):
    code, log, s = run_cli([*BASELINE, f"gates.baseline={tmp_path / 'nope.json'}"], cache_dir, tmp_path)
    assert code == EXIT_RECIPE, log
    assert "gates.baseline" in log and "no such file" in log and "Traceback" not in log
    assert s["status"] == "error" and s["exit_code"] == EXIT_RECIPE
    assert junit_suite(tmp_path / "junit.xml").errors == 1
