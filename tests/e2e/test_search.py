"""``recipe=auto`` through the command line, on a 4-trial grid over the built-in model (a step dropped or kept, a
session option): the shared prefix runs once, a trial differing only in session options runs no step again, every
trial is screened against the reference, and the finalists are measured together in the run's one measurement set,
from which the chosen variant is emitted with its session options; a bad space exits 2 naming the key."""

from tests.helpers import FAST, error_lines, run_cli

GRID = """# @package _global_
description: a 4-trial grid
passes:
  export: {type: onnx_export, opset: 18}
  fuse: {type: fuse, ort_level: basic}
  quantize: {type: quantize, mode: static}
search:
  space:
    hardware.execution_mode: [sequential, parallel]
    fuse: [true, null]
constraints:
  max_accuracy_drop: 1.0
"""


def test_a_four_trial_grid(cache_dir, builtin, tmp_path):
    recipes = tmp_path / "recipes" / "recipe"
    recipes.mkdir(parents=True)
    (recipes / "grid.yaml").write_text(GRID)
    args = ["--config-dir", str(tmp_path / "recipes"), "recipe=grid", *FAST]
    code, out, _ = run_cli([*args, "+search.space.quantize.bogus=[1]"], cache_dir, tmp_path / "bad")
    assert code == 2 and len(error_lines(out)) == 1 and error_lines(out)[0].startswith(
        "error: search.space.quantize.bogus: 1 does not plan: passes.quantize.bogus: unknown key"), out
    emit = ["triton.emit=true", "serving.max_batch_cap=4", "serving.thread_options=[0]", "triton.kubernetes=false"]
    code, out, s = run_cli([*args, "tracking.enabled=true", "tracking.experiment=search", *emit], cache_dir,
                           tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    search = s["search"]
    assert search["sampler"] == "grid" and search["stopped"] == "space exhausted"
    trials = {t["trial"]: t for t in search["trials"]}
    # trial 1 (sequential, with fuse) is the recipe's own chain with its own options again: not run twice
    assert sorted(trials) == [0, 2, 3, 4] and trials[0]["params"] == {}
    assert trials[3]["params"] == {"hardware.execution_mode": "parallel", "fuse": True}
    assert trials[2]["chain"] == ["export", "quantize"] and trials[0]["chain"] == ["export", "fuse", "quantize"]
    exports = [t["steps"]["export"] for t in trials.values()]
    assert exports.count("ran") <= 1 and all(e in ("ran", "cached") for e in exports)  # the shared prefix, once
    # trials 3 and 4 are the chains of trials 0 and 2 with other session options: every step comes from the cache
    assert set(trials[3]["steps"].values()) == {"cached"} and set(trials[4]["steps"].values()) == {"cached"}
    assert all(t["status"] == "ok" for t in trials.values())
    assert all(t["speedup"] > 0 and t["measurement"] for t in trials.values())
    # the finalists and the reference are the run's variants, measured together in one set
    finalists = search["finalists"]
    assert "trial0" in finalists and [v["name"] for v in s["variants"]] == ["reference", *finalists]
    assert all(t["finalist"] == (f"trial{i}" in finalists) for i, t in trials.items())
    assert s["chosen"] in finalists and s["measurement"]["id"] not in {t["measurement"] for t in trials.values()}
    assert "trial 3: hardware.execution_mode=parallel, fuse=True: screening speed-up" in out
    chosen = next(v for v in s["variants"] if v["name"] == s["chosen"])
    parallel = chosen.get("runtime", {}).get("execution_mode") == "parallel"
    assert parallel == (s["chosen"] in ("trial3", "trial4")), chosen.get("runtime")
    config = (tmp_path / "run" / "model_repository" / "digits_resnet" / "config.pbtxt").read_text()
    assert ('key: "execution_mode"' in config) == parallel, config
    # MLflow: every trial a child run with its options; a finalist's params are its own trial's, not the recipe's
    from mlflow import MlflowClient

    client, children = MlflowClient(tracking_uri=s["tracking"]["uri"]), s["tracking"]["child_run_ids"]
    assert set(children) == {"reference", *(f"trial{i}" for i in trials)}
    three = client.get_run(children["trial3"]).data
    assert three.params["trial.hardware.execution_mode"] == '"parallel"' and three.params["trial.fuse"] == "true"
    if "trial3" in finalists:  # its child run has its session options, not the hardware entry's
        assert three.params["hardware.execution_mode"] == "parallel"
    else:
        assert three.tags["finalist"] == "false" and three.metrics["screening_speedup"] == trials[3]["speedup"]
