"""The measurement protocol, checked without asserting on any duration: pauses and warm-ups before each
block, interleaved alternating rounds, worker processes, verdicts from intervals, reuse of whole sets only,
the host-wide lock (from recorded timestamps), and the reference never emitted."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.config import BenchmarkConfig
from optimizer.measure import stats
from optimizer.measure.benchmark import timed_block
from optimizer.measure.lock import lock_name
from optimizer.measure.rounds import groups, schedule
from optimizer.measure.run import reusable
from tests.helpers import FAST, ROOT


class FakeClock:
    """A clock that moves only when the fake session runs (1 ms per call) or the fake sleep sleeps."""

    def __init__(self):
        self.now, self.events = 0.0, []

    def clock(self):
        return self.now

    def sleep(self, s):
        self.events.append(("pause", s))
        self.now += s

    def run(self):
        self.events.append(("call", self.now))
        self.now += 0.001


def test_block_pauses_then_warms_up_then_times():
    cfg = BenchmarkConfig(pause_seconds=0.3, warmup_seconds=0.01, min_repeats=100, max_seconds=0.2, rounds=4)
    fake = FakeClock()
    block = timed_block(fake.run, cfg, clock=fake.clock, sleep=fake.sleep, wall=fake.clock)
    assert fake.events[0] == ("pause", 0.3)  # the pause comes first
    calls = [e for e in fake.events if e[0] == "call"]
    assert block["warmup_calls"] >= 1 and len(calls) == block["warmup_calls"] + len(block["latencies"])
    assert block["pause_start"] < block["start"] - 0.3 + 1e-9  # warm-up calls ran after the pause, before timing
    assert all(t >= block["start"] for _, t in calls[block["warmup_calls"]:])  # timed calls only after warm-up
    assert len(block["latencies"]) >= 25  # min_repeats / rounds
    assert block["latencies"] == pytest.approx([0.001] * len(block["latencies"]))


def test_rounds_interleave_and_alternate():
    order = schedule(["a", "b", "c"], [1, 8], 3)
    assert [n for bs, r, n in order if bs == 1] == list("abccbaabc")
    assert [(bs, r) for bs, r, _ in order[:6]] == [(1, 0)] * 3 + [(8, 0)] * 3  # a round covers every batch size
    assert order[6] == (1, 1, "c")


def test_verdict_needs_an_interval_that_excludes_one():
    ref = {"median_throughput": 100.0, "rounds": [100.0, 100.0, 100.0]}
    same = {"median_throughput": 104.0, "rounds": [90.0, 112.0, 110.0]}  # faster in 2 rounds, slower in 1
    point, interval = stats.speedup(same, ref)
    assert point == pytest.approx(1.10) and interval == pytest.approx([0.9, 1.12])  # median of the rounds' ratios
    assert stats.verdict(interval) == "same"
    assert stats.verdict(stats.speedup({"median_throughput": 300.0, "rounds": [280.0, 310.0, 300.0]}, ref)[1]) == "faster"
    assert stats.verdict(stats.speedup({"median_throughput": 33.0, "rounds": [20.0, 33.0, 45.0]}, ref)[1]) == "slower"
    assert stats.verdict([0.33, 1.4]) == "same"  # a huge spread never yields a slow-down verdict


def test_pooled_figures_and_unstable_flag():
    calm = stats.pooled([[0.001] * 50, [0.0011] * 50], 4, max_cv=0.5)
    assert calm["calls"] == 100 and not calm["unstable"]
    assert calm["rounds"] == pytest.approx([4000.0, 4 / 0.0011])
    assert calm["throughput"] == pytest.approx(4 * 100 / (0.05 + 0.055))
    assert calm["p99_rounds"] == pytest.approx([1.0, 1.1])  # ms, one per round (the p99 gate's interval)
    busy = stats.pooled([[0.001] * 50, [0.001] * 45 + [0.05] * 5], 4, max_cv=0.5)
    assert busy["unstable"]
    assert busy["p99_rounds"] == pytest.approx([1.0, 50.0]) and busy["p99_ms"] == pytest.approx(50.0)


def test_speedups_compare_typical_calls_not_stalls():
    """A co-tenant's time slices stall a few calls of whichever variant runs; the speed-up must not move."""
    ref = stats.pooled([[0.002] * 50] * 3, 1, max_cv=0.5)
    fast = stats.pooled([[0.001] * 50] * 3, 1, max_cv=0.5)
    stalled = stats.pooled([[0.002] * 45 + [0.03] * 5] * 3, 1, max_cv=0.5)  # 5 of 50 calls wait a slice
    for base in (ref, stalled):
        point, interval = stats.speedup(fast, base)
        assert point == pytest.approx(2.0) and interval == pytest.approx([2.0, 2.0])
    assert stalled["throughput"] < ref["throughput"] / 2  # the mean throughput records what the load cost


