"""A chain of steps run through the cache, one variant per step; and the variants judged once measured. The
pipeline runs the recipe's chain; ``recipe=auto`` runs one chain per trial (``optimizer.search``)."""

import contextlib
import time
import traceback
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.console import step as status
from optimizer.errors import OptimizerError, PassError
from optimizer.files import content_key, write_atomic
from optimizer.formats import versions
from optimizer.recipe.plan import Step
from optimizer.records import MeasuredSet, VariantRecord
from optimizer.registry import Context, code_digest


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
    runtime: Dict = field(default_factory=dict)  # a trial's hardware.<option>: session options for this variant


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
    if step.skip:  # nothing to do: the next step works on the same model
        v.status, v.error = "skipped", step.skip
        return art
    key = content_key(art.id, step.spec.name, asdict(step.config), ctx_base["data"].fingerprint,
                      ctx_base["hardware"].device.value, versions(), code_digest())
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
        write_atomic(log, "".join(traceback.format_exception(e)).encode())  # a full run directory: raises
        v.status, v.error = "failed", f"{err} (traceback: {log.name})"
        return None
    finally:
        v.seconds = time.perf_counter() - t0
    v.artifact = cached
    return cached


class NothingProduced(OptimizerError):
    """Every step failed or was skipped: nothing to measure. Carries the variants for the summary."""

    def __init__(self, variants: List[Variant]):
        failed = next(v for v in variants[1:] if v.status == "failed")
        super().__init__(f"no step produced a model, so nothing was measured; {failed.error}")
        self.variants = variants


def check_produced(variants: List[Variant]) -> None:
    """A chain whose every step failed or was skipped fails before any timing, naming the first failure."""
    if any(v.status == "failed" for v in variants[1:]) and not any(v.status == "ok" for v in variants[1:]):
        raise NothingProduced(variants)


def judge_all(variants: List[Variant], measured: MeasuredSet, price_per_hour: Optional[float], serving,
              constraints) -> Tuple[List[VariantRecord], List[str]]:
    """Every variant's record, priced and judged against the constraints, and the warnings its figures raise."""
    from optimizer.decide.cost import price
    from optimizer.decide.select import judge, throughput
    from optimizer.record.summary import variant_record, warnings, with_drops

    records = with_drops([variant_record(v, measured.variants.get(v.name)) for v in variants])
    priced = [replace(r, cost=price(price_per_hour, throughput(r), serving)) for r in records]
    return judge(priced, constraints), warnings(records)
