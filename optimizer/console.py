"""The one rich console and progress bars used for long work (training, calibration, timing)."""

import os
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console

# results, on stdout: the terminal's width, $COLUMNS when set (rich reads it), else 160 (a CI log)
console = Console(width=None if Console().is_terminal or os.environ.get("COLUMNS") else 160)
_progress_console = Console(stderr=True)


@contextmanager
def progress(description: str, total: float) -> Iterator:
    """A progress bar; yields ``advance(n=1)``."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=_progress_console, transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