def test_groups_fit_memory_and_always_include_the_reference():
    sizes = {"ref": 400.0, "a": 200.0, "b": 200.0, "c": 200.0}
    assert groups(list(sizes), sizes, 10_000) == [["ref", "a", "b", "c"]]
    assert groups(list(sizes), sizes, 800) == [["ref", "a", "b"], ["ref", "c"]]
    assert groups(list(sizes), sizes, 100) == [["ref", "a"], ["ref", "b"], ["ref", "c"]]


def test_only_whole_stable_sets_are_reused():
    record = {"variants": {"reference": {}, "a": {}, "b": {}}, "session": {"unstable": False}}
    assert reusable(record, ["reference", "a", "b"])
    assert not reusable(record, ["reference", "a"]) and not reusable(record, ["reference", "a", "b", "c"])
    assert not reusable({**record, "session": {"unstable": True}}, ["reference", "a", "b"])
    assert not reusable(None, ["reference"])


# ---------------------------------------------------------------- real worker processes on tiny ONNX models

TINY = '''
import numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
from optimizer.artifact import Artifact
from optimizer.chain import Variant


def tiny_variants(directory, names, seed=0):
    """Variants holding a Flatten -> MatMul classifier for 1x32x32 inputs (the first one is the reference)."""
    out = []
    for i, name in enumerate(names):
        w = np.random.default_rng(seed).normal(size=(1024, 10)).astype(np.float32) * (1 + 1e-4 * i)
        graph = helper.make_graph(
            [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
            name, [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 1, 32, 32])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])], [numpy_helper.from_array(w, "w")])
        path = directory / f"{name}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
        out.append(Variant(name, [] if i == 0 else [name], Artifact(path, "onnx", id=f"{name}-{seed}")))
    return out
'''


def _tiny():
    scope = {}
    exec(TINY, scope)  # noqa: S102 - the same helper runs in the lock test's subprocesses
    return scope["tiny_variants"]


def _cfg(*extra):
    from optimizer.recipe.compose import compose

    return compose("int8", [*FAST, "benchmark.max_seconds=0.06", "benchmark.batch_sizes=[1,4]", *extra])


def test_workers_measure_a_set_in_interleaved_rounds(splits, tmp_path):
    from optimizer.cache import Cache
    from optimizer.measure.run import measure

    names = ["reference", "a", "b"]
    variants, cache, cfg = _tiny()(tmp_path, names), Cache(tmp_path / "cache"), _cfg("benchmark.rounds=3")
    m = measure(variants, splits, cfg, cache, "classification")
    blocks = m.session["blocks"]
    assert [b["variant"] for b in blocks if b["batch_size"] == 1] == names + names[::-1] + names
    assert [b["round"] for b in blocks if b["batch_size"] == 4] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for b, nxt in zip(blocks, blocks[1:] + [None]):
        assert b["warmup_calls"] >= 1 and b["calls"] >= 5
        assert b["start"] - b["pause_start"] >= cfg.benchmark.pause_seconds  # the idle pause came first
        assert nxt is None or b["end"] <= nxt["pause_start"]  # one worker times at a time
    assert m.session["groups"] == [names] and not m.session["reused"] and m.session["lock_wait_seconds"] >= 0
    pids = {(b["round"], b["variant"]): b["pid"] for b in blocks}  # each round in new worker processes
    assert len(set(pids.values())) == 9 and m.session["worker_starts"] == 3
    assert all(b["pid"] == pids[b["round"], b["variant"]] for b in blocks)  # one process per variant and round
    assert len(m.session["load_before"]) == 3 and len(m.session["load_after"]) == 3
    for name in names:
        r = m.variants[name]
        assert r["evaluation"]["samples"] == 449 and set(r["verdict"]) == {"1", "4"}
        assert len(r["benchmark"]["1"]["rounds"]) == 3
        lo, hi = r["speedup_interval"]["1"]
        assert lo <= r["speedup"]["1"] <= hi
    assert m.variants["a"]["evaluation"]["top1_agreement"] == 100.0
    assert m.variants["reference"]["verdict"] == {"1": "same", "4": "same"}

    again = measure(variants, splits, cfg, cache, "classification")
    assert again.session["reused"] and again.session["id"] == m.session["id"]
    assert again.variants["b"]["benchmark"] == m.variants["b"]["benchmark"]
    part = measure(variants[:2], splits, cfg, cache, "classification")  # a subset is its own set
    assert not part.session["reused"] and part.session["id"] != m.session["id"]


def test_workers_can_live_for_the_whole_run(splits, tmp_path):
    from optimizer.cache import Cache
    from optimizer.measure.run import measure

    variants = _tiny()(tmp_path, ["reference", "a"], seed=3)
    m = measure(variants, splits, _cfg("benchmark.fresh_workers=false"), Cache(tmp_path / "c"), "classification")
    pids = {}
    for b in m.session["blocks"]:
        pids.setdefault(b["variant"], set()).add(b["pid"])
    assert m.session["worker_starts"] == 1 and [len(p) for p in pids.values()] == [1, 1] and len(set.union(*pids.values())) == 2


