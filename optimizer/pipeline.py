"""plan -> run passes (cache hit? load : run) -> evaluate + benchmark -> select -> summary."""

import contextlib
import os
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.files import content_key
from optimizer.formats import versions
from optimizer.console import step as status
from optimizer.errors import OptimizerError, PassError, RecipeError, one_line
from optimizer.recipe.plan import Step, check_environment, plan
from optimizer.registry import Context


@dataclass
class Variant:
    """One model the run produced (or the reference), and what is known about it."""

    name: str
    chain: List[str]
    artifact: Optional[Artifact] = None
    status: str = "ok"  # ok | failed | skipped
    ran: bool = False  # the pass executed in this run (false: cache hit)
    seconds: float = 0.0
    error: Optional[str] = None


def run_chain(steps: List[Step], source: Artifact, cache: Cache, ctx_base: Dict, out_dir: Path) -> List[Variant]:
    """Run every step, reusing cache entries; a failed step marks the rest of the chain skipped."""
    variants = [Variant("reference", [], source)]
    art: Optional[Artifact] = source
    chain: List[str] = []
    for step in steps:
        chain = chain + [step.label]
        v = Variant(step.label, chain)
        variants.append(v)
        with status(step.label) as shown:
            art = _run_step(step, v, art, cache, ctx_base, out_dir)
            shown["outcome"] = "ran" if v.ran else v.status if v.status != "ok" else "cached"
            shown["seconds"] = v.seconds if v.ran or v.status == "failed" else None
    return variants


def _run_step(step: Step, v: Variant, art: Optional[Artifact], cache: Cache, ctx_base: Dict,
              out_dir: Path) -> Optional[Artifact]:
    """One step on ``art`` (None: an earlier step failed): the cache entry, or the pass run now; records on
    ``v`` what happened and returns the step's artifact (None when it failed or was skipped)."""
    if art is None:
        v.status, v.error = "skipped", "an earlier step failed"
        return None
    key = content_key(art.id, step.spec.name, asdict(step.config), ctx_base["data"].fingerprint,
                      ctx_base["hardware"].device.value, versions())
    cached = cache.get(key, step.label)
    t0 = time.perf_counter()
    try:
        if cached is None:
            parent = art
            # libraries print tables and banners to stdout; keep them in the run's log instead
            with open(out_dir / f"{step.label}.log", "w") as log, contextlib.redirect_stdout(log):
                cached = cache.put(key, lambda d: step.spec.fn(parent, step.config, Context(d, step.label, **ctx_base))
                                   .evolve(parent=parent.id, step=step.label))
            v.ran = True
    except Exception as e:
        err = e if isinstance(e, OptimizerError) else PassError(step.label, f"{type(e).__name__}: {e}")
        log = out_dir / f"{step.label}.error.txt"
        log.write_text("".join(traceback.format_exception(e)))
        v.status, v.error = "failed", f"{err} (traceback: {log.name})"
        return None
    finally:
        v.seconds = time.perf_counter() - t0
    v.artifact = cached
    return cached


def run(cfg, out_dir: Path, recipe: str) -> Dict:
    """Run the recipe ``cfg`` end to end; write and return the summary.

    Once planning succeeded, every failure still writes ``summary.json`` (status ``error``, the exit code and
    the one-line error) before it propagates."""
    from optimizer.record import rundir
    from optimizer.triton.target import preflight

    steps = plan(cfg)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        # nothing stale from an earlier run into the same directory
        rundir.clean(out_dir, [s.label for s in steps], own_repository=not cfg.triton.repository)
    except OSError as e:
        raise RecipeError(f"run directory {str(out_dir)!r} cannot be written ({e.strerror or e}); "
                          f"choose another with hydra.run.dir=DIR") from None
    try:
        preflight(cfg, out_dir)  # serving, cost and repository settings
        check_environment(steps, cfg)  # a GPU, TensorRT: before any work, with summary.json on failure
        return _execute(cfg, steps, out_dir, recipe)
    except OptimizerError as e:
        _error_summary(cfg, recipe, out_dir, e)
        raise
    except Exception as e:  # a defect, not a user error: keep the traceback, report one line
        (out_dir / "error.txt").write_text("".join(traceback.format_exception(e)))
        err = OptimizerError(f"{type(e).__name__}: {one_line(e)} (traceback: {out_dir / 'error.txt'})")
        _error_summary(cfg, recipe, out_dir, err)
        raise err from e


