"""The Triton target's record and typed tuning: ``TargetRecord.to_dict`` is summary.json's ``triton`` block as the
target builds it, the re-tune keeps ``Tuning`` typed, and the smoke test's SLAs are those tuning.json records."""

from dataclasses import FrozenInstanceError, replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from optimizer.targets import DeployInputs
from optimizer.triton import deploy, repository, target
from optimizer.triton.tune import RETUNE_KEYS, Tuning, halve_batch, tighten, tune
from optimizer.tritonserver.expected import read_sla

CURVE = [{"batch_size": b, "p50_ms": 2.0 + 0.1 * b, "p99_ms": 3.0 + 0.15 * b, "throughput": 1.0, "calls": 9}
         for b in (1, 2, 4, 8, 16)]
TUNED = {"max_batch_size": 8, "sla_p99_ms": 50.0}  # a stand-in for Tuning.to_dict() in the blocks below
SMOKE = {"passed": False, "sla_missed": True, "error": "m: p99 60 ms over 50 ms", "models": {}}
BLOCKS = {  # summary.json's triton block in each way a run can end
    "no template": {"emitted": False, "reason": "no Triton template for a pt model (variant base); add an "
                                                "onnx_export step"},
    "infeasible": {"emitted": False, "variant": "int8", "tuning": TUNED, "gate": "p99 cannot be met",
                   "reason": "p99 cannot be met"},
    "emitted": {"emitted": True, "variant": "int8", "tuning": TUNED, "cost": {"cost_per_million": 0.1},
                "model_repository": "/r", "config": "/r/m/config.pbtxt", "values": {"max_batch_size": 8},
                "capacity": {"used": 900.0}, "kubernetes": {"manifests": "/k/all.yaml"}},
    "sla missed": {"emitted": True, "variant": "int8", "tuning": TUNED, "cost": {}, "model_repository": "/r",
                   "config": "/r/m/config.pbtxt", "values": {}, "smoke_test": SMOKE,
                   "gate": "smoke test: m: p99 60 ms over 50 ms", "overload": None, "capacity": {}},
    "smoke failed": {"emitted": True, "variant": "int8", "tuning": TUNED, "cost": {}, "model_repository": "/r",
                     "config": "/r/m/config.pbtxt", "values": {}, "smoke_test": {**SMOKE, "sla_missed": False},
                     "failed": "smoke test: wrong answers", "overload": None, "capacity": {}},
}


@pytest.mark.parametrize("ending", list(BLOCKS))
def test_the_record_gives_the_summary_block_the_target_built(monkeypatch, tmp_path, ending):
    block = BLOCKS[ending]
    monkeypatch.setattr(deploy, "run", lambda cfg, inputs, repo, plan: dict(block))
    monkeypatch.setattr(target, "plan_id", lambda cfg: "plan")
    cfg = SimpleNamespace(triton=SimpleNamespace(emit=True, repository=None))
    record = target.deploy(cfg, DeployInputs("int8", None, {}, None, tmp_path, "int8"))
    assert record.to_dict() == block
    assert record.target == "triton" and record.emitted == block["emitted"]
    assert (record.gate, record.failed) == (block.get("gate"), block.get("failed"))
    assert record.location == block.get("model_repository")


def tuned(tiers=None) -> Tuning:
    return tune({1: CURVE}, 50.0, cores=2, tiers=tiers)


def test_tighten_and_halve_batch_take_and_give_a_typed_tuning():
    t = tuned({"premium": 50.0, "batch": None})
    assert set(RETUNE_KEYS).isdisjoint(t.to_dict())  # as first tuned: the re-tune's keys are absent
    tight = tighten(t, own_ms=20.0, capacity=900.0)
    assert isinstance(tight, Tuning) and tight.own_under_load_ms == 20.0 and tight.max_batch_size == t.max_batch_size
    assert {"own_under_load_ms", "overload_capacity_rps", "overload_margin"} <= set(tight.to_dict())
    assert "batch_halved_from" not in tight.to_dict() and t.own_under_load_ms is None  # the input is unchanged
    half = halve_batch(tight)
    assert isinstance(half, Tuning) and half.max_batch_size == t.max_batch_size // 2
    assert half.to_dict()["batch_halved_from"] == t.max_batch_size and half.tiers == tight.tiers
    with pytest.raises(FrozenInstanceError):
        t.max_batch_size = 1


def test_the_smoke_test_holds_the_model_to_the_slas_tuning_json_records(tmp_path):
    # the run hands its SLAs to the smoke test typed; serve_check on the command line reads them from
    # tuning.json: both must be the same SLAs, named after the same file
    for t in (tuned(), tuned({"premium": 40.0, "standard": 80.0, "batch": None}), replace(tuned(), tiers=[])):
        model_dir = tmp_path / "m"
        model_dir.mkdir(exist_ok=True)
        repository.write_docs(model_dir, "# tuning\n", {"tuning": t.to_dict()})
        typed, read = deploy.sla_of(t, model_dir), read_sla(model_dir)
        assert typed == read and typed.to_dict()["source"] == str(Path(model_dir) / "tuning.json")
        assert typed.estimate == t.throughput
