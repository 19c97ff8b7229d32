"""plan -> run passes (cache hit? load : run) -> measure -> price, judge, choose -> deploy to each target ->
summary, plots, reports, tracking. Each stage is a function below; after measurement everything is a typed
record (``optimizer.records``), turned into JSON only where it is written."""

import contextlib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.formats import versions
from optimizer.console import step as status
from optimizer.errors import OptimizerError, RecipeError, interruptible
from optimizer.recipe.plan import Step, check_environment, plan
from optimizer.records import MeasuredSet, RunSummary, TargetRecord, VariantRecord
from optimizer.chain import Variant, check_produced, judge_all, run_chain
from optimizer.targets import TARGETS, DeployInputs

if TYPE_CHECKING:
    from optimizer.sources.data import Splits


def run(cfg, out_dir: Path, recipe: str) -> RunSummary:
    """Run the recipe ``cfg`` end to end; write and return the summary.

    Once planning succeeded, every failure still writes ``summary.json`` (status ``error``, the exit code and
    the one-line error) before it propagates, if the run directory has room for it (``record.stopped``)."""
    from optimizer.record import rundir, stopped

    steps = plan(cfg)
    if cfg.search.space:  # every trial's values planned too, before anything runs
        from optimizer.recipe.space import check

        check(cfg)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        inputs = rundir.user_inputs(cfg)  # what the user gave is never removed or overwritten
        rundir.check_inputs(out_dir, inputs, own_repository=not cfg.triton.repository)
        # nothing stale from an earlier run into the same directory
        rundir.clean(out_dir, [s.label for s in steps], own_repository=not cfg.triton.repository,
                     keep=inputs.values())
    except OSError as e:
        raise RecipeError(f"run directory {str(out_dir)!r} cannot be written ({e.strerror or e}); "
                          f"choose another with hydra.run.dir=DIR") from None
    try:
        with interruptible():  # SIGTERM / SIGINT: summary.json says interrupted
            preflight_all(cfg, out_dir)
            check_environment(steps, cfg)  # a GPU, TensorRT: before any work, with summary.json on failure
            return _execute(cfg, steps, out_dir, recipe)
    except OptimizerError as e:
        stopped.write(cfg, recipe, out_dir, e)
        raise
    except Exception as e:  # a full run directory, or a defect (its traceback in error.txt): reported in one line
        err = stopped.error(out_dir, e)
        stopped.write(cfg, recipe, out_dir, err)
        raise err from e


@dataclass(frozen=True)
class Inputs:
    """What every stage after planning works on: the cache, the data, the task and the source model."""

    cache: Cache
    splits: "Splits"
    task: str
    source: Artifact


def load_inputs(cfg) -> Inputs:
    """The cache, the data splits, the task and the source model (built or loaded), checked before any pass."""
    from optimizer import formats
    from optimizer.recipe.guards import recipe_factories
    from optimizer.evaluate import check_labels, check_outputs, model_task, resolve_task
    from optimizer.measure.limits import check_memory
    from optimizer.sources.data import load_splits
    from optimizer.sources.models import load_source

    cache = Cache(cfg.cache_dir, recipe_factories(cfg))  # a cached model is rebuilt only by a factory the recipe names
    splits = load_splits(cfg.data, cfg.seed, cfg.model)
    task = resolve_task(cfg.evaluation.task, splits.has_labels)
    with status("model") as shown:
        built = cache.built
        source = load_source(cfg.model, splits, cache, cfg.seed)
        shown["outcome"] = "built" if cache.built > built else "loaded"  # trained or converted now, or as it was
        if cfg.model.state:
            from optimizer.sources.state import carried

            splits = carried(source, splits, dict(cfg.model.state), cfg.hardware)
    task = model_task(task, cfg.evaluation.task, source.meta)
    output = check_outputs(task, formats.io(source), cfg.evaluation.output)
    check_labels(task, formats.io(source), output, splits.evaluation_labels, source.meta)
    check_memory(cfg, source, splits)  # a batch that cannot fit is refused before any pass runs
    return Inputs(cache, splits, task, source)


def measure_all(variants: List[Variant], inputs: Inputs, cfg) -> MeasuredSet:
    """Evaluate and time every variant as one measurement set."""
    from optimizer.measure.run import measure

    with status("measure") as shown:
        measured = MeasuredSet.of(measure(variants, inputs.splits, cfg, inputs.cache, inputs.task))
        shown["outcome"] = "reused" if measured.reused else "done"
    return measured


def _execute(cfg, steps: List[Step], out_dir: Path, recipe: str) -> RunSummary:
    from optimizer.decide import gates
    from optimizer.decide.select import choose
    from optimizer.record import provenance
    from optimizer.record.summary import contention_note, reference_note, source_note

    started = provenance.now()
    if cfg.gates.baseline:
        gates.load_baseline(cfg.gates.baseline)  # a missing or unreadable baseline is a recipe error, before any work
    inputs = load_inputs(cfg)
    searched = None
    if cfg.search.space:  # recipe=auto: the finalists of the trials, measured together below
        from optimizer.search.run import search

        variants, searched = search(cfg, inputs, out_dir)
    else:
        variants = run_chain(steps, inputs.source, inputs.cache,
                             dict(data=inputs.splits, hardware=cfg.hardware, seed=cfg.seed), out_dir)
    check_produced(variants)
    measured = measure_all(variants, inputs, cfg)
    records, warnings = judge_all(variants, measured, cfg.hardware.price_per_hour, cfg.serving, cfg.constraints)
    chosen = choose(records, cfg.objective)
    deployed = deploy_all(cfg, chosen, variants, inputs, out_dir, recipe, measured.id)
    warnings = (inputs.cache.warnings + source_note(records, chosen, cfg.objective.value) + warnings
                + reference_note(records, chosen) + contention_note(measured.session))
    summary = replace(_summary(cfg, recipe, variants, records, chosen, deployed, inputs, measured, out_dir),
                      warnings=tuple(warnings), provenance=provenance.record(cfg.model.source, out_dir, started),
                      search=searched)
    summary = gates.apply(cfg.gates, summary)  # regression against gates.baseline: may turn a pass into a gate failure
    return publish(summary, cfg, out_dir)


