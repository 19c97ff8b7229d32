"""Chargeback: the run's measured serving cost divided among ``serving.tenants``, written as ``chargeback.md`` and
``chargeback.csv`` next to summary.json (listed in its ``reports``, so MLflow stores both with the run).

What is divided (the triton block's ``cost``, from the measured capacity):
- with ``hardware.price_per_hour`` and ``serving.target_qps``: ``cost_per_hour_at_target`` ($/hour of the replicas
  that serve the peak);
- with a price only: ``cost_per_million`` ($ per million requests of the tenants' mix);
- without a price: replica-hours per hour (``min_replicas``, one without ``serving.target_qps``): the files say so.

A tenant's part = total × share × weight / Σ(share × weight), so the rows sum to the total (the last row takes the
rounding). The weight of a tier is 1 / the utilisation its traffic may run a replica at, so that a tier pays for
the headroom held for it:
- a tier with an SLA: ``serving.utilization`` (the replicas were sized at it: the idle rest holds the p99), weight
  1/0.7 ≈ 1.43 at the default;
- the first tier (priority level 1: premium), when tiers sit below it: ``PREMIUM_FACTOR`` × that (0.5 at the
  default, weight 2): it is served first, and the lower tiers' traffic waits or is rejected to keep its SLA;
- a tier without an SLA (batch traffic): 1, weight 1: it fills idle capacity and yields to every other tier.
Without ``serving.tiers`` premium and standard count as SLA tiers, batch not."""

import csv
import io
from pathlib import Path
from typing import Dict, List

from optimizer.files import write_atomic

MARKDOWN, CSV = "chargeback.md", "chargeback.csv"
PREMIUM_FACTOR = 5 / 7  # the first tier's utilisation ÷ serving.utilization (0.7 -> 0.5)
DIGITS = 6  # rounding of the amounts written


def weights(serving) -> Dict[str, float]:
    """tier -> chargeback weight, 1 / the utilisation that tier's traffic may run a replica at."""
    from optimizer.recipe.tenants import tiers

    order = tiers(serving)
    out = {}
    for level, (name, sla) in enumerate(order, start=1):
        allowed = serving.utilization if sla else 1.0
        if sla and level == 1 and len(order) > 1:
            allowed *= PREMIUM_FACTOR
        out[name] = 1.0 / allowed
    return out


def total(cost: Dict) -> Dict:
    """What is divided: amount, unit and where it comes from."""
    n = cost.get("min_replicas", 1)
    replicas = f"{n} replica{'s' if n != 1 else ''}"
    if cost.get("cost_per_hour_at_target") is not None:
        return {"amount": cost["cost_per_hour_at_target"], "unit": "$/hour", "basis": f"cost_per_hour_at_target: "
                f"{replicas} serving serving.target_qps={cost['target_qps']:g} requests/s"}
    if cost.get("cost_per_million") is not None:
        return {"amount": cost["cost_per_million"], "unit": "$ per million requests",
                "basis": "cost_per_million of the tenants' mix (no serving.target_qps: no replica count to price)"}
    return {"amount": float(n), "unit": "replica-hours per hour",
            "basis": f"no hardware.price_per_hour: replica-hours are divided instead ({replicas}"
                     f"{'' if 'min_replicas' in cost else ', no serving.target_qps'})"}


def allocate(serving, cost: Dict) -> Dict:
    """The total and each tenant's row: tier, share, weight, part (of the total) and amount."""
    w = weights(serving)
    whole = total(cost)
    mass = sum(t.share * w[t.tier] for t in serving.tenants)
    rows: List[Dict] = []
    for t in serving.tenants:
        part = t.share * w[t.tier] / mass
        rows.append({"tenant": t.name, "tier": t.tier, "share": t.share, "weight": round(w[t.tier], 4),
                     "part": part, "amount": round(whole["amount"] * part, DIGITS)})
    if rows:  # the rounding goes to the last row: the written amounts sum to the total exactly
        rows[-1]["amount"] = round(whole["amount"] - sum(r["amount"] for r in rows[:-1]), DIGITS)
    if whole["unit"] == "$/hour" and cost.get("target_qps"):
        for r in rows:  # what a million of the tenant's own requests cost it at the peak rate
            r["per_million"] = round(r["amount"] / (r["share"] * cost["target_qps"] * 3600) * 1e6, DIGITS)
    return {**whole, "amount": round(whole["amount"], DIGITS), "rows": rows}


