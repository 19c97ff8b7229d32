"""``tuning.md``: every tuned value of config.pbtxt, the rule that set it and the numbers behind it."""

from typing import Dict, List


def _curve_table(curves: Dict[str, List[Dict]]) -> List[str]:
    lines = ["| intra-op threads | batch | p50 ms | p99 ms | samples/s (mean) | calls |",
             "|---:|---:|---:|---:|---:|---:|"]
    for t, curve in curves.items():
        for p in curve:
            lines.append(f"| {t} | {p['batch_size']} | {p['p50_ms']:.3f} | {p['p99_ms']:.3f} | "
                         f"{p['throughput']:.0f} | {p['calls']} |")
    return lines


def tuning_markdown(cfg, record: Dict, config) -> str:
    """The markdown written beside config.pbtxt."""
    t, hw, cost = record["tuning"], record["hardware"], record["cost"]
    db = config.dynamic_batching
    lines = [
        f"# {config.name}: how config.pbtxt was tuned", "",
        f"Variant `{record['variant']}` (artifact `{record['artifact_id'][:12]}`), measured on hardware "
        f"`{hw['name']}` ({hw['cores']} cores, device {hw['device']}). SLA: p99 ≤ {t['sla_p99_ms']} ms per request.",
        "", "## Tuned values", "",
        "| field | value | rule |", "|---|---|---|",
        f"| max_batch_size | {config.max_batch_size} | largest swept batch whose p99 fits the SLA "
        f"(p99 + overhead; sweep 1, 2, 4, … ≤ {cfg.serving.max_batch_cap}; stops at the first miss) |",
        f"| dynamic_batching.preferred_batch_size | {list(db.preferred_batch_size) or 'none'} | "
        + (f"the knee: the first batch ≤ max_batch_size whose next swept size adds < 10 % in-process throughput "
           f"(p99 {t['p99_at_knee_ms']:.2f} ms) |" if db.preferred_batch_size else
           "none: batch 2 does not run ≥ 10 % faster per sample than batch 1 in-process (the knee is batch 1), so "
           "the batcher is not told to wait for a size; it sends whatever is queued (Triton's default), which "
           "already spreads the per-execution overhead when every instance is busy |"),
        f"| dynamic_batching.max_queue_delay_microseconds | {db.max_queue_delay_microseconds} | "
        + ("0 without a preferred size (holding a request buys nothing) |" if not db.preferred_batch_size else
           f"half the SLA budget left after the p99 at the preferred batch, at most the batch-1 p50 (a request is "
           f"not held longer than it takes to run alone) and {cfg.serving.queue_delay_cap_us} µs |"),
        f"| instance_group | {t['instances']} × {t['kind']} | {t['reason']} |",
        f"| parameters.intra_op_thread_count | {t['threads']} | instances × threads ≤ {hw['cores']} cores |",
        "| parameters.inter_op_thread_count | 1 | one graph at a time per instance (template) |",
        f"| model_warmup | batch {config.model_warmup[0].batch_size}, zero data | first requests do not pay "
        f"ONNX Runtime's lazy initialisation |",
        "", "## Cost and replicas", "",
        f"Estimated capacity of one server: {t['throughput']:.0f} samples/s ({t['instances']} instance(s) at batch "
        f"{t['knee_batch_size']}, batch ÷ (p50 + {t['overhead_ms']} ms serving overhead per execution)).",
    ]
    if "cost_per_million" in cost:
        lines.append(f"Cost: ${cost['cost_per_million']:.4f} per 1M inferences at ${hw['price_per_hour']}/hour "
                     f"({hw['price_source']}, {hw['price_date']}) = $/hour ÷ (samples/s × 3600) × 10⁶.")
    else:
        lines.append("Cost: no price for this hardware entry (hardware.price_per_hour is null).")
    if "replicas" in cost:
        lines.append(f"For {cost['target_qps']} requests/s at {cost['utilization']:.0%} target utilisation: "
                     f"{cost['min_replicas']} replica(s) minimum, {cost['max_replicas']} maximum "
                     f"(a {cfg.serving.burst_factor}× burst).")
    lines += ["", "## Measured curve (one instance, in-process ONNX Runtime)", "", *_curve_table(t["curves"]), ""]
    return "\n".join(lines)
