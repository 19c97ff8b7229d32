"""Run the trials of ``recipe=auto``: each a chain through the shared cache (a prefix two trials share runs once),
screened in a short measurement set with the reference, then the finalists handed back to be measured together.

Screening figures are ratios against the reference timed in the same short set (speed-up at the largest batch,
p99 ratio at the smallest), because figures from different sets are not comparable on a shared machine; they only
rank trials. The finalists, the screening Pareto front over the task's score, the p99 ratio and the speed-up (best
by the objective first), the recipe's own chain and the incumbents, are measured again together in the run's one set,
which alone decides. Trials are drawn by an Optuna sampler (grid, random, TPE) from the space's combinations; a
trial whose chain is one an earlier trial ran is not run again."""

import time
from dataclasses import replace
from typing import Dict, List, Mapping, Optional, Tuple

from optimizer.errors import OptimizerError


def front(points: Mapping[str, Tuple[float, ...]]) -> List[str]:
    """Names no other point beats on every figure (all higher-is-better) and strictly on one."""
    return [n for n, p in points.items()
            if not any(all(a >= b for a, b in zip(q, p)) and q != p for m, q in points.items() if m != n)]


class Draws:
    """The trials' parameters: the grid's combinations in order, or an Optuna sampler's draws (ask / tell)."""

    def __init__(self, kind: str, space: Mapping[str, List], seed: int):
        import itertools

        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.space, self.trial = space, None
        self.grid = iter(itertools.product(*[range(len(v)) for v in space.values()])) if kind == "grid" else None
        sampler = (optuna.samplers.RandomSampler(seed=seed) if kind == "random"
                   else optuna.samplers.TPESampler(seed=seed, n_startup_trials=4))
        self.study = None if self.grid is not None else optuna.create_study(direction="maximize", sampler=sampler)

    def next(self) -> Optional[Dict]:
        """The next trial's parameters; None when the grid is exhausted."""
        if self.grid is not None:
            picks = next(self.grid, None)
            return None if picks is None else {k: self.space[k][i] for k, i in zip(self.space, picks)}
        self.trial = self.study.ask()
        return {k: v[self.trial.suggest_categorical(k, list(range(len(v))))] for k, v in self.space.items()}

    def tell(self, value: Optional[float]) -> None:
        """The drawn trial's objective figure (None: failed or outside the constraints)."""
        if self.study is not None and self.trial is not None:
            import optuna

            state = optuna.trial.TrialState.COMPLETE if value is not None else optuna.trial.TrialState.FAIL
            self.study.tell(self.trial, value, state=state)


