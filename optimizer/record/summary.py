"""The run's record: each variant's typed record and the warnings its figures raise, ``summary.json``, and the
terminal table (drawn, like report.md, from the summary's JSON form)."""

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from optimizer.files import write_atomic
from optimizer.formats import get
from optimizer.records import VariantRecord


def variant_record(v, m: Optional[Mapping]) -> VariantRecord:
    """Everything known about one variant before the decision: ``v`` (a ``chain.Variant``: name, chain,
    status, artifact) and ``m``, its figures from the measurement set (None: not measured)."""
    facts: Dict = {}
    if v.artifact is not None:
        a = v.artifact
        facts.update(artifact_id=a.id, parent_id=a.parent, format=a.format, path=str(a.path),
                     precision=a.meta.get("precision", "fp32"), size_bytes=Path(a.path).stat().st_size,
                     deployable=get(a.format).triton_platform is not None,
                     meta={k: val for k, val in a.meta.items() if k not in ("factory", "kwargs")})
    if m:
        facts.update(evaluation=m["evaluation"], benchmark=m["benchmark"], measurements_reused=m["reused"],
                     speedup=m.get("speedup"), speedup_interval=m.get("speedup_interval"), verdict=m.get("verdict"),
                     unstable=tuple(m["unstable"]) if "unstable" in m else None,
                     extras={k: m[k] for k in ("group", "peak_memory_mb", "gpu_memory_mb", "profile") if k in m})
    if getattr(v, "runtime", None):  # a search trial's session options, in place of the hardware entry's
        facts["extras"] = {**facts.get("extras", {}), "runtime": dict(v.runtime)}
    return VariantRecord(v.name, tuple(v.chain), v.status, v.ran, round(v.seconds, 3), v.error, **facts)


def with_drops(records: Sequence[VariantRecord]) -> List[VariantRecord]:
    """Each measured variant with its accuracy drop vs the reference (``score_drop`` and ``<metric>_drop``)."""
    ref = records[0] if records and records[0].benchmark is not None else None
    if ref is None:
        return list(records)
    out = []
    for r in records:
        ev = r.evaluation
        if ev is not None:
            drop = ref.evaluation["score"] - ev["score"]
            r = replace(r, evaluation={**ev, "score_drop": drop, f"{ev['metric']}_drop": drop})
        out.append(r)
    return out


def warnings(records: Sequence[VariantRecord]) -> List[str]:
    """Warnings for measured slow-downs (a "slower" verdict: the whole interval over rounds below 1), unstable
    figures, and those passes recorded in ``meta["warnings"]`` (each once: descendants inherit the meta)."""
    ref = records[0] if records and records[0].benchmark is not None else None
    out: List[str] = []
    for r in records:
        for w in r.meta.get("warnings", []):
            if not any(x.endswith(f": {w}") for x in out):
                out.append(f"{r.name}: {w}")
    for r in records:
        if r.evaluation is None or ref is None:
            continue
        slow = [bs for bs, v in (r.verdict or {}).items() if v == "slower"]
        if slow and r is not ref:
            bs = min(slow, key=lambda b: r.speedup[b])
            lo, hi = r.speedup_interval[bs]
            out.append(f"{r.name} ({r.precision}) is slower than the reference: "
                       f"{r.speedup[bs]:.2f}x its median-call throughput at batch {bs} (every round {lo:.2f}-{hi:.2f}x)")
        if r.unstable:
            out.append(f"{r.name}: unstable timings at batch {', '.join(r.unstable)} (latency CV above "
                       f"benchmark.max_cv); the machine was busy, and this measurement will not be reused")
    return out


def contention_note(session: Mapping) -> List[str]:
    """A warning when other processes loaded the machine while the rounds were timed."""
    if not session.get("contended"):
        return []
    return [f"other processes used {session['foreign_cores']:.2f} cores on average while the variants were timed "
            f"({os.cpu_count()} cores here): every round saw that load, so the intervals cannot show what it did to "
            f"the speed-ups; this set will not be reused (measure on a quiet machine, or set "
            f"hardware.intra_op_threads below the core count)"]


def reference_note(records: List[VariantRecord], chosen: Optional[VariantRecord]) -> List[str]:
    """The reference is never emitted (it has no serving format); say so, with the interval over rounds, when
    it measured faster than the chosen variant (the chosen one's verdict at the largest batch is "slower")."""
    ref = records[0]
    if chosen is None or not chosen.benchmark or ref.deployable or ref.benchmark is None:
        return []
    bs = str(chosen.sizes()[-1])
    if (chosen.verdict or {}).get(bs) != "slower":
        return []
    lo, hi = chosen.speedup_interval[bs]
    return [f"the {ref.format} reference measured faster than the chosen {chosen.name} "
            f"({1 / chosen.speedup[bs]:.2f}x its median-call throughput at batch {bs}, every round {1 / hi:.2f}-{1 / lo:.2f}x) "
            f"but has no serving format; {chosen.name} is emitted"]


