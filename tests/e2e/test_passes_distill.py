"""The distill pass through the command line: a student that does not import fails at plan time with exit 2; one
whose outputs do not match the teacher's is named."""

import pytest

from tests.helpers import FAST, error_lines, run_cli
from tests.helpers import PRUNE_TINY


@pytest.mark.parametrize("student, line", [
    ("nope.missing:fn", ("error: passes.distill: student 'nope.missing:fn': cannot import module 'nope.missing' "
                         "(ModuleNotFoundError: No module named 'nope')")),
    ("optimizer.sources.models:nothing", ("error: passes.distill: student 'optimizer.sources.models:nothing': "
                                  "module 'optimizer.sources.models' has no callable 'nothing'")),
])
def test_student_that_does_not_import_fails_at_plan_time(student, line, cache_dir, tmp_path):
    code, out, summary = run_cli(["recipe=distill_int8", f"passes.distill.student={student}"], cache_dir, tmp_path)
    assert code == 2
    assert line in out.splitlines()
    assert "Traceback" not in out and summary is None


def test_student_shape_mismatch_on_the_command_line(cache_dir, tmp_path):
    code, out, summary = run_cli(["recipe=distill_int8", "passes.distill.student=optimizer.sources.builtin:digits_resnet",
                                  "+passes.distill.student_kwargs.num_classes=5", *PRUNE_TINY, *FAST], cache_dir, tmp_path)
    assert code == 1
    assert error_lines(out) == [
        "error: no step produced a model, so nothing was measured; step 'distill': student "
        "'optimizer.sources.builtin:digits_resnet' outputs shape (2, 5) but the teacher outputs (2, 10) "
        "(traceback: distill.error.txt)"]
    assert "Traceback" not in out
    assert summary["failed_steps"] == ["distill"]
