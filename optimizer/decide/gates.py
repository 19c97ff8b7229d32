"""Regression gates: this run against an earlier run's ``summary.json`` (``gates.baseline=<path>``).

Each gate compares one metric of one variant with the baseline's and passes, or fails naming the metric, the
baseline value, the new value, the interval over rounds and the limit. Speed on the same host is compared in
absolute figures (median-call throughput, p99); a baseline measured on another host is compared only through
ratios to each run's own reference (speed-ups, p99 relative to the reference), and the summary says so. A
speed regression counts only when the whole interval over rounds is beyond the limit (noise is not a
regression): every round's median-call throughput below it, every round's p99 above it. Load that lasts the
whole timed phase slows every round alike, which no interval shows: when either run's measurement was
contended (``measurement.contended``: other processes used cores while it was timed) a speed gate beyond its
limit is reported as inconclusive and does not fail. On a 2-core machine at load average 3-6 an unchanged
int8 re-run moved its pooled p99 by 68 %, had every round of batch-32 throughput below the limit, and its
batch-32 speed-up over its own reference fell from 6.3x to 2.9x (experiments/results/baseline_gate.txt).
Accuracy, parity and size have no rounds and no load dependence; their values compare directly and fail."""

import json
from dataclasses import replace
from pathlib import Path
from typing import Dict, List, Optional

from optimizer.config import GatesConfig
from optimizer.errors import EXIT_GATE, EXIT_OK, RecipeError
from optimizer.records import RunSummary


def load_baseline(path: str) -> Dict:
    """The baseline summary, or RecipeError naming ``gates.baseline``: a regular file holding a finished run's
    summary.json with at least one measured variant (checked before any work, so a bad baseline costs no run)."""
    p = Path(path).expanduser()
    if p.exists() and not p.is_file():  # a directory, a FIFO, a device: never opened
        raise RecipeError(f"gates.baseline {path!r}: not a regular file (give an earlier run's summary.json)")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"gates.baseline {path!r}: no such file (give an earlier run's summary.json)") from None
    except (OSError, ValueError) as e:
        raise RecipeError(f"gates.baseline {path!r}: not a readable summary.json ({e})") from None
    problem = shape_problem(data)
    if problem:
        raise RecipeError(f"gates.baseline {path!r}: not an optimizer summary.json to compare with ({problem})")
    return data


