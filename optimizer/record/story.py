"""The run told in words and factors, from summary.json's own figures: the verdict on the chosen variant against the
source model (cost, p99, accuracy or parity), the cumulative dashboard (each step of the chain, then the served
configuration, as factors of the source model at batch 1 on one replica) and where the chosen variant's time goes.

The dashboard's baseline is the source model (the torch reference, FP32) at batch 1: what serving it as it came
would give, one request per call. Each step's row is its best measured batch (throughput) and its p99 at batch 1, all from the run's one measurement set;
cost per million inferences on the same machine is the inverse of throughput, so its factor holds with or without
a price (``hardware.price_per_hour`` adds the dollars). The served row is the Triton capacity the replicas are
sized from (measured on the smoke server, or estimated from the tuned batch), a figure from another measurement: its
p99 is left out, as the server's depends on the load offered."""

from typing import Dict, List, Mapping, Optional


def _measured(summary: Mapping) -> List[Mapping]:
    return [v for v in summary.get("variants", []) if v.get("benchmark")]


def _best(v: Mapping) -> Dict:
    """The variant's highest-throughput batch: ``{"batch_size", "throughput"}``."""
    bs, b = max(v["benchmark"].items(), key=lambda kv: kv[1]["throughput"])
    return {"batch_size": int(bs), "throughput": float(b["throughput"])}


def _p99_b1(v: Mapping) -> Optional[float]:
    smallest = min(v["benchmark"], key=int)
    return float(v["benchmark"][smallest]["p99_ms"]) if smallest == "1" else None


def _score(v: Mapping) -> Optional[float]:
    return (v.get("evaluation") or {}).get("score")


def dashboard(summary: Mapping, price_per_hour: Optional[float] = None) -> Optional[Dict]:
    """Rows of factors against the source model at batch 1, in chain order, then the served configuration."""
    rows = _measured(summary)
    if not rows or "1" not in rows[0]["benchmark"]:
        return None
    ref = rows[0]
    base_thr, base_p99 = float(ref["benchmark"]["1"]["throughput"]), _p99_b1(ref)
    metric = (ref.get("evaluation") or {}).get("metric", "score")

    def row(label: str, thr: float, p99: Optional[float], score: Optional[float], batch) -> Dict:
        out = {"step": label, "batch": batch, "throughput": round(thr, 1), "throughput_x": round(thr / base_thr, 2),
               "p99_ms": p99, "p99_x": round(base_p99 / p99, 2) if p99 and base_p99 else None,
               "cost_x": round(thr / base_thr, 2), metric: score}
        if price_per_hour:
            out["cost_per_million"] = round(price_per_hour / 3600.0 / thr * 1e6, 4)
        return out

    out = [row(f"{ref['name']} (batch 1)", base_thr, base_p99, _score(ref), 1)]
    for v in rows:
        best = _best(v)
        if v is ref and best["batch_size"] == 1:
            continue  # the baseline row already
        out.append(row(v["name"], best["throughput"], _p99_b1(v), _score(v), best["batch_size"]))
    served = _served(summary)
    chosen = next((v for v in rows if v["name"] == summary.get("chosen")), None)
    if served and chosen is not None:
        out.append(row(f"served: {chosen['name']} on Triton ({served['source']})", served["throughput"], None,
                       _score(chosen), served["batch"]))
    return {"baseline": f"{ref['name']} at batch 1, one replica", "metric": metric, "rows": out}


def _served(summary: Mapping) -> Optional[Dict]:
    tr = summary.get("triton") or {}
    cap = (tr.get("capacity") or {}).get("used")
    if not tr.get("emitted") or not cap:
        return None
    source = str(tr["capacity"].get("source", "")).split(":")[0] or "estimate"
    return {"throughput": float(cap), "batch": (tr.get("tuning") or {}).get("max_batch_size"), "source": source}


