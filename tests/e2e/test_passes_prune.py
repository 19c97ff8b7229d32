"""The prune pass through the command line: bad prune steps fail at plan time; a ratio sweep runs every job and
shares the cache."""

from pathlib import Path

import pytest

from tests.helpers import FAST, PRUNE_TINY, run_cli


@pytest.mark.parametrize("args, line", [
    (["recipe=int8", "+passes.prune={type:prune}"],
     "error: passes.prune: pass 'prune' takes a torch model but the step before it makes onnx; reorder the passes"),
    (["recipe=prune50_int8", "passes.prune.ratio=1.5"], "error: passes.prune: ratio must be within (0, 1), got 1.5"),
    (["recipe=prune50_int8", "passes.prune.ratio=0"], "error: passes.prune: ratio must be within (0, 1), got 0.0"),
])
def test_bad_prune_steps_fail_at_plan_time(args, line, cache_dir, tmp_path):
    code, out, summary = run_cli(args, cache_dir, tmp_path / "run")
    assert code == 2
    assert line in out.splitlines()
    assert "Traceback" not in out and summary is None  # nothing ran


def test_ratio_sweep_runs_every_job_and_shares_the_cache(cache_dir, tmp_path):
    common = [*PRUNE_TINY, *FAST, "passes.prune.round_to=4", "passes.prune.finetune_epochs=0",
              "passes.fuse=null", "passes.quantize=null"]
    sweep = tmp_path / "sweep"
    code, out, _ = run_cli(["-m", "recipe=prune_sweep", "passes.prune.ratio=0.25,0.5", *common,
                            f"hydra.sweep.dir={sweep}"], cache_dir, tmp_path / "unused")
    assert code == 0, out
    jobs = [json_of(sweep / str(i) / "summary.json") for i in (0, 1)]
    kept = [j["variants"][1]["meta"]["params_after"] / j["variants"][1]["meta"]["params_before"] for j in jobs]
    assert kept[0] > kept[1]  # each job pruned with its own ratio
    assert jobs[0]["variants"][0]["artifact_id"] == jobs[1]["variants"][0]["artifact_id"]  # one reference
    assert [j["passes_run"] for j in jobs] == [2, 2]
    # a later run of one swept point reuses every step the sweep made
    code, out, summary = run_cli(["recipe=prune_sweep", "passes.prune.ratio=0.5", *common], cache_dir, tmp_path / "one")
    assert code == 0, out
    assert summary["passes_run"] == 0 and summary["passes_cached"] == 2


def json_of(path: Path):
    import json

    return json.loads(path.read_text())