def _error_summary(cfg, recipe: str, out_dir: Path, e: OptimizerError) -> None:
    from optimizer.record import ci as ci_report
    from optimizer.record import provenance
    from optimizer.record.summary import write_summary

    summary = {"recipe": recipe, "description": cfg.description, "status": "error", "exit_code": e.exit_code,
               "error": str(e), "chosen": None, "model": {"source": cfg.model.source, "name": cfg.model.name},
               "data": {"source": cfg.data.source}, "variants": [], "output_dir": str(out_dir),
               "versions": versions(), **provenance.record(cfg, out_dir, provenance.now())}
    summary["reports"] = ci_report.write(summary, out_dir)
    write_summary(summary, out_dir)


def _execute(cfg, steps: List[Step], out_dir: Path, recipe: str) -> Dict:
    from optimizer import formats
    from optimizer.record import ci as ci_report
    from optimizer.decide import gates
    from optimizer.record import plots
    from optimizer.record import provenance
    from optimizer.record import tracking
    from optimizer.decide.cost import price
    from optimizer.errors import EXIT_FAILED, EXIT_GATE, EXIT_OK
    from optimizer.recipe.guards import recipe_factories
    from optimizer.measure.evaluate import check_outputs, resolve_task
    from optimizer.measure.limits import check_memory
    from optimizer.measure.run import host, measure
    from optimizer.record.summary import compare, variant_record, write_summary
    from optimizer.decide.select import choose, pareto, throughput, violations
    from optimizer.sources.data import load_splits
    from optimizer.sources.models import load_source
    from optimizer.targets import DeployInputs
    from optimizer.triton import target

    started = provenance.now()
    if cfg.gates.baseline:
        gates.load_baseline(cfg.gates.baseline)  # a missing or unreadable baseline is a recipe error, before any work
    cache = Cache(cfg.cache_dir, recipe_factories(cfg))  # a cached model is rebuilt only by a factory the recipe names
    splits = load_splits(cfg.data, cfg.seed, cfg.model)
    task = resolve_task(cfg.evaluation.task, splits.has_labels)
    with status("model") as shown:
        built = cache.built
        source = load_source(cfg.model, splits, cache, cfg.seed)
        shown["outcome"] = "built" if cache.built > built else "loaded"  # trained or converted now, or as it was
    check_outputs(task, formats.io(source), cfg.evaluation.output)
    check_memory(cfg, source, splits)  # a batch that cannot fit is refused before any pass runs
    variants = run_chain(steps, source, cache, dict(data=splits, hardware=cfg.hardware, seed=cfg.seed), out_dir)
    with status("measure") as shown:
        measured = measure(variants, splits, cfg, cache, task)
        shown["outcome"] = "reused" if measured.session.get("reused") else "done"
    records = [variant_record(v, measured.variants.get(v.name)) for v in variants]
    warnings = cache.warnings + compare(records)  # damaged cache entries first
    for r in records:
        r["cost"] = price(cfg.hardware.price_per_hour, throughput(r), cfg.serving)
        r["violations"] = violations(r, cfg.constraints)
    front = pareto(records)
    for r in records:
        r["pareto"] = r["name"] in front
    chosen = choose(records, cfg.objective)
    warnings += reference_note(records, chosen) + _contention_note(measured.session)
    triton = {}
    if chosen and cfg.triton.emit:
        with status("triton"):
            art = next(v.artifact for v in variants if v.name == chosen["name"])
            triton = target.deploy(cfg, DeployInputs(chosen["name"], art, splits.evaluation, cache, out_dir, recipe,
                                                     measured.session.get("id"),
                                                     chosen.get("peak_memory_mb"))).to_dict()
    failed = [v.name for v in variants if v.status == "failed"]
    code = EXIT_FAILED if failed else (EXIT_OK if chosen else EXIT_GATE)
    if code == EXIT_OK and (triton.get("gate") or triton.get("failed")):
        code = EXIT_GATE if triton.get("gate") else EXIT_FAILED
    summary = {
        "recipe": recipe,
        "description": cfg.description,
        "status": {EXIT_OK: "passed", EXIT_GATE: "gate_failed", EXIT_FAILED: "failed"}[code],
        "exit_code": code,
        "chosen": chosen["name"] if chosen else None,
        "objective": cfg.objective.value,
        "task": task,
        "constraints": asdict(cfg.constraints),
        "gate_failures": {**{r["name"]: r["violations"] for r in records if r["violations"]},
                          **({"triton": [triton["gate"]]} if triton.get("gate") else {})},
        "model_repository": triton.get("model_repository"),
        "triton": triton,
        "failed_steps": failed,
        "passes_run": sum(v.ran for v in variants),
        "passes_cached": sum(1 for v in variants[1:] if v.status == "ok" and not v.ran),
        "warnings": warnings,
        "model": {"source": cfg.model.source, "name": cfg.model.name, "io": formats.io(source).to_dict()},
        "data": {"source": cfg.data.source, "inputs": [t.to_dict() for t in splits.inputs()],
                 "labels": splits.has_labels},
        "hardware": {**asdict(cfg.hardware), "device": cfg.hardware.device.value, "host": host()},
        "benchmark_batch_sizes": [int(b) for b in cfg.benchmark.batch_sizes],
        "measurement": measured.session,
        "variants": records,
        "output_dir": str(out_dir),
        "cache_dir": str(cache.root),
        "versions": versions(),
    }
    summary.update(provenance.record(cfg, out_dir, started))  # schema version, start time, git revision, overrides
    gates.apply(cfg.gates, summary)  # regression against gates.baseline: may turn a pass into a gate failure
    summary["summary_path"] = str(write_summary(summary, out_dir))
    summary["plots"] = plots.write_plots(summary, out_dir)  # PNGs next to summary.json, tracked or not
    summary["reports"] = ci_report.write(summary, out_dir)  # report.md and junit.xml for CI
    with status("tracking") if cfg.tracking.enabled else contextlib.nullcontext():
        summary["tracking"] = tracking.log_run(cfg, summary, out_dir)  # never raises; records run ids or why skipped
    summary["finished"] = provenance.now()
    write_summary(summary, out_dir)
    return summary