def verdict(summary: Mapping) -> List[str]:
    """One sentence each on cost, p99 and accuracy (or parity) of the chosen variant against the source model."""
    rows = _measured(summary)
    chosen = next((v for v in rows if v["name"] == summary.get("chosen")), None)
    if chosen is None or not rows or chosen is rows[0]:
        return []
    ref, what = rows[0], f"{chosen['name']} ({chosen.get('precision', 'fp32')})"
    a, b = _best(ref), _best(chosen)
    saved = 1.0 - a["throughput"] / b["throughput"]
    costs = [(v.get("cost") or {}).get("cost_per_million") for v in (ref, chosen)]
    dollars = f" (${costs[0]:.4g} → ${costs[1]:.4g})" if all(costs) else ""
    lines = [f"{what} {'saves' if saved >= 0 else 'adds'} {abs(saved):.0%} of the cost per million inferences{dollars}: "
             f"{b['throughput']:.0f} against {a['throughput']:.0f} samples/s at the best batch of each"]
    p = (_p99_b1(ref), _p99_b1(chosen))
    if all(p):
        lines.append(f"p99 at batch 1 goes from {p[0]:.2f} ms to {p[1]:.2f} ms "
                     f"({p[0] / p[1]:.1f}× {'lower' if p[1] <= p[0] else 'higher'})")
    ev, ref_ev = chosen.get("evaluation") or {}, ref.get("evaluation") or {}
    if ev.get("score") is not None and ref_ev.get("score") is not None:
        drop = ref_ev["score"] - ev["score"]
        cos = f", mean cosine {ev['mean_cosine']:.4f} to the reference" if ev.get("mean_cosine") is not None else ""
        lines.append(f"{ev.get('metric', 'score')} {ref_ev['score']:.2f} → {ev['score']:.2f} "
                     f"({'-' if drop > 0 else '+'}{abs(drop):.2f} points){cos}")
    return lines


def time_line(summary: Mapping) -> Optional[str]:
    """Where the chosen variant's time goes: its top three op types, with the hints."""
    chosen = next((v for v in summary.get("variants", []) if v["name"] == summary.get("chosen")), None)
    prof = (chosen or {}).get("profile") or {}
    if not prof.get("op_types"):
        return None
    top = ", ".join(f"{t} {s:.0%}" for t, s in list(prof["op_types"].items())[:3])
    hint = f"; {prof['hints'][0]}" if prof.get("hints") else ""
    return f"time in {chosen['name']} at batch {prof['batch_size']}: {top} ({prof['covered']:.0%} of a call){hint}"


def tell(summary: Mapping, price_per_hour: Optional[float] = None) -> Optional[Dict]:
    """The story block of summary.json (None when nothing was measured)."""
    board = dashboard(summary, price_per_hour)
    if board is None:
        return None
    return {"verdict": verdict(summary), "dashboard": board, "time": time_line(summary)}


def _num(value, spec: str) -> str:
    """``value`` as ``spec`` (a trailing ``×`` is appended), ``-`` for none."""
    if value is None:
        return "-"
    return f"{value:{spec.rstrip('×')}}" + ("×" if spec.endswith("×") else "")


def markdown(story: Optional[Mapping], variants: List[Mapping]) -> List[str]:
    """report.md's sections: the verdict, the cumulative dashboard, where the time goes per variant."""
    if not story:
        return []
    lines = ["", "### Verdict", "", *[f"- {s}." for s in story["verdict"]]] if story["verdict"] else []
    board = story["dashboard"]
    metric = board["metric"]
    lines += ["", f"### Cumulative improvements (factors of {board['baseline']})", "",
              f"| step | batch | samples/s | × throughput | p99 ms b1 | × lower p99 | × lower cost | {metric} |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in board["rows"]:
        cells = [r["step"], str(r["batch"]), f"{r['throughput']:.1f}", _num(r["throughput_x"], ".1f×"),
                 _num(r["p99_ms"], ".2f"), _num(r["p99_x"], ".1f×"), _num(r["cost_x"], ".1f×"), _num(r.get(metric), ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    profiled = [v for v in variants if (v.get("profile") or {}).get("op_types")]
    if profiled:
        lines += ["", "### Where the time goes", "", "| variant | batch | top op types (share of a call) | covered | hints |",
                  "|---|---:|---|---:|---|"]
        for v in profiled:
            p = v["profile"]
            top = ", ".join(f"{t} {s:.0%}" for t, s in list(p["op_types"].items())[:4])
            lines.append(f"| {v['name']} | {p['batch_size']} | {top} | {p['covered']:.0%} | "
                         f"{'; '.join(p.get('hints') or []) or '-'} |")
    return lines
