"""A Hugging Face directory never runs code of its own: ``auto_map`` is refused before transformers reads the
directory, and every load passes ``trust_remote_code=False``."""

import json
from pathlib import Path

import pytest

from optimizer.errors import RecipeError
from tests.helpers import tiny_bert

PAYLOAD = "from pathlib import Path\nPath({marker!r}).write_text('ran')\n"


def hostile(directory: Path, marker: Path, config: dict) -> Path:
    """A model directory whose config maps AutoConfig to a file of its own that leaves ``marker`` when run."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "configuration_evil.py").write_text(PAYLOAD.format(marker=str(marker)))
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "model.safetensors").write_bytes(b"\0" * 16)
    return directory


@pytest.mark.parametrize("config", [
    {"auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}, "architectures": ["EvilModel"]},
    {"auto_map": {"AutoConfig": "configuration_evil.EvilConfig"}, "model_type": "bert", "architectures": ["BertModel"]},
])
def test_a_directory_that_names_its_own_code_is_refused(tmp_path, config):
    from optimizer.sources.hf import check_directory, read_config

    marker = tmp_path / "ran"
    d = hostile(tmp_path / "evil", marker, config)
    for load in (check_directory, read_config):
        with pytest.raises(RecipeError, match=r"config.json names code of its own \(auto_map: "
                                              r"configuration_evil.EvilConfig\); optimizer never runs code"):
            load(str(d))
    assert not marker.exists()


def test_a_tokenizer_that_names_its_own_code_is_refused(tmp_path):
    from optimizer.sources.text import load_tokenizer

    d = tiny_bert(tmp_path / "bert")
    settings = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps({**settings, "auto_map": {"AutoTokenizer": ["tok.Evil", None]}}))
    with pytest.raises(RecipeError, match=r"tokenizer_config.json names code of its own \(auto_map: tok.Evil\)"):
        load_tokenizer(str(d), "data.tokenizer")


@pytest.mark.parametrize("content, why", [("[1, 2]", "must hold a JSON object, not a list"),
                                          ("{not json", "is not valid JSON"),
                                          (b"\xff\xfe{}", "is not valid JSON")])
def test_a_config_that_is_not_a_json_object_is_named(tmp_path, content, why):
    from optimizer.sources.hf import check_directory

    d = tiny_bert(tmp_path / "bert")
    (d / "config.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(RecipeError, match=f"config.json {why}"):
        check_directory(str(d))


def test_every_transformers_load_refuses_remote_code(tmp_path, monkeypatch):
    import transformers

    from optimizer.sources.hf import load_module
    from optimizer.sources.text import load_tokenizer

    d = tiny_bert(tmp_path / "bert")
    seen = []
    for cls in ("AutoConfig", "AutoTokenizer", "AutoModelForSequenceClassification"):
        original = getattr(transformers, cls).from_pretrained

        def spy(*args, _original=original, _cls=cls, **kwargs):
            seen.append((_cls, kwargs.get("trust_remote_code", "unset")))
            return _original(*args, **kwargs)

        monkeypatch.setattr(getattr(transformers, cls), "from_pretrained", spy)
    load_tokenizer(str(d), "data.tokenizer")
    load_module(directory=str(d), task="sequence_classification")
    assert {cls for cls, _ in seen} >= {"AutoConfig", "AutoTokenizer", "AutoModelForSequenceClassification"}
    assert all(flag is False for _, flag in seen), seen


def test_architectures_written_as_one_name_and_an_empty_hf_source(tmp_path):
    from optimizer.config import ModelConfig
    from optimizer.sources.hf import check_directory
    from optimizer.sources.models import check_source

    d = tiny_bert(tmp_path / "bert")
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "architectures": "BertForSequenceClassification"}))
    assert check_directory(str(d)) == d  # one class name without its list is that class, not its letters
    (d / "config.json").write_text(json.dumps({**config, "architectures": {"a": 1}}))
    with pytest.raises(RecipeError, match="'architectures' must be a list of class names"):
        check_directory(str(d))
    with pytest.raises(RecipeError, match="model.source 'hf:' names no directory"):
        check_source(ModelConfig(source="hf:"))
