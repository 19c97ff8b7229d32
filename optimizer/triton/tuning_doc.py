"""``tuning.md``: every tuned value of config.pbtxt, the rule that set it and the numbers behind it."""

from typing import Dict, List

from optimizer.tritonserver.overload import line


def _curve_table(curves: Dict[str, List[Dict]]) -> List[str]:
    lines = ["| intra-op threads | batch | p50 ms | p99 ms | samples/s (mean) | calls |",
             "|---:|---:|---:|---:|---:|---:|"]
    for t, curve in curves.items():
        for p in curve:
            lines.append(f"| {t} | {p['batch_size']} | {p['p50_ms']:.3f} | {p['p99_ms']:.3f} | "
                         f"{p['throughput']:.0f} | {p['calls']} |")
    return lines


def _default_sla(cfg) -> bool:
    from optimizer.config import ServingConfig

    return not cfg.serving.tiers and cfg.serving.p99_ms == ServingConfig.p99_ms


def _queue_rows(t: Dict, db) -> List[str]:
    """Rows of the queue policy and the QoS tiers (overload protection)."""
    if not t.get("max_queue_size") and not t.get("tiers"):
        return ["| dynamic_batching.default_queue_policy | none | turned off (`serving.queue_policy=false`): past "
                "capacity the queue, and every request's latency, grows without bound |"]
    budget = t["queue_wait_budget_ms"]
    under_load = t.get("own_under_load_ms")  # set when the overload check shortened the policies
    own = t["p99_at_max_ms"] + t["overhead_ms"] if under_load is None else under_load
    if under_load is None:
        capacity, why = f"{t['throughput']:.0f} samples/s", (
            f"The wait budget is the SLA less a request's own execution: {t['sla_p99_ms']} − ({t['p99_at_max_ms']:.2f} "
            f"+ {t['overhead_ms']}) ms.")
    else:
        capacity, why = f"{t['overload_capacity_rps']:.0f} requests/s (measured)", (
            f"Shortened by the overload check (see *Overload check*): on the real server a request's own time under "
            f"overload was {under_load:.2f} ms (the admitted p99 less the wait it was given), so the budget is "
            f"{t['sla_p99_ms']} × {1 - t['overload_margin']:.2f} − {under_load:.2f} ms.")
    scale = "" if under_load is None else f" × {1 - t['overload_margin']:.2f}"
    rows = []
    if t.get("max_queue_size"):
        q = db.default_queue_policy
        rows += [
            f"| default_queue_policy.max_queue_size | {q.max_queue_size} | capacity × wait budget = "
            f"{capacity} × {budget:.1f} ms, at least max_batch_size: the one-sample requests a "
            f"server drains within the budget; one more is rejected at once (Triton: 'Exceeds maximum queue size') "
            f"instead of queueing for an answer that comes too late. {why} Requests of several "
            f"samples drain slower; the timeout still bounds them |",
            f"| default_queue_policy.default_timeout_microseconds | {q.default_timeout_microseconds or 'none'} | "
            + (f"the wait budget ({budget:.1f} ms): a request still queued after it can no longer meet the SLA |"
               if q.default_timeout_microseconds else "turned off (`serving.queue_timeout=false`) |"),
            "| default_queue_policy.timeout_action | REJECT | a timed-out request is answered with an error at once "
            "(Triton's default, enum 0, so the text format does not print it); DELAY would keep it queued |",
        ]
    for tier in t.get("tiers") or []:
        sla = f"p99 {tier['p99_ms']} ms" if tier["p99_ms"] is not None else "no SLA"
        rows.append(f"| priority level {tier['level']} ({tier['name']}, {sla}) | max_queue_size "
                    f"{tier['max_queue_size'] or 'unbounded'}, timeout "
                    f"{str(tier['timeout_us']) + ' µs' if tier['timeout_us'] else 'none'} | "
                    + (f"the rule above with this tier's SLA: wait budget {tier['wait_budget_ms']} ms = "
                       f"{tier['p99_ms']}{scale} − {own:.2f} ms"
                       + (", raised to one running execution (p99 at max_batch_size + overhead), or the tiers "
                          "below would take every slot" if under_load is not None and tier["wait_budget_ms"] >
                          round(tier["p99_ms"] * (1 - t["overload_margin"]) - own, 3) + 1e-6 else "") + " |"
                       if tier["p99_ms"] is not None and tier["max_queue_size"] else
                       "no SLA: queued behind every higher level, never timed out |"))
    if t.get("tiers"):
        rows.append(f"| priority_levels, default_priority_level | {db.priority_levels}, {db.default_priority_level} | "
                    f"one level per `serving.tiers` entry, level 1 served first; requests naming no priority get "
                    f"`serving.default_tier` (default: the last tier with an SLA) |")
    return rows


