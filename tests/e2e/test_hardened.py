"""A hostile or unlucky user: damaged cache entries are quarantined and rebuilt, leftovers of killed runs pruned.

Every CLI case asserts the exit code, a short error without a traceback, and summary.json exactly when
planning succeeded."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimizer.cache import Cache
from optimizer.integrity import QUARANTINE, STALE_SECONDS, problems, prune
from tests.helpers import FAST, ROOT, dead_pid, run_cli

# a small, untrained model on a smaller split: each run takes seconds; fresh measurements each time
TINY = ["recipe=int8", "model.source=tests.factories:tiny_cnn", "data.source=tests.factories:small_digits",
        "constraints.max_accuracy_drop=null", "constraints.min_cosine=null", *FAST, "benchmark.reuse=false"]


def _entry(cache: Path, step: str) -> Path:
    found = [p for p in cache.iterdir() if (p / "artifact.json").is_file()
             and json.loads((p / "artifact.json").read_text())["step"] == step]
    assert len(found) == 1, (step, found)
    return found[0]


def _cache_cli(*args, cache: Path):
    proc = subprocess.run([sys.executable, "-m", "optimizer", "cache", *args, f"cache_dir={cache}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean run's cache and summary: the damaged runs must give the same results."""
    root = tmp_path_factory.mktemp("clean")
    code, out, summary = run_cli(TINY, root / "cache", root / "run")
    assert code == 0 and summary["passes_run"] == 3, out
    return root / "cache", summary


def _copy(clean_cache: Path, tmp_path: Path) -> Path:
    cache = tmp_path / "cache"
    shutil.copytree(clean_cache, cache)
    return cache


def _variant(summary, name):
    return next(v for v in summary["variants"] if v["name"] == name)


def _same_results(summary, clean_summary, name):
    a, b = _variant(summary, name), _variant(clean_summary, name)
    assert a["status"] == "ok" and a["size_bytes"] == b["size_bytes"] > 1000
    assert a["evaluation"]["accuracy"] == b["evaluation"]["accuracy"]


# --- cache integrity -------------------------------------------------------------------------------------

def test_entries_record_digest_and_size_of_their_files(clean):
    cache, _ = clean
    fuse = _entry(cache, "fuse")
    record = json.loads((fuse / "artifact.json").read_text())
    assert record["path"] == "model.onnx"
    assert record["files"]["model.onnx"]["size"] == (fuse / "model.onnx").stat().st_size
    assert len(record["files"]["model.onnx"]["sha256"]) == 64
    code, out, err = _cache_cli("verify", cache=cache)
    assert code == 0 and "4 entries, 0 damaged" in out and err == ""


