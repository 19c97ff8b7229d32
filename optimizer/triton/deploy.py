"""The pipeline's last stage: tune the chosen variant on this machine, emit its Triton repository,
optionally smoke-test it on a real server. ``pipeline.run`` calls ``preflight`` and ``deploy``."""

from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from optimizer.cache import Cache
from optimizer.files import check_name, content_key
from optimizer.gpu import is_cuda
from optimizer.io import Feeds
from optimizer.errors import RecipeError
from optimizer.triton import emit, repository
from optimizer.triton.tune import Tuning, sweep_sizes, tune

REFERENCE_SAMPLES = 64  # evaluation samples stored with the repository for serve_check


def repository_dir(cfg, out_dir: Path) -> Path:
    return Path(cfg.triton.repository).expanduser() if cfg.triton.repository else Path(out_dir) / "model_repository"


def preflight(cfg, out_dir: Path) -> None:
    """Serving, cost and repository settings checked before anything runs (RecipeError, exit 2)."""
    from optimizer.decide.cost import check

    check(cfg)
    s = cfg.serving
    if s.p99_ms <= 0 or s.overhead_ms < 0:
        raise RecipeError(f"serving.p99_ms must be positive and serving.overhead_ms ≥ 0, "
                          f"got {s.p99_ms} and {s.overhead_ms}")
    if s.max_batch_cap < 1 or s.queue_delay_cap_us < 0 or any(t < 0 for t in s.thread_options) or not s.thread_options:
        raise RecipeError("serving.max_batch_cap must be ≥ 1, serving.queue_delay_cap_us ≥ 0, "
                          "serving.thread_options a non-empty list of thread counts ≥ 0")
    _check_tiers(s)
    if not cfg.triton.emit:
        return
    check_name(cfg.model.name, "model.name")
    repo = repository_dir(cfg, out_dir)
    blocker = next((p for p in [repo, *repo.parents] if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise RecipeError(f"triton.repository {str(repo)!r}: {str(blocker)!r} is a file, not a directory; "
                          f"choose a directory")
    repository.check_target(repo, cfg.model.name, Path("/nonexistent"), cfg.triton.overwrite, plan=plan_id(cfg))
    if cfg.triton.smoke_test:
        from optimizer.tritonserver.server import find_server

        find_server()  # raises a RecipeError saying how to provision one


def plan_id(cfg) -> str:
    """What a repository's model is made from: the model, the data and the passes (not how it was measured).
    A re-run of the same recipe may replace its own emitted model; another recipe's is a conflict."""
    from omegaconf import OmegaConf

    passes = {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
              for k, v in (cfg.passes or {}).items()}
    return content_key(asdict(cfg.model), asdict(cfg.data), passes)[:16]


def _check_tiers(s) -> None:
    """``serving.tiers``: name -> positive p99 ms or null; ``serving.default_tier`` one of them."""
    names = [t.name for t in s.tiers]
    for i, t in enumerate(s.tiers):
        if t.p99_ms is not None and t.p99_ms <= 0:
            raise RecipeError(f"serving.tiers[{i}] ({t.name}): p99_ms must be positive milliseconds or null (no SLA), "
                              f"got {t.p99_ms}")
    if len(set(names)) != len(names) or not all(names):
        raise RecipeError(f"serving.tiers: names must be non-empty and unique, got {names}")
    if s.default_tier and s.default_tier not in names:
        raise RecipeError(f"serving.default_tier {s.default_tier!r} is not one of serving.tiers "
                          f"({', '.join(names) or 'none defined'})")


def thread_counts(cfg) -> List[int]:
    cores = cfg.hardware.cores
    if is_cuda(cfg.hardware):
        return [cfg.hardware.intra_op_threads or cores]
    return sorted({min(t or cores, cores) for t in cfg.serving.thread_options}, reverse=True)


def sweep(cfg, art, pool: Feeds, cache: Cache) -> Dict[int, List[Dict]]:
    """``{threads: curve}``: one instance timed at 1, 2, 4, ... samples per call; cached per artifact."""
    from optimizer.console import progress
    from optimizer.formats import load
    from optimizer.io import batch_of
    from optimizer.measure.benchmark import summarize, time_calls
    from optimizer.measure.run import host

    sizes, counts = sweep_sizes(min(cfg.serving.max_batch_cap, engine_max_batch(art) or cfg.serving.max_batch_cap)), \
        thread_counts(cfg)
    bench = {k: v for k, v in asdict(cfg.benchmark).items() if k not in ("reuse", "batch_sizes")}
    name = "tune-" + content_key(sizes, counts, bench, asdict(cfg.hardware), host())[:24]
    cached = cache.read_json(art.id, name) if cfg.benchmark.reuse else None
    if cached is not None:
        return {int(t): c for t, c in cached.items()}
    curves = {}
    with progress("tuning sweep", len(sizes) * len(counts)) as advance:
        for t in counts:
            session = load(art, replace(cfg.hardware, intra_op_threads=t))
            try:
                curves[t] = []
                for bs in sizes:
                    x = batch_of(pool, bs)
                    curves[t].append(summarize(time_calls(lambda: session(x), cfg.benchmark), bs))
                    advance()
            finally:
                session.close()
    cache.write_json(art.id, name, {str(t): c for t, c in curves.items()})
    return curves


def engine_max_batch(art):
    """The largest batch a TensorRT engine's profile accepts (None for other formats)."""
    batch = art.meta.get("tensorrt", {}).get("batch") if art.format == "tensorrt" else None
    return int(batch[2]) if batch else None


def reference(art, io: Dict, feeds: Feeds, chunk: int, hw) -> Dict[str, np.ndarray]:
    """Evaluation inputs and the variant's own answers, computed ``chunk`` samples at a time (the batch size
    serve_check sends, since dynamically quantized models answer differently at other batch sizes), keyed
    ``in.<name>`` / ``out.<name>``; ``tolerance`` is the largest difference the same file shows between
    batch 1 and ``chunk`` (at least 1e-4), which serve_check allows."""
    from optimizer.formats import load
    from optimizer.io import batches, concat
    from optimizer.measure.evaluate import predict

    session = load(art, hw)
    try:
        names = [t["name"] for t in io["inputs"]]
        feeds = {n: feeds[n] for n in names}
        outs = predict(session, feeds, max(chunk, 1))
        singles = concat([session(b) for b in batches(feeds, 1)])
    finally:
        session.close()
    spread = max(float(np.max(np.abs(outs[k].astype(np.float64) - singles[k]))) for k in outs)
    return {**{f"in.{k}": v for k, v in feeds.items()}, **{f"out.{k}": v for k, v in outs.items()},
            "tolerance": np.float64(max(1e-4, 2 * spread))}


def provenance(cfg, art, out_dir: Path, run: Dict) -> Dict:
    """Where a repository came from: tool version, recipe, overrides, artifact, measurement session, date."""
    from datetime import datetime, timezone
    from importlib import metadata

    import yaml

    overrides = Path(out_dir) / ".hydra" / "overrides.yaml"  # what Hydra recorded for this run
    try:
        version = metadata.version("optimizer")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"tool": f"optimizer {version}", "recipe": run.get("recipe", "unknown"),
            "overrides": yaml.safe_load(overrides.read_text()) or [] if overrides.exists() else [],
            "artifact_id": art.id, "measurement_session": run.get("measurement_id") or "none",
            "hardware": cfg.hardware.name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def deploy(cfg, chosen: Dict, variants: List, splits, cache: Cache, out_dir: Path, run: Optional[Dict] = None) -> Dict:
    """Tune, emit and (optionally) smoke-test the chosen variant; the summary's ``triton`` block.

    ``gate`` is set when the SLA cannot be met even at batch 1 (nothing is emitted then), or when the smoke
    test's p99 missed an SLA (the repository stays, the run exits 3). ``run`` names the
    recipe and the measurement session id (``recipe``, ``measurement_id``) for the provenance."""
    from optimizer.decide.cost import price
    from optimizer.triton.tuning_doc import tuning_markdown

    from optimizer import formats
    from optimizer.io import take

    art = next(v.artifact for v in variants if v.name == chosen["name"])
    fmt = formats.get(art.format)
    if fmt.triton_platform is None:
        return {"emitted": False, "reason": f"no Triton template for a {art.format} model (variant {chosen['name']}); "
                                            f"add an onnx_export step"}
    pool = take(splits.evaluation, slice(0, max(REFERENCE_SAMPLES, cfg.serving.max_batch_cap)))
    gpu = is_cuda(cfg.hardware)
    s = cfg.serving
    tuning: Tuning = tune(sweep(cfg, art, pool, cache), s.p99_ms, cfg.hardware.cores, gpu, s.queue_delay_cap_us,
                          s.overhead_ms, s.queue_policy, s.queue_timeout, {t.name: t.p99_ms for t in s.tiers},
                          s.default_tier)
    info: Dict = {"emitted": False, "variant": chosen["name"], "tuning": tuning.to_dict()}
    if not tuning.feasible:
        return {**info, "gate": tuning.reason, "reason": tuning.reason}
    info["cost"] = price(cfg.hardware.price_per_hour, tuning.throughput, cfg.serving)
    io = emit.model_io(art.path, art.format)
    values = tuning.to_dict()
    dims = {k: list(v.shape[1:]) for k, v in pool.items()}

    def make_config(values: Dict):
        config = emit.build_config(cfg.model.name, art.format, io, values, gpu, dims, cfg.triton.response_cache)
        if gpu and art.format == "onnx" and cfg.triton.onnx_tensorrt:
            emit.tensorrt_accelerator(config, io, str(art.meta.get("precision", "fp32")), dims)
        return config

    config = make_config(values)
    repo = repository_dir(cfg, out_dir)
    repository.check_target(repo, cfg.model.name, Path(art.path), cfg.triton.overwrite, fmt.file_name, plan_id(cfg))
    record = {"plan": plan_id(cfg), "provenance": provenance(cfg, art, out_dir, run or {}), "variant": chosen["name"],
              "artifact_id": art.id, "io": io, "tuning": values, "cost": info["cost"],
              "hardware": {**asdict(cfg.hardware), "device": cfg.hardware.device.value}}
    md = tuning_markdown(cfg, record, config)
    ref = reference(art, io, take(pool, slice(0, REFERENCE_SAMPLES)), config.max_batch_size, cfg.hardware)
    record["serve_check_tolerance"] = float(ref["tolerance"])
    model_dir = repository.write_repository(repo, cfg.model.name, Path(art.path), config, md, record, ref, fmt.file_name,
                                      record["provenance"])
    _validate(model_dir, io, cfg, art)
    info.update(emitted=True, model_repository=str(repo), config=str(model_dir / "config.pbtxt"),
                values=_values(config))
    if cfg.triton.smoke_test:
        from optimizer.tritonserver import overload
        from optimizer.tritonserver.serve_check import check_repository

        info["smoke_test"] = check_repository(repo, cfg.triton)  # the SLAs written in tuning.json
        if info["smoke_test"].get("sla_missed"):  # answers right, a p99 over its SLA: a gate (exit 3), like serve_check
            info["gate"] = f"smoke test: {info['smoke_test']['error']}"
        elif not info["smoke_test"]["passed"]:
            info["failed"] = f"smoke test: {info['smoke_test']['error']}"

        def rewrite(new: Dict) -> None:  # the overload check's shorter queue policies, in force before it re-probes
            nonlocal config
            config = make_config(new)
            now = {**record, "tuning": new}
            repository.write_docs(model_dir, tuning_markdown(cfg, now, config), now, config)
            _validate(model_dir, io, cfg, art)

        info["overload"], values = overload.check_and_retune(info["smoke_test"], cfg.model.name, values, rewrite,
                                                             repo, cfg.triton.overload_seconds)
        record["overload"], record["tuning"], info["tuning"], info["values"] = \
            info["overload"], values, values, _values(config)
    info["capacity"] = record["capacity"] = capacity(tuning, info.get("smoke_test"), cfg.model.name)
    info["cost"] = record["cost"] = {**price(cfg.hardware.price_per_hour, info["capacity"]["used"], cfg.serving),
                                     "capacity_source": info["capacity"]["source"]}
    if cfg.triton.kubernetes:
        from optimizer.triton import kubernetes as k8s

        info["kubernetes"] = record["kubernetes"] = k8s.for_run(cfg, chosen, tuning, info["cost"], repo)
    repository.write_docs(model_dir, tuning_markdown(cfg, record, config), record)  # with the capacity used and manifests
    return info


def _validate(model_dir: Path, io: Dict, cfg, art) -> None:
    problems = emit.validate(model_dir / "config.pbtxt", io, cfg.hardware.cores, engine_max_batch(art))
    if problems:
        raise RecipeError(f"emitted {model_dir / 'config.pbtxt'} breaks Triton's rules: {'; '.join(problems)}")


def capacity(tuning: Tuning, smoke: Optional[Dict], name: str) -> Dict:
    """The capacity that sizes replicas and cost: measured on the smoke server (open loop) when it found a
    rate served within the SLA, else the in-process estimate; ``source`` says which."""
    out = {"estimate": round(tuning.throughput, 1), "measured": None, "used": tuning.throughput,
           "source": "estimate: in-process sweep (instances × batch ÷ (p50 + overhead) at the knee)"}
    found = ((smoke or {}).get("models", {}).get(name) or {}).get("capacity")
    if found:
        out["measured"] = found["capacity_rps"]
        out["measured_vs_estimate"] = round(found["capacity_rps"] / tuning.throughput, 3) if tuning.throughput else None
        if found["capacity_rps"] > 0:
            out["used"] = found["capacity_rps"]
            out["source"] = (f"measured: open-loop Poisson arrivals on {smoke['server']}, the highest rate with p99 ≤ "
                             f"{found['sla_p99_ms']} ms and no rejection" + (" (python backend swap)" if
                                                                             smoke.get("platform_swapped") else ""))
        else:
            out["source"] += f"; the open-loop search served no rate within the SLA ({found['stopped']})"
    return out


def _values(config) -> Dict:
    """The tuned fields as written, for summary.json."""
    return {"max_batch_size": config.max_batch_size,
            "preferred_batch_size": list(config.dynamic_batching.preferred_batch_size),
            "max_queue_delay_microseconds": config.dynamic_batching.max_queue_delay_microseconds,
            "max_queue_size": config.dynamic_batching.default_queue_policy.max_queue_size,
            "default_timeout_microseconds": config.dynamic_batching.default_queue_policy.default_timeout_microseconds,
            "priority_levels": config.dynamic_batching.priority_levels,
            "instance_group": [{"kind": "KIND_GPU" if g.kind == 1 else "KIND_CPU", "count": g.count}
                               for g in config.instance_group],
            "parameters": {k: v.string_value for k, v in config.parameters.items()}}
