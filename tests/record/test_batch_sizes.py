"""Batch sizes are ints, sorted and de-duplicated once at plan time; the table and the objective both read the
largest, however the recipe lists them."""

from optimizer.recipe.compose import compose
from optimizer.recipe.plan import check_settings
from optimizer.record.summary import columns


def test_plan_sorts_and_deduplicates_the_batch_sizes():
    cfg = compose("int8", ["benchmark.batch_sizes=[32,1,8,8]"])
    check_settings(cfg)
    assert cfg.benchmark.batch_sizes == [1, 8, 32] and all(type(b) is int for b in cfg.benchmark.batch_sizes)


def test_table_shows_the_largest_batch_as_the_objective_does():
    """``[32,1,8]`` once put batch 8 in the throughput and speed-up columns while the objective ranked by 32."""
    from optimizer.decide.select import throughput
    from optimizer.records import VariantRecord

    bench = {str(bs): {"p50_ms": 0.1 * bs, "p99_ms": 0.2 * bs, "throughput": 100.0 * bs} for bs in (32, 1, 8)}
    variant = {"name": "export", "chain": ["export"], "status": "ok", "ran": True, "benchmark": bench,
               "speedup": {"32": 2.0, "8": 1.5}, "verdict": {"32": "faster", "8": "faster"}}
    summary = {"benchmark_batch_sizes": [32, 1, 8], "variants": [variant], "triton": {}, "chosen": "export"}
    cells = {title: cell(variant) for title, _, _, cell in columns(summary)}
    assert cells["samples/s b32"] == "3200" and cells["speed-up b32"] == "2.00x"
    assert throughput(VariantRecord.from_dict(variant)) == 3200.0
