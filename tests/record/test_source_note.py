"""A run that ships the unmodified source says so plainly: in the warnings, the report and the terminal."""

from optimizer.record.ci import markdown
from optimizer.record.summary import source_note
from optimizer.records import VariantRecord


def _v(name, chain, violations=()):
    return VariantRecord(name, tuple(chain), "ok", False, 0.0, violations=tuple(violations))


def test_the_source_chosen_because_every_optimized_variant_failed():
    records = [_v("reference", []), _v("quantize", ["quantize"], ["relative error ... > 0.2"])]
    assert source_note(records, records[0], "throughput") == [
        "no optimized variant met the constraints: the source model is emitted"]


def test_the_source_chosen_because_it_measured_best():
    records = [_v("reference", []), _v("fuse", ["fuse"]), _v("quantize", ["fuse", "quantize"])]
    (note,) = source_note(records, records[0], "p99")
    assert note == ("no optimized variant beat the source model on p99 (fuse, quantize met the constraints but "
                    "measured worse): the source model is emitted")


def test_an_optimized_choice_needs_no_note():
    records = [_v("reference", []), _v("quantize", ["quantize"])]
    assert source_note(records, records[1], "throughput") == [] and source_note(records, None, "throughput") == []


def test_the_report_names_the_unmodified_source():
    summary = {"recipe": "int8", "status": "passed", "exit_code": 0, "chosen": "reference", "objective": "throughput",
               "variants": [{"name": "reference", "chain": [], "status": "ok", "ran": False, "precision": "fp32"}],
               "benchmark_batch_sizes": [1]}
    assert "**Chosen: `reference`** (the unmodified source model: no optimized variant survived" in markdown(summary)
