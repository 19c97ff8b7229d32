"""A deployment target is a module plus one ``TARGETS`` row: a toy target defined in this file, added to the table
from the test, is found, checked at plan time and deployed through the table alone."""

from types import SimpleNamespace

from optimizer.records import TargetRecord
from optimizer.targets import TARGETS, DeployInputs, Target

CALLS = []


def enabled(cfg) -> bool:
    return cfg.toy.emit


def preflight(cfg, out_dir) -> None:
    CALLS.append(("preflight", cfg.toy.where, out_dir))


def deploy(cfg, inputs: DeployInputs) -> TargetRecord:
    CALLS.append(("deploy", inputs.variant))
    return TargetRecord("toy", True, location=f"{cfg.toy.where}/{inputs.variant}", details={"copies": 1})


def run_targets(cfg, out_dir, inputs):
    """What the pipeline does with the table: preflight every enabled target, then deploy the chosen variant."""
    enabled_ = [t for t in TARGETS.values() if t.load().enabled(cfg)]
    for t in enabled_:
        t.load().preflight(cfg, out_dir)
    return {t.name: t.load().deploy(cfg, inputs).to_dict() for t in enabled_}


def test_a_toy_target_is_one_row(monkeypatch, tmp_path):
    CALLS.clear()
    monkeypatch.setitem(TARGETS, "toy", Target("toy", __name__))
    cfg = SimpleNamespace(toy=SimpleNamespace(emit=True, where="/srv"), triton=SimpleNamespace(emit=False))
    inputs = DeployInputs("int8", None, {}, None, tmp_path, "recipe")
    assert TARGETS["toy"].load().__name__ == __name__
    records = run_targets(cfg, tmp_path, inputs)
    assert CALLS == [("preflight", "/srv", tmp_path), ("deploy", "int8")]
    assert records == {"toy": {"emitted": True, "copies": 1}}
    cfg.toy.emit = False  # a target the recipe does not ask for is neither checked nor deployed
    CALLS.clear()
    assert run_targets(cfg, tmp_path, inputs) == {} and CALLS == []