def _screen_cfg(cfg):
    b = cfg.benchmark
    sizes = sorted({min(b.batch_sizes), max(b.batch_sizes)})
    return replace(cfg, benchmark=replace(b, batch_sizes=sizes, rounds=2, max_seconds=max(0.2, b.max_seconds / 4),
                                          min_repeats=max(5, b.min_repeats // 4), profile_batch_size=0))


def _screen(variant, inputs, cfg, screen_cfg) -> Dict:
    """The trial's figures against the reference, from a short measurement set of the two."""
    from optimizer.chain import Variant, judge_all
    from optimizer.measure.run import measure
    from optimizer.records import MeasuredSet

    ref = Variant("reference", [], inputs.source)
    measured = MeasuredSet.of(measure([ref, variant], inputs.splits, screen_cfg, inputs.cache, inputs.task))
    if variant.status != "ok":
        return {"status": "failed", "error": variant.error}
    records, _ = judge_all([ref, variant], measured, cfg.hardware.price_per_hour, cfg.serving, cfg.constraints)
    r, sizes = records[1], screen_cfg.benchmark.batch_sizes
    lo, hi = str(sizes[0]), str(sizes[-1])
    p99 = records[0].benchmark[lo]["p99_ms"] / r.benchmark[lo]["p99_ms"]
    return {"status": "ok", "score": r.evaluation["score"], "speedup": r.speedup[hi], "p99_ratio": round(p99, 3),
            "violations": list(r.violations or ()), "measurement": measured.id}


def _figure(screen: Dict, objective: str) -> float:
    return screen["p99_ratio"] if objective == "p99" else screen["speedup"]


def _trial(i: int, params: Dict, steps, inputs, cfg, out_dir, screen_cfg) -> Tuple[Dict, Optional[object]]:
    """Run and screen one trial: its record and its final variant (None when it produced nothing)."""
    from optimizer.chain import run_chain

    variants = run_chain(steps, inputs.source, inputs.cache, dict(data=inputs.splits, hardware=cfg.hardware,
                                                                  seed=cfg.seed), out_dir)
    from optimizer.recipe.space import runtime

    last = variants[-1]
    final = replace(last, name=f"trial{i}", runtime=runtime(params, cfg.hardware))
    record = {"trial": i, "params": params, "chain": list(last.chain),
              "steps": {v.name: "ran" if v.ran else v.status if v.status != "ok" else "cached" for v in variants[1:]}}
    failed = next((v for v in variants if v.status == "failed"), None)
    if failed is not None or final.artifact is None:
        return {**record, "status": "failed", "error": failed.error if failed else "no model"}, None
    try:
        record.update(_screen(final, inputs, cfg, screen_cfg))
    except OptimizerError as e:
        return {**record, "status": "failed", "error": str(e)}, None
    return record, final


def search(cfg, inputs, out_dir) -> Tuple[List, Dict]:
    """The reference and the finalists' variants, and the search record for summary.json."""
    from optimizer.console import console
    from optimizer.chain import Variant
    from optimizer.recipe.plan import plan
    from optimizer.recipe.space import apply, check, incumbents, runtime, signature

    space, s = check(cfg), cfg.search
    draws, fixed = Draws(s.sampler.value, space, cfg.seed), [{}, *incumbents(cfg)]  # trial 0: the recipe's own chain
    started, seen, trials, finals, stopped = time.monotonic(), {}, [], {}, "max_trials"
    for i in range(s.max_trials):
        if time.monotonic() - started > s.max_minutes * 60:
            stopped = "max_minutes"
            break
        drawn = i >= len(fixed)
        params = draws.next() if drawn else fixed[i]
        if params is None:
            stopped = "space exhausted"
            break
        steps = plan(replace(cfg, passes=apply(cfg.passes, params)))
        same = (signature(steps), tuple(sorted(runtime(params, cfg.hardware).items())))
        if same in seen:  # the same chain with the same session options as an earlier trial: its figures stand
            if drawn:
                draws.tell(trials[seen[same]].get("objective_figure"))
            continue
        seen[same] = len(trials)
        record, final = _trial(i, params, steps, inputs, cfg, out_dir, _screen_cfg(cfg))
        ok = record["status"] == "ok" and not record["violations"]
        if record["status"] == "ok":
            record["objective_figure"] = _figure(record, cfg.objective.value)
        if drawn:
            draws.tell(record["objective_figure"] if ok else None)
        trials.append(record)
        finals.update({final.name: final} if final is not None else {})
        console.print(_line(record), highlight=False, soft_wrap=True)
        if ok and s.target_speedup and record["speedup"] >= s.target_speedup:
            stopped = "target_speedup"
            break
    chosen = finalists(trials, s.finalists, len(fixed))
    for t in trials:
        t["finalist"] = f"trial{t['trial']}" in chosen
    variants = [Variant("reference", [], inputs.source)] + [finals[n] for n in chosen]
    return variants, {"space": space, "sampler": s.sampler.value, "trials": trials, "stopped": stopped,
                      "seconds": round(time.monotonic() - started, 1), "finalists": chosen}


def finalists(trials: List[Dict], limit: int, fixed: int = 1) -> List[str]:
    """The screening Pareto front among the trials within the constraints, best by the objective first, then the
    recipe's own chain and the incumbents (the first ``fixed`` trials) that ran within them; the front is cut so
    that at most ``limit`` are measured, the incumbents always are."""
    ok = {f"trial{t['trial']}": t for t in trials if t["status"] == "ok" and not t["violations"]}
    points = {n: (t["score"], t["p99_ratio"], t["speedup"]) for n, t in ok.items()}
    kept = [f"trial{i}" for i in range(fixed) if f"trial{i}" in ok]
    best = [n for n in sorted(front(points), key=lambda n: -ok[n]["objective_figure"]) if n not in kept]
    return best[: max(0, limit - len(kept))] + kept


def _line(t: Dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in t["params"].items()) or "the recipe's own chain"
    if t["status"] != "ok":
        return f"trial {t['trial']}: {params}: failed ({t['error']})"
    over = f"; outside the constraints: {'; '.join(t['violations'])}" if t["violations"] else ""
    return (f"trial {t['trial']}: {params}: screening speed-up {t['speedup']:.2f}×, p99 ratio {t['p99_ratio']:.2f}, "
            f"score {t['score']:.2f}{over}")
