"""One Hydra job (a run of one recipe) and the exit code of a ``-m`` sweep.

``run_job`` is the task function ``__main__`` hands to Hydra. It lives in an importable module, not in
``__main__``, so a launcher that runs jobs in other processes (``hydra/launcher=joblib``, ``submitit_*``,
``ray``) pickles it by reference and each worker imports it afresh.

Under ``-m`` a job cannot set the exit code of the process that launched it (it may run in another process
or on another node), so every job writes ``job.json`` (exit code, pid, host, wall-clock start and end) in its
own directory under ``hydra.sweep.dir``; the ``SweepCodes`` callback (``recipes/config.yaml``'s
``hydra.callbacks``) notes the sweep directory in the launching process, and ``sweep_exit_code`` reads the
jobs' codes back: the sweep exits with the first non-zero one, in job order."""

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from optimizer.files import write_atomic

JOB_RECORD = "job.json"
on_start: List[Callable[[], None]] = []  # called once the recipe is composed (``__main__`` gives stderr back)
_sweep = {"dir": None}  # set in the launching process when a -m sweep starts


def run_job(dcfg: DictConfig) -> int:
    """Run the composed recipe, print its table; returns (and, for a single run, exits with) its exit code."""
    from hydra.core.hydra_config import HydraConfig
    from rich.markup import escape

    from optimizer.config import OptimizerConfig, register_schema
    from optimizer.console import console, err_console
    from optimizer.errors import OptimizerError

    for hook in on_start:
        hook()
    register_schema()  # a fresh worker process has not imported __main__
    started = time.time()
    hc = HydraConfig.get()
    recipe = hc.runtime.choices.get("recipe", "custom")
    try:
        cfg: OptimizerConfig = OmegaConf.to_object(dcfg)
        cfg = fitted(cfg)
        from optimizer.pipeline import run
        from optimizer.record.summary import table

        summary = run(cfg, Path(hc.runtime.output_dir), recipe).to_dict()  # the terminal is an edge: JSON from here
    except OptimizerError as e:
        err_console.print(f"[bold red]error:[/bold red] {escape(str(e))}", highlight=False, soft_wrap=True)
        return _finish(hc, e.exit_code, started)
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
    told = summary.get("story") or {}
    for line in [*told.get("verdict", []), *([told["time"]] if told.get("time") else [])]:
        console.print(f"[green]verdict:[/green] {escape(line)}", highlight=False, soft_wrap=True)
    chosen = summary["chosen"] or "none"
    if any(v["name"] == chosen and not v["chain"] for v in summary.get("variants", [])):
        chosen += " (the source model, unoptimized)"
    console.print(f"chosen: [bold]{chosen}[/bold]  status: {summary['status']}  summary: {summary['summary_path']}"
                  f"  report: {Path(summary['summary_path']).with_name('report.md')}", highlight=False, soft_wrap=True)
    return _finish(hc, summary["exit_code"], started)


def fitted(cfg):
    """The recipe fitted to its source (``space.fit_source``: torch-only steps of a search left out on an ONNX file),
    said on the terminal."""
    from optimizer.console import console
    from optimizer.recipe.space import fit_source

    cfg, dropped = fit_source(cfg)
    if dropped:
        console.print(f"[yellow]warning:[/yellow] search: model.source gives no torch model, so the step(s) "
                      f"{', '.join(dropped)} (torch only) are left out of the chain and the search", highlight=False)
    return cfg


def _finish(hc, code: int, started: float) -> int:
    """Exit with ``code`` from a single run; under ``-m`` record it in the job's directory and return it."""
    from hydra.types import RunMode

    if hc.mode != RunMode.MULTIRUN:
        sys.exit(code)
    record = {"exit_code": code, "pid": os.getpid(), "host": socket.gethostname(), "job": hc.job.num,
              "overrides": list(hc.overrides.task), "started": started, "finished": time.time()}
    out = Path(hc.runtime.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / JOB_RECORD, json.dumps(record, indent=2).encode())
    return code


class SweepCodes(Callback):
    """Notes the sweep directory in the launching process and clears job records an earlier sweep into the
    same directory left, so that ``sweep_exit_code`` reads only this sweep's jobs."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        path = Path(str(config.hydra.sweep.dir))
        _sweep["dir"] = path
        for old, _ in _records(path):
            old.unlink(missing_ok=True)
        for hook in on_start:
            hook()


def _records(sweep_dir: Path):
    """``(path, record)`` of every job record under ``sweep_dir``; a ``job.json`` that is not one is ignored."""
    for path in sweep_dir.glob(f"**/{JOB_RECORD}"):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and {"exit_code", "pid", "host", "job"} <= set(record):
            yield path, record


def sweep_exit_code() -> Optional[int]:
    """The exit code of the -m sweep this process launched: the first non-zero code of its jobs (by job
    number), 0 when all passed; None when no sweep started here (a single run, or composition failed)."""
    if _sweep["dir"] is None:
        return None
    records = sorted((r for _, r in _records(Path(_sweep["dir"]))), key=lambda r: r["job"])
    return next((r["exit_code"] for r in records if r["exit_code"]), 0)
