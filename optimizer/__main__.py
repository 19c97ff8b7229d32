"""``python -m optimizer recipe=int8``: compose the recipe, run it, print the table, exit with its code.

``python -m optimizer cache verify|prune`` checks the cache or removes leftovers of killed runs.

Exit codes: 0 every gate passed; 1 a step failed; 2 the recipe or its inputs are wrong
(nothing ran); 3 no variant met the recipe's constraints."""

import sys

import hydra

from optimizer import job
from optimizer.config import register_schema
from optimizer.errors import EXIT_RECIPE, OptimizerError
from optimizer.recipe.files import check_command_line, choices, composition_error, config_dirs
from optimizer.recipe.compose import RECIPES, available

register_schema()


def _check_choices(argv) -> None:
    """Name the available options in one line when ``recipe=`` (or ``hardware=``, ``model=``, ``data=``, each
    item of a ``-m`` sweep's list too) names none of them: before Hydra, which would say it in many lines."""
    for group, chosen in choices(argv).items():
        names = {p.stem for d in [RECIPES, *config_dirs(argv)] for p in (d / group).glob("*.yaml")}
        names = sorted(names | (set(available()) if group == "recipe" else set()))
        for name in chosen:
            if name not in names:
                what = f"unknown recipe {name!r}" if group == "recipe" else f"Could not find '{group}/{name}'"
                print(f"error: {what}; available: {', '.join(names)}", file=sys.stderr)
                sys.exit(EXIT_RECIPE)


def _composed() -> None:
    """The recipe composed (a run or a sweep starts): what Hydra said so far is ordinary output."""
    global _started
    _started = True
    _release_stderr()


job.on_start.append(_composed)
main = hydra.main(version_base="1.3", config_path=str(RECIPES), config_name="config")(job.run_job)


_started = False  # set once Hydra has composed the recipe and handed it to main()
_stderr = None  # the real stderr while Hydra's composition messages are held back


def _hold_stderr() -> None:
    """Hold what is written to stderr until main() starts: a composition error is then shown in two lines,
    not Hydra's multi-line report (HYDRA_FULL_ERROR=1 shows everything as it comes)."""
    global _stderr
    import io
    import os

    if not os.environ.get("HYDRA_FULL_ERROR"):
        _stderr, sys.stderr = sys.stderr, io.StringIO()


def _release_stderr() -> str:
    """Give stderr back; returns what was held (already written through when main() started)."""
    global _stderr
    if _stderr is None:
        return ""
    held, sys.stderr, _stderr = sys.stderr.getvalue(), _stderr, None
    if _started:  # main() began: what Hydra said before it is ordinary output
        sys.stderr.write(held)
        return ""
    return held

if __name__ == "__main__":
    if sys.argv[1:2] in (["list"], ["explain"]):  # discovery: no Hydra run directory, nothing runs
        from optimizer.recipe.discover import main as discover

        sys.exit(discover(sys.argv[1:]))
    if sys.argv[1:2] == ["cache"]:  # python -m optimizer cache verify|prune: no recipe involved
        from optimizer.integrity import main as cache_main

        sys.exit(cache_main(sys.argv[2:]))
    try:
        check_command_line(sys.argv[1:], RECIPES)
    except OptimizerError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    _check_choices(sys.argv[1:])
    _hold_stderr()
    try:
        main()
    except SystemExit as e:
        held = _release_stderr()
        swept = job.sweep_exit_code()
        if swept is not None:  # a -m sweep ran (a job that raised makes Hydra exit 1): the first failure's code
            sys.stderr.write(held)
            sys.exit(swept or e.code)
        if not _started and e.code:  # Hydra or argparse refused the command line or composition
            print(composition_error(held), file=sys.stderr)
        elif held:  # --help, --cfg job, ...: whatever was said goes through
            sys.stderr.write(held)
        # Hydra exits 1 on a composition error (bad override, missing key): that is a recipe error
        sys.exit(EXIT_RECIPE if e.code == 1 and not _started else e.code)
    finally:
        sys.stderr.write(_release_stderr())  # anything else that ended main() keeps its message
    sys.exit(job.sweep_exit_code() or 0)