def _capacity_lines(t: Dict, record: Dict) -> List[str]:
    """Which capacity sizes cost and replicas: the smoke server's measured one, or the in-process estimate."""
    estimate = (f"In-process estimate of one server's capacity: {t['throughput']:.0f} samples/s ({t['instances']} "
                f"instance(s) at batch {t['knee_batch_size']}, batch ÷ (p50 + {t['overhead_ms']} ms serving overhead "
                f"per execution)).")
    c = record.get("capacity")
    if not c:
        return [estimate]
    lines = [estimate]
    if c["measured"] is not None:
        lines.append(f"Measured on a real server: {c['measured']:.0f} requests/s ({c['measured_vs_estimate']}× the "
                     f"estimate; one-sample requests).")
    lines.append(f"Cost and replicas use {c['used']:.0f}/s — {c['source']}." + (
        "" if c["measured"] is not None else " Run with `triton.smoke_test=true` to measure it on a real server."))
    return lines


def _overload_lines(o: Dict) -> List[str]:
    """The overload check's probes (``overload.line``), which policies each ran with, which are in force."""
    if not o:
        return []
    lines = ["", "## Overload check", "",
             f"Open-loop Poisson traffic at {o['factor']}× the measured capacity on the smoke-test server "
             f"(`triton.overload_factor`), with the load generator on the same cores:", ""]
    for i, r in enumerate(o["probes"]):
        lines.append(f"- {'as first tuned' if i == 0 else f're-tune {i}'} (timeout {r['timeout_us']} µs, "
                     f"max_queue_size {r['max_queue_size']}, max_batch_size {r.get('max_batch_size')}): {line(r)}"
                     + (" ← in force" if i == o["in_force"] else ""))
    lines += ["", "held: the admitted requests' p99 stayed within the SLA while the excess was rejected." if o["held"]
              else "NOT held: past capacity requests still miss the SLA. Raise `serving.p99_ms`, scale out before this "
                   "rate (the autoscaler), or check with the load generator on another machine "
                   "(`python -m optimizer.tritonserver.serve_check <repository> --capacity --overload 1.5`)."]
    return lines


def _kubernetes_lines(k: Dict) -> List[str]:
    if not k:
        return []
    scaling = k.get("autoscaling") or {}
    return ["", "## Kubernetes", "",
            f"`{k['manifests']}` (`kubectl apply -f`): a Deployment of `{k['image']}` serving `{k['model_store']}` "
            f"(copy this repository there), {k['cpu']} CPU and {k['memory_mb']} MiB requested (limits: the same CPU, "
            f"twice the memory), ready on `/v2/health/ready`; a Service (HTTP 8000, gRPC 8001, metrics 8002) and a "
            f"PodMonitor scraping the metrics; {k['min_replicas']}–{k['max_replicas']} replicas ({k['replicas_from']}) "
            f"at {scaling.get('scales_on', str(k.get('cpu_target', 70)) + ' % average CPU')}."
            + (f" Threshold: {scaling['threshold_from']}." if scaling.get("pending_little") is not None else "")]


def tuning_markdown(cfg, record: Dict, config) -> str:
    """The markdown written beside config.pbtxt."""
    t, hw = record["tuning"], record["hardware"]
    lines = [
        f"# {config.name}: how config.pbtxt was tuned", "",
        f"Variant `{record['variant']}` (artifact `{record['artifact_id'][:12]}`), measured on hardware "
        f"`{hw['name']}` ({hw['cores']} cores, device {hw['device']}). SLA: p99 ≤ {t['sla_p99_ms']} ms per request"
        + (" (no SLA set: the one every swept batch size meets; set `serving.p99_ms` to gate on yours)."
           if _default_sla(cfg) else
           " (`serving.tiers`' tightest tier)." if t.get("tiers") else " (`serving.p99_ms`)."),
        "", "## Tuned values", "",
        "| field | value | rule |", "|---|---|---|",
        *_value_rows(cfg, t, hw, config),
        "", "## Cost and replicas", "",
        *_capacity_lines(t, record),
        *_cost_lines(cfg, record["cost"], hw),
    ]
    lines += scaling_lines(record.get("scaling"))
    lines += _overload_lines(record.get("overload"))
    lines += _kubernetes_lines(record.get("kubernetes"))
    lines += ["", "## Measured curve (one instance, in-process ONNX Runtime)", "", *_curve_table(t["curves"]), ""]
    if record.get("provenance"):
        lines += ["## Provenance", "", *(f"- {k}: {' '.join(v) if isinstance(v, list) else v or '(none)'}"
                                         for k, v in record["provenance"].items()), ""]
    return "\n".join(lines)


def scaling_lines(r: Dict) -> List[str]:
    """``serving.traffic``: the recommendation and the autoscaled schedule over the day."""
    if not r:
        return []
    return ["", "## Traffic and autoscaling", "", f"`serving.traffic` ({r['profile']}, capacity {r['capacity_rps']:g} "
            f"requests/s per replica, {r['requests_per_day']:,} requests a day): {r['recommendation']}.", "",
            "| from | requests/s (max) | replicas needed | autoscaled replicas |", "|---|---|---|---|",
            *(f"| {x['time']} | {x['rate']:g} | {x['needed']} | {x['replicas']} |" for x in r["schedule"])]


