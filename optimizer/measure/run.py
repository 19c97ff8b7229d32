"""Evaluate and benchmark every variant, one after the other, reusing cached measurements.

Measurements are keyed by the artifact id, the evaluation and benchmark settings, the
hardware entry and the host's CPU, so a re-run on the same machine measures nothing again.
They are reused only when every variant of the run has one: otherwise all are timed afresh,
so that the speed-ups in one summary always compare timings taken in the same run."""

import gc
import os
import platform
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List


from optimizer.measure.benchmark import benchmark, peak_memory
from optimizer.cache import Cache, content_key
from optimizer.console import progress
from optimizer.sources.data import Splits
from optimizer.io import Feeds, count, take
from optimizer.measure.evaluate import metrics, predict, primary
from optimizer.formats import load


def host() -> Dict[str, str]:
    """What identifies this machine's speed: CPU model and count, architecture."""
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cpus": str(os.cpu_count()), "machine": platform.machine()}


def _key(cfg, splits: Splits) -> str:
    bench = {k: v for k, v in asdict(cfg.benchmark).items() if k != "reuse"}
    hw = cfg.hardware  # what changes timings, not the price or the label
    return content_key("measure", bench, asdict(cfg.evaluation), hw.device.value, hw.cores, hw.intra_op_threads,
                       host(), splits.fingerprint)


def _eval_set(cfg, splits: Splits):
    n = cfg.evaluation.max_samples or count(splits.evaluation)
    labels = splits.evaluation_labels[:n] if splits.evaluation_labels is not None else None
    return take(splits.evaluation, slice(0, n)), labels


def measure(variants: List, splits: Splits, cfg, cache: Cache, task: str) -> Dict[str, Dict]:
    """``{variant name: {"evaluation", "benchmark", "peak_memory_mb", "reused"}}`` for ok variants."""
    key = "measure-" + _key(cfg, splits)[:24]
    x, y = _eval_set(cfg, splits)
    ok = [v for v in variants if v.status == "ok"]
    results = {v.name: cache.read_json(v.artifact.id, key) if cfg.benchmark.reuse else None for v in ok}
    if all(r is not None for r in results.values()):
        return {name: {**r, "reused": True} for name, r in results.items()}
    # speed-ups compare variants, so all of them are timed in the same run, under the same load
    outputs, records = {}, {}
    with progress("benchmarking", len(ok) * len(cfg.benchmark.batch_sizes)) as advance:
        for v in ok:
            outputs[v.name], records[v.name] = _measure_one(v, x, cfg, advance)
    for v in ok:
        name = primary(outputs[v.name], cfg.evaluation.output)
        base = parity_base(v, outputs)
        ev = metrics(task, outputs[v.name], y, name, outputs.get(base) if v.name != "reference" else None)
        if v.name != "reference":
            ev.update(parity_base=base, parity_gated=v.artifact.meta.get("retrained") != v.name)
        record = {"evaluation": ev, **records[v.name]}
        cache.write_json(v.artifact.id, key, record)
        results[v.name] = {**record, "reused": False}
    return results


def parity_base(v, outputs: Dict) -> str:
    """What a variant's outputs are compared with: the reference, or the last step of its chain that retrained
    the model on purpose (prune, distill; ``meta["retrained"]``), whose own parity is reported but not gated."""
    base = v.artifact.meta.get("retrained")
    return base if base and base != v.name and base in outputs else "reference"


def _measure_one(v, x: Feeds, cfg, advance):
    gc.collect()
    with peak_memory() as mem:
        session = load(v.artifact, cfg.hardware)
        outputs = predict(session, x, cfg.evaluation.batch_size)
        timings = benchmark(session, x, cfg.benchmark, advance)
        session.close()
        del session
    gc.collect()
    return outputs, {"benchmark": timings, **mem}