def preflight_all(cfg, out_dir: Path) -> None:
    """Every target's settings checked at plan time (serving, cost, repository), before any work."""
    for target in TARGETS.values():
        target.load().preflight(cfg, out_dir)


def deploy_all(cfg, chosen: Optional[VariantRecord], variants: List[Variant], inputs: Inputs, out_dir: Path,
               recipe: str, measurement_id: Optional[str]) -> Dict[str, Optional[TargetRecord]]:
    """Each target's record by name: what it did with the chosen variant (None: not enabled, or nothing chosen)."""
    from optimizer.formats import with_runtime

    out: Dict[str, Optional[TargetRecord]] = {}
    for name, target in TARGETS.items():
        impl = target.load()
        out[name] = None
        if chosen is not None and impl.enabled(cfg):
            variant = next(v for v in variants if v.name == chosen.name)
            artifact = variant.artifact
            served = replace(cfg, hardware=with_runtime(cfg.hardware, variant.runtime)) if variant.runtime else cfg
            with status(name):
                out[name] = impl.deploy(served, DeployInputs(chosen.name, artifact, inputs.splits.evaluation,
                                                          inputs.cache, out_dir, recipe, measurement_id,
                                                          chosen.extras.get("peak_memory_mb")))
    return out


def exit_code(variants: List[Variant], chosen: Optional[VariantRecord], deployed: List[TargetRecord]) -> int:
    """1 when a step or a target's check failed, 3 when nothing was chosen or a target missed its gate, else 0."""
    from optimizer.errors import EXIT_FAILED, EXIT_GATE, EXIT_OK

    if any(v.status == "failed" for v in variants):
        return EXIT_FAILED
    if chosen is None:
        return EXIT_GATE
    for record in deployed:
        if record.gate or record.failed:
            return EXIT_GATE if record.gate else EXIT_FAILED
    return EXIT_OK


def _summary(cfg, recipe: str, variants: List[Variant], records: List[VariantRecord], chosen: Optional[VariantRecord],
             deployed: Dict[str, Optional[TargetRecord]], inputs: Inputs, measured: MeasuredSet,
             out_dir: Path) -> RunSummary:
    from optimizer import formats
    from optimizer.errors import EXIT_FAILED, EXIT_GATE, EXIT_OK
    from optimizer.measure.run import host

    code = exit_code(variants, chosen, [r for r in deployed.values() if r is not None])
    return RunSummary(
        recipe=recipe, description=cfg.description,
        status={EXIT_OK: "passed", EXIT_GATE: "gate_failed", EXIT_FAILED: "failed"}[code], exit_code=code,
        chosen=chosen.name if chosen else None, objective=cfg.objective.value, task=inputs.task,
        constraints=asdict(cfg.constraints), targets=deployed,
        failed_steps=tuple(v.name for v in variants if v.status == "failed"),
        passes_run=sum(v.ran for v in variants),
        passes_cached=sum(1 for v in variants[1:] if v.status == "ok" and not v.ran),
        model={"source": cfg.model.source, "name": cfg.model.name, "io": formats.io(inputs.source).to_dict()},
        data={"source": cfg.data.source, "inputs": [t.to_dict() for t in inputs.splits.inputs()],
              "labels": inputs.splits.has_labels},
        hardware={**asdict(cfg.hardware), "device": cfg.hardware.device.value, "host": host()},
        benchmark_batch_sizes=tuple(cfg.benchmark.batch_sizes), measurement=measured.session,
        variants=tuple(records), output_dir=str(out_dir), cache_dir=str(inputs.cache.root), versions=versions(),
        provenance={})


def publish(summary: RunSummary, cfg, out_dir: Path) -> RunSummary:
    """Plots, report.md and junit.xml, MLflow, and summary.json: written once, or with tracking on also before
    it, so that a slow or killed MLflow upload still leaves a complete summary."""
    from optimizer.record import chargeback, ci, plots, provenance, story, tracking
    from optimizer.record.summary import write_summary

    summary = replace(summary, summary_path=str(out_dir / "summary.json"))
    summary = replace(summary, story=story.tell(summary.to_dict(), cfg.hardware.price_per_hour))  # verdict, factors
    summary = replace(summary, plots=plots.write_plots(summary.to_dict(), out_dir))  # PNGs, tracked or not
    summary = replace(summary, reports={**ci.write(summary.to_dict(), out_dir),  # report.md and junit.xml
                                        **chargeback.write(cfg, summary.to_dict(), out_dir)})  # with tenants
    if cfg.tracking.enabled:
        write_summary(summary.to_dict(), out_dir)
    with status("tracking") if cfg.tracking.enabled else contextlib.nullcontext():
        summary = replace(summary, tracking=tracking.log_run(cfg, summary.to_dict(), out_dir))  # never raises
    summary = replace(summary, finished=provenance.now())
    write_summary(summary.to_dict(), out_dir)
    return summary
