"""The distill pass: students from a factory; a student that does not match the teacher's output (the long
training run and the command-line runs are in tests/e2e/test_passes_distill*.py)."""

import pytest

from tests.helpers import accuracy, run_pass


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
