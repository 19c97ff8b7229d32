"""``python -m optimizer recipe=int8``: compose the recipe, run it, print the table, exit with its code.

``python -m optimizer cache verify|prune`` checks the cache or removes leftovers of killed runs.

Exit codes: 0 every gate passed; 1 a step failed; 2 the recipe or its inputs are wrong
(nothing ran); 3 no variant met the recipe's constraints."""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from optimizer.config import OptimizerConfig, register_schema
from optimizer.errors import EXIT_RECIPE, OptimizerError
from optimizer.recipe_files import check_command_line, composition_error, config_dirs
from optimizer.recipes import RECIPES, available

register_schema()


def _check_recipe_choice(argv) -> None:
    """Name the available recipes in one line when ``recipe=`` names none of them."""
    names = set(available())
    for directory in config_dirs(argv):  # a user's own recipes beside the built-in ones
        names |= {p.stem for p in (directory / "recipe").glob("*.yaml")}
    names = sorted(names)
    for arg in argv:
        if arg.startswith("recipe="):
            for name in arg.split("=", 1)[1].split(","):
                if name and name not in names:
                    print(f"error: unknown recipe {name!r}; available: {', '.join(names)}", file=sys.stderr)
                    sys.exit(EXIT_RECIPE)


@hydra.main(version_base="1.3", config_path=str(RECIPES), config_name="config")
def main(dcfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from rich.markup import escape

    from optimizer.console import console

    global _started
    _started = True
    _release_stderr()
    hc = HydraConfig.get()
    recipe = hc.runtime.choices.get("recipe", "custom")
    try:
        cfg: OptimizerConfig = OmegaConf.to_object(dcfg)
        from optimizer.pipeline import run
        from optimizer.report import table

        summary = run(cfg, Path(hc.runtime.output_dir), recipe)
    except OptimizerError as e:
        console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        return _finish(hc, e.exit_code)
    console.print(table(summary, console.width))
    for w in summary["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False)
    for name, why in summary["gate_failures"].items():
        for line in (why if name == "regression" else ["; ".join(why)]):  # a regression gate's message has "; "
            console.print(f"[red]gate:[/red] {name}: {escape(line)}", highlight=False, soft_wrap=True)
    reg = summary.get("regression")
    if reg:
        ok = sum(g["passed"] for g in reg["gates"])
        console.print(f"regression gates: {ok}/{len(reg['gates'])} passed against {escape(reg['baseline'])}; "
                      f"{escape(reg['note'])}", highlight=False, soft_wrap=True)
    for r in summary["variants"]:
        if r["status"] == "failed":
            console.print(f"[bold red]error:[/bold red] {escape(r['error'])}", highlight=False, soft_wrap=True)
    chosen = summary["chosen"] or "none"
    console.print(f"chosen: [bold]{chosen}[/bold]  status: {summary['status']}  summary: {summary['summary_path']}"
                  f"  report: {Path(summary['summary_path']).with_name('report.md')}", highlight=False, soft_wrap=True)
    _finish(hc, summary["exit_code"])


def _finish(hc, code: int) -> None:
    """Exit with ``code``; under ``-m`` keep the first non-zero code and let Hydra run the next job."""
    from hydra.types import RunMode

    global _multirun_code
    if hc.mode != RunMode.MULTIRUN:
        sys.exit(code)
    _multirun_code = _multirun_code or code


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
_multirun_code = 0  # exit code of a -m sweep, once every job has run

if __name__ == "__main__":
    if sys.argv[1:2] in (["list"], ["explain"]):  # discovery: no Hydra run directory, nothing runs
        from optimizer.discover import main as discover

        sys.exit(discover(sys.argv[1:]))
    if sys.argv[1:2] == ["cache"]:  # python -m optimizer cache verify|prune: no recipe involved
        from optimizer.integrity import main as cache_main

        sys.exit(cache_main(sys.argv[2:]))
    try:
        check_command_line(sys.argv[1:], RECIPES)
    except OptimizerError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    _check_recipe_choice(sys.argv[1:])
    _hold_stderr()
    try:
        main()
    except SystemExit as e:
        held = _release_stderr()
        if not _started and e.code:  # Hydra or argparse refused the command line or composition
            print(composition_error(held), file=sys.stderr)
        elif held:  # --help, --cfg job, ...: whatever was said goes through
            sys.stderr.write(held)
        # Hydra exits 1 on a composition error (bad override, missing key): that is a recipe error
        sys.exit(EXIT_RECIPE if e.code == 1 and not _started else e.code)
    finally:
        sys.stderr.write(_release_stderr())  # anything else that ended main() keeps its message
    sys.exit(_multirun_code)
