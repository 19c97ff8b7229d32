"""The distill pass on Hugging Face encoders (optimizer.passes.distill_transformer): a 4-layer BERT written
by the test teaches a 2-layer student started from its layers 0 and 2, label-free; the student reloads
from the teacher's own factory and exports to ONNX; and the settings that cannot apply fail naming the fix."""

import pytest

from tests.helpers import bert_encoder, hf_artifact, run_pass, token_data

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    splits = token_data()
    teacher = hf_artifact(bert_encoder(root / "enc"), splits, root / "cache")
    student = run_pass("distill", teacher, splits, root, layers=0.5, epochs=8, lr=1e-3)
    return teacher, student, splits


def test_student_keeps_every_other_layer(setup):
    teacher, student, _ = setup
    m = student.meta
    assert (m["teacher_layers"], m["student_layers"], m["student_layers_from"]) == (4, 2, [0, 2])
    assert m["factory"] == teacher.meta["factory"] and m["kwargs"] == teacher.meta["kwargs"]
    assert 0.5 < m["student_params"] / m["teacher_params"] < 0.6  # embeddings stay whole


def test_student_learns_the_teacher_without_labels(setup):
    m = setup[1].meta
    # measured: centered cosine 0.984 before training, 0.9999 after 8 epochs
    assert m["cosine_to_teacher"] > 0.999
    assert m["centered_cosine_to_teacher"] > 0.998
    assert 1 - m["centered_cosine_to_teacher"] < (1 - m["centered_cosine_before_training"]) / 5


def test_student_reloads_and_exports(setup, tmp_path):
    import torch

    from optimizer.formats.torch import load_module

    _, student, splits = setup
    torch.load(student.path, weights_only=True)
    module = load_module(student)
    assert len(module.model.encoder.layer) == 2
    assert sum(p.numel() for p in module.parameters()) == student.meta["student_params"]
    art = run_pass("onnx_export", student, splits, tmp_path)  # verifies ONNX Runtime against torch
    assert art.meta["export_max_abs_diff"] < 1e-4


def test_layer_count_and_classifier_with_labels(tmp_path):
    from optimizer.formats.torch import load_module

    splits = token_data(train=64, labels=True)
    teacher = hf_artifact(bert_encoder(tmp_path / "cls", head=True, layers=3), splits, tmp_path / "cache", "auto")
    art = run_pass("distill", teacher, splits, tmp_path, layers=1, epochs=1, lr=1e-3)
    assert art.meta["student_layers_from"] == [0]
    module = load_module(art)
    assert len(module.model.bert.encoder.layer) == 1 and module.model.classifier.out_features == 2


def test_more_layers_than_the_teacher_has_fails(setup, tmp_path):
    from optimizer.errors import PassError

    teacher, _, splits = setup
    with pytest.raises(PassError, match=r"^step 'distill': layers=6 asks for 6 layers but the teacher has 4$"):
        run_pass("distill", teacher, splits, tmp_path, layers=6)


def test_unknown_layout_is_refused_at_plan_time(tmp_path):
    from types import SimpleNamespace

    from optimizer.errors import RecipeError
    from optimizer.passes.transformer_tune import check_source
    from tests.helpers import tiny_gpt2

    gpt2 = tiny_gpt2(tmp_path / "gpt2")
    with pytest.raises(RecipeError, match=r"passes.distill: GPT2Model has no encoder layers of a known layout"):
        check_source(SimpleNamespace(model=SimpleNamespace(source=f"hf:{gpt2}", task="auto")), "passes.distill")
    with pytest.raises(RecipeError, match=r"is a fixed program without its factory"):
        check_source(SimpleNamespace(model=SimpleNamespace(source="model.pt2", task="auto")), "passes.prune")
    searched = SimpleNamespace(model=SimpleNamespace(source=f"hf:{gpt2}", task="auto"),
                               search=SimpleNamespace(space={"prune": [None, True]}))
    check_source(searched, "passes.prune")  # recipe=auto may drop the step: a failed trial, not a refused recipe
    bert = bert_encoder(tmp_path / "bert", layers=1)
    check_source(SimpleNamespace(model=SimpleNamespace(source=f"hf:{bert}", task="auto")), "passes.prune")
