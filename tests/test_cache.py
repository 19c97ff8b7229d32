"""The cache commits whole entries only, and keys change with everything that changes the output."""

import pytest

from optimizer.artifact import Artifact
from optimizer.cache import Cache
from optimizer.files import content_key


def _produce(d):
    (d / "model.bin").write_bytes(b"weights")
    return Artifact(path=d / "model.bin", format="onnx", meta={"precision": "int8"})


def test_put_then_get_round_trip(tmp_path):
    cache = Cache(tmp_path)
    art = cache.put("k1", _produce)
    assert art.id == "k1" and art.path == tmp_path / "k1" / "model.bin" and art.path.read_bytes() == b"weights"
    again = cache.get("k1")
    assert again == art and again.meta["precision"] == "int8"
    assert [p.name for p in tmp_path.iterdir()] == ["k1"]  # no temporary directory left behind


def test_failed_producer_leaves_nothing(tmp_path):
    cache = Cache(tmp_path)

    def boom(d):
        (d / "model.bin").write_bytes(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        cache.put("k2", boom)
    assert cache.get("k2") is None and list(tmp_path.iterdir()) == []


def test_half_written_entry_is_ignored_and_replaced(tmp_path):
    (tmp_path / "k3").mkdir()
    (tmp_path / "k3" / "model.bin").write_bytes(b"partial")  # no artifact.json: a killed run
    cache = Cache(tmp_path)
    assert cache.get("k3") is None
    assert cache.put("k3", _produce).path.read_bytes() == b"weights"


def test_content_key_is_canonical():
    assert content_key("a", {"x": 1, "y": 2}) == content_key("a", {"y": 2, "x": 1})
    assert content_key("a", {"x": 1}) != content_key("a", {"x": 2})
    assert len(content_key("a")) == 64


def test_measurements_round_trip(tmp_path):
    cache = Cache(tmp_path)
    cache.write_json("k4", "measure-x", {"p99_ms": 1.5})
    assert cache.read_json("k4", "measure-x") == {"p99_ms": 1.5}
    assert cache.read_json("k4", "measure-y") is None
    assert cache.get("k4") is None  # measurements alone are not an artifact entry
