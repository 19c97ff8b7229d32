"""Evaluate and time every variant of a run as one measurement set, in one worker process per variant.

The coordinator starts one worker per variant (the torch reference included), has each load its variant
and run the evaluation split (outputs come back for the task metrics and parity), then, holding the
host-wide lock, runs interleaved rounds of timed blocks (``rounds.py``) and pools the raw latencies into
figures with their spread (``stats.py``). When the workers would not fit in memory together, they are
timed in groups that each include the reference.

By default (``benchmark.fresh_workers``) every round runs in new worker processes. A process's speed can
stay off for its whole life: on a quiet machine the torch reference at batch 32 measured between 1,485
and 2,040 samples/s from one fresh process to the next, while the blocks within one process agreed within
5 %. With one process per variant for the whole run, that offset entered every round alike, the interval
over rounds could not show it. With a process per round it varies over the rounds like other noise, and
the median ratio absorbs it (experiments/results/measurement.txt has what three sets of the same variants
gave either way). The cost is a start-up per round (about 1 s, all workers at once).

The whole set is cached as one record keyed by every variant's artifact id, the benchmark and evaluation
settings, the hardware entry and the host, and reused only as a whole: a run with any other variant
re-measures all of them together, and a set with an unstable figure is never reused."""

import os
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Dict, List, Optional

from optimizer.cache import Cache
from optimizer.errors import VariantFailed
from optimizer.files import content_key
from optimizer.gpu import is_cuda
from optimizer.io import count, take
from optimizer.sources.data import Splits

SETS = "measurements"  # cache directory holding one JSON record per measurement set
SCHEMA = 3  # bumped when the figures a set holds are computed differently (2: speed-ups from median calls;
# 3: rounds outermost, each in fresh worker processes)


@dataclass(frozen=True)
class Measured:
    variants: Dict[str, Dict]  # variant name -> evaluation, benchmark, speed-up with interval and verdict, memory
    session: Dict  # the measurement session: id, start, load averages, reuse, lock wait, groups, block log


def host() -> Dict[str, str]:
    """What identifies this machine's speed: CPU model and count, architecture."""
    import platform

    from optimizer.host import cpu_model

    model = cpu_model() or platform.processor()
    return {"cpu": model, "cpus": str(os.cpu_count()), "machine": platform.machine()}


def set_key(ok: List, cfg, splits: Splits) -> str:
    """The key of a measurement set: its variants' names and artifact ids, settings, hardware entry, host."""
    bench = {k: v for k, v in asdict(cfg.benchmark).items() if k != "reuse"}
    hw = cfg.hardware  # what changes timings, not the price or the label
    runtime = [sorted((getattr(v, "runtime", None) or {}).items()) for v in ok]  # a trial's session options
    named = [(v.name, v.artifact.id, *([r] if r else [])) for v, r in zip(ok, runtime)]
    return content_key("measure-set", SCHEMA, named, bench, asdict(cfg.evaluation), hw.device.value, hw.cores, hw.intra_op_threads, host(), splits.fingerprint,
                       hw.execution_mode.value, hw.inter_op_threads, hw.graph_optimization_level.value,
                       *([hw.onnx_provider] if is_cuda(hw) else []))[:32]


def reusable(record: Optional[Dict], names: List[str]) -> bool:
    """A cached set is reused only whole (exactly these variants), and only when no figure was unstable and
    no other process loaded the machine while it was timed."""
    session = (record or {}).get("session", {})
    return (record is not None and sorted(record.get("variants", {})) == sorted(names)
            and not session.get("unstable", True) and not session.get("contended", False))


def measure(variants: List, splits: Splits, cfg, cache: Cache, task: str) -> Measured:
    """Evaluate and time the run's ok variants together, or reuse the set measured together before. A variant
    that cannot be loaded, run or timed is marked failed with its reason, and the others are measured without
    it; only the reference failing fails the run."""
    ok = [v for v in variants if v.status == "ok"]
    key = set_key(ok, cfg, splits)
    record = cache.read_json(SETS, key) if cfg.benchmark.reuse else None
    if reusable(record, [v.name for v in ok]):
        return Measured({n: {**r, "reused": True} for n, r in record["variants"].items()},
                        {**record["session"], "reused": True, "lock_wait_seconds": 0.0, "key": key})
    while True:
        try:
            record = measure_set(ok, splits, cfg, cache, task)
            break
        except VariantFailed as e:
            broken = next((v for v in ok[1:] if v.name == e.variant), None)
            if broken is None:  # the reference: nothing left to compare with
                raise
            broken.status, broken.error = "failed", str(e)
            ok.remove(broken)
            key = set_key(ok, cfg, splits)
    cache.write_json(SETS, key, record)
    return Measured({n: {**r, "reused": False} for n, r in record["variants"].items()},
                    {**record["session"], "reused": False, "key": key})


