"""``-m`` sweeps through Hydra launchers: jobs in parallel processes share the cache, their timed blocks never
overlap (the host's measurement lock), and the sweep exits with the first failing job's code."""

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from optimizer.measure.lock import lock_name


def test_the_lock_is_named_after_the_host():
    assert lock_name("node-07.cluster") == "measure.node-07.cluster.lock"
    assert lock_name("gpu node/3 (a)") == "measure.gpu_node_3_a.lock"
    assert lock_name("..") == "measure.localhost.lock"
    assert lock_name() == lock_name(socket.gethostname())


def test_two_jobs_building_the_same_entry_at_once_keep_one_intact_entry(tmp_path):
    from optimizer.artifact import Artifact
    from optimizer.cache import Cache
    from optimizer.integrity import TMP_PREFIX, problems

    cache, both_building = Cache(tmp_path / "cache"), threading.Barrier(2)
    results, errors = {}, []

    def build(tag: str) -> None:
        def produce(directory: Path) -> Artifact:
            (directory / "model.onnx").write_bytes(tag.encode() * 1000)
            both_building.wait(timeout=30)  # neither commits before the other has built its files
            return Artifact(path=directory / "model.onnx", format="onnx", id="", parent=None, step="s",
                            meta={"writer": tag})

        try:
            results[tag] = cache.put("k" * 64, produce)
        except Exception as e:  # noqa: BLE001 - the test reports it below
            errors.append(e)

    threads = [threading.Thread(target=build, args=(tag,)) for tag in ("one", "two")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    entry = tmp_path / "cache" / ("k" * 64)
    winner = json.loads((entry / "artifact.json").read_text())["meta"]["writer"]
    assert problems(entry) == []
    assert (entry / "model.onnx").read_bytes() == winner.encode() * 1000
    assert {r.meta["writer"] for r in results.values()} == {winner}  # the loser returns the winner's entry
    assert {Path(r.path) for r in results.values()} == {entry / "model.onnx"}
    assert list((tmp_path / "cache").glob(f"{TMP_PREFIX}*")) == []


def test_a_build_directory_of_another_host_is_never_pruned(tmp_path):
    from optimizer.integrity import STALE_SECONDS, prune, tmp_name
    from tests.helpers import dead_pid

    host = tmp_name("a" * 64).split("~")[1]
    assert host == socket.gethostname().replace("/", "_").replace("~", "_")[:64]
    dead, old = dead_pid(), time.time() - STALE_SECONDS - 60
    mine = tmp_path / f".tmp-{'a' * 16}-{dead}-0123abcd~{host}"
    theirs = tmp_path / f".tmp-{'b' * 16}-{dead}-0123abcd~node-42"  # a live job there may have that pid
    for d in (mine, theirs):
        d.mkdir()
        os.utime(d, (old, old))
    assert prune(tmp_path) == [mine]
    assert theirs.exists()


@pytest.mark.parametrize("launcher, overrides, target", [
    ("submitit_slurm", ["hydra.launcher.partition=cpu", "hydra.launcher.cpus_per_task=8",
                        "hydra.launcher.timeout_min=60", "hydra.launcher.array_parallelism=4"], "SlurmLauncher"),
    ("submitit_local", ["hydra.launcher.timeout_min=60"], "LocalLauncher"),
])
def test_the_documented_cluster_launchers_compose(launcher, overrides, target):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from optimizer.config import register_schema
    from optimizer.resources import RECIPES

    register_schema()
    with initialize_config_dir(config_dir=str(RECIPES), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}", *overrides, "recipe=int8",
                                           "cache_dir=/shared/optimizer-cache", "tracking.uri=http://mlflow:5000"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith(target)
    assert cfg.hydra.launcher.timeout_min == 60
    assert cfg.cache_dir == "/shared/optimizer-cache" and cfg.tracking.uri == "http://mlflow:5000"
    assert cfg.hydra.callbacks.sweep_codes._target_ == "optimizer.job.SweepCodes"
    if launcher == "submitit_slurm":
        assert (cfg.hydra.launcher.partition, cfg.hydra.launcher.cpus_per_task) == ("cpu", 8)
