"""A Hugging Face directory's weight files are checked before transformers reads them: a garbage or truncated
safetensors file, a pickled checkpoint that holds more than tensors, a sharded index that names a missing shard
are each one RecipeError naming the file and what to do. A pickled ``pytorch_model.bin`` is only ever read with
torch's weights-only unpickler, so no code in it runs."""

import json
import os
import shutil

import pytest

from optimizer.errors import RecipeError
from tests.helpers import tiny_bert

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("hf") / "bert")


class Payload:
    """Unpickled by a full unpickler, this runs a shell command that leaves ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def copy(bert, tmp_path, name, pickled=None):
    """A copy of the tiny BERT; with ``pickled``, its weights are ``torch.save(pickled(model))`` instead."""
    import torch
    from transformers import BertForSequenceClassification

    directory = tmp_path / name
    shutil.copytree(bert, directory)
    if pickled is not None:
        model = BertForSequenceClassification.from_pretrained(str(bert))
        (directory / "model.safetensors").unlink()
        torch.save(pickled(model), directory / "pytorch_model.bin")
    return directory


def refusal(directory) -> str:
    from optimizer.sources.hf import load_module

    with pytest.raises(RecipeError) as e:
        load_module(str(directory))
    message = str(e.value)
    assert message.startswith(f"model.source 'hf:{directory}': ") and "\n" not in message and len(message) < 400
    return message


@pytest.mark.parametrize("damage, why", [(lambda b: b"not a safetensors file", "header too large"),
                                         (lambda b: b[:len(b) // 2], "file not fully covered")])
def test_a_garbage_or_truncated_safetensors_file_is_named(bert, tmp_path, damage, why):
    d = copy(bert, tmp_path, "broken")
    weights = d / "model.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    message = refusal(d)
    assert "model.safetensors is not a readable safetensors file (" in message and why in message
    assert "re-export the model with save_pretrained" in message


def test_pickled_weights_load_with_the_weights_only_unpickler(bert, tmp_path, monkeypatch):
    import torch

    from optimizer.sources.hf import load_module

    d = copy(bert, tmp_path, "state_dict", pickled=lambda m: m.state_dict())
    original, seen = torch.load, []

    def spy(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    assert load_module(str(d)).task == "sequence_classification"
    assert seen and all(flag is True for flag in seen), seen


@pytest.mark.parametrize("what, pickled, why", [
    ("a whole model", lambda m: m, "(it names transformers.models.bert.modeling_bert.BertForSequenceClassification)"),
    ("a payload", None, "(it names posix.system)")])
def test_a_pickled_checkpoint_of_python_objects_is_refused_unrun(bert, tmp_path, what, pickled, why):
    marker = tmp_path / "ran"
    d = copy(bert, tmp_path, "objects", pickled=pickled or (lambda m: {"weight": Payload(marker)}))
    message = refusal(d)
    assert f"pytorch_model.bin is a pickled checkpoint that holds more than tensors {why}" in message
    assert "optimizer unpickles tensors only: re-export the model with save_pretrained" in message
    assert not marker.exists()


def test_a_pickled_checkpoint_that_is_not_one_is_named(bert, tmp_path):
    d = copy(bert, tmp_path, "garbage", pickled=lambda m: m.state_dict())
    (d / "pytorch_model.bin").write_bytes(b"garbage" * 10)
    assert "pytorch_model.bin is not a readable PyTorch checkpoint (" in refusal(d)


@pytest.mark.parametrize("shard, why", [("model-00001-of-00002.safetensors", "which is missing from the directory"),
                                        ("../model.safetensors", "which is not a file in the directory")])
def test_a_sharded_index_names_its_missing_shard(bert, tmp_path, shard, why):
    d = copy(bert, tmp_path, "sharded")
    (d / "model.safetensors").unlink()
    (d / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"classifier.bias": shard}}))
    assert f"model.safetensors.index.json names shard {shard!r}, {why}" in refusal(d)
