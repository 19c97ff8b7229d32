"""The prune pass: real channel pruning with torch-pruning, safe save/load, fine-tuning on the
train split, the normal export -> fuse -> INT8 chain afterwards, and its bad inputs.

The model is a narrow built-in (width 16, 6 epochs, ~97 %), so the whole file runs in about a
minute on 2 cores."""

import pytest

from tests.helpers import accuracy, run_pass

@pytest.fixture(scope="module")
def pruned(teacher, splits, tmp_path_factory):
    return run_pass("prune", teacher, splits, tmp_path_factory.mktemp("prune"),
                    ratio=0.5, round_to=4, finetune_epochs=2, lr=0.01)


def test_halving_channels_quarters_params_and_macs(pruned):
    m = pruned.meta
    assert m["pruned"] is True
    # half the channels of every layer but the input and the classifier: (1 - 0.5)^2 of the weights
    assert m["params_after"] / m["params_before"] == pytest.approx(0.25, abs=0.03)
    assert m["macs_after"] / m["macs_before"] == pytest.approx(0.25, abs=0.03)
    assert m["param_reduction"] == pytest.approx(1 - m["params_after"] / m["params_before"])


def test_pruned_model_loads_safely_with_its_new_shapes(pruned, teacher, splits):
    import torch

    from optimizer.formats.torch import load_module

    torch.load(pruned.path, weights_only=True)  # no pickled modules or classes
    module = load_module(pruned)
    convs = [c for c in module.modules() if isinstance(c, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[:2]] == [8, 8]  # width 16 -> 8
    assert all(c.out_channels % 4 == 0 for c in convs)  # round_to
    assert module[-1].out_features == 10  # the classifier keeps its classes
    params = sum(p.numel() for p in module.parameters())
    assert params == pruned.meta["params_after"]
    assert params < sum(p.numel() for p in load_module(teacher).parameters()) * 0.3


def test_finetuning_recovers_accuracy_on_the_evaluation_split(pruned, teacher, splits):
    m = pruned.meta
    assert accuracy(teacher, splits) > 93.0
    assert m["accuracy_after_finetune"] == pytest.approx(accuracy(pruned, splits))
    assert m["accuracy_after_finetune"] > 90.0
    assert m["accuracy_after_finetune"] > m["accuracy_after_prune"]


def test_pruned_model_exports_fuses_and_quantizes(pruned, splits, cache_dir, tmp_path):
    from optimizer.cache import Cache
    from optimizer.config import HardwareConfig
    from optimizer.evaluate import predict
    from optimizer.chain import run_chain
    from optimizer.recipe.plan import plan
    from optimizer.recipe.compose import compose
    from optimizer.formats import load

    steps = plan(compose("int8"))
    variants = run_chain(steps, pruned.evolve(id="pruned-test-model"), Cache(cache_dir),
                         {"data": splits, "hardware": HardwareConfig(), "seed": 0}, tmp_path)
    assert [(v.name, v.status) for v in variants] == [
        ("reference", "ok"), ("export", "ok"), ("fuse", "ok"), ("quantize", "ok")]
    final = variants[-1].artifact
    assert final.format == "onnx" and final.meta["precision"] == "int8" and final.meta["pruned"]
    assert final.meta["params_after"] == pruned.meta["params_after"]
    session = load(final, HardwareConfig())
    int8 = float((predict(session, splits.evaluation, 64)["logits"].argmax(1) == splits.evaluation_labels).mean() * 100)
    assert int8 > pruned.meta["accuracy_after_finetune"] - 2.0


def test_global_taylor_pruning_with_sparsity_warns_of_no_speedup(teacher, splits, tmp_path):
    import torch

    from optimizer.formats.torch import load_module
    from optimizer.record.summary import warnings as pass_warnings
    from optimizer.records import VariantRecord

    art = run_pass("prune", teacher, splits, tmp_path, ratio=0.3, round_to=4, importance="taylor",
                   global_pruning=True, sparsity=0.5, finetune_epochs=1, lr=0.01)
    m = art.meta
    assert m["prune_importance"] == "taylor" and m["prune_allocation"] == "global"
    assert 0.2 < m["param_reduction"] < 0.8
    # the masks held through fine-tuning: half of every pruned layer's weights are still zero
    weights = [x.weight for x in load_module(art).modules() if isinstance(x, torch.nn.Conv2d)]
    for w in weights:
        assert (w == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    assert 0.4 < m["sparsity"] < 0.55
    assert any("dense runtimes" in w and "no speed" in w for w in m["warnings"])
    # summary["warnings"] carries it once, however many variants inherit the meta
    records = [{"name": "reference", "chain": []}, {"name": "prune", "chain": ["prune"], "meta": m},
               {"name": "export", "chain": ["prune", "export"], "meta": m}]
    warnings = pass_warnings([VariantRecord.from_dict({"status": "ok", **r}) for r in records])
    assert warnings == [f"prune: {m['warnings'][0]}"]