def source_note(records: List[VariantRecord], chosen: Optional[VariantRecord], objective: str) -> List[str]:
    """When the chosen variant is the unmodified source (an ONNX file measured as the reference), say so
    plainly: no optimization survived, and whether the optimized variants failed the constraints or lost."""
    if chosen is None or chosen.chain:
        return []
    passed = [r.name for r in records if r.chain and r.ok and not r.violations]
    if passed:
        return [f"no optimized variant beat the source model on {objective} ({', '.join(passed)} met the "
                f"constraints but measured worse): the source model is emitted"]
    return ["no optimized variant met the constraints: the source model is emitted"]


def speed_cell(r: Dict, bs: str) -> str:
    """The table's speed-up cell: ``4.4x``, ``1.02x same``, red ``0.80x slower``; ``unstable`` flagged."""
    speed = r.get("speedup", {}).get(bs)
    if speed is None:
        return "-"
    verdict = r.get("verdict", {}).get(bs)
    text = f"{speed:.2f}x" + (f" {verdict}" if verdict in ("same", "slower") and r["chain"] else "")
    if verdict == "slower":
        text = f"[red]{text}[/red]"
    if bs in r.get("unstable", []):
        text += " [yellow]unstable[/yellow]"
    return text


def write_summary(summary: Dict, out_dir: Path) -> Path:
    """Write ``summary.json``: paths relative to the run directory, the absolute ones under ``paths``."""
    from optimizer.record.provenance import portable

    path = Path(out_dir) / "summary.json"
    write_atomic(path, json.dumps(portable({**summary, "summary_path": str(path)}), indent=2, default=str).encode())
    return path


_SHORT = {"accuracy": "acc %", "nn_agreement": "NN agree %", "next_token_agreement": "next-token %",
          "cosine_similarity": "cosine %"}  # headline metric -> column title


def _fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


def columns(summary: Dict) -> List[Tuple[str, str, int, Callable[[Dict], str]]]:
    """The results table as ``(title, justify, priority, cell(record) -> text)``: the terminal table, report.md.
    Priority 1 columns always show; narrower terminals drop 4, then 3, then 2 (report.md keeps every one)."""
    sizes = summary.get("benchmark_batch_sizes") or []  # none: a run that failed before measuring
    last = str(max(sizes, default=1))  # the largest, as the objective's throughput (older summaries: unsorted)
    metric = next((r["evaluation"]["metric"] for r in summary["variants"] if "evaluation" in r), "accuracy")
    qps = (summary.get("triton") or {}).get("cost", {}).get("target_qps") or next(
        (r["cost"]["target_qps"] for r in summary["variants"] if "target_qps" in r.get("cost", {})), None)

    def status(r):
        if not r["chain"] and r["status"] == "ok":
            return "source"
        return r["status"] if r["status"] != "ok" else ("ran" if r["ran"] else "cached")

    def latency(bs):
        def cell(r):
            b = r.get("benchmark", {}).get(str(bs))  # summary.json keys figures by the batch size as text
            return f"{b['p50_ms']:.2f}/{b['p99_ms']:.2f}" if b else "-"
        return cell

    ev = lambda r: r.get("evaluation", {})  # noqa: E731
    cols = [
        ("variant", "left", 1, lambda r: r["name"] + (" ★" if r["name"] == summary.get("chosen") else "")),
        ("precision", "left", 3, lambda r: r.get("precision", "-")),
        ("status", "left", 2, status),
        (_SHORT.get(metric, metric), "left", 1, lambda r: _fmt(ev(r).get("score"))),
        ("Δ", "left", 1, lambda r: _fmt(0.0 - ev(r)["score_drop"] + 0.0, "+.2f") if "score_drop" in ev(r) else "-"),
        ("cosine", "left", 2, lambda r: _fmt(ev(r).get("mean_cosine"), ".4f")),
        ("rel err", "left", 3, lambda r: _fmt(ev(r).get("relative_error"), ".3f")),
    ]
    for i, bs in enumerate(sizes):
        cols.append((f"p50/p99 ms b{bs}", "right", 1 if i == 0 else (4 if i < len(sizes) - 1 else 3), latency(bs)))
    cols += [
        (f"samples/s b{last}", "right", 1,
         lambda r: _fmt(r.get("benchmark", {}).get(last, {}).get("throughput"), ".0f")),
        (f"speed-up b{last}", "right", 1, lambda r: speed_cell(r, last)),
        ("size KB", "right", 3, lambda r: _fmt(r["size_bytes"] / 1024, ".0f") if "size_bytes" in r else "-"),
        ("$/1M", "right", 3, lambda r: _fmt(r.get("cost", {}).get("cost_per_million"), ".4f")),
    ]
    if qps:
        cols.append((f"replicas @{qps:g} qps", "right", 2,
                     lambda r: f"{r['cost']['min_replicas']}-{r['cost']['max_replicas']}"
                     if "min_replicas" in r.get("cost", {}) else "-"))
    return cols


