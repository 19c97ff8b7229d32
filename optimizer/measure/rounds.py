"""The coordinator's timing plan: interleaved rounds, groups that fit in memory, and the timed phase.

Round 0 times the variants in order (A B C) at every batch size, round 1 in reverse (C B A), and so on,
so load that comes and goes lands on every variant alike and no variant is always first or last. Only
one worker times at any moment: the coordinator asks one for a block and waits for its answer, while the
others wait on their pipes. With ``benchmark.fresh_workers`` every round runs in new worker processes
(``run.py``), so a round is the unit of both the interleaving and the process."""

from typing import Callable, Dict, List, Sequence, Tuple

BASE_MB = {"torch": 400.0, "onnx": 120.0}  # a worker process with its runtime imported, before any model
MODEL_FACTOR = 4.0  # resident memory per byte of model file (weights, runtime copies, arenas), roughly


def schedule(names: Sequence[str], batch_sizes: Sequence[int], rounds: int) -> List[Tuple[int, int, str]]:
    """``(batch size, round, variant)`` in the order the blocks run."""
    return [block for r in range(rounds) for block in round_blocks(names, batch_sizes, r)]


def round_blocks(names: Sequence[str], batch_sizes: Sequence[int], r: int) -> List[Tuple[int, int, str]]:
    """Round ``r``'s blocks: every batch size, the variants in order (even rounds) or reversed (odd)."""
    order = list(names) if r % 2 == 0 else list(reversed(names))
    return [(int(bs), r, n) for bs in batch_sizes for n in order]


def footprint_mb(fmt: str, size_bytes: int) -> float:
    """Estimated resident memory of a worker holding a model of this format and file size."""
    return BASE_MB.get(fmt, 400.0) + MODEL_FACTOR * size_bytes / 2**20


def groups(names: Sequence[str], footprints: Dict[str, float], budget_mb: float) -> List[List[str]]:
    """The variants split into groups whose workers fit ``budget_mb`` together; every group starts with
    ``names[0]`` (the reference), so each speed-up compares timings taken side by side. One group when
    all fit; a variant that does not fit even beside the reference alone still gets a group of two."""
    ref, rest = names[0], list(names[1:])
    if sum(footprints[n] for n in names) <= budget_mb or not rest:
        return [list(names)]
    out, current = [], [ref]
    for n in rest:
        if len(current) > 1 and sum(footprints[m] for m in current) + footprints[n] > budget_mb:
            out.append(current)
            current = [ref]
        current.append(n)
    return out + [current]


def run_blocks(workers: Dict, order: Sequence[Tuple[int, int, str]], cfg,
               advance: Callable = lambda n=1: None) -> List[Dict]:
    """The blocks ``order`` (``round_blocks`` of the rounds of one group), one worker at a time: each entry is
    the worker's timed block (raw latencies, pause and timing start and end, warm-up calls, the worker's pid)
    with its variant, batch size and round."""
    blocks = []
    for bs, r, name in order:
        block = workers[name].call("block", bs, cfg)
        blocks.append({"variant": name, "batch_size": bs, "round": r, **block})
        advance()
    return blocks


def block_log(blocks: List[Dict], group: int) -> List[Dict]:
    """The blocks without their raw latencies, as they go into the measurement record."""
    from optimizer.measure.stats import block_throughput

    return [{**{k: v for k, v in b.items() if k != "latencies"}, "group": group, "calls": len(b["latencies"]),
             "throughput": block_throughput(b["latencies"], b["batch_size"])} for b in blocks]