def run_cost(summary: Dict) -> Dict:
    """The cost block the run measured: the triton target's, else the chosen variant's $ per million."""
    cost = (summary.get("triton") or {}).get("cost") or {}
    if cost:
        return cost
    chosen = next((r for r in summary.get("variants", []) if r.get("name") == summary.get("chosen")), {})
    return {"cost_per_million": chosen["cost_per_million"]} if chosen.get("cost_per_million") is not None else {}


def to_csv(table: Dict) -> str:
    out = io.StringIO()
    extra = ["per_million"] if any("per_million" in r for r in table["rows"]) else []
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["tenant", "tier", "share", "weight", "part", "amount", "unit", *extra])
    for r in table["rows"]:
        writer.writerow([r["tenant"], r["tier"], f"{r['share']:g}", f"{r['weight']:g}", f"{r['part']:.6f}",
                         f"{r['amount']:.{DIGITS}f}", table["unit"], *[f"{r[k]:.{DIGITS}f}" for k in extra]])
    writer.writerow(["total", "", "1", "", "1.000000", f"{table['amount']:.{DIGITS}f}", table["unit"],
                     *["" for _ in extra]])
    return out.getvalue()


def to_markdown(table: Dict, model: str) -> str:
    own = any("per_million" in r for r in table["rows"])
    lines = [f"# Chargeback: {model}", "", f"Divided: **{table['amount']:g} {table['unit']}** ({table['basis']}).",
             "", "Each tenant pays total × share × weight / Σ(share × weight); a tier's weight is 1 / the utilisation "
             "its traffic may run a replica at (premium pays for the headroom held for it, batch fills idle "
             "capacity).", "", "| tenant | tier | share | weight | part | amount |" + (" $ per million own |" if own else ""),
             "|---|---|---:|---:|---:|---:|" + ("---:|" if own else "")]
    for r in table["rows"]:
        lines.append(f"| {r['tenant']} | {r['tier']} | {r['share']:g} | {r['weight']:g} | {100 * r['part']:.1f} % | "
                     f"{r['amount']:.4f} |" + (f" {r['per_million']:.4f} |" if own else ""))
    lines.append(f"| **total** | | 1 | | 100 % | **{table['amount']:.4f}** |" + (" |" if own else ""))
    return "\n".join(lines) + "\n"


def write(cfg, summary: Dict, out_dir: Path) -> Dict[str, str]:
    """chargeback.md and chargeback.csv in ``out_dir`` (none without tenants): their names for summary.json's reports."""
    if not cfg.serving.tenants:
        return {}
    table = allocate(cfg.serving, run_cost(summary))
    write_atomic(Path(out_dir) / CSV, to_csv(table).encode())
    model = cfg.model.name or (summary.get("model") or {}).get("name") or "the run's model"
    write_atomic(Path(out_dir) / MARKDOWN, to_markdown(table, model).encode())
    return {"chargeback": MARKDOWN, "chargeback_csv": CSV}


def metrics(cfg, summary: Dict) -> Dict[str, float]:
    """``chargeback.<tenant>`` = its amount, for the run's MLflow metrics (none without tenants)."""
    if not cfg.serving.tenants:
        return {}
    table = allocate(cfg.serving, run_cost(summary))
    return {f"chargeback.{r['tenant']}": float(r["amount"]) for r in table["rows"]}
