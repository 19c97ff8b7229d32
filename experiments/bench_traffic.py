"""Autoscaling a day of traffic against a fixed fleet sized for its peak (``serving.traffic``).

One replica's capacity (requests/s within the p99 SLA) and its cold start (tritonserver start to model ready) come
from a run's ``summary.json`` (``--summary``; what ``triton.smoke_test=true`` measured, else the in-process
estimate, as the summary says) or the command line (``--capacity``, ``--cold-start``). A diurnal profile whose peak
is ``--ratio`` (3) × its trough, peaking at ``--peak-hour`` with ``--peak`` requests/s (default: what
``--peak-replicas`` (30) replicas serve at ``--utilization``), goes through ``optimizer.decide.traffic.recommend``:
the autoscaler simulated every 15 s over the day (scale-up lead = the cold start, scale-down after ten cold starts,
at least 300 s), the SLA checked at every tick (it raises if the ready replicas' capacity falls below the rate).
Prints the inputs, the hourly schedule, the recommendation and the saving against the fixed fleet.

    python experiments/bench_traffic.py --summary outputs/<run>/summary.json [--price 0.08925] [--ratio 3]
    python experiments/bench_traffic.py --capacity 1500 --cold-start 38 --sla-ms 20 [--price 0.08925]
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, Optional

from optimizer.decide.traffic import diurnal, recommend


def from_summary(path: Path) -> Dict[str, Optional[float]]:
    """Capacity, its source, cold start, SLA and price of a run's summary.json (its ``triton`` block)."""
    s = json.loads(path.read_text())
    tr = s.get("triton") or {}
    if not tr.get("capacity"):
        raise SystemExit(f"{path}: no triton.capacity (a run with triton.emit=true that emitted a repository)")
    models = (tr.get("smoke_test") or {}).get("models") or {}
    cold = next((m.get("ready_seconds") for m in models.values() if m.get("ready_seconds") is not None), None)
    tuning = tr.get("tuning") or {}
    return {"capacity": tr["capacity"]["used"], "source": tr["capacity"]["source"], "cold_start": cold,
            "sla_ms": tuning.get("sla_p99_ms") if tuning.get("sla_set", True) else None,
            "price": ((s.get("hardware") or {}).get("price_per_hour"))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--summary", type=Path, help="a run's summary.json: capacity, cold start, SLA (and price)")
    p.add_argument("--capacity", type=float, help="requests/s one replica serves within the SLA")
    p.add_argument("--cold-start", type=float, help="seconds from server start to model ready (none: 60 s assumed)")
    p.add_argument("--sla-ms", type=float, help="the p99 SLA the capacity was measured at")
    p.add_argument("--price", type=float, help="$/hour of one replica's machine (none: replica-hours only)")
    p.add_argument("--utilization", type=float, default=0.7, help="serving.utilization")
    p.add_argument("--ratio", type=float, default=3.0, help="peak ÷ trough")
    p.add_argument("--peak", type=float, help="requests/s at the peak (default: --peak-replicas at --utilization)")
    p.add_argument("--peak-replicas", type=int, default=30)
    p.add_argument("--peak-hour", type=float, default=14.0)
    a = p.parse_args(argv)
    got = from_summary(a.summary) if a.summary else {"source": "command line", "cold_start": None, "sla_ms": None,
                                                     "price": None, "capacity": None}
    capacity = a.capacity or got["capacity"]
    if not capacity:
        p.error("give --summary or --capacity")
    cold = a.cold_start if a.cold_start is not None else got["cold_start"]
    sla, price = a.sla_ms or got["sla_ms"], a.price if a.price is not None else got["price"]
    peak = a.peak or a.peak_replicas * capacity * a.utilization
    r = recommend(diurnal(peak, peak / a.ratio, a.peak_hour), capacity, a.utilization, cold, 60.0, price, sla)
    print(f"capacity {capacity:g} requests/s per replica ({got['source']}); cold start "
          f"{'%g s' % cold if cold is not None else 'not measured (60 s assumed)'}; SLA p99 "
          f"{'%g ms' % sla if sla else 'not set'}; price {'$%g/h' % price if price is not None else 'none'}")
    print(f"profile: diurnal, peak {peak:g} requests/s at {a.peak_hour:g}:00, trough {peak / a.ratio:g} "
          f"({a.ratio:g}x), utilization target {a.utilization:.0%}; {r['requests_per_day']:,} requests a day\n")
    print("| from | requests/s (max) | replicas needed | autoscaled replicas | fixed fleet |")
    print("|---|---|---|---|---|")
    for row in r["schedule"]:
        print(f"| {row['time']} | {row['rate']:.0f} | {row['needed']} | {row['replicas']} | {r['fixed_replicas']} |")
    print(f"\n{r['recommendation']}.")
    money = (f"${r['cost_per_day']:.2f} vs ${r['fixed_cost_per_day']:.2f} a day, ${r['cost_per_million']:.4f} vs "
             f"${r['fixed_cost_per_million']:.4f} per 1M requests; " if "cost_per_day" in r else "")
    print(f"replica-hours a day: {r['replica_hours']:g} autoscaled vs {r['fixed_replica_hours']:g} fixed; {money}"
          f"saving {r['saving']:.1%}; SLA held at every 15 s tick: {r['sla_held']}; trigger "
          f"{r['trigger']:.3f} of capacity (used {r['trigger_used']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