def shape_problem(data) -> Optional[str]:
    """What keeps ``data`` from being a baseline, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
        return "no 'variants' list"
    variants = data["variants"]
    if not all(isinstance(v, dict) and isinstance(v.get("name"), str) for v in variants):
        return "every variant needs a 'name'"
    for v in variants:
        for key in ("evaluation", "benchmark", "speedup"):
            if v.get(key) is not None and not isinstance(v[key], dict):
                return f"variant {v['name']!r}: {key!r} is not a mapping"
    if data.get("chosen") is not None and data["chosen"] not in {v["name"] for v in variants}:
        return f"'chosen' names {data['chosen']!r}, which is not one of its variants"
    if not any(v.get("evaluation") or v.get("benchmark") for v in variants):
        return f"no variant has measured figures (its status is {data.get('status', 'unknown')!r})"
    return None


def origin_note(summary: Dict, baseline: Dict) -> str:
    """Where the baseline differs from this run in recipe, model or task (compared all the same), or ""."""
    fields = {"recipe": lambda s: s.get("recipe"), "model": lambda s: (s.get("model") or {}).get("source"),
              "task": lambda s: s.get("task")}
    differ = [f"{k} {get(baseline)!r} (this run: {get(summary)!r})" for k, get in fields.items()
              if get(baseline) is not None and get(summary) is not None and get(baseline) != get(summary)]
    return f"; the baseline comes from another {', '.join(differ)}" if differ else ""


def num(x: float) -> str:
    """A figure as a reader wants it: whole numbers from 1,000 up (13542, not 1.354e+04), else 4 digits."""
    return f"{x:.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def _gate(name, variant, metric, base, value, limit, passed, interval=None, unit="", note="") -> Dict:
    g = {"name": name, "variant": variant, "metric": metric, "baseline": base, "value": value, "limit": limit,
         "interval": interval, "passed": passed}
    shown = f"{num(value)}{unit}" + (f" (every round {num(interval[0])}-{num(interval[1])})" if interval else "")
    g["message"] = (f"{variant} {name}: {metric} {shown} vs baseline {num(base)}{unit}; limit {num(limit)}{unit}"
                    + (f"; {note}" if note else ""))
    return g


def _speed_gates(cfg, name: str, new: Dict, old: Dict, new_ref: Dict, old_ref: Dict, same_host: bool) -> List[Dict]:
    out = []
    common = sorted(set(new.get("benchmark", {})) & set(old.get("benchmark", {})), key=int)
    for bs in common:
        nb, ob = new["benchmark"][bs], old["benchmark"][bs]
        if cfg.max_throughput_drop is not None:
            if same_host:
                base = ob.get("median_throughput", ob["throughput"])
                value = nb.get("median_throughput", nb["throughput"])
                rounds = nb.get("rounds") or [value]
                interval, unit = [min(rounds), max(rounds)], " samples/s"
                metric = f"median-call throughput at batch {bs}"
            elif bs in new.get("speedup", {}) and bs in old.get("speedup", {}):
                base, value = old["speedup"][bs], new["speedup"][bs]
                interval = new.get("speedup_interval", {}).get(bs) or [value, value]
                metric, unit = f"speed-up vs its own reference at batch {bs}", "x"
            else:
                continue
            limit = base * (1 - cfg.max_throughput_drop / 100)
            key = f"throughput_b{bs}" if same_host else f"speedup_b{bs}"
            note = "below the limit but some round was not: within noise" if value < limit <= interval[1] else ""
            out.append(_gate(key, name, metric, base, value, limit, interval[1] >= limit, interval, unit, note))
        if cfg.max_p99_increase is not None:
            if same_host:
                base, value, metric = ob["p99_ms"], nb["p99_ms"], f"p99 latency at batch {bs}"
                rounds, unit = nb.get("p99_rounds") or [value], " ms"
            else:
                if bs not in new_ref.get("benchmark", {}) or bs not in old_ref.get("benchmark", {}):
                    continue
                nr = new_ref["benchmark"][bs]
                base = ob["p99_ms"] / old_ref["benchmark"][bs]["p99_ms"]
                value = nb["p99_ms"] / nr["p99_ms"]
                rounds = [v / r for v, r in zip(nb.get("p99_rounds") or [], nr.get("p99_rounds") or [])] or [value]
                metric, unit = f"p99 latency relative to its own reference at batch {bs}", "x"
            limit = base * (1 + cfg.max_p99_increase / 100)
            interval = [min(rounds), max(rounds)]
            note = "above the limit but some round was not: within noise" if value > limit >= interval[0] else ""
            out.append(_gate(f"p99_b{bs}" + ("" if same_host else "_ratio"), name, metric, base, value, limit,
                             interval[0] <= limit, interval, unit, note))
    return out


def _inconclusive(gates: List[Dict], contended: List[str]) -> List[Dict]:
    """Speed gates of a contended measurement: load that lasts the whole timed phase slows every round (or the
    reference) alike, so no interval tells it from a regression; a failure becomes ``inconclusive``."""
    for g in gates if contended else []:
        if not g["passed"]:
            g.update(passed=True, inconclusive=True)
            g["message"] += f"; inconclusive: measured under contention ({' and '.join(contended)})"
    return gates


def _quality_gates(cfg, name: str, new: Dict, old: Dict) -> List[Dict]:
    out = []
    ne, oe = new.get("evaluation") or {}, old.get("evaluation") or {}
    if cfg.max_score_drop is not None and "score" in ne and "score" in oe:
        limit = oe["score"] - cfg.max_score_drop
        out.append(_gate("score", name, ne.get("metric", "score"), oe["score"], ne["score"], limit,
                         ne["score"] >= limit))
    if cfg.max_cosine_drop is not None and "mean_cosine" in ne and "mean_cosine" in oe:
        limit = oe["mean_cosine"] - cfg.max_cosine_drop
        out.append(_gate("parity", name, "mean cosine to the reference", oe["mean_cosine"], ne["mean_cosine"], limit,
                         ne["mean_cosine"] >= limit))
    if cfg.max_size_increase is not None and "size_bytes" in new and "size_bytes" in old:
        limit = old["size_bytes"] * (1 + cfg.max_size_increase / 100)
        out.append(_gate("size", name, "model file size", old["size_bytes"], new["size_bytes"], limit,
                         new["size_bytes"] <= limit, unit=" B"))
    return out


def _pairs(cfg, summary: Dict, baseline: Dict, same_host: bool) -> List[tuple]:
    """(new record, baseline record) pairs to compare: the chosen variants, or every variant both runs have."""
    new = {r["name"]: r for r in summary["variants"]}
    old = {r["name"]: r for r in baseline["variants"]}
    if cfg.variants == "chosen":
        if summary.get("chosen") and baseline.get("chosen") in old:
            return [(new[summary["chosen"]], old[baseline["chosen"]])]
        return []
    skip = set() if same_host else {"reference"}  # a reference's speed-up is 1 by definition
    return [(new[n], old[n]) for n in new if n in old and n not in skip]


def compare(cfg, summary: Dict, baseline: Dict, baseline_path: str = "") -> Dict:
    """The regression record for ``summary`` against ``baseline``: host comparison, note and every gate."""
    new_host, old_host = (summary.get("hardware") or {}).get("host"), (baseline.get("hardware") or {}).get("host")
    same_host = bool(new_host) and new_host == old_host and not cfg.ratios
    ratios = "speed compared only through ratios to each run's own reference (speed-ups, p99 relative to the reference)"
    note = ("baseline measured on this host: speed compared in absolute figures" if same_host else
            f"baseline measured on this host, gates.ratios=true: {ratios}" if new_host and new_host == old_host else
            f"baseline measured on another host ({_host(old_host)}; this run: {_host(new_host)}): {ratios}")
    contended = [f"{who} ({(s.get('measurement') or {}).get('foreign_cores', '?')} cores)"
                 for who, s in (("this run", summary), ("the baseline", baseline))
                 if (s.get("measurement") or {}).get("contended")]
    new_ref = summary["variants"][0] if summary["variants"] else {}
    old_ref = baseline["variants"][0] if baseline["variants"] else {}
    gates: List[Dict] = []
    for new, old in _pairs(cfg, summary, baseline, same_host):
        gates += _inconclusive(_speed_gates(cfg, new["name"], new, old, new_ref, old_ref, same_host), contended)
        gates += _quality_gates(cfg, new["name"], new, old)
    if contended:
        note += (f"; other processes used cores while {' and '.join(contended)} was timed: a speed gate beyond its "
                 f"limit is reported, not failed (inconclusive)")
    record = {"baseline": baseline_path, "baseline_chosen": baseline.get("chosen"), "baseline_host": old_host,
              "same_host": same_host, "contended": contended, "note": note, "tolerances": {
                  "max_throughput_drop": cfg.max_throughput_drop, "max_p99_increase": cfg.max_p99_increase,
                  "max_score_drop": cfg.max_score_drop, "max_cosine_drop": cfg.max_cosine_drop,
                  "max_size_increase": cfg.max_size_increase},
              "gates": gates, "passed": all(g["passed"] for g in gates)}
    record["note"] += origin_note(summary, baseline)
    if not gates:
        record["note"] += "; nothing to compare (no chosen variant in one of the runs, or no common variant)"
    return record


def _host(h: Optional[Dict]) -> str:
    return "unknown" if not h else f"{h.get('cpu', '?')}, {h.get('cpus', '?')} CPUs"


def apply(cfg: GatesConfig, summary: RunSummary) -> RunSummary:
    """With ``gates.baseline`` set, the summary with its ``regression`` record; a failed gate adds
    ``gate_failures["regression"]`` and turns a passing run into a gate failure (exit 3)."""
    if not cfg.baseline:
        return summary
    record = compare(cfg, summary.to_dict(), load_baseline(cfg.baseline),
                     str(Path(cfg.baseline).expanduser().resolve()))
    summary = replace(summary, regression=record)
    if not record["passed"] and summary.exit_code == EXIT_OK:
        summary = replace(summary, exit_code=EXIT_GATE, status="gate_failed")
    return summary
