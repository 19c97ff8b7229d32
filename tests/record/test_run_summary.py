"""The typed run summary gives summary.json the keys it always had, for a finished run and for an error."""

from optimizer.records import RunSummary, TargetRecord, VariantRecord

RUN_KEYS = ["recipe", "description", "status", "exit_code", "chosen", "objective", "task", "constraints",
            "gate_failures", "model_repository", "triton", "failed_steps", "passes_run", "passes_cached", "warnings",
            "model", "data", "hardware", "benchmark_batch_sizes", "measurement", "variants", "output_dir",
            "cache_dir", "versions", "schema_version", "started", "overrides", "git", "summary_path", "plots",
            "reports", "tracking", "finished"]
ERROR_KEYS = ["recipe", "description", "status", "exit_code", "error", "chosen", "model", "data", "variants",
              "output_dir", "versions", "schema_version", "started", "overrides", "git", "reports"]
PROVENANCE = {"schema_version": 2, "started": "2026-01-01T00:00:00+00:00", "overrides": [], "git": None}


def _variant(**kw):
    return VariantRecord("export", ("export",), "ok", True, 1.5, **kw)


def _summary(**kw):
    return RunSummary("int8", "d", "passed", 0, model={"source": "builtin"}, data={"source": "builtin"},
                      output_dir="/run", versions={}, provenance=PROVENANCE, **kw)


def test_a_finished_run_has_every_key_in_order():
    triton = TargetRecord("triton", True, location="/run/model_repository", details={"variant": "export"})
    s = _summary(chosen="export", objective="throughput", task="classification", targets={"triton": triton},
                 variants=(_variant(violations=(), pareto=True, cost={}),), benchmark_batch_sizes=(1, 8),
                 cache_dir="/cache", summary_path="/run/summary.json", plots=[], reports={}, tracking={},
                 finished="2026-01-01T00:01:00+00:00")
    d = s.to_dict()
    assert list(d) == RUN_KEYS
    assert d["triton"] == {"emitted": True, "variant": "export"} and d["model_repository"] == "/run/model_repository"
    assert d["benchmark_batch_sizes"] == [1, 8] and d["gate_failures"] == {}


def test_a_target_that_did_not_run_is_an_empty_record_and_gates_name_it():
    s = _summary(targets={"triton": None}, variants=(_variant(violations=("p99 2.00 ms > 1.0 ms",)),))
    d = s.to_dict()
    assert d["triton"] == {} and d["model_repository"] is None
    assert d["gate_failures"] == {"export": ["p99 2.00 ms > 1.0 ms"]}
    gated = _summary(targets={"triton": TargetRecord("triton", False, gate="SLA", details={"reason": "SLA"})})
    assert gated.to_dict()["gate_failures"] == {"triton": ["SLA"]}
    assert gated.to_dict()["triton"] == {"emitted": False, "reason": "SLA", "gate": "SLA"}


def test_an_error_summary_keeps_what_was_known():
    s = _summary(error="boom", reports={"markdown": "report.md"})
    assert list(s.to_dict()) == ERROR_KEYS


def test_a_variant_round_trips_through_its_json_form():
    full = {"name": "q", "chain": ["export", "q"], "status": "ok", "ran": False, "seconds": 0.5,
            "artifact_id": "a", "parent_id": "p", "format": "onnx", "path": "/c/m.onnx", "precision": "int8",
            "size_bytes": 10, "deployable": True, "meta": {}, "evaluation": {"score": 1.0},
            "benchmark": {"1": {"p99_ms": 1.0, "throughput": 5.0}}, "measurements_reused": False,
            "speedup": {"1": 2.0}, "speedup_interval": {"1": [1.9, 2.1]}, "verdict": {"1": "faster"},
            "unstable": [], "group": 0, "peak_memory_mb": 12.0, "cost": {}, "violations": [], "pareto": True}
    assert VariantRecord.from_dict(full).to_dict() == full
    assert list(VariantRecord.from_dict(full).to_dict()) == list(full)