def _contention_note(session: Dict) -> List[str]:
    """A warning when other processes loaded the machine while the rounds were timed."""
    if not session.get("contended"):
        return []
    return [f"other processes used {session['foreign_cores']:.2f} cores on average while the variants were timed "
            f"({os.cpu_count()} cores here): every round saw that load, so the intervals cannot show what it did to "
            f"the speed-ups; this set will not be reused (measure on a quiet machine, or set "
            f"hardware.intra_op_threads below the core count)"]


def reference_note(records: List[Dict], chosen: Optional[Dict]) -> List[str]:
    """The reference is never emitted (it has no serving format); say so, with the interval over rounds, when
    it measured faster than the chosen variant (the chosen one's verdict at the largest batch is "slower")."""
    ref = records[0]
    bench = chosen.get("benchmark") if chosen else None
    if not bench or ref.get("deployable") or "benchmark" not in ref:
        return []
    bs = max(bench, key=int)
    if chosen.get("verdict", {}).get(bs) != "slower":
        return []
    lo, hi = chosen["speedup_interval"][bs]
    return [f"the {ref.get('format')} reference measured faster than the chosen {chosen['name']} "
            f"({1 / chosen['speedup'][bs]:.2f}x its median-call throughput at batch {bs}, every round {1 / hi:.2f}-{1 / lo:.2f}x) "
            f"but has no serving format; {chosen['name']} is emitted"]