def test_truncated_model_is_quarantined_and_rebuilt(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    fuse = _entry(cache, "fuse")
    (fuse / "model.onnx").write_bytes((fuse / "model.onnx").read_bytes()[:100])
    code, out, summary = run_cli(TINY, cache, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    warning = [w for w in summary["warnings"] if "damaged" in w]
    assert len(warning) == 1 and "'fuse'" in warning[0] and "model.onnx: 100 bytes" in warning[0]
    assert summary["passes_run"] == 1 and _variant(summary, "fuse")["ran"]  # only fuse ran again
    _same_results(summary, clean[1], "fuse")
    moved = list((cache / QUARANTINE).iterdir())
    assert len(moved) == 1 and (moved[0] / "model.onnx").stat().st_size == 100  # kept aside, not deleted


def test_edited_metadata_and_a_damaged_measurement_record_are_rebuilt(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    quantize = _entry(cache, "quantize")
    record = json.loads((quantize / "artifact.json").read_text())
    record["meta"]["precision"] = "fp32"  # a hand edit that would mislabel the variant
    (quantize / "artifact.json").write_text(json.dumps(record))
    (measured,) = (cache / "measurements").glob("*.record.json")
    measured.write_text(measured.read_text()[:200])
    code, out, summary = run_cli([a for a in TINY if a != "benchmark.reuse=false"], cache, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    damaged = [w for w in summary["warnings"] if "damaged" in w]
    assert len(damaged) == 2 and "'quantize'" in damaged[0] and "edited after the entry was written" in damaged[0]
    assert "cached record" in damaged[1] and "measured again" in damaged[1]
    assert _variant(summary, "quantize")["precision"] == "int8" and _variant(summary, "quantize")["measurements_reused"] is False
    _same_results(summary, clean[1], "quantize")


def test_artifact_path_pointing_at_another_entry_is_rebuilt(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    quantize, export = _entry(cache, "quantize"), _entry(cache, "export")
    record = json.loads((quantize / "artifact.json").read_text())
    record["path"] = f"../{export.name}/model.onnx"  # the FP32 model, labelled int8
    (quantize / "artifact.json").write_text(json.dumps(record))
    code, out, summary = run_cli(TINY, cache, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    assert any("'quantize'" in w and "lies outside the entry" in w for w in summary["warnings"])
    q = _variant(summary, "quantize")
    assert q["ran"] and q["precision"] == "int8" and Path(q["path"]).parent.name == quantize.name
    _same_results(summary, clean[1], "quantize")


def test_absolute_artifact_path_is_damage(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    quantize, export = _entry(cache, "quantize"), _entry(cache, "export")
    record = json.loads((quantize / "artifact.json").read_text())
    record["path"] = str(export / "model.onnx")
    (quantize / "artifact.json").write_text(json.dumps(record))
    assert any("lies outside the entry" in p for p in problems(quantize))


def test_link_leading_out_of_the_entry_is_damage(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    fuse, export = _entry(cache, "fuse"), _entry(cache, "export")
    (fuse / "model.onnx").unlink()
    (fuse / "model.onnx").symlink_to(export / "model.onnx")
    assert problems(fuse) == ["model.onnx: lies outside the entry", "artifact.json: path 'model.onnx' lies outside the entry"]


def test_unknown_record_keys_and_linked_entries_are_damage(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    fuse, export = _entry(cache, "fuse"), _entry(cache, "export")
    record = json.loads((fuse / "artifact.json").read_text())
    (fuse / "artifact.json").write_text(json.dumps({**record, "loader": "os:system"}))
    assert [p.split(" (")[0] for p in problems(fuse)] == ["artifact.json: not an artifact record"]
    shutil.rmtree(fuse)
    fuse.symlink_to(export, target_is_directory=True)
    assert problems(fuse)[0] == f"{fuse.name}: the entry is a link"
    code, _, err = _cache_cli("verify", cache=cache)
    assert code == 1 and "damaged" in err and fuse.name in err


def test_planted_factory_in_cached_metadata_never_runs(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    marker = tmp_path / "pwned"
    source = _entry(cache, "source")
    record = json.loads((source / "artifact.json").read_text())
    record["meta"].update(factory="os:system", kwargs={"command": f"touch {marker}"})
    (source / "artifact.json").write_text(json.dumps(record))
    export = _entry(cache, "export")  # a factory of the user's package, but not one this recipe names
    record = json.loads((export / "artifact.json").read_text())
    record["meta"]["factory"] = "tests.factories:conv_features"
    (export / "artifact.json").write_text(json.dumps(record))
    code, out, summary = run_cli(TINY, cache, tmp_path / "run")
    assert code == 0 and "Traceback" not in out, out
    assert not marker.exists()
    damaged = [w for w in summary["warnings"] if "damaged" in w]
    assert len(damaged) == 2
    assert "'source'" in damaged[0] and "factory rule" in damaged[0]
    assert "'export'" in damaged[1] and "not a factory the recipe names" in damaged[1]
    assert summary["passes_run"] == 1  # export rebuilt under the same key; fuse and quantize still cached
    _same_results(summary, clean[1], "quantize")


def test_cache_verify_lists_damaged_entries(clean, tmp_path):
    cache = _copy(clean[0], tmp_path)
    fuse, quantize = _entry(cache, "fuse"), _entry(cache, "quantize")
    (fuse / "model.onnx").write_bytes(b"x" * 100)
    with open(quantize / "model.onnx", "r+b") as f:  # same size, one byte changed
        f.seek(50)
        byte = f.read(1)
        f.seek(50)
        f.write(bytes([byte[0] ^ 0xFF]))
    code, out, err = _cache_cli("verify", cache=cache)
    lines = err.strip().splitlines()
    assert code == 1 and "4 entries, 2 damaged" in out and len(lines) == 2
    assert any(fuse.name in ln and "'fuse'" in ln and "model.onnx: 100 bytes" in ln for ln in lines)
    assert any(quantize.name in ln and "sha256 differs" in ln for ln in lines)
    code, out, err = _cache_cli("verify", "--quarantine", cache=cache)
    assert code == 1 and len(list((cache / QUARANTINE).iterdir())) == 2
    assert _cache_cli("verify", cache=cache)[0] == 0  # what is left is intact


def test_cache_command_usage_error():
    code, _, err = _cache_cli("scrub", cache=Path("/nonexistent"))
    assert code == 2 and err.startswith("error: usage: python -m optimizer cache") and "Traceback" not in err


def test_cache_prune_removes_leftovers_of_killed_runs(tmp_path):
    dead = tmp_path / f".tmp-{'a' * 16}-{dead_pid()}-0123abcd"
    live = tmp_path / f".tmp-{'b' * 16}-{os.getpid()}-0123abcd"
    for d in (dead, live):
        d.mkdir()
        (d / "model.onnx").write_bytes(b"half")
    code, out, _ = _cache_cli("prune", cache=tmp_path)
    assert code == 0 and "1 leftover build directory removed" in out
    assert not dead.exists() and live.exists()


def test_stale_build_directories_are_cleaned_on_start(tmp_path):
    old = time.time() - STALE_SECONDS - 60
    stale = tmp_path / f".tmp-{'a' * 16}-{dead_pid()}-0123abcd"  # owner gone, old
    recent = tmp_path / f".tmp-{'b' * 16}-{dead_pid()}-0123abcd"  # owner gone, but just now
    unknown = tmp_path / f".tmp-{'c' * 16}-0123abcd"  # older naming, no owner recorded, old
    for d in (stale, recent, unknown):
        d.mkdir()
    os.utime(stale, (old, old))
    os.utime(unknown, (old, old))
    Cache(tmp_path)
    assert not stale.exists() and not unknown.exists() and recent.exists()
    assert prune(tmp_path) == [recent]
