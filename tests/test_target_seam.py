"""A deployment target is a module plus one ``TARGETS`` row: a toy target defined in this file, added to the table
from the test, is checked at plan time and deployed by the pipeline's own stages, which know no target by name."""

from types import SimpleNamespace

from optimizer.artifact import Artifact
from optimizer.chain import Variant
from optimizer.pipeline import Inputs, deploy_all, preflight_all
from optimizer.records import TargetRecord, VariantRecord
from optimizer.targets import TARGETS, DeployInputs, Target

CALLS = []


def enabled(cfg) -> bool:
    return cfg.toy.emit


def preflight(cfg, out_dir) -> None:
    CALLS.append(("preflight", cfg.toy.where, out_dir))


def deploy(cfg, inputs: DeployInputs) -> TargetRecord:
    CALLS.append(("deploy", inputs.variant, inputs.artifact.path.name, inputs.peak_memory_mb))
    return TargetRecord("toy", True, location=f"{cfg.toy.where}/{inputs.variant}", details={"copies": 1})


def test_a_toy_target_is_one_row(monkeypatch, tmp_path):
    CALLS.clear()
    monkeypatch.setattr("optimizer.pipeline.TARGETS", {"toy": Target("toy", __name__)})
    cfg = SimpleNamespace(toy=SimpleNamespace(emit=True, where="/srv"))
    art = Artifact(path=tmp_path / "model.onnx", format="onnx")
    variants = [Variant("reference", []), Variant("int8", ["int8"], art)]
    chosen = VariantRecord("int8", ("int8",), "ok", True, 0.1, extras={"peak_memory_mb": 12.5})
    inputs = Inputs(None, SimpleNamespace(evaluation={}), "classification", art)
    preflight_all(cfg, tmp_path)
    records = deploy_all(cfg, chosen, variants, inputs, tmp_path, "recipe", None)
    assert CALLS == [("preflight", "/srv", tmp_path), ("deploy", "int8", "model.onnx", 12.5)]
    assert {k: r.to_dict() for k, r in records.items()} == {"toy": {"emitted": True, "copies": 1}}
    assert records["toy"].location == "/srv/int8"
    CALLS.clear()  # a target the recipe does not ask for is not deployed, and nothing is chosen for none
    cfg.toy.emit = False
    assert deploy_all(cfg, chosen, variants, inputs, tmp_path, "recipe", None) == {"toy": None} and CALLS == []
    cfg.toy.emit = True
    assert deploy_all(cfg, None, variants, inputs, tmp_path, "recipe", None) == {"toy": None} and CALLS == []


def test_the_triton_target_is_a_row():
    assert TARGETS["triton"].load().__name__ == "optimizer.triton.target"
