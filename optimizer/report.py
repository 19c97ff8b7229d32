"""The run's record: ``summary.json`` and the terminal table."""

import json
from pathlib import Path
from typing import Dict, List

from optimizer.cache import write_atomic
from optimizer.formats import get


def variant_record(v, m: Dict) -> Dict:
    """Everything known about one variant, as it goes into summary.json (cost is added by the pipeline)."""
    rec = {"name": v.name, "chain": v.chain, "status": v.status, "ran": v.ran, "seconds": round(v.seconds, 3)}
    if v.error:
        rec["error"] = v.error
    if v.artifact is not None:
        a = v.artifact
        rec.update(artifact_id=a.id, parent_id=a.parent, format=a.format, path=str(a.path),
                   precision=a.meta.get("precision", "fp32"), size_bytes=Path(a.path).stat().st_size,
                   deployable=get(a.format).triton_platform is not None)
        rec["meta"] = {k: val for k, val in a.meta.items() if k not in ("factory", "kwargs")}
    if m:
        rec.update(evaluation=m["evaluation"], benchmark=m["benchmark"], measurements_reused=m["reused"])
        for k in ("speedup", "speedup_interval", "verdict", "unstable", "group", "peak_memory_mb", "gpu_memory_mb"):
            if k in m:
                rec[k] = m[k]
    return rec


def compare(records: List[Dict]) -> List[str]:
    """Fill the accuracy drop vs the reference; return warnings for measured slow-downs (a "slower" verdict:
    the whole interval over rounds below 1), unstable figures, and those passes recorded in
    ``meta["warnings"]`` (each once: descendants inherit the meta)."""
    ref = records[0] if records and "benchmark" in records[0] else None
    warnings = []
    for r in records:
        for w in r.get("meta", {}).get("warnings", []):
            if not any(x.endswith(f": {w}") for x in warnings):
                warnings.append(f"{r['name']}: {w}")
    for r in records:
        if "evaluation" not in r or ref is None:
            continue
        ev = r["evaluation"]
        ev["score_drop"] = ev[f"{ev['metric']}_drop"] = ref["evaluation"]["score"] - ev["score"]
        slow = [bs for bs, v in r.get("verdict", {}).items() if v == "slower"]
        if slow and r is not ref:
            bs = min(slow, key=lambda b: r["speedup"][b])
            lo, hi = r["speedup_interval"][bs]
            warnings.append(f"{r['name']} ({r.get('precision')}) is slower than the reference: "
                            f"{r['speedup'][bs]:.2f}x its median-call throughput at batch {bs} (every round {lo:.2f}-{hi:.2f}x)")
        if r.get("unstable"):
            warnings.append(f"{r['name']}: unstable timings at batch {', '.join(r['unstable'])} (latency CV above "
                            f"benchmark.max_cv); the machine was busy, and this measurement will not be reused")
    return warnings


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
    path = Path(out_dir) / "summary.json"
    write_atomic(path, json.dumps(summary, indent=2, default=str).encode())
    return path


_SHORT = {"accuracy": "acc %", "nn_agreement": "NN agree %"}  # headline metric -> column title


def _fmt(x, spec=".2f", none="-"):
    return none if x is None else format(x, spec)


def table(summary: Dict):
    """A rich table: one row per variant."""
    from rich.table import Table

    sizes = summary["benchmark_batch_sizes"]
    t = Table(title=f"recipe {summary['recipe']} on {summary['hardware']['name']}", header_style="bold")
    metric = next((r["evaluation"]["metric"] for r in summary["variants"] if "evaluation" in r), "accuracy")
    for col in ["variant", "precision", "status", _SHORT.get(metric, metric), "Δ", "cosine"]:
        t.add_column(col)
    for bs in sizes:
        t.add_column(f"p50/p99 ms b{bs}", justify="right")
    qps = (summary.get("triton") or {}).get("cost", {}).get("target_qps") or next(
        (r["cost"]["target_qps"] for r in summary["variants"] if "target_qps" in r.get("cost", {})), None)
    for col in [f"samples/s b{sizes[-1]}", f"speed-up b{sizes[-1]}", "size KB", "$/1M"] + (
            [f"replicas @{qps:g} qps"] if qps else []):
        t.add_column(col, justify="right")
    for r in summary["variants"]:
        ev, bench = r.get("evaluation", {}), r.get("benchmark", {})
        name = r["name"] + (" ★" if r["name"] == summary.get("chosen") else "")
        speed_txt = speed_cell(r, str(sizes[-1]))
        status = r["status"] if r["status"] != "ok" else ("ran" if r["ran"] else "cached")
        status = "source" if not r["chain"] and r["status"] == "ok" else status
        row = [name, r.get("precision", "-"), status, _fmt(ev.get("score")),
               _fmt(0.0 - ev["score_drop"] + 0.0, "+.2f") if "score_drop" in ev else "-",
               _fmt(ev.get("mean_cosine"), ".4f")]
        for bs in sizes:
            b = bench.get(str(bs))
            row.append(f"{b['p50_ms']:.2f}/{b['p99_ms']:.2f}" if b else "-")
        last = bench.get(str(sizes[-1]), {})
        row += [_fmt(last.get("throughput"), ".0f"), speed_txt,
                _fmt(r["size_bytes"] / 1024, ".0f") if "size_bytes" in r else "-",
                _fmt(r.get("cost", {}).get("cost_per_million"), ".4f")]
        if qps:
            c = r.get("cost", {})
            row.append(f"{c['min_replicas']}-{c['max_replicas']}" if "min_replicas" in c else "-")
        t.add_row(*row)
    from rich.text import Text

    t.caption = Text(_triton_caption(summary.get("triton") or {}))  # plain text: paths and errors hold "[...]"
    return t


def _triton_caption(tr: Dict) -> str:
    """One line under the table: where the Triton repository went and its tuned values."""
    if not tr.get("emitted"):
        return f"Triton: nothing emitted ({tr['reason']})" if tr.get("reason") else ""
    v = tr["values"]
    groups = " + ".join(f"{g['count']}×{g['kind']}" for g in v["instance_group"])
    batching = (f"preferred {v['preferred_batch_size']}, queue delay {v['max_queue_delay_microseconds']} µs"
                if v["preferred_batch_size"] else "dynamic batching of what is queued (no preferred size)")
    line = f"Triton: {tr['config']} — max_batch_size {v['max_batch_size']}, {batching}, {groups}"
    if v.get("max_queue_size"):
        line += f", queue ≤ {v['max_queue_size']} (timeout {v['default_timeout_microseconds']} µs, REJECT)"
    if v.get("priority_levels"):
        line += f", {v['priority_levels']} priority levels"
    if tr.get("capacity"):
        line += f"; capacity {tr['capacity']['used']:.0f}/s ({tr['capacity']['source'].split(':')[0]})"
    if tr.get("kubernetes"):
        line += f"; Kubernetes: {tr['kubernetes']['manifests']}"
    smoke = tr.get("smoke_test")
    if smoke:
        line += "; smoke test " + ("passed" if smoke["passed"] else f"FAILED: {smoke['error']}")
    return line
