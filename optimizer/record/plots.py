"""The run's plots, drawn from the summary dict and written next to ``summary.json``.

Figures are built with ``matplotlib.figure.Figure`` (the Agg canvas, no pyplot and no global
state), so plotting works headless and inside a Hydra sweep that runs many jobs in one process."""

import io
from pathlib import Path
from typing import Dict, List

from optimizer.files import write_atomic

LATENCY = "latency_vs_batch.png"
THROUGHPUT = "throughput_vs_batch.png"
ACCURACY = "accuracy_vs_p99.png"
DASHBOARD = "cumulative.png"


def _measured(summary: Dict) -> List[Dict]:
    return [v for v in summary["variants"] if v.get("status") == "ok" and v.get("benchmark")]


def latency_p99(v: Dict) -> float:
    """p99 latency at the smallest batch size measured, in ms (``v`` as summary.json has it)."""
    return v["benchmark"][min(v["benchmark"], key=int)]["p99_ms"]


def _curve(v: Dict, key: str):
    sizes = sorted(v["benchmark"], key=int)
    return [int(b) for b in sizes], [v["benchmark"][b][key] for b in sizes]


def _figure(title: str, xlabel: str, ylabel: str):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(True, alpha=0.3)
    return fig, ax


def _batch_axis(ax, sizes: List[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.minorticks_off()


def _label(v: Dict, summary: Dict) -> str:
    star = " ★" if v["name"] == summary.get("chosen") else ""
    return f"{v['name']} ({v.get('precision', '?')}){star}"


def _save(fig, path: Path) -> Path:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return path


def latency_plot(summary: Dict, path: Path) -> Path:
    """p50 (solid) and p99 (dashed) latency against batch size, one colour per variant."""
    fig, ax = _figure(f"Latency vs batch size — {summary['recipe']}", "batch size", "latency (ms)")
    for i, v in enumerate(_measured(summary)):
        sizes, p50 = _curve(v, "p50_ms")
        _, p99 = _curve(v, "p99_ms")
        color = f"C{i % 10}"
        ax.plot(sizes, p50, "o-", color=color, label=f"{_label(v, summary)} p50")
        ax.plot(sizes, p99, "s--", color=color, alpha=0.7, label=f"{_label(v, summary)} p99")
    _batch_axis(ax, summary["benchmark_batch_sizes"])
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    return _save(fig, path)


def throughput_plot(summary: Dict, path: Path) -> Path:
    """Samples per second against batch size, one line per variant."""
    fig, ax = _figure(f"Throughput vs batch size — {summary['recipe']}", "batch size", "throughput (samples/s)")
    for i, v in enumerate(_measured(summary)):
        ax.plot(*_curve(v, "throughput"), "o-", color=f"C{i % 10}", label=_label(v, summary))
    _batch_axis(ax, summary["benchmark_batch_sizes"])
    ax.legend(fontsize="small")
    return _save(fig, path)


def accuracy_view(summary: Dict) -> Dict:
    """What the accuracy plot draws, from the summary alone: points, the Pareto front (sorted by latency), the
    metric's floor (reference score - ``constraints.max_accuracy_drop``), the latency SLA
    (``constraints.max_p99_ms``, else the serving SLA the Triton tuning used) and y limits that stay inside
    0-100 for a percentage."""
    variants = [v for v in _measured(summary) if "evaluation" in v]
    points = [(v, latency_p99(v), v["evaluation"]["score"]) for v in variants]
    scores = [y for _, _, y in points]
    ref = next((v for v in variants if v["name"] == "reference"), None)
    drop = (summary.get("constraints") or {}).get("max_accuracy_drop")
    floor = ref["evaluation"]["score"] - drop if ref is not None and drop is not None else None
    sla = (summary.get("constraints") or {}).get("max_p99_ms")
    sla_label = "max_p99_ms"
    if sla is None:
        tuning = (summary.get("triton") or {}).get("tuning") or {}
        sla = tuning.get("sla_p99_ms") if tuning.get("sla_set", True) else None  # none set: no line to draw
        sla_label = "serving SLA"
    shown = scores + ([floor] if floor is not None else [])
    ylim = None
    if shown:
        lo, hi = min(shown), max(shown)
        pad = max((hi - lo) * 0.15, 0.5)
        ylim = (lo - pad, hi + pad)
        if all(0 <= y <= 100 for y in shown):  # a percentage: never draw 104 %
            ylim = (max(0.0, ylim[0]), min(100.0, ylim[1]))
    return {"points": points, "front": sorted((x, y) for v, x, y in points if v.get("pareto")),
            "floor": floor, "sla": sla, "sla_label": sla_label, "ylim": ylim}


def accuracy_plot(summary: Dict, path: Path) -> Path:
    """The task metric against p99 latency at the smallest batch size: the Pareto front as a line, the
    metric's floor and the latency SLA as dashed lines."""
    view = accuracy_view(summary)
    bs = min(summary["benchmark_batch_sizes"])
    metric = view["points"][0][0]["evaluation"].get("metric", "accuracy") if view["points"] else "accuracy"
    title = f"{metric} vs p99 latency (batch {bs}) — {summary['recipe']}"
    fig, ax = _figure(title, "p99 latency (ms)", f"{metric} (%)")
    for i, (v, x, y) in enumerate(view["points"]):
        ax.scatter([x], [y], s=60, color=f"C{i % 10}", label=_label(v, summary), zorder=3)
        ax.annotate(v["name"], (x, y), textcoords="offset points", xytext=(5, 5), fontsize="small")
    if view["front"]:
        xs, ys = zip(*view["front"])
        ax.plot(xs, ys, drawstyle="steps-post", color="black", lw=1.8, alpha=0.8, label="Pareto front", zorder=2)
        ax.scatter(xs, ys, s=200, facecolors="none", edgecolors="black", zorder=4)
    if view["floor"] is not None:
        ax.axhline(view["floor"], color="C3", ls="--", lw=1.2, label=f"{metric} floor ({view['floor']:.2f})")
    if view["sla"] is not None:
        ax.axvline(view["sla"], color="C1", ls="--", lw=1.2, label=f"{view['sla_label']} ({view['sla']:g} ms)")
    if view["ylim"] is not None:
        ax.set_ylim(*view["ylim"])
    ax.set_xscale("log")  # latencies of the variants often differ by orders of magnitude
    from matplotlib.ticker import FormatStrFormatter

    for axis_formatter in (ax.xaxis.set_major_formatter, ax.xaxis.set_minor_formatter):
        axis_formatter(FormatStrFormatter("%g"))  # 0.4, 2, 6 rather than 4x10^-1
    ax.legend(fontsize="small")
    return _save(fig, path)


def dashboard_plot(board: Dict, path: Path) -> Path:
    """The cumulative dashboard (``record.story``): throughput, lower p99 and lower cost as factors of the
    baseline, one group of bars per step in chain order, on a log scale."""
    import numpy as np

    fig, ax = _figure(f"Cumulative improvements (× {board['baseline']})", "", "factor (log scale)")
    rows = board["rows"]
    x = np.arange(len(rows))
    for i, (key, label) in enumerate((("throughput_x", "throughput"), ("p99_x", "lower p99 (batch 1)"),
                                      ("cost_x", "lower cost per 1M"))):
        values = [r[key] or float("nan") for r in rows]
        bars = ax.bar(x + (i - 1) * 0.27, values, 0.27, label=label)
        ax.bar_label(bars, [f"{v:.1f}×" if v == v else "" for v in values], fontsize=7)
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_xticks(x, [r["step"] if "(batch" in r["step"] else f"{r['step']} (batch {r['batch']})" for r in rows],
                  rotation=15, ha="right", fontsize=8)
    ax.legend(fontsize=8)
    return _save(fig, path)


def write_plots(summary: Dict, out_dir: Path) -> List[str]:
    """Write the PNGs into ``out_dir``; return their file names (none when nothing was measured)."""
    if not _measured(summary):
        return []
    out_dir = Path(out_dir)
    paths = [latency_plot(summary, out_dir / LATENCY), throughput_plot(summary, out_dir / THROUGHPUT),
             accuracy_plot(summary, out_dir / ACCURACY)]
    board = (summary.get("story") or {}).get("dashboard")
    if board:
        paths.append(dashboard_plot(board, out_dir / DASHBOARD))
    return [p.name for p in paths]
