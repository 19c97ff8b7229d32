"""junit.xml and report.md of a failed step with no chosen variant, and the example CI workflow (the command-line
runs with their reports and regression gates are in tests/e2e/test_record_ci_report.py)."""

import pytest

from tests.helpers import junit_suite

junitparser = pytest.importorskip("junitparser")


def test_example_workflow_runs_a_recipe_uploads_and_fails_on_a_gate():
    import yaml

    from tests.helpers import ROOT

    wf = yaml.safe_load((ROOT / ".github" / "workflows" / "optimize.yml").read_text())
    steps = wf["jobs"]["optimize"]["steps"]
    run = next(s for s in steps if s.get("name") == "Optimize")
    assert "python -m optimizer" in run["run"] and "gates.baseline=" in run["run"]
    assert "continue-on-error" not in run and "|| true" not in run["run"]  # a gate's exit code fails the job
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact"))
    paths = upload["with"]["path"]
    assert upload["if"] == "always()"
    for name in ("model_repository/", "summary.json", "report.md", "junit.xml"):
        assert f"${{{{ env.OUT }}}}/{name}" in paths


def test_junit_of_a_failed_step_and_no_chosen_variant(tmp_path):
    from optimizer.record.ci import junit, markdown

    summary = {"recipe": "int8", "status": "failed", "exit_code": 1, "chosen": None, "objective": "throughput",
               "hardware": {"name": "local-cpu"}, "benchmark_batch_sizes": [1], "output_dir": str(tmp_path),
               "gate_failures": {"export": ["mean cosine to the reference 0.3600 < 0.99 (short by 0.6300)"]},
               "variants": [
                   {"name": "reference", "chain": [], "status": "ok", "ran": False, "seconds": 0.0},
                   {"name": "export", "chain": ["export"], "status": "ok", "ran": True, "seconds": 2.5,
                    "violations": ["mean cosine to the reference 0.3600 < 0.99 (short by 0.6300)"]},
                   {"name": "fuse", "chain": ["export", "fuse"], "status": "failed", "ran": False, "seconds": 0.1,
                    "error": "step 'fuse': RuntimeError: boom (traceback: fuse.error.txt)"},
                   {"name": "quantize", "chain": ["export", "fuse", "quantize"], "status": "skipped", "ran": False,
                    "error": "an earlier step failed"}]}
    path = tmp_path / "junit.xml"
    path.write_text(junit(summary))
    suite = junit_suite(path)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (5, 1, 1, 1)
    cases = {c.name: c for c in suite}
    assert "boom" in cases["variant fuse"].result[0].message
    assert cases["variant quantize"].is_skipped
    assert cases["constraints"].result[0].message == "no variant met the recipe's constraints"
    assert "export: mean cosine to the reference 0.3600 < 0.99" in cases["constraints"].result[0].text
    md = markdown(summary)
    assert "❌ a step failed" in md and "**No variant chosen**" in md and "- **export**: mean cosine" in md