def _eval_set(cfg, splits: Splits):
    n = cfg.evaluation.max_samples or count(splits.evaluation)
    labels = splits.evaluation_labels[:n] if splits.evaluation_labels is not None else None
    return take(splits.evaluation, slice(0, n)), labels


def _plan(ok: List, cfg) -> List[List[str]]:
    from optimizer.host import mem_available_mb
    from optimizer.measure.rounds import footprint_mb, groups

    budget = cfg.benchmark.memory_budget_mb or 0.8 * mem_available_mb()
    sizes = {v.name: footprint_mb(v.artifact.format, Path(v.artifact.path).stat().st_size) for v in ok}
    return groups([v.name for v in ok], sizes, budget)


def measure_set(ok: List, splits: Splits, cfg, cache: Cache, task: str) -> Dict:
    """Measure the variants ``ok`` (the reference first) together: ``{"variants": ..., "session": ...}``."""
    from optimizer.console import progress
    from optimizer.measure.contention import verdict

    x, y = _eval_set(cfg, splits)
    plan = _plan(ok, cfg)
    session = {"id": uuid.uuid4().hex[:12], "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "host": host(), "load_before": list(os.getloadavg()), "rounds": int(cfg.benchmark.rounds),
               "groups": plan, "lock_wait_seconds": 0.0, "startup_seconds": 0.0, "timing_seconds": 0.0,
               "worker_starts": 0, "blocks": []}
    if len(plan) > 1:
        session["note"] = (f"the workers of all {len(ok)} variants would not fit in memory together; they were "
                           f"timed in {len(plan)} groups, each with the reference")
    by_name, outputs, pooled, memory = {v.name: v for v in ok}, {}, {}, {}
    t0 = time.perf_counter()
    with progress("measuring", sum(len(g) for g in plan) * len(cfg.benchmark.batch_sizes) * cfg.benchmark.rounds) as adv:
        for gi, group in enumerate(plan):
            pooled[gi] = _time_group(gi, [by_name[n] for n in group], x, cfg, cache, session, outputs, memory, adv)
    session.update(load_after=list(os.getloadavg()), seconds=time.perf_counter() - t0,
                   **verdict(session.get("contention", []), cfg.benchmark.max_foreign_cores))
    records = _assemble(ok, plan, pooled, outputs, memory, y, cfg, task)
    session["unstable"] = any(r["unstable"] for r in records.values())
    return {"variants": records, "session": session}


def _time_group(gi: int, group: List, x, cfg, cache: Cache, session: Dict, outputs: Dict, memory: Dict,
                advance) -> Dict[str, Dict]:
    """Time the rounds of one group under the host lock (workers started afresh per round, or once for all
    rounds); the pooled figures per variant and batch size."""
    from optimizer.measure.lock import host_lock
    from optimizer.measure.rounds import block_log, round_blocks
    from optimizer.measure.stats import pooled

    names, sizes, rounds = [v.name for v in group], cfg.benchmark.batch_sizes, int(cfg.benchmark.rounds)
    starts = [[r] for r in range(rounds)] if cfg.benchmark.fresh_workers else [list(range(rounds))]
    blocks = []
    with host_lock(cache.root) as lock:  # the whole timed phase: another run's rounds never interleave
        for rs in starts:
            order = [b for r in rs for b in round_blocks(names, sizes, r)]
            blocks += _run_workers(group, order, x, cfg, session, outputs, memory, advance)
    session["lock_wait_seconds"] += lock["wait_seconds"]
    session["blocks"] += block_log(blocks, gi)
    session["worker_starts"] += len(starts)
    return {n: {str(bs): pooled([b["latencies"] for b in blocks if b["variant"] == n and b["batch_size"] == bs],
                                bs, cfg.benchmark.max_cv)
                for bs in map(int, sizes)} for n in names}


