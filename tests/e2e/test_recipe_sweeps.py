"""``-m`` sweeps through Hydra launchers: jobs in parallel processes share the cache, their timed blocks never
overlap (the host's measurement lock), and the sweep exits with the first failing job's code."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.measure.lock import lock_name
from tests.helpers import FAST, ROOT


def sweep(args, cache_dir: Path, sweep_dir: Path, timeout: int = 300):
    """``python -m optimizer -m <args>`` in a subprocess; returns (exit code, output, {job dir name: summary})."""
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run([sys.executable, "-m", "optimizer", "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    summaries = {p.parent.name: json.loads(p.read_text()) for p in sorted(sweep_dir.glob("*/summary.json"))}
    return proc.returncode, proc.stdout + proc.stderr, summaries


def job_record(sweep_dir: Path, job: str) -> dict:
    return json.loads((sweep_dir / job / "job.json").read_text())


def test_joblib_runs_two_jobs_in_parallel_and_their_timed_blocks_never_overlap(builtin, cache_dir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    out = tmp_path / "sweep"
    code, output, summaries = sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "recipe=int8,baseline",
                                     *FAST, "benchmark.reuse=false"], cache_dir, out)
    assert code == 0, output
    assert sorted(summaries) == ["0", "1"]
    assert [summaries[j]["status"] for j in ("0", "1")] == ["passed", "passed"]
    assert [summaries[j]["recipe"] for j in ("0", "1")] == ["int8", "baseline"]
    spans = []
    for s in summaries.values():
        m = s["measurement"]
        assert m["reused"] is False and m["lock_wait_seconds"] >= 0.0 and m["blocks"]
        spans.append((min(b["start"] for b in m["blocks"]), max(b["end"] for b in m["blocks"])))
    first, second = sorted(spans)
    assert first[1] <= second[0], spans  # one job's timed phase ends before the other's begins
    assert (cache_dir / lock_name()).exists()
    one, two = job_record(out, "0"), job_record(out, "1")
    assert one["pid"] != two["pid"] and os.getpid() not in (one["pid"], two["pid"])
    assert [one["exit_code"], two["exit_code"]] == [0, 0]
    assert all((out / j / "__main__.log").exists() for j in ("0", "1"))  # Hydra's job log, named as in a single run
    assert max(one["started"], two["started"]) < min(one["finished"], two["finished"])  # the jobs overlapped


def test_a_failing_job_fails_the_joblib_sweep_and_every_job_writes_its_summary(builtin, cache_dir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    out = tmp_path / "sweep"
    code, output, summaries = sweep(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "recipe=baseline",
                                     "constraints.max_p99_ms=0.000001,null", *FAST], cache_dir, out)
    assert code == 3, output  # job 0: no variant meets a p99 of 1 ns
    assert [summaries[j]["status"] for j in ("0", "1")] == ["gate_failed", "passed"]
    assert [summaries[j]["exit_code"] for j in ("0", "1")] == [3, 0]
    assert [job_record(out, j)["exit_code"] for j in ("0", "1")] == [3, 0]


def test_a_sweep_into_a_used_directory_reads_only_its_own_jobs(cache_dir, tmp_path):
    out = tmp_path / "sweep"
    (out / "5").mkdir(parents=True)
    old = {"job": 5, "exit_code": 3, "pid": 1, "host": "h", "started": 0.0, "finished": 1.0}  # an earlier sweep's
    (out / "5" / "job.json").write_text(json.dumps(old))
    (out / "notes").mkdir()
    (out / "notes" / "job.json").write_text(json.dumps({"exit_code": 4}))  # the user's own file, not a job record
    code, output, summaries = sweep(["recipe=int8", "passes.quantize.calibration_samples=0,-1"], cache_dir, out)
    assert code == 2, output  # both jobs are recipe errors; the old record's 3 is not read
    assert summaries == {}  # as in a single run, a recipe that does not plan writes no summary.json
    assert [job_record(out, j)["exit_code"] for j in ("0", "1")] == [2, 2]
    assert not (out / "5" / "job.json").exists() and (out / "notes" / "job.json").exists()


def test_submitit_local_launcher_runs_a_job_and_returns_its_code(cache_dir, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    out = tmp_path / "sweep"
    code, output, _ = sweep(["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                             "recipe=int8", "passes.quantize.calibration_samples=0"], cache_dir, out)
    assert code == 2, output
    record = job_record(out, "0")
    assert record["exit_code"] == 2 and record["pid"] != os.getpid()
    logs = "".join(p.read_text() for p in out.glob(".submitit/*/*_log.*"))  # the job's own stdout and stderr
    assert "error: passes.quantize: calibration_samples must be at least 1, got 0" in logs
