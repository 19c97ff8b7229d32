"""The Triton target's work (``target.deploy`` calls ``run``): sweep and tune the chosen variant on this machine,
emit its repository, optionally smoke-test it on a real server and re-tune its queue policies from what the
server showed, size cost and replicas, write the tuning docs."""

from dataclasses import asdict, replace
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from optimizer.cache import Cache
from optimizer.decide import traffic
from optimizer.decide.cost import price
from optimizer.files import content_key
from optimizer.gpu import is_cuda
from optimizer.errors import RecipeError
from optimizer.io import Feeds
from optimizer.targets import DeployInputs
from optimizer.triton import emit, kubernetes as k8s, repository
from optimizer.triton.tune import Tuning, sweep_sizes, tune
from optimizer.triton.tuning_doc import tuning_markdown
from optimizer.tritonserver.expected import Sla, Tier

REFERENCE_SAMPLES = 64  # evaluation samples stored with the repository for serve_check


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
    from optimizer.evaluate import predict

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


def provenance(cfg, art, inputs: DeployInputs) -> Dict:
    """Where a repository came from: tool version, recipe, overrides, artifact, measurement session, date."""
    from datetime import datetime, timezone
    from importlib import metadata

    import yaml

    overrides = Path(inputs.out_dir) / ".hydra" / "overrides.yaml"  # what Hydra recorded for this run
    try:
        version = metadata.version("optimizer")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"tool": f"optimizer {version}", "recipe": inputs.recipe,
            "overrides": yaml.safe_load(overrides.read_text()) or [] if overrides.exists() else [],
            "artifact_id": art.id, "measurement_session": inputs.measurement_id or "none",
            "hardware": cfg.hardware.name, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


class _Emitted:
    """The repository being written for one run: its model directory, the config in force and the record that
    becomes tuning.json (written once, at the end)."""

    def __init__(self, cfg, art, io: Dict, dims: Dict, model_dir: Path, record: Dict):
        self.cfg, self.art, self.io, self.dims, self.model_dir, self.record = cfg, art, io, dims, model_dir, record
        self.config = None

    def build(self, tuning: Tuning):
        """config.pbtxt's ModelConfig for ``tuning``."""
        cfg, art = self.cfg, self.art
        gpu = is_cuda(cfg.hardware)
        config = emit.build_config(cfg.model.name, art.format, self.io, tuning.to_dict(), gpu, self.dims,
                                   cfg.triton.response_cache, cfg.hardware)
        if gpu and art.format == "onnx" and cfg.triton.onnx_tensorrt:
            emit.tensorrt_accelerator(config, self.io, str(art.meta.get("precision", "fp32")), self.dims)
        if art.meta.get("state"):
            from optimizer.triton.sequence import stateful

            stateful(config, art.meta["state"])
        return config

    def rewrite(self, tuning: Tuning) -> None:
        """The overload check's shorter queue policies, in force on disk before it probes again."""
        self.config = self.build(tuning)
        repository.write_config(self.model_dir, self.config, self.record["provenance"])
        self.validate()

    def validate(self) -> None:
        path = self.model_dir / "config.pbtxt"
        problems = emit.validate(path, self.io, self.cfg.hardware.cores, engine_max_batch(self.art))
        if problems:
            raise RecipeError(f"emitted {path} breaks Triton's rules: {'; '.join(problems)}")