def _run_workers(group: List, order: List, x, cfg, session: Dict, outputs: Dict, memory: Dict, advance) -> List[Dict]:
    """Start one worker per variant, evaluate the variants not evaluated yet, time the blocks ``order``,
    record peak memory, stop the workers; the blocks with their raw latencies."""
    from optimizer.formats import with_runtime
    from optimizer.formats import threads
    from optimizer.measure.contention import Meter
    from optimizer.measure.rounds import run_blocks
    from optimizer.measure.worker import Worker

    t0 = time.perf_counter()
    hw = {v.name: with_runtime(cfg.hardware, getattr(v, "runtime", None) or {}) for v in group}
    workers = {v.name: Worker(v.name, threads(hw[v.name])) for v in group}
    try:
        for v in group:  # start-up and loading overlap: imports dominate and nothing is timed yet
            workers[v.name].send("load", v.artifact, hw[v.name])
        for w in workers.values():
            w.receive()
        session["startup_seconds"] += time.perf_counter() - t0
        for name, w in workers.items():
            w.call("feeds", x)
            if name not in outputs:
                outputs[name] = w.call("predict", cfg.evaluation.batch_size)
        t0 = time.perf_counter()
        meter = Meter(w.proc.pid for w in workers.values()).start()
        blocks = run_blocks(workers, order, cfg.benchmark, advance)
        session.setdefault("contention", []).append(meter.stop())
        session["timing_seconds"] += time.perf_counter() - t0
        for name, w in workers.items():
            for key, value in w.call("memory").items():  # peak_memory_mb, and gpu_memory_mb on a GPU
                memory.setdefault(name, {})[key] = max(memory.get(name, {}).get(key, 0.0), value)
            if cfg.benchmark.profile_batch_size and "profile" not in memory[name]:  # once, after its first timing
                memory[name]["profile"] = w.call("profile", cfg.benchmark.profile_batch_size)
    except BaseException:  # interrupted (SIGTERM, Ctrl-C) or failed: stop the workers now, not after their block
        for w in workers.values():
            w.kill()
        raise
    finally:
        for w in workers.values():
            w.close()
    return blocks


def _assemble(ok: List, plan: List[List[str]], pooled: Dict, outputs: Dict, memory: Dict, y, cfg, task: str) -> Dict:
    """Each variant's record: evaluation and parity, pooled figures of its group, speed-ups vs that group's
    reference with intervals and verdicts, peak memory, and the batch sizes whose figures are unstable."""
    from optimizer.measure import stats
    from optimizer.evaluate import metrics, primary

    records = {}
    ref_name = ok[0].name
    for v in ok:
        gi = next(i for i, g in enumerate(plan) if v.name in g)
        bench = pooled[gi][v.name]
        name = primary(outputs[v.name], cfg.evaluation.output)
        base = parity_base(v, outputs)
        is_ref = v.name == ref_name
        ev = metrics(task, outputs[v.name], y, name, None if is_ref else outputs.get(base))
        if not is_ref:
            ev.update(parity_base=base, parity_gated=gated(v, base))
        records[v.name] = {"evaluation": ev, "benchmark": bench, "group": gi,
                           **stats.compare(bench, pooled[gi][ref_name], is_ref),
                           "unstable": [bs for bs, b in bench.items() if b["unstable"]]}
        records[v.name].update(memory.get(v.name, {}))
    return records


def gated(v, base: str) -> bool:
    """Whether parity against ``base`` gates the variant: not for a retrained model compared with the reference (the
    retraining step itself, or a later one whose retrained model was not measured, as in a search's trial): a model
    trained anew is judged by its task metric."""
    retrained = v.artifact.meta.get("retrained")
    return not retrained or (retrained != v.name and base != "reference")


def parity_base(v, outputs: Dict) -> str:
    """What a variant's outputs are compared with: the reference, or the last step of its chain that retrained
    the model on purpose (prune, distill; ``meta["retrained"]``), whose own parity is reported but not gated."""
    base = v.artifact.meta.get("retrained")
    return base if base and base != v.name and base in outputs else "reference"