def _plain(text: str) -> str:
    from rich.text import Text

    return Text.from_markup(text).plain


def fit(cols: List, cells: List[List[str]], width: Optional[int]) -> List[int]:
    """Indices of the columns to show: drop the lowest-priority ones until the natural width fits ``width``."""
    widths = [max([len(c[0])] + [len(_plain(row[i])) for row in cells]) + 3 for i, c in enumerate(cols)]
    keep = list(range(len(cols)))
    for level in (4, 3, 2):
        if width is None or sum(widths[i] for i in keep) + 1 <= width:
            break
        keep = [i for i in keep if cols[i][2] < level]
    return keep


def table(summary: Dict, width: Optional[int] = None):
    """A rich table: one row per variant; with ``width``, only the columns that fit it (see ``columns``)."""
    from rich.table import Table
    from rich.text import Text

    cols = columns(summary)
    cells = [[c[3](r) for c in cols] for r in summary["variants"]]
    keep = fit(cols, cells, width)
    t = Table(title=f"recipe {summary['recipe']} on {summary['hardware']['name']}", header_style="bold")
    for i in keep:
        t.add_column(cols[i][0], justify=cols[i][1])
    for row in cells:
        t.add_row(*[row[i] for i in keep])
    caption = triton_caption(summary.get("triton") or {})
    if len(keep) < len(cols):
        caption += ("\n" if caption else "") + "more columns in summary.json and report.md"
    t.caption = Text(caption)  # plain text: paths and errors hold "[...]"
    return t


def markdown_table(summary: Dict) -> str:
    """Every column of the results table as a Markdown table (report.md)."""
    cols = columns(summary)
    esc = lambda text: _plain(text).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(c[0] for c in cols) + " |",
             "|" + "|".join("---:" if c[1] == "right" else "---" for c in cols) + "|"]
    for r in summary["variants"]:
        lines.append("| " + " | ".join(esc(c[3](r)) for c in cols) + " |")
    return "\n".join(lines)


def triton_caption(tr: Dict) -> str:
    """One line under the table: where the Triton repository went and its tuned values."""
    if not tr.get("emitted"):
        return f"Triton: nothing emitted ({tr['reason']})" if tr.get("reason") else ""
    v = tr["values"]
    groups = " + ".join(f"{g['count']}×{g['kind']}" for g in v["instance_group"])
    batching = (f"preferred {v['preferred_batch_size']}, queue delay {v['max_queue_delay_microseconds']} µs"
                if v["preferred_batch_size"] else "dynamic batching of what is queued (no preferred size)")
    if v.get("batcher") == "sequence":
        batching = f"sequence batcher keeping state {v['state']}, " + batching.replace("dynamic batching", "batching")
    line = f"Triton: {tr['config']} — max_batch_size {v['max_batch_size']}, {batching}, {groups}"
    if v.get("max_queue_size"):
        line += f", queue ≤ {v['max_queue_size']} (timeout {v['default_timeout_microseconds']} µs, REJECT)"
    if v.get("priority_levels"):
        line += f", {v['priority_levels']} priority levels"
    if tr.get("capacity"):
        line += f"; capacity {tr['capacity']['used']:.0f}/s ({tr['capacity']['source'].split(':')[0]})"
    sc = tr.get("scaling")
    if sc:
        line += (f"; traffic: {sc['min_replicas']}–{sc['max_replicas']} replicas autoscaled, {sc['saving']:.0%} below a "
                 f"fixed fleet of {sc['fixed_replicas']}, scale up at {sc['trigger_used']:.0%} of capacity")
    if tr.get("kubernetes"):
        line += f"; Kubernetes: {tr['kubernetes']['manifests']}"
    smoke = tr.get("smoke_test")
    if smoke and smoke.get("skipped"):
        line += "; smoke test not run (stateful: sequence batcher)"
    elif smoke:
        line += "; smoke test " + ("passed" if smoke["passed"] else f"FAILED: {smoke['error']}")
    over = tr.get("overload")
    if over:
        last = over["probes"][over["in_force"]]
        line += (f"; at {over['factor']}× capacity the admitted p99 {last.get('p99_ms')} ms "
                 f"{'held' if over['held'] else 'MISSED'} the SLA" + (" (queue re-tuned on the server)"
                                                                         if over["in_force"] else ""))
    return line
