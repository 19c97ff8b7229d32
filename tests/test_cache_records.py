"""Every file the cache reads is verified: measurement and tuning records, every field of ``artifact.json``,
and special files (a FIFO is damage, never opened). ``cache verify`` checks them all."""

import json
import os
import signal
from contextlib import contextmanager

import pytest

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.errors import RecipeError
from optimizer.integrity import QUARANTINE, main, problems


@contextmanager
def no_hang(seconds=20):
    """Fail instead of blocking forever (a FIFO opened for reading waits for a writer)."""
    def expire(*_):
        raise TimeoutError("blocked: a special file was opened")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def fifo_in_place(path):
    """Replace the file at ``path`` by a FIFO of the same name (opening it for reading would block)."""
    path.unlink()
    os.mkfifo(path)


def _produce(d):
    (d / "model.bin").write_bytes(b"weights")
    return Artifact(path=d / "model.bin", format="onnx", step="quantize",
                    meta={"precision": "int8", "kwargs": {"width": 8}})


def _edit_sidecar(entry, change):
    record = json.loads((entry / "artifact.json").read_text())
    change(record)
    (entry / "artifact.json").write_text(json.dumps(record))


def _verify(cache_dir, capsys, *flags):
    code = main(["verify", *flags, f"cache_dir={cache_dir}"])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name", ["measure-set", "tune-0123456789abcdef"])
@pytest.mark.parametrize("damage", ["truncated", "edited", "not json", "fifo"])
def test_a_damaged_record_is_quarantined_and_measured_again(tmp_path, capsys, name, damage):
    cache = Cache(tmp_path)
    cache.write_json("k1", name, {"variants": {"fuse": {"p99_ms": 1.5}}, "session": {"unstable": False}})
    path = next((tmp_path / "k1").iterdir())
    assert cache.read_json("k1", name)["variants"]["fuse"]["p99_ms"] == 1.5
    text = path.read_text()
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "edited":
        path.write_text(text.replace("1.5", "0.5"))
    elif damage == "not json":
        path.write_bytes(b"\xff\xfe garbage")
    else:
        fifo_in_place(path)
    code, _, err = _verify(tmp_path, capsys)
    assert code == 1 and f"damaged record k1/{path.name}" in err
    with no_hang():
        assert cache.read_json("k1", name) is None
    assert not os.path.lexists(path) and len(list((tmp_path / QUARANTINE).iterdir())) == 1
    assert cache.warnings and f"k1/{name} is damaged" in cache.warnings[0] and "measured again" in cache.warnings[0]
    code, out, _ = _verify(tmp_path, capsys)
    assert code == 0 and "1 records, 0 damaged" not in out and "0 records, 0 damaged" in out


@pytest.mark.parametrize("change", [
    lambda r: r["meta"].update(kwargs={"width": 800}),
    lambda r: r["meta"].update(precision="fp32"),
    lambda r: r["meta"].update(factory="mypkg:fn"),
    lambda r: r.update(step="export"),
    lambda r: r.pop("record_sha256"),
], ids=["kwargs", "precision", "planted factory", "step", "no digest"])
def test_an_edited_artifact_record_is_damage(tmp_path, capsys, change):
    cache = Cache(tmp_path)
    entry = cache.put("k2", _produce).path.parent
    assert problems(entry) == []
    _edit_sidecar(entry, change)
    (why,) = problems(entry)
    assert why.startswith("artifact.json: ") and ("digest" in why)
    code, _, err = _verify(tmp_path, capsys, "--quarantine")
    assert code == 1 and err.startswith("damaged k2 (step ") and "moved to" in err
    assert cache.get("k2") is None and _verify(tmp_path, capsys)[0] == 0


def test_an_entry_whose_artifact_record_is_a_fifo_is_damage_and_never_opened(tmp_path, capsys):
    cache = Cache(tmp_path)
    entry = cache.put("k3", _produce).path.parent
    fifo_in_place(entry / "artifact.json")
    with no_hang():
        assert problems(entry) == ["artifact.json: not a regular file"]
        code, _, err = _verify(tmp_path, capsys)
        assert code == 1 and err == "damaged k3 (step '?'): artifact.json: not a regular file\n"
        assert cache.get("k3") is None
    assert cache.warnings and "not a regular file" in cache.warnings[0]
    assert cache.put("k3", _produce).meta["precision"] == "int8"  # rebuilt


def test_a_model_file_replaced_by_a_fifo_is_damage(tmp_path):
    cache = Cache(tmp_path)
    entry = cache.put("k4", _produce).path.parent
    fifo_in_place(entry / "model.bin")
    with no_hang():
        assert problems(entry) == ["model.bin: not a regular file"]


def test_a_quarantine_that_is_a_file_is_named_in_one_line(tmp_path, capsys):
    cache = Cache(tmp_path)
    entry = cache.put("k5", _produce).path.parent
    (entry / "model.bin").write_bytes(b"edited!")
    (tmp_path / QUARANTINE).write_text("not a directory")
    code, _, err = _verify(tmp_path, capsys, "--quarantine")
    assert code == 2 and err.splitlines()[-1] == (
        f"error: {tmp_path / QUARANTINE} is not a directory: the cache moves damaged entries there; remove or rename it")
    with pytest.raises(RecipeError, match="is not a directory"):
        cache.get("k5")
    assert (entry / "model.bin").read_bytes() == b"edited!"  # left where it was, not half-moved


def test_an_intact_cache_verifies_clean(tmp_path, capsys):
    cache = Cache(tmp_path)
    cache.put("k6", _produce)
    cache.write_json("k6", "tune-x", {"1": [{"p99_ms": 2.0}]})
    cache.write_json("measurements", "set", {"variants": {}})
    assert cache.read_json("k6", "tune-x") == {"1": [{"p99_ms": 2.0}]}
    code, out, err = _verify(tmp_path, capsys)
    assert code == 0 and err == "" and out.endswith("1 entries, 0 damaged; 2 records, 0 damaged\n")
