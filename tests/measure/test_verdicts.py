"""What the measured set lets the run say: slow-down warnings only on a slower verdict, the reference's lead
stated with its interval, other processes' load counted and a contended set never reused."""

import os
import subprocess
import sys
import time

import pytest



def record(name, speed, interval, verdict, deployable=True, fmt="onnx"):
    return {"name": name, "chain": [] if name == "reference" else [name], "status": "ok", "precision": "fp32",
            "format": fmt, "deployable": deployable, "violations": [],
            "evaluation": {"metric": "accuracy", "score": 99.0}, "benchmark": {"32": {"throughput": 100.0 * speed}},
            "speedup": {"32": speed}, "speedup_interval": {"32": interval}, "verdict": {"32": verdict}}


def test_slow_down_warning_only_for_a_slower_verdict():
    from optimizer.record.summary import speed_cell, warnings as slow_downs
    from optimizer.records import VariantRecord

    records = [record("reference", 1.0, [1.0, 1.0], "same", False, "torch"),
               record("noisy", 0.33, [0.2, 1.3], "same"), record("slow", 0.5, [0.45, 0.6], "slower")]
    warnings = slow_downs([VariantRecord.from_dict(r) for r in records])
    assert [w for w in warnings if "slower" in w] == [
        "slow (fp32) is slower than the reference: 0.50x its median-call throughput at batch 32 (every round 0.45-0.60x)"]
    assert speed_cell(records[1], "32") == "0.33x same" and "[red]" in speed_cell(records[2], "32")
    assert speed_cell({**records[1], "unstable": ["32"]}, "32").endswith("unstable[/yellow]")


def test_reference_is_never_emitted_and_its_lead_is_stated_with_its_interval():
    from optimizer.config import Objective
    from dataclasses import replace

    from optimizer.decide.select import choose
    from optimizer.record.summary import reference_note
    from optimizer.records import VariantRecord

    records = [VariantRecord.from_dict(record("reference", 1.0, [1.0, 1.0], "same", False, "torch")),
               VariantRecord.from_dict(record("export", 0.5, [0.4, 0.8], "slower"))]
    chosen = choose(records, Objective.throughput)
    assert chosen.name == "export"
    (note,) = reference_note(records, chosen)
    assert "2.00x its median-call throughput at batch 32, every round 1.25-2.50x" in note and "export is emitted" in note
    chosen = replace(chosen, speedup={"32": 0.9}, speedup_interval={"32": [0.7, 1.1]}, verdict={"32": "same"})
    assert reference_note(records, chosen) == []  # within the spread: no claim


def test_contention_counts_other_processes_not_the_runs_own():
    """Two meters over the same phase, one counting a busy child as the run's own, one not: the difference is
    that child's CPU time, and the set is flagged contended only above the limit."""

    from optimizer.measure.contention import Meter, verdict
    from optimizer.host import process_ticks

    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"])
    try:
        time.sleep(0.3)
        mine, other = Meter([busy.pid]), Meter([])
        ticks0 = process_ticks([busy.pid])
        mine.start(), other.start()
        time.sleep(1.5)
        a, b = mine.stop(), other.stop()
        burned = (process_ticks([busy.pid]) - ticks0) / os.sysconf("SC_CLK_TCK") / a["seconds"]  # cores
    finally:
        busy.kill()
        busy.wait()
    assert burned > 0.02  # the child got CPU (a loaded machine gives it less than a core)
    assert b["foreign_cores"] - a["foreign_cores"] == pytest.approx(burned, abs=0.15)
    assert 0.0 <= a["steal_share"] <= 1.0
    assert verdict([a, b], limit=0.0)["contended"] is False  # 0 turns the check off
    assert verdict([{"foreign_cores": 0.1, "steal_share": 0.0}, {"foreign_cores": 0.9, "steal_share": 0.01}], 0.5) == \
        {"foreign_cores": 0.9, "steal_share": 0.01, "contended": True}
    assert verdict([{}], 0.5) == {}


def test_a_contended_set_is_never_reused():
    from optimizer.measure.run import reusable

    record = {"variants": {"reference": {}, "export": {}}, "session": {"unstable": False, "contended": False}}
    assert reusable(record, ["export", "reference"])
    record["session"]["contended"] = True
    assert not reusable(record, ["export", "reference"])