def run(cfg, inputs: DeployInputs, repo: Path, plan: str) -> Dict:
    """Tune, emit and (optionally) smoke-test the chosen variant; the summary's ``triton`` block as a dict.

    tuning.md and tuning.json are written once, at the end, with the smoke test, the overload check, the capacity
    used and the manifests; config.pbtxt is rewritten only by the overload check's re-tune (its server reads it)."""
    from optimizer import formats
    from optimizer.io import take

    art = inputs.artifact
    fmt = formats.get(art.format)
    if fmt.triton_platform is None:
        return {"emitted": False, "reason": f"no Triton template for a {art.format} model (variant {inputs.variant}); "
                                            f"add an onnx_export step"}
    pool = take(inputs.evaluation, slice(0, max(REFERENCE_SAMPLES, cfg.serving.max_batch_cap)))
    tuning = _tune(cfg, art, pool, inputs.cache)
    info: Dict = {"emitted": False, "variant": inputs.variant, "tuning": tuning.to_dict()}
    if not tuning.feasible:
        return {**info, "gate": tuning.reason, "reason": tuning.reason}
    info["cost"] = price(cfg.hardware.price_per_hour, tuning.throughput, cfg.serving)
    em = _emit(cfg, inputs, tuning, pool, repo, plan, fmt.file_name, info["cost"])
    info.update(emitted=True, model_repository=str(repo), config=str(em.model_dir / "config.pbtxt"),
                values=_values(em.config))
    if cfg.triton.smoke_test and art.meta.get("state"):
        from optimizer.triton.sequence import note

        info["smoke_test"] = note(art.meta["state"])
    elif cfg.triton.smoke_test:
        tuning = _smoke_test(cfg, em, tuning, repo, info)
    _size(cfg, em, tuning, info, inputs.peak_memory_mb, repo)
    repository.write_docs(em.model_dir, tuning_markdown(cfg, em.record, em.config), em.record)
    return info


def _tune(cfg, art, pool: Feeds, cache: Cache) -> Tuning:
    """The tuned values from this machine's sweep and the recipe's ``serving`` section."""
    from optimizer.triton.tune import open_sla

    s = cfg.serving
    curves = sweep(cfg, art, pool, cache)
    tiers = {t.name: t.p99_ms for t in s.tiers}
    given = s.p99_ms is not None or any(v is not None for v in tiers.values())
    tuning = tune(curves, s.p99_ms if given else open_sla(curves, s.overhead_ms), cfg.hardware.cores,
                  is_cuda(cfg.hardware), s.queue_delay_cap_us, s.overhead_ms, s.queue_policy, s.queue_timeout, tiers,
                  s.default_tier)
    return tuning if given else open_sla_reason(tuning)


def open_sla_reason(tuning: Tuning) -> Tuning:
    """With no SLA set: the reason says so, and what SLA each swept batch size would need. The queue is
    unbounded and has no timeout: with no SLA to keep, refusing a request protects nothing (a wait budget
    derived from the fastest batch was about 1 ms, and a busy host refused requests at concurrency 4)."""
    from optimizer.triton.tune import worst_case_ms

    curve = tuning.curves.get(str(tuning.threads)) or []
    needs = ", ".join(f"batch {p['batch_size']}: {worst_case_ms(p, tuning.overhead_ms):.1f} ms" for p in curve)
    return replace(tuning, sla_set=False, queue_wait_budget_ms=None, max_queue_size=0, queue_timeout_us=0, reason=f"no SLA set (serving.p99_ms=null), so no SLA gate: tuned for throughput, "
                                  f"{tuning.reason}; the SLA each batch size needs (2 × (p99 + overhead)): {needs}")


def _emit(cfg, inputs: DeployInputs, tuning: Tuning, pool: Feeds, repo: Path, plan: str, file_name: str,
          cost: Dict) -> _Emitted:
    """Write the model, its config and its reference answers (the tuning docs come at the end)."""
    from optimizer.io import take

    art = inputs.artifact
    io = emit.model_io(art.path, art.format)
    record = {"plan": plan, "provenance": provenance(cfg, art, inputs), "variant": inputs.variant,
              "artifact_id": art.id, "io": io, "tuning": tuning.to_dict(), "cost": cost,
              "hardware": {**asdict(cfg.hardware), "device": cfg.hardware.device.value}}
    em = _Emitted(cfg, art, io, {k: list(v.shape[1:]) for k, v in pool.items()}, repo / cfg.model.name, record)
    em.config = em.build(tuning)
    repository.check_target(repo, cfg.model.name, Path(art.path), cfg.triton.overwrite, file_name, plan)
    ref = reference(art, io, take(pool, slice(0, REFERENCE_SAMPLES)), em.config.max_batch_size, cfg.hardware)
    record["serve_check_tolerance"] = float(ref["tolerance"])
    repository.write_repository(repo, cfg.model.name, Path(art.path), em.config, ref, file_name, record["provenance"],
                                check=lambda: repository.check_target(repo, cfg.model.name, Path(art.path),
                                                                      cfg.triton.overwrite, file_name, plan))
    em.validate()
    return em


