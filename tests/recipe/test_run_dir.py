"""The run directory is checked before Hydra makes it, also when its name is resolved by Hydra (``${now:...}``)."""

import pytest

from optimizer.errors import RecipeError
from optimizer.recipe.files import check_command_line, composition_error
from tests.helpers import ROOT

BUILTIN = ROOT / "recipes"


@pytest.mark.parametrize("value", ["{f}/${{now:%Y-%m-%d}}/${{now:%H-%M-%S}}", "{f}/run-${{now:%H}}", "{f}/x"])
def test_a_run_dir_below_a_file_is_refused(tmp_path, value):
    f = tmp_path / "a-file"
    f.write_text("")
    with pytest.raises(RecipeError, match=f"hydra.run.dir=.*: {f} is a file, not a directory"):
        check_command_line(["recipe=int8", "hydra.run.dir=" + value.format(f=f)], BUILTIN)


def test_a_resolved_name_in_a_writable_place_passes(tmp_path):
    check_command_line(["recipe=int8", f"hydra.run.dir={tmp_path}/${{now:%H}}", "hydra.sweep.dir=${now:%H}"], BUILTIN)


def test_hydra_failing_to_make_the_directory_is_one_line():
    text = ("Traceback (most recent call last):\n  File \"pathlib.py\", in mkdir\n    os.mkdir(self, mode)\n"
            "FileNotFoundError: [Errno 2] No such file or directory: '/proc/nope/21-11'\n")
    assert composition_error(text) == ("error: cannot create the run directory: No such file or directory: "
                                       "'/proc/nope/21-11'; choose another with hydra.run.dir=DIR")
