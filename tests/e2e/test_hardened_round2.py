"""A hostile or unlucky user, round 2: nothing the user gave is deleted, a finished run's summary survives a bad
setting, and bad numbers are refused in one line before anything runs."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import FAST, ROOT, run_cli

BASELINE = '{"recipe": "int8", "variants": [], "chosen": null}'


def test_a_baseline_inside_the_run_directory_is_kept_and_refused(cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(BASELINE)
    code, out, _ = run_cli(["recipe=int8", f"gates.baseline={run_dir / 'summary.json'}", *FAST], cache_dir, run_dir)
    assert code == 2, out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert "gates.baseline" in line and "is a file this run writes (summary.json in the run directory)" in line
    assert (run_dir / "summary.json").read_text() == BASELINE and "Traceback" not in out


def test_a_bad_tracking_timeout_leaves_the_last_summary_alone(cache_dir, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "summary.json").write_text(BASELINE)
    (run_dir / "report.md").write_text("# the last run\n")
    code, out, summary = run_cli(["recipe=int8", "tracking.enabled=true", "tracking.uri=http://127.0.0.1:9",
                                  "tracking.timeout_seconds=-1", *[f for f in FAST if not f.startswith("tracking")]],
                                 cache_dir, run_dir)
    assert code == 2, out
    assert "error: tracking.timeout_seconds must be in (0, 600] seconds, got -1.0" in out
    assert summary == {"recipe": "int8", "variants": [], "chosen": None}
    assert (run_dir / "report.md").read_text() == "# the last run\n"


def test_nan_and_infinite_slas_never_reach_a_config(cache_dir, tmp_path):
    for value in ("nan", "inf"):
        code, out, summary = run_cli(["recipe=int8", f"serving.p99_ms={value}", "triton.emit=true"], cache_dir,
                                     tmp_path / value)
        assert code == 2 and f"error: serving.p99_ms must be a finite number, got {value}" in out, out
        assert summary is None and not (tmp_path / value / "model_repository").exists()


@pytest.mark.parametrize("sig, code, name", [(signal.SIGTERM, 143, "SIGTERM"), (signal.SIGINT, 130, "SIGINT")])
def test_a_signal_during_measurement_leaves_an_interrupted_summary(cache_dir, tmp_path, sig, code, name):
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache_dir), "PYTHONUNBUFFERED": "1"}
    args = ["recipe=baseline", "model.source=tests.factories:tiny_cnn", "model.name=tiny",
            "data.source=tests.factories:small_digits", "constraints.max_accuracy_drop=null", *FAST,
            "benchmark.max_seconds=60", "benchmark.min_repeats=100000", "benchmark.reuse=false",
            f"hydra.run.dir={tmp_path}"]
    proc = subprocess.Popen([sys.executable, "-m", "optimizer", *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:  # the export step's status line (the only pass): measurement starts next
        seen.append(line)
        if line.startswith("export"):
            break
    time.sleep(3)
    proc.send_signal(sig)
    out = "".join(seen) + proc.stdout.read()
    assert proc.wait(timeout=120) == code, out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["status"], summary["exit_code"]) == ("interrupted", code)
    assert summary["error"].startswith(f"interrupted by {name}")
    assert f"error: interrupted by {name}" in out and "Traceback" not in out
    assert not list(tmp_path.glob(".*.tmp")) and "interrupted" in (tmp_path / "report.md").read_text()


def test_a_model_directory_that_is_a_symlink_loop(cache_dir, tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    text = tmp_path / "t.txt"
    text.write_text("a line\nanother line\n")
    code, out, summary = run_cli(["recipe=transformer_int8", f"model.source=hf:{loop}", f"data.source=text:{text}",
                                  *FAST], cache_dir, tmp_path / "run")
    assert code == 2 and "Traceback" not in out and "RuntimeError" not in out, out
    assert summary["status"] == "error" and summary["error"].startswith("model.source 'hf:")
    assert summary["git"] is None


def test_a_pickled_model_checkpoint_is_refused_in_one_line_with_a_summary(cache_dir, tmp_path):
    pytest.importorskip("transformers")
    import torch
    from transformers import BertForSequenceClassification

    from tests.helpers import sentences, tiny_bert, write_jsonl

    d = tiny_bert(tmp_path / "bert")
    torch.save(BertForSequenceClassification.from_pretrained(str(d)), d / "pytorch_model.bin")  # the whole model
    (d / "model.safetensors").unlink()
    text = write_jsonl(tmp_path / "t.jsonl", sentences(120))
    code, out, summary = run_cli(["recipe=transformer_int8", "data.calibration_size=32", "data.max_length=32",
                                  f"model.source=hf:{d}", f"data.source=text:{text}", *FAST], cache_dir, tmp_path / "run")
    assert code == 2 and "Traceback" not in out, out
    (line,) = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert f"hf:{d}': pytorch_model.bin is a pickled checkpoint that holds more than tensors (it names " in line
    assert (summary["status"], summary["exit_code"]) == ("error", 2) and "pytorch_model.bin" in summary["error"]


def test_a_sweep_over_an_unknown_group_option_is_one_line(cache_dir, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "optimizer", "-m", "recipe=baseline", "hardware=local_cpu,nope",
                           f"hydra.sweep.dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OPTIMIZER_CACHE_DIR": str(cache_dir)})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == ("error: Could not find 'hardware/nope'; available: aws_c7i_2xlarge, aws_c7i_large, "
                           "aws_g5_xlarge, aws_g6_xlarge, local_cpu\n")
    assert not list(tmp_path.iterdir())  # no job ran
