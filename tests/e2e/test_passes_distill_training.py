"""The distill pass's long run: a half-width student trained for six epochs learns from the teacher on the train
split."""

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