def _cost_lines(cfg, cost: Dict, hw: Dict) -> List[str]:
    """The price per million inferences and the replica recommendation, where there are."""
    if "cost_per_million" in cost:
        lines = [f"Cost: ${cost['cost_per_million']:.4f} per 1M inferences at ${hw['price_per_hour']}/hour "
                 f"({hw['price_source']}, {hw['price_date']}) = $/hour ÷ (capacity × 3600) × 10⁶."]
    else:
        lines = ["Cost: no price for this hardware entry (hardware.price_per_hour is null)."]
    if "replicas" in cost:
        lines.append(f"For {cost['target_qps']} requests/s at {cost['utilization']:.0%} target utilisation: "
                     f"{cost['min_replicas']} replica(s) minimum, {cost['max_replicas']} maximum "
                     f"(a {cfg.serving.burst_factor}× burst).")
    return lines


def _value_rows(cfg, t: Dict, hw: Dict, config) -> List[str]:
    """The tuned-values table: one row per field of config.pbtxt, with the rule that set it."""
    seq = config.HasField("sequence_batching")
    db = config.sequence_batching.oldest if seq else config.dynamic_batching
    where = "sequence_batching.oldest" if seq else "dynamic_batching"
    return [
        f"| max_batch_size | {config.max_batch_size} | largest swept batch whose queued worst case fits the SLA: a "
        f"request waits for one running execution of that size, then runs in one, 2 × (p99 + "
        f"{t['overhead_ms']} ms overhead) = 2 × ({t['p99_at_max_ms']:.2f} + {t['overhead_ms']}) = "
        f"{2 * (t['p99_at_max_ms'] + t['overhead_ms']):.2f} ms ≤ {t['sla_p99_ms']} ms (sweep 1, 2, 4, … ≤ "
        f"{cfg.serving.max_batch_cap}; stops at the first miss)" + (
            f"; halved from {t['batch_halved_from']} by the overload check: a QoS tier missed its SLA at the "
            f"shortest wait it may have (one running execution), and a smaller batch shortens both that execution "
            f"and its own (see *Overload check*)" if t.get("batch_halved_from") else "") + " |",
        f"| {where}.preferred_batch_size | {list(db.preferred_batch_size) or 'none'} | "
        + (f"the knee: the first batch ≤ max_batch_size whose next swept size adds < 10 % in-process throughput "
           f"(p99 {t['p99_at_knee_ms']:.2f} ms) |" if db.preferred_batch_size else
           "none: batch 2 does not run ≥ 10 % faster per sample than batch 1 in-process (the knee is batch 1), so "
           "the batcher is not told to wait for a size; it sends whatever is queued (Triton's default), which "
           "already spreads the per-execution overhead when every instance is busy |"),
        f"| {where}.max_queue_delay_microseconds | {db.max_queue_delay_microseconds} | "
        + ("0 without a preferred size (holding a request buys nothing) |" if not db.preferred_batch_size else
           f"half the SLA budget left after the p99 at the preferred batch, at most the batch-1 p50 (a request is "
           f"not held longer than it takes to run alone) and {cfg.serving.queue_delay_cap_us} µs |"),
        f"| instance_group | {t['instances']} × {t['kind']} | {t['reason']} |",
        f"| parameters.intra_op_thread_count | {t['threads']} | instances × threads ≤ {hw['cores']} cores |",
        "| parameters.inter_op_thread_count | 1 | no effect in ONNX Runtime's default sequential execution mode "
        "(inter-op threads only run independent nodes in parallel mode); 1 keeps an enabled parallel mode from "
        "adding threads beyond the instances × intra-op threads budget (template) |",
        *(_state_rows(config) if seq else _queue_rows(t, db)),
        f"| model_warmup | batch {config.model_warmup[0].batch_size}, zero data | first requests do not pay "
        f"ONNX Runtime's lazy initialisation |" if config.model_warmup else
        "| model_warmup | none | a warm-up request has no sequence id, which the sequence batcher refuses |",
        "| response_cache | " + ("enable: true | `triton.response_cache=true`: an identical request is answered from "
                                 "the server's cache without running the model; right only for a deterministic model. "
                                 "tritonserver must run with `--cache-config local,size=<bytes>` (the Kubernetes "
                                 "Deployment passes it), or it refuses the model |" if config.response_cache.enable else
                                 "off | the default; `triton.response_cache=true` for a deterministic model with "
                                 "repeated requests (needs `--cache-config local,size=<bytes>` on the server) |"),
    ]


def _state_rows(config) -> List[str]:
    """A stateful model's rows: the state the server keeps, and the queue policies it has none of."""
    sb = config.sequence_batching
    pairs = ", ".join(f"{x.input_name} ← {x.output_name} {list(x.dims)}" for x in sb.state)
    return [f"| sequence_batching.state | {pairs} | `model.state`: the server keeps each sequence's state between its "
            f"requests, starting from zeros (`initial_state`); clients send neither |",
            f"| sequence_batching.max_sequence_idle_microseconds | {sb.max_sequence_idle_microseconds} | a sequence "
            f"idle this long is ended and its state slot freed |",
            "| queue policies | none | the sequence batcher keeps a sequence's requests in order and refuses none |"]
