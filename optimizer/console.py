"""The one rich console, and what a run shows while it works: a status line per step, progress with ETA.

Rich allows one live display at a time, so a run has one: ``step`` opens it (a spinner with the elapsed
time) and a ``progress`` bar inside a step (training, calibration, timing, the tuning sweep) becomes one
more line of it. Both go to stderr and vanish when done (in a CI log nothing live is drawn); what stays is
one status line per step: its label, what happened and how long it took."""

import os
import time
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

from rich.console import Console

# results, on stdout: the terminal's width, $COLUMNS when set (rich reads it), else 160 (a CI log)
console = Console(width=None if Console().is_terminal or os.environ.get("COLUMNS") else 160)
_progress_console = Console(stderr=True)
err_console = Console(stderr=True)  # the error that ended a run: stderr, as for a refused command line
_live = None  # the run's one live display while a step or a bar is open


@contextmanager
def _display() -> Iterator:
    global _live
    if _live is not None:
        yield _live
        return
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=_progress_console,
                   transient=True, disable=not _progress_console.is_terminal)  # a log gets the status lines only
    _live = bar
    try:
        with bar:
            yield bar
    finally:
        _live = None


@contextmanager
def progress(description: str, total: float) -> Iterator:
    """A progress bar with elapsed time and ETA, a line of the open display; yields ``advance(n=1)``."""
    with _display() as bar:
        task = bar.add_task(description, total=total)
        try:
            yield lambda n=1: bar.advance(task, n)
        finally:
            bar.remove_task(task)


def status_line(label: str, outcome: str, seconds: Optional[float]) -> str:
    """``export       ran      2.1 s``: a step's label, what happened and (when it did work) how long."""
    took = "" if seconds is None else f"{seconds:7.1f} s"
    return f"{label:<14} {outcome:<8} {took}".rstrip()


@contextmanager
def step(label: str) -> Iterator[Dict]:
    """A spinner with the elapsed time while the step runs, then its status line. The body may set
    ``state["outcome"]`` ("cached", "reused", ...; default "done") and ``state["seconds"] = None`` to leave
    the time out; an exception prints "failed" and propagates."""
    state: Dict = {"outcome": "done"}
    t0 = time.perf_counter()
    with _display() as bar:
        task = bar.add_task(label, total=None)
        try:
            yield state
        except BaseException:
            state["outcome"] = "failed"
            raise
        finally:
            bar.remove_task(task)
            seconds = state.get("seconds", time.perf_counter() - t0)
            _progress_console.print(status_line(label, state["outcome"], seconds), highlight=False)
