"""What ``serve_check`` prints: its record, one block per model, and the verdict on the last line."""

from typing import Dict

from optimizer.tritonserver.overload import line, stall_notes


def print_record(record: Dict) -> None:
    """The record ``check_repository`` returned, as serve_check prints it: per model, READY time and answers, the
    SLA, each load level, the capacity search and the overload probe; then the verdict."""
    print(f"server: {record['server']}")
    for note in record["notes"]:
        print(f"note: {note}")
    for name, m in record["models"].items():
        print(f"{name}: READY in {m['ready_seconds']:.2f} s; max |diff| vs reference "
              f"{m.get('max_abs_diff', float('nan')):.3g} over {m.get('samples', 0)} samples")
        if m.get("sla", {}).get("p99_ms") is not None:
            print(f"  SLA: p99 ≤ {m['sla']['p99_ms']} ms ({'--sla-ms' if m['sla']['source'] == 'given' else 'from ' + m['sla']['source']})"
                  + "".join(f"; {n} ≤ {t['p99_ms']} ms" for n, t in m["sla"]["tiers"].items() if t["p99_ms"]))
        for r in m.get("load", []):
            lo, hi = r.get("p99_ci_ms", [None, None])
            print(f"  concurrency {r['concurrency']:>2}: {r['requests_per_s']:>8.1f} req/s  "
                  f"p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms [95 %: {lo}–{hi}]  "
                  f"({r['requests']} requests, {r['errors']} errors)"
                  + (f"; average batch {r['avg_batch']}" if "avg_batch" in r else "")
                  + (f"; CPU per request: server {r['server_cpu_ms_per_request']} ms, client "
                     f"{r['client_cpu_ms_per_request']} ms" if "server_cpu_ms_per_request" in r else "")
                  + stall_notes(r))
            for n, t in r.get("tiers", {}).items():
                print(f"    tier {n} (priority {t['priority']}): p50 {t['p50_ms']} ms  p99 {t['p99_ms']} ms "
                      f"[95 %: {t['p99_ci_ms'][0]}–{t['p99_ci_ms'][1]}]  ({t['answered']} answered)")
        if "capacity" in m:
            c = m["capacity"]
            print(f"  capacity (open loop, Poisson arrivals): {c['capacity_rps']} requests/s within p99 ≤ "
                  f"{c['sla_p99_ms']} ms (in-process estimate {c['estimate_rps']}/s); stopped: {c['stopped']}")
            for r in c["levels"]:
                print(f"    {r['rate_asked']:>8.1f}/s asked, {r['rate_sent']:>8.1f}/s sent: p99 {r['p99_ms']} ms, "
                      f"{r['errors']} errors ({r['rejected']} rejected) — {r['verdict']}")
        if "overload" in m:
            print(f"  overload: {line(m['overload'])}")
    print("passed" if record["passed"] else
          f"{'SLA MISSED' if record.get('sla_missed') else 'FAILED'}: {record['error']}")
