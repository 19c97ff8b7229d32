"""A process killed with SIGKILL while logging leaves its MLflow runs RUNNING; the next run logging to the experiment
ends them as KILLED, and leaves alone the runs of a live owner and of another host."""

import os
import signal
import subprocess
import sys

import pytest

from tests.helpers import ROOT

pytest.importorskip("mlflow")

# what tracking does while it logs: a parent run and a child run, both tagged with their owner; then it hangs
LOGGER = """
import sys, time
from mlflow import MlflowClient
from optimizer.record.tracking_owner import owner_tags
client = MlflowClient(tracking_uri=sys.argv[1])
exp = client.get_experiment_by_name("owners").experiment_id
parent = client.create_run(exp, run_name="killed", tags=owner_tags()).info.run_id
child = client.create_run(exp, tags={"mlflow.parentRunId": parent, **owner_tags()}).info.run_id
client.log_metric(child, "accuracy", 0.9)
print(parent, child, flush=True)
time.sleep(300)
"""


def test_the_next_run_ends_the_runs_of_a_killed_owner_as_killed(tmp_path, capsys):
    from mlflow import MlflowClient

    from optimizer.host import host_name
    from optimizer.record.tracking import log_run
    from optimizer.recipe.compose import compose
    from optimizer.record.tracking_owner import HOST, PID, end_orphans, owner_tags

    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("owners", artifact_location=(tmp_path / "mlartifacts").as_uri())
    proc = subprocess.Popen([sys.executable, "-c", LOGGER, uri], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        killed = proc.stdout.readline().split()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert len(killed) == 2, "the logging process printed no run ids"
    dead = str(proc.pid)
    alive = client.create_run(exp, tags=owner_tags()).info.run_id  # this process: still logging
    elsewhere = client.create_run(exp, tags={HOST: host_name() + "-other", PID: dead}).info.run_id  # can't be asked
    untagged = client.create_run(exp).info.run_id  # an older version's run: no owner to ask
    done = client.create_run(exp, tags={HOST: host_name(), PID: dead}).info.run_id
    client.set_terminated(done, "FINISHED")
    assert {client.get_run(r).info.status for r in killed} == {"RUNNING"}

    cfg = compose("baseline", ["tracking.enabled=true", f"tracking.uri={uri}", "tracking.experiment=owners"])
    summary = {"recipe": "baseline", "status": "ok", "chosen": None, "objective": "latency", "variants": [],
               "passes_run": 0, "passes_cached": 0, "exit_code": 0}
    record = log_run(cfg, summary, tmp_path)  # the next run logging to the experiment
    assert "skipped" not in record, record
    for run_id in killed:
        run = client.get_run(run_id)
        assert run.info.status == "KILLED" and run.info.end_time is not None
    assert client.get_run(killed[1]).data.metrics["accuracy"] == 0.9  # what it logged stays
    assert [client.get_run(r).info.status for r in (alive, elsewhere, untagged, done)] == [
        "RUNNING", "RUNNING", "RUNNING", "FINISHED"]
    out = " ".join(capsys.readouterr().out.split())
    assert f"tracking: 2 run(s) left RUNNING by killed process(es) (pid {dead}) ended as KILLED: " in out
    assert all(r in out for r in killed)
    parent = client.get_run(record["parent_run_id"])  # the new run names its owner
    assert parent.info.status == "FINISHED" and parent.data.tags[HOST] == host_name()
    assert parent.data.tags[PID] == str(os.getpid())
    assert end_orphans(client, exp) == [] and capsys.readouterr().out == ""  # once ended, nothing more to say


def test_owner_gone_asks_only_this_host():
    from optimizer.host import host_name, owner_gone

    assert not owner_gone(host_name(), str(os.getpid()))
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=30)
    assert owner_gone(host_name(), str(proc.pid))
    assert not owner_gone("another-host", str(proc.pid)) and not owner_gone(host_name(), None)
