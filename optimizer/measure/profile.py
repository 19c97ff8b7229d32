"""Where a variant's time goes: per-node times from ONNX Runtime's profiler, per-operator self times from torch's,
at one batch size, in the variant's measurement worker after its timed blocks (a profiling session is slower
than the timed one, and is never timed).

The record holds the top nodes and the share of each op type, both as shares of the profiled calls' wall time,
and ``covered``: how much of that time the listed operators account for (the rest is the runtime's own work
between them, and input/output copies). ``hints`` reads the record with the variant's metadata and says what a
rule knows to do about it."""

import json
import os
import tempfile
import time
from collections import defaultdict
from typing import Dict, List, Mapping, Optional

TOP = 10  # nodes listed per variant
RUNS = 20  # profiled calls (after WARMUP unprofiled-in-the-figures calls)
WARMUP = 3


def profile(art, hardware, feeds: Mapping, batch_size: int) -> Optional[Dict]:
    """The time breakdown of ``art`` on ``feeds`` (one batch of ``batch_size``); None for a format with no
    profiler here (TensorRT engines)."""
    record = {"onnx": _onnx, "torch": _torch}.get(art.format)
    if record is None:
        return None
    out = record(art, hardware, feeds, batch_size)
    return {**out, "hints": hints(out, art.meta, art.format)}


def _record(per_node: Dict[str, float], op_of: Dict[str, str], wall_ms: float, batch_size: int, runs: int) -> Dict:
    """Per-call figures from totals over ``runs`` calls: top nodes, shares per op type, coverage."""
    per_type: Dict[str, float] = defaultdict(float)
    for name, ms in per_node.items():
        per_type[op_of[name]] += ms
    total = sum(per_node.values())
    top = sorted(per_node.items(), key=lambda kv: -kv[1])[:TOP]
    return {"batch_size": batch_size, "runs": runs, "call_ms": round(wall_ms / runs, 4),
            "covered": round(total / wall_ms, 4) if wall_ms else 0.0,
            "top_nodes": [{"name": n, "op_type": op_of[n], "ms": round(ms / runs, 4), "share": round(ms / wall_ms, 4)}
                          for n, ms in top],
            "op_types": {t: round(ms / wall_ms, 4) for t, ms in sorted(per_type.items(), key=lambda kv: -kv[1])}}


def _onnx(art, hardware, feeds: Mapping, batch_size: int) -> Dict:
    from optimizer.formats.onnx import ort_session

    with tempfile.TemporaryDirectory(prefix="optimizer-profile-") as tmp:
        sess = ort_session(art.path, hardware, art, profile_prefix=os.path.join(tmp, "ort"))
        names = [i.name for i in sess.get_inputs()]
        x = {n: feeds[n] for n in names}
        for _ in range(WARMUP + RUNS):
            sess.run(None, x)
        with open(sess.end_profiling()) as f:
            events = json.load(f)
    runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"][WARMUP:]
    start = min((e["ts"] for e in runs), default=0)
    per_node: Dict[str, float] = defaultdict(float)
    op_of: Dict[str, str] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e.get("ts", 0) >= start:
            name = e["name"][: -len("_kernel_time")]
            per_node[name] += e["dur"] / 1000.0
            op_of[name] = e.get("args", {}).get("op_name", "?")
    return _record(per_node, op_of, sum(e["dur"] for e in runs) / 1000.0, batch_size, len(runs))


def _torch(art, hardware, feeds: Mapping, batch_size: int) -> Dict:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from optimizer import formats

    session = formats.load(art, hardware)
    try:
        for _ in range(WARMUP):
            session(dict(feeds))
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            t0 = time.perf_counter()
            for _ in range(RUNS):
                session(dict(feeds))
            wall_ms = (time.perf_counter() - t0) * 1000.0
    finally:
        session.close()
    per_op = {e.key: e.self_cpu_time_total / 1000.0 for e in prof.key_averages() if e.self_cpu_time_total > 0}
    return _record(per_op, {k: k for k in per_op}, wall_ms, batch_size, RUNS)


ATTENTION = {"Attention", "MultiHeadAttention", "GroupQueryAttention", "PackedAttention"}
QDQ = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"}
HEAVY = {"Conv", "MatMul", "Gemm", "ConvTranspose", "LSTM", "GRU"}


def hints(record: Optional[Mapping], meta: Mapping, fmt: str) -> List[str]:
    """What the breakdown says to do, where a rule knows (ONNX variants)."""
    if not record or fmt != "onnx":
        return []
    types = record["op_types"]
    out = []
    if "Softmax" in types and "MatMul" in types and not ATTENTION & set(types):
        out.append("unfused attention: Softmax between MatMuls and no Attention node; a fuse step "
                   "(passes.fuse, ONNX Runtime's transformer optimizer) can fuse it")
    qdq = sum(types.get(t, 0.0) for t in QDQ)
    if qdq >= 0.15:
        out.append(f"Q/DQ nodes take {qdq:.0%} of the time: ONNX Runtime left quantize/dequantize pairs unfused "
                   f"around ops it has no integer kernel for; exclude those op types (passes.quantize.op_types_to_exclude)")
    quantized = set((meta.get("quantized_nodes") or {}).keys())
    if meta.get("precision") == "int8" and quantized:  # static: dynamic INT8 leaves Conv float on purpose
        island = {t: s for t, s in types.items() if t in HEAVY and t not in quantized and s >= 0.2}
        for t, s in island.items():
            out.append(f"float island: {t} takes {s:.0%} of the time in float inside a quantized graph; "
                       f"add it to passes.quantize.op_types")
    if types:
        top, share = next(iter(types.items()))
        if share >= 0.5 and not any(top in h for h in out):
            out.append(f"{top} dominates ({share:.0%} of the time): it is where any further speed-up must come from")
    return out
