"""The distill pass: a half-width student learns from the incoming model on the train split;
students from a factory; students that do not import or do not match the teacher's output."""

import pytest

from tests.helpers import accuracy, run_pass


@pytest.fixture(scope="module")
def student(teacher, splits, tmp_path_factory):
    return run_pass("distill", teacher, splits, tmp_path_factory.mktemp("distill"),
                    epochs=6, lr=0.01, alpha=0.5, temperature=2.0)


def test_half_width_student_learns_from_the_teacher(student, teacher, splits):
    m = student.meta
    assert m["kwargs"]["width"] == 8 and m["pruned"] is False
    assert m["teacher_accuracy"] == pytest.approx(accuracy(teacher, splits))
    assert m["student_accuracy"] == pytest.approx(accuracy(student, splits))  # the saved student is the trained one
    assert m["student_accuracy"] > 85.0
    # half the width: about a quarter of the weights and of the multiply-adds
    assert m["student_params"] / m["teacher_params"] == pytest.approx(0.25, abs=0.03)
    assert m["student_macs"] / m["teacher_macs"] == pytest.approx(0.25, abs=0.03)


def test_student_from_a_factory(teacher, splits, tmp_path):
    art = run_pass("distill", teacher, splits, tmp_path, student="optimizer.sources.builtin:digits_resnet",
                   student_kwargs={"width": 4}, epochs=1)
    assert art.meta["factory"] == "optimizer.sources.builtin:digits_resnet" and art.meta["kwargs"] == {"width": 4}
    assert art.meta["student_params"] < art.meta["teacher_params"] / 10
    assert 0.0 <= accuracy(art, splits) <= 100.0  # loads back from its own factory


def test_student_with_another_output_shape_fails_naming_both(teacher, splits, tmp_path):
    from optimizer.errors import PassError

    with pytest.raises(PassError, match=r"^step 'distill': student 'optimizer.sources.builtin:digits_resnet' outputs shape "
                                        r"\(2, 5\) but the teacher outputs \(2, 10\)$"):
        run_pass("distill", teacher, splits, tmp_path, student="optimizer.sources.builtin:digits_resnet",
                 student_kwargs={"num_classes": 5}, epochs=1)