def test_groups_when_the_workers_do_not_fit(splits, tmp_path):
    from optimizer.cache import Cache
    from optimizer.measure.run import measure

    variants = _tiny()(tmp_path, ["reference", "a", "b"], seed=1)
    m = measure(variants, splits, _cfg("benchmark.memory_budget_mb=1"), Cache(tmp_path / "c"), "classification")
    assert m.session["groups"] == [["reference", "a"], ["reference", "b"]] and "2 groups" in m.session["note"]
    assert {b["group"] for b in m.session["blocks"] if b["variant"] == "reference"} == {0, 1}
    assert m.variants["b"]["group"] == 1 and m.variants["b"]["evaluation"]["top1_agreement"] == 100.0


def test_a_broken_variant_fails_alone_and_the_others_are_measured(splits, tmp_path):
    from optimizer.cache import Cache
    from optimizer.errors import OptimizerError
    from optimizer.measure.run import measure

    variants = _tiny()(tmp_path, ["reference", "broken", "a"], seed=2)
    Path(variants[1].artifact.path).write_bytes(b"not onnx")
    m = measure(variants, splits, _cfg(), Cache(tmp_path / "c"), "classification")
    assert sorted(m.variants) == ["a", "reference"] and m.variants["a"]["evaluation"]["top1_agreement"] == 100.0
    assert variants[1].status == "failed" and variants[1].error.startswith("measuring broken: ")
    assert "INVALID_PROTOBUF" in variants[1].error or "Protobuf" in variants[1].error
    assert [v.status for v in variants] == ["ok", "failed", "ok"]
    Path(variants[0].artifact.path).write_bytes(b"not onnx")  # without the reference nothing can be compared
    with pytest.raises(OptimizerError, match="measuring reference: "):
        measure(variants, splits, _cfg("benchmark.reuse=false"), Cache(tmp_path / "c"), "classification")


LOCK_JOB = TINY + '''
import json, sys
from pathlib import Path
from optimizer.cache import Cache
from optimizer.config import DataConfig
from optimizer.measure.run import measure
from optimizer.recipe.compose import compose
from optimizer.sources.data import load_splits

tmp, tag = Path(sys.argv[1]), sys.argv[2]
(tmp / tag).mkdir()
cfg = compose("int8", json.loads(sys.argv[3]))
m = measure(tiny_variants(tmp / tag, ["reference", "a"], seed=int(sys.argv[4])), load_splits(DataConfig()), cfg,
            Cache(tmp / "cache"), "classification")
(tmp / f"{tag}.json").write_text(json.dumps(m.session))
'''


def test_the_host_lock_keeps_two_runs_timed_blocks_apart(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(LOCK_JOB)
    overrides = json.dumps([*FAST, "benchmark.max_seconds=0.4", "benchmark.batch_sizes=[1,4]", "benchmark.rounds=3"])
    env = {"PYTHONPATH": str(ROOT), **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}}
    jobs = [subprocess.Popen([sys.executable, str(script), str(tmp_path), tag, overrides, str(seed)], env=env)
            for seed, tag in enumerate(["one", "two"])]
    assert [j.wait(timeout=300) for j in jobs] == [0, 0]
    one, two = (json.loads((tmp_path / f"{t}.json").read_text()) for t in ("one", "two"))
    assert (tmp_path / "cache" / lock_name()).exists()
    for a in one["blocks"]:
        for b in two["blocks"]:
            assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)
    # the lock is held over a whole timing phase, so one run's blocks all precede the other's
    first, second = sorted([one, two], key=lambda s: s["blocks"][0]["start"])
    assert max(b["end"] for b in first["blocks"]) <= min(b["start"] for b in second["blocks"])


# ---------------------------------------------------------------- verdicts in the report and the choice


def test_parity_gates_what_was_not_trained_anew():
    from types import SimpleNamespace

    from optimizer.measure.run import gated, parity_base

    def v(name, retrained=None):
        return SimpleNamespace(name=name, artifact=SimpleNamespace(meta={"retrained": retrained} if retrained else {}))

    outputs = {"reference": 0, "prune": 0, "quantize": 0}
    assert gated(v("quantize"), "reference")  # no retraining: held to the reference
    assert not gated(v("prune", "prune"), parity_base(v("prune", "prune"), outputs))  # the retrained model itself
    assert parity_base(v("quantize", "prune"), outputs) == "prune" and gated(v("quantize", "prune"), "prune")
    # a search trial: prune -> quantize measured without its pruned model; only the reference to compare with
    assert parity_base(v("trial3", "prune"), {"reference": 0, "trial3": 0}) == "reference"
    assert not gated(v("trial3", "prune"), "reference")