def _smoke_test(cfg, em: _Emitted, tuning: Tuning, repo: Path, info: Dict) -> Tuning:
    """Serve the repository, check it against the SLAs tuned here, then the overload check's re-tune; the
    values in force."""
    from optimizer.triton.retune import check_and_retune
    from optimizer.tritonserver.serve_check import Settings, check_repository

    name = cfg.model.name
    sla = sla_of(tuning, em.model_dir)
    info["smoke_test"] = smoke = check_repository(repo, Settings.from_triton(cfg.triton), slas={name: sla})
    if smoke.get("sla_missed"):  # answers right, a p99 over its SLA: a gate (exit 3), like serve_check
        info["gate"] = f"smoke test: {smoke['error']}"
    elif not smoke["passed"]:
        info["failed"] = f"smoke test: {smoke['error']}"
    info["overload"], tuning = check_and_retune(smoke, name, tuning, em.rewrite, repo, cfg.triton.overload_seconds, sla)
    em.record["overload"] = info["overload"]
    em.record["tuning"] = info["tuning"] = tuning.to_dict()
    info["values"] = _values(em.config)
    return tuning


def sla_of(tuning: Tuning, model_dir: Path) -> Sla:
    """The SLAs the smoke test holds the model to, straight from the tuning (named after the tuning.json that
    records them)."""
    return Sla(tuning.sla_p99_ms if tuning.sla_set else None, str(model_dir / "tuning.json"),
               {t["name"]: Tier(t["level"], t["p99_ms"]) for t in tuning.tiers}, tuning.throughput)


def _size(cfg, em: _Emitted, tuning: Tuning, info: Dict, peak_memory_mb: Optional[float], repo: Path) -> None:
    """The capacity that sizes cost and replicas, the traffic profile's scaling, and the Kubernetes manifests."""
    info["capacity"] = em.record["capacity"] = capacity(tuning, info.get("smoke_test"), cfg.model.name)
    info["cost"] = em.record["cost"] = {**price(cfg.hardware.price_per_hour, info["capacity"]["used"], cfg.serving),
                                        "capacity_source": info["capacity"]["source"]}
    cold = ((info.get("smoke_test") or {}).get("models", {}).get(cfg.model.name) or {}).get("ready_seconds")
    info["scaling"] = em.record["scaling"] = traffic.for_run(cfg, info["capacity"]["used"], cold,
                                                             tuning.sla_p99_ms if tuning.sla_set else None)
    if cfg.triton.kubernetes:
        info["kubernetes"] = em.record["kubernetes"] = k8s.for_run(
            cfg, peak_memory_mb, tuning.instances, traffic.manifest_replicas(info["cost"], info["scaling"]), repo, cold,
            tuning, info["capacity"]["used"])


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
    seq = config.HasField("sequence_batching")
    batcher = config.sequence_batching.oldest if seq else config.dynamic_batching
    return {"max_batch_size": config.max_batch_size, "batcher": "sequence" if seq else "dynamic",
            "state": [x.input_name for x in config.sequence_batching.state],
            "preferred_batch_size": list(batcher.preferred_batch_size),
            "max_queue_delay_microseconds": batcher.max_queue_delay_microseconds,
            "max_queue_size": config.dynamic_batching.default_queue_policy.max_queue_size,
            "default_timeout_microseconds": config.dynamic_batching.default_queue_policy.default_timeout_microseconds,
            "priority_levels": config.dynamic_batching.priority_levels,
            "instance_group": [{"kind": "KIND_GPU" if g.kind == 1 else "KIND_CPU", "count": g.count}
                               for g in config.instance_group],
            "parameters": {k: v.string_value for k, v in config.parameters.items()}}
