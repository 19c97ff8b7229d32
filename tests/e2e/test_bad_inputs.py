"""Bad input and faults through the command line: every case is one or two lines naming what to fix, the
right exit code, no traceback, and summary.json once the recipe planned. Concurrent runs on a new cache all
land in MLflow; a killed repository writer's leftovers are recovered; a reused run directory holds nothing
stale. The model is an untrained two-layer CNN (``tests.factories:tiny_cnn``): nothing here trains."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.errors import EXIT_FAILED, EXIT_RECIPE
from tests.helpers import FAST, ROOT, error_lines, run_cli

TINY = ["model.source=tests.factories:tiny_cnn", "model.name=tiny", "constraints.max_accuracy_drop=null"]
DIGITS_LIKE = "data.source=tests.factories:digits_like"
EMIT = ["triton.emit=true", "serving.max_batch_cap=2", "serving.thread_options=[1]"]
TINY_RUN = ["benchmark.batch_sizes=[1]", "benchmark.rounds=1", "benchmark.min_repeats=5", "benchmark.max_seconds=0.1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Recipe files that are broken in every way, an ONNX file whose input is 16x16, a plain file."""
    root = tmp_path_factory.mktemp("inputs")
    recipes = root / "recipes" / "recipe"
    recipes.mkdir(parents=True)
    head = b"# @package _global_\n"
    bodies = {
        "ok": head + b"passes:\n  export: {type: onnx_export}\n",
        "duplicate": head + b"passes:\n  export: {type: onnx_export}\n  export: {type: fuse}\n",
        "broken": head + b"passes:\n  export: {type: onnx_export\n  fuse: [\n",
        "latin1": head + b"description: caf\xe9\npasses:\n  export: {type: onnx_export}\n",
        "binary": b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)),
        "list": head + b"- export\n- fuse\n",
        "tabs": head + b"passes:\n\texport: {type: onnx_export}\n",
    }
    for name, body in bodies.items():
        (recipes / f"{name}.yaml").write_bytes(body)
    (root / "plain.txt").write_text("not a directory\n")
    return {"root": root, "config_dir": root / "recipes", "plain": root / "plain.txt", "onnx16": _onnx16(root)}


def _onnx16(root: Path) -> Path:
    import torch

    from tests.factories import tiny_cnn

    path = root / "small16.onnx"
    torch.onnx.export(tiny_cnn().eval(), (torch.zeros(1, 1, 16, 16),), str(path), input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}}, dynamo=False)
    return path


def _recipe(name):
    return lambda f, t: ["--config-dir", str(f["config_dir"]), f"recipe={name}", *TINY]


def _baseline(*args):
    return lambda f, t: ["recipe=baseline", *TINY, *[a(f, t) if callable(a) else a for a in args]]


def _other_model_in(f, t):
    repo = t / "repo"
    (repo / "resnet" / "1").mkdir(parents=True)
    return f"triton.repository={repo}"


