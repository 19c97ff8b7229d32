"""Who may write a shared ``triton.repository``, decided at plan time (``target.preflight``), before any pass runs: a
repository holding another model is refused, and so is one that a live run of another recipe has claimed
(``.<model>.reserved``, written under the repository's lock). A claim whose owner is gone is ignored; the process's
own claim goes when it exits."""

import json
import signal
import subprocess
import sys

import pytest

from optimizer.errors import RecipeError
from optimizer.triton import repository, target
from tests.helpers import ROOT

# another run's preflight: it claims the repository for model tiny and another recipe, then works on (sleeps)
CLAIMER = """
import sys, time
from pathlib import Path
from optimizer.triton import repository
repository.reserve(Path(sys.argv[1]), sys.argv[2], False, sys.argv[3])
print("claimed", flush=True)
time.sleep(float(sys.argv[4]))
"""


def _cfg(repo, *overrides):
    from optimizer.recipe.compose import compose

    return compose("baseline", ["model.name=tiny", "triton.emit=true", f"triton.repository={repo}", *overrides])


def _claim(repo, model: str, plan: str, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", CLAIMER, str(repo), model, plan, str(seconds)], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "claimed"
    return proc


def test_a_repository_holding_another_model_is_refused_at_plan_time(tmp_path):
    repo = tmp_path / "repo"
    (repo / "resnet" / "1").mkdir(parents=True)
    with pytest.raises(RecipeError, match=r"already holds another model \(resnet\); choose another directory or set "
                                          r"triton.overwrite=true"):
        target.preflight(_cfg(repo), tmp_path / "run")
    assert sorted(p.name for p in repo.iterdir()) == ["resnet"]  # nothing claimed


def test_a_live_run_of_another_recipe_is_refused_before_any_pass(tmp_path):
    """Two runs racing into one repository: the one that plans second is refused while the first one works, not
    after its own passes ran."""
    repo = tmp_path / "repo"
    cfg = _cfg(repo)
    other = _claim(repo, "tiny", "another-plan", 300)
    try:
        with pytest.raises(RecipeError) as e:
            target.preflight(cfg, tmp_path / "run")
        message = str(e.value)
        assert f"triton.repository '{repo}' is being written by another run (another recipe, pid {other.pid} on " in message
        assert f"delete {repo / '.tiny.reserved'} if that run is gone" in message and "\n" not in message
        with pytest.raises(RecipeError, match="being written by another run \\(model 'tiny', pid"):
            target.preflight(_cfg(repo, "model.name=small"), tmp_path / "run")  # another model: refused too
    finally:
        other.send_signal(signal.SIGKILL)
        other.wait(timeout=30)
    assert json.loads((repo / ".tiny.reserved").read_text())["pid"] == other.pid  # left by the killed run

    target.preflight(cfg, tmp_path / "run")  # a killed run's claim is ignored, and replaced by this one
    claim = json.loads((repo / ".tiny.reserved").read_text())
    assert claim["plan"] == target.plan_id(cfg) and claim["pid"] != other.pid
    repository.release(repo, "tiny")
    assert list(repo.iterdir()) == []


def test_deploy_ends_the_claim(tmp_path, monkeypatch):
    """Once deployed, tuning.json names the recipe; the claim goes before the run logs the repository's files."""
    from optimizer.targets import DeployInputs
    from optimizer.triton import deploy

    repo = tmp_path / "repo"
    cfg = _cfg(repo)
    target.preflight(cfg, tmp_path / "run")
    assert [p.name for p in repo.iterdir()] == [".tiny.reserved"]
    monkeypatch.setattr(deploy, "run", lambda cfg, inputs, repo, plan: {"emitted": False, "reason": "a stand-in"})
    target.deploy(cfg, DeployInputs("int8", None, {}, None, tmp_path / "run", "int8"))
    assert list(repo.iterdir()) == []


def test_the_same_recipe_goes_ahead_and_a_claim_goes_with_its_process(tmp_path):
    repo = tmp_path / "repo"
    cfg = _cfg(repo)
    same, other = _claim(repo, "tiny", target.plan_id(cfg), 300), None
    try:
        target.preflight(cfg, tmp_path / "run")  # the same recipe again replaces its own model: no conflict
        repository.release(repo, "tiny")
        other = _claim(repo, "tiny", "another-plan", 300)
        target.preflight(_cfg(repo, "triton.overwrite=true"), tmp_path / "run")  # asked to overwrite: goes ahead
    finally:
        for proc in filter(None, (same, other)):
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    repository.release(repo, "tiny")
    done = _claim(repo, "tiny", "another-plan", 0)  # a run that exits (normally, or on an error) leaves no claim
    assert done.wait(timeout=30) == 0
    assert list(repo.iterdir()) == []
    repository.reserve(repo, "tiny", False, "another-plan")  # this process's own earlier claim (a sweep's job) ...
    target.preflight(cfg, tmp_path / "run")  # ... does not refuse its next job