# case -> (command line from (files, tmp_path), text the first line holds, exit code, summary.json written)
CASES = {
    # recipe files and the command line: Hydra never composes (no summary)
    "yaml-duplicate-step": (_recipe("duplicate"), "duplicate.yaml, line 4, column 3: duplicate key 'export'", 2, False),
    "yaml-broken": (_recipe("broken"), "broken.yaml, line 4, column 7: expected ',' or '}'", 2, False),
    "yaml-not-utf8": (_recipe("latin1"), "latin1.yaml: not UTF-8 text (byte 0xe9 at line 2)", 2, False),
    "yaml-binary": (_recipe("binary"), "binary.yaml: not UTF-8 text", 2, False),
    "yaml-not-a-mapping": (_recipe("list"), "list.yaml: the top level must be a mapping", 2, False),
    "yaml-tab-indent": (_recipe("tabs"), "tabs.yaml, line 3", 2, False),
    "config-dir-missing": (lambda f, t: [f"--config-dir={t / 'nothere'}", "recipe=ok"], "no such directory", 2, False),
    "unknown-recipe": (lambda f, t: ["recipe=nope"], "unknown recipe 'nope'", 2, False),
    "unknown-override-key": (_baseline("benchmark.batch_size=4"), "Could not override 'benchmark.batch_size'", 2, False),
    "unknown-hardware": (_baseline("hardware=nope"), "Could not find 'hardware/nope'", 2, False),
    "override-wrong-type": (_baseline("model.train_epochs=many"), "Error merging override model.train_epochs=many", 2,
                            False),
    # planning: settings out of their domain (no summary: nothing planned)
    "train-epochs-negative": (_baseline("model.train_epochs=-1"), "model.train_epochs must be at least 1", 2, False),
    "min-repeats-negative": (_baseline("benchmark.min_repeats=-5"), "benchmark.min_repeats must be at least 1", 2, False),
    "max-seconds-negative": (_baseline("benchmark.max_seconds=-1"), "benchmark.max_seconds must be positive", 2, False),
    "rounds-zero": (_baseline("benchmark.rounds=0"), "benchmark.rounds must be at least 1", 2, False),
    "pause-negative": (_baseline("benchmark.pause_seconds=-0.1"), "benchmark.pause_seconds must be ≥ 0", 2, False),
    "warmup-negative": (_baseline("benchmark.warmup_seconds=-1"), "benchmark.warmup_seconds must be ≥ 0", 2, False),
    "memory-budget-negative": (_baseline("benchmark.memory_budget_mb=-1"), "benchmark.memory_budget_mb must be ≥ 0",
                               2, False),
    "max-cv-zero": (_baseline("benchmark.max_cv=0"), "benchmark.max_cv must be positive", 2, False),
    "batch-sizes-empty": (_baseline("benchmark.batch_sizes=[]"), "benchmark.batch_sizes: every batch size", 2, False),
    "eval-batch-zero": (_baseline("evaluation.batch_size=0"), "evaluation.batch_size must be positive", 2, False),
    "eval-max-samples-negative": (_baseline("evaluation.max_samples=-3"), "evaluation.max_samples must be ≥ 0", 2,
                                  False),
    "cores-zero": (_baseline("hardware.cores=0"), "hardware.cores must be positive", 2, False),
    "no-passes": (_baseline("passes.export=null"), "passes: the recipe has no steps", 2, False),
    "unknown-pass-type": (_baseline("passes.export.type=export_it"), "passes.export.type: unknown pass 'export_it'",
                          2, False),
    "step-unknown-key": (_baseline("+passes.export.opsett=17"), "passes.export.opsett: unknown key", 2, False),
    "step-bad-enum": (lambda f, t: ["recipe=int8", *TINY, "passes.quantize.mode=int4"],
                      "passes.quantize.mode: Invalid value 'int4'", 2, False),
    "calibration-samples-zero": (lambda f, t: ["recipe=int8", *TINY, "passes.quantize.calibration_samples=0"],
                                 "calibration_samples must be at least 1", 2, False),
    "cache-dir-is-a-file": (_baseline(lambda f, t: f"cache_dir={f['plain']}"), "is a file, not a directory", 2, False),
    "onnx-source-with-prune": (lambda f, t: ["recipe=prune50_int8", *TINY, f"model.source={f['onnx16']}"],
                               "passes.prune: pass 'prune' takes a torch model but model.source gives onnx",
                               2, False),
    # preflight: planned, so summary.json says why
    "repository-is-a-file": (_baseline(*EMIT, lambda f, t: f"triton.repository={f['plain']}"),
                             "is a file, not a directory", 2, True),
    "repository-under-a-file": (_baseline(*EMIT, lambda f, t: f"triton.repository={f['plain']}/repo"),
                                "is a file, not a directory", 2, True),
    "repository-holds-another-model": (_baseline(*EMIT, _other_model_in), "already holds another model (resnet)",
                                       2, True),
    "model-name-with-slash": (_baseline(*EMIT, "model.name=a/b"), "model.name 'a/b'", 2, False),  # refused while planning
    "max-batch-cap-zero": (_baseline("serving.max_batch_cap=0"), "serving.max_batch_cap must be ≥ 1", 2, True),
    "cost-without-price": (_baseline("objective=cost"), "has no price_per_hour", 2, True),
    "sla-zero": (_baseline("serving.p99_ms=0"), "serving.p99_ms must be positive", 2, True),
    # inputs: found once the model and data load, before any pass runs
    "onnx-input-shape": (_baseline("passes.export=null", lambda f, t: f"model.source={f['onnx16']}"),
                         "input 'input' has shape ['batch', 1, 16, 16]; the data gives", 2, True),
    "split-shapes-differ": (_baseline(DIGITS_LIKE, "+data.kwargs.train_side=16"),
                            "data: train input 'input' is float32 [1, 16, 16] per sample", 2, True),
    "empty-evaluation-split": (_baseline(DIGITS_LIKE, "+data.kwargs.evaluation_size=0"),
                               "data: the evaluation split is empty", 2, True),
    "empty-train-split": (_baseline(DIGITS_LIKE, "+data.kwargs.train_size=0"), "data: the train split is empty", 2,
                          True),
    "empty-calibration-split": (lambda f, t: ["recipe=int8", *TINY, DIGITS_LIKE, "+data.kwargs.calibration_size=0"],
                                "data: the calibration split is empty", 2, True),
    "batch-too-large-for-memory": (_baseline("benchmark.batch_sizes=[100000]", "benchmark.memory_budget_mb=100"),
                                   "benchmark.batch_sizes: a batch of 100000 needs about", 2, True),
    "digits-calibration-too-large": (_baseline("data.calibration_size=5000"), "leave no training data", 2, True),
    "digits-no-evaluation": (_baseline("data.evaluation_fraction=0"), "leave no training data", 2, True),
    "data-factory-missing": (_baseline("data.source=tests.nomodule:fn"), "data.source", 2, True),
    "model-factory-raises": (_baseline("model.source=tests.factories:broken"), "weights file missing", 2, True),
    "model-factory-missing": (_baseline("model.source=tests.factories:nothing"), "model.source", 2, True),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(case, files, cache_dir, tmp_path):
    args, message, code, planned = CASES[case]
    out_dir = tmp_path / "run"
    rc, out, summary = run_cli([*FAST, *args(files, tmp_path)], cache_dir, out_dir, timeout=300)
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    assert rc == code, out
    assert "Traceback" not in out and 1 <= len(lines) <= 3, out  # at most a status line, then the error
    (error,) = error_lines(out)
    assert message in " ".join(lines[lines.index(error):]), out
    if planned:
        assert summary["status"] == "error" and summary["exit_code"] == code and message in summary["error"], summary
        assert summary["variants"] == []
    else:
        assert summary is None


def test_run_dir_under_a_file(files, cache_dir):
    rc, out, summary = run_cli(["recipe=baseline", *TINY, *FAST], cache_dir, files["plain"] / "run")
    lines = out.strip().splitlines()
    assert rc == EXIT_RECIPE and len(lines) == 1 and "Traceback" not in out, out
    assert lines[0].startswith("error: hydra.run.dir=") and "is a file, not a directory" in lines[0]


def test_calibration_cut_is_a_warning(files, cache_dir, tmp_path):
    """More calibration samples than the split holds: calibrated on what there is, and said so."""
    rc, out, s = run_cli(["recipe=int8", *TINY, DIGITS_LIKE, "+data.kwargs.calibration_size=12",
                          "passes.quantize.calibration_samples=100000", *FAST, *TINY_RUN], cache_dir, tmp_path / "run")
    assert rc == 0, out
    want = "quantize: passes.quantize.calibration_samples=100000 but the calibration split has 12 samples; calibrated on 12"
    assert want in s["warnings"] and f"warning: {want}" in " ".join(out.split())
    assert next(v for v in s["variants"] if v["name"] == "quantize")["meta"]["calibration_samples"] == 12


def test_stale_temporary_directory_and_repository_conflict(cache_dir, tmp_path):
    """A killed writer's ``.<model>.tmp`` is recovered; another recipe into the same repository is refused at
    plan time (exit 2, summary.json, no pass run); the same recipe again replaces its own model."""
    repo = tmp_path / "repo"
    (repo / ".tiny.tmp" / "1").mkdir(parents=True)
    (repo / ".tiny.tmp" / "1" / "model.onnx").write_bytes(b"half written")
    common = [*TINY, *FAST, *TINY_RUN, *EMIT, f"triton.repository={repo}"]
    rc, out, s = run_cli(["recipe=baseline", *common], cache_dir, tmp_path / "first")
    assert rc == 0 and s["triton"]["emitted"], out
    assert sorted(p.name for p in repo.iterdir()) == ["tiny"]
    assert json.loads((repo / "tiny" / "tuning.json").read_text())["plan"]

    rc, out, s = run_cli(["recipe=dynamic_int8", *common], cache_dir, tmp_path / "second")
    lines = out.strip().splitlines()
    assert rc == EXIT_RECIPE and len(lines) == 1 and "Traceback" not in out, out
    assert "already holds another model (tiny, emitted by another recipe)" in lines[0]
    assert s["status"] == "error" and s["exit_code"] == EXIT_RECIPE and s["variants"] == []
    assert not (tmp_path / "second" / "export.log").exists()  # no pass ran

    rc, out, s = run_cli(["recipe=baseline", *common, "passes.export.opset=17"], cache_dir, tmp_path / "third")
    assert rc == EXIT_RECIPE and "emitted by another recipe" in out, out  # another chain is another recipe
    rc, out, s = run_cli(["recipe=baseline", *common], cache_dir, tmp_path / "fourth")
    assert rc == 0 and s["triton"]["emitted"], out


def test_reused_run_directory_holds_nothing_stale(files, cache_dir, tmp_path):
    """A run into a directory an earlier run used: its summary, logs, error files and plots are gone, and the
    Hydra job log stays. Also: ``--config-dir=DIR`` (the ``=`` form) finds the user's recipe."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    stale = ["quantize.error.txt", "error.txt", "quantize.log", "latency_vs_batch.png"]
    for name in stale:
        (run_dir / name).write_text("from an earlier run\n")
    (run_dir / "notes.log").write_text("the user's own file\n")
    (run_dir / "summary.json").write_text(json.dumps({"status": "failed", "recipe": "old",
                                                      "variants": [{"name": "reference"}, {"name": "quantize"}]}))
    (run_dir / "model_repository" / "old").mkdir(parents=True)
    rc, out, s = run_cli([f"--config-dir={files['config_dir']}", "recipe=ok", *TINY, *FAST, *TINY_RUN,
                          "tracking.enabled=true"], cache_dir, run_dir)
    assert rc == 0, out
    assert s["recipe"] == "ok" and s["status"] == "passed"
    left = {p.name for p in run_dir.iterdir()}
    assert not left & {"quantize.error.txt", "error.txt", "quantize.log", "model_repository"}, left
    assert {"__main__.log", "notes.log", "latency_vs_batch.png"} <= left  # Hydra's log, the user's, this run's plot
    assert (run_dir / "latency_vs_batch.png").read_bytes()[:4] == b"\x89PNG"
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=s["tracking"]["uri"])
    logs = [a.path for a in client.list_artifacts(s["tracking"]["parent_run_id"], "logs")]
    assert not any(p.endswith("error.txt") for p in logs), logs


def _launch(n: int, cache: Path, tmp_path: Path):
    env = {**os.environ, "OPTIMIZER_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    args = ["recipe=baseline", *TINY, *FAST, *TINY_RUN, "tracking.enabled=true", "tracking.log_models=false"]
    return [subprocess.Popen([sys.executable, "-m", "optimizer", *args, f"hydra.run.dir={tmp_path / f'run{i}'}"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(n)]


def test_concurrent_runs_on_a_new_cache_all_land_in_mlflow(tmp_path):
    pytest.importorskip("mlflow")
    n = 3  # three runs race to create the store, its experiment and the built-in model
    cache = tmp_path / "cache"
    procs = _launch(n, cache, tmp_path)
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, outs
    summaries = [json.loads((tmp_path / f"run{i}" / "summary.json").read_text()) for i in range(n)]
    assert all("parent_run_id" in s["tracking"] for s in summaries), [s["tracking"] for s in summaries]
    db = cache / "mlruns.db"
    with sqlite3.connect(db) as con:
        parents = {r for (r,) in con.execute("SELECT run_uuid FROM runs WHERE run_uuid NOT IN "
                                             "(SELECT run_uuid FROM tags WHERE key = 'mlflow.parentRunId')")}
        assert parents == {s["tracking"]["parent_run_id"] for s in summaries}
        assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 3 * n  # a parent, reference and export child
    from optimizer.record.tracking_store import relocate  # a copied cache logs into its own artifact directory

    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)
    assert relocate(copy / "mlruns.db") > 0
    with sqlite3.connect(copy / "mlruns.db") as con:
        uris = [u for (u,) in con.execute("SELECT artifact_uri FROM runs")]
    assert uris and all(u.startswith((copy / "mlartifacts").as_uri() + "/") for u in uris), uris


def test_failed_step_writes_summary_with_its_error(cache_dir, tmp_path):
    """A failure after planning (here a step that fails at run time) is in summary.json with its exit code."""
    rc, out, s = run_cli(["recipe=baseline", *TINY, *FAST, *TINY_RUN, "+passes.export.dynamic_axes={input:{7:x}}"],
                         cache_dir, tmp_path / "run")
    assert rc == EXIT_FAILED and "Traceback" not in out, out
    assert s["status"] == "failed" and s["exit_code"] == EXIT_FAILED and s["failed_steps"] == ["export"]
    assert s["variants"][1]["error"].startswith("step 'export': ") and (tmp_path / "run" / "export.error.txt").exists()
    assert s["error"].startswith("no step produced a model, so nothing was measured; step 'export': ")
    assert "\nmeasure " not in out and s["variants"][0]["status"] == "ok" and "benchmark" not in s["variants"][0]


def test_check_target_ignores_a_leftover_temporary_directory_and_knows_its_recipe(tmp_path):
    from optimizer.errors import RecipeError
    from optimizer.triton import repository

    repo = tmp_path / "repo"
    (repo / ".tiny.tmp" / "1").mkdir(parents=True)
    repository.check_target(repo, "tiny", tmp_path / "none.onnx", overwrite=False, plan="a")  # only a leftover: fine
    (repo / "tiny" / "1").mkdir(parents=True)
    (repo / "tiny" / "1" / "model.onnx").write_bytes(b"one model")
    (repo / "tiny" / "tuning.json").write_text(json.dumps({"plan": "a"}))
    repository.check_target(repo, "tiny", tmp_path / "none.onnx", overwrite=False, plan="a")  # its own recipe again
    with pytest.raises(RecipeError, match=r"\(tiny, emitted by another recipe\); choose another directory"):
        repository.check_target(repo, "tiny", tmp_path / "none.onnx", overwrite=False, plan="b")
    repository.check_target(repo, "tiny", tmp_path / "none.onnx", overwrite=True, plan="b")


def test_composition_errors_are_two_lines():
    from optimizer.recipe.files import composition_error

    hydra = ("Could not override 'benchmark.batch_size'.\nTo append to your config use +benchmark.batch_size=4\n"
             "Key 'batch_size' not in 'BenchmarkConfig'\n    full_key: benchmark.batch_size\n"
             "    object_type=BenchmarkConfig\n\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n")
    assert composition_error(hydra) == ("error: Could not override 'benchmark.batch_size'.\n  To append to your config "
                                        "use +benchmark.batch_size=4; Key 'batch_size' not in 'BenchmarkConfig'")
    argparse = "usage: __main__.py [--help]\n                   [overrides ...]\n__main__.py: error: unrecognized arguments: x\n"
    assert composition_error(argparse) == "error: unrecognized arguments: x"
