"""Hugging Face directories (optimizer.sources.hf) and text data (optimizer.sources.text), on a
tiny BERT written by the tests: loading offline, the export-ready wrapper, the torch artifact
round trip, ONNX parity at two sequence lengths, the splits, and every user error."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import ROOT
from tests.helpers import sentences, tiny_bert, tiny_vit, write_csv, write_jsonl

pytest.importorskip("transformers")

from optimizer.errors import RecipeError  # noqa: E402
from optimizer.sources import hf  # noqa: E402
from optimizer.sources.text import text_splits  # noqa: E402

INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    return {"cls": tiny_bert(root / "cls"), "base": tiny_bert(root / "base", head=False), "root": root}


def feeds(length: int, batch: int = 3, seed: int = 0):
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (batch, length), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, length // 2:] = 0  # one padded sample
    return ids, mask, torch.zeros_like(ids)


def test_import_stays_light():
    code = ("import sys, optimizer.sources.hf, optimizer.sources.text, optimizer.sources.vit; "
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_describe_both_heads(dirs):
    cls, base = hf.describe(str(dirs["cls"])), hf.describe(str(dirs["base"]))
    assert cls == {"task": "sequence_classification", "input_names": INPUTS, "data_input_names": INPUTS,
                   "output_names": ["logits"], "transformer": {"model_type": "bert", "num_heads": 2, "hidden_size": 32}, "num_labels": 2, "warnings": []}
    assert base["task"] == "feature_extraction" and base["output_names"] == ["embeddings"]
    assert base["input_names"] == INPUTS and base["num_labels"] is None
    assert hf.describe(str(dirs["cls"]), task="feature_extraction")["output_names"] == ["embeddings"]


def test_classifier_matches_transformers(dirs):
    import torch
    from transformers import BertForSequenceClassification

    module = hf.load_module(str(dirs["cls"]))
    assert (module.input_names, module.output_names, module.training) == (INPUTS, ["logits"], False)
    ref = BertForSequenceClassification.from_pretrained(str(dirs["cls"]), local_files_only=True).eval()
    ids, mask, types = feeds(12)
    with torch.no_grad():
        out = module(ids, mask, types)
        expected = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).logits
    assert isinstance(out, torch.Tensor) and out.shape == (3, 2)
    torch.testing.assert_close(out, expected)


def test_embeddings_are_masked_mean_of_last_hidden_state(dirs):
    import torch
    from transformers import BertModel

    module = hf.load_module(str(dirs["base"]))
    ref = BertModel.from_pretrained(str(dirs["base"]), local_files_only=True).eval()
    ids, mask, types = feeds(10)
    with torch.no_grad():
        out = module(ids, mask, types)
        hidden = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
    expected = torch.stack([hidden[i, mask[i].bool()].mean(0) for i in range(len(ids))])
    assert out.shape == (3, 32)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_image_model(tmp_path):
    import torch
    from transformers import ViTModel

    directory = str(tiny_vit(tmp_path / "vit"))
    info = hf.describe(directory)
    assert (info["task"], info["input_names"], info["num_labels"]) == ("image_classification", ["pixel_values"], 3)
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        assert hf.load_module(directory)(x).shape == (2, 3)
        features = hf.load_module(directory, task="feature_extraction")(x)
        hidden = ViTModel.from_pretrained(directory, local_files_only=True).eval()(pixel_values=x).last_hidden_state
    torch.testing.assert_close(features, hidden.mean(dim=1))  # mean over the CLS and patch tokens


def test_factory_round_trip(dirs, tmp_path):
    import torch

    from optimizer.formats.torch import load_module, torch_artifact

    module = hf.load_module(str(dirs["cls"]))
    with torch.no_grad():  # weights that differ from the directory's: the state dict must win
        module.model.classifier.weight.add_(0.5)
    kwargs = {"directory": str(dirs["cls"].resolve()), "task": module.task}
    art = torch_artifact(module, tmp_path, "optimizer.sources.hf:load_module", kwargs, {})
    rebuilt = load_module(art)
    assert list(rebuilt.state_dict()) == list(module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(*feeds(9)), module(*feeds(9)), rtol=0, atol=0)


@pytest.mark.parametrize("head", ["cls", "base"])
def test_onnx_export_matches_torch_at_two_lengths(dirs, tmp_path, head):
    import onnxruntime as ort
    import torch

    module = hf.load_module(str(dirs[head]))
    path = tmp_path / "model.onnx"
    axes = {name: {0: "batch", 1: "sequence"} for name in module.input_names}
    torch.onnx.export(module, feeds(8), str(path), dynamo=False, input_names=module.input_names,
                      output_names=module.output_names, dynamic_axes={**axes, module.output_names[0]: {0: "batch"}})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == INPUTS
    for length in (8, 21):
        tensors = feeds(length, batch=4, seed=length)
        with torch.no_grad():
            expected = module(*tensors).numpy()
        got = session.run(None, {n: t.numpy() for n, t in zip(module.input_names, tensors)})[0]
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_text_splits_jsonl(dirs, tmp_path):
    path = write_jsonl(tmp_path / "reviews.jsonl", sentences(120))
    s = text_splits(str(path), str(dirs["cls"]), max_length=16, calibration_size=20, input_names=INPUTS)
    assert set(s) == {"train", "train_labels", "calibration", "evaluation", "evaluation_labels"}
    sizes = {k: len(s[k]["input_ids"]) for k in ("train", "calibration", "evaluation")}
    assert sizes == {"train": 70, "calibration": 20, "evaluation": 30}
    for split in ("train", "calibration", "evaluation"):
        assert list(s[split]) == INPUTS
        assert all(a.dtype == np.int64 and a.shape == (sizes[split], 16) for a in s[split].values())
    rows = [tuple(r) for k in ("train", "calibration", "evaluation") for r in s[k]["input_ids"].tolist()]
    assert len(set(rows)) == len(rows)  # disjoint (every sentence here is distinct)
    assert s["train_labels"].dtype == np.int64 and s["train_labels"].shape == (70,)
    assert set(np.unique(s["evaluation_labels"])) == {0, 1}  # negative/positive via config.json's label2id
    again = text_splits(str(path), str(dirs["cls"]), max_length=16, calibration_size=20, input_names=INPUTS)
    assert np.array_equal(again["evaluation"]["input_ids"], s["evaluation"]["input_ids"])  # deterministic


def test_text_splits_csv_and_labels(dirs, tmp_path):
    rows = sentences(80)
    s = text_splits(str(write_csv(tmp_path / "a.csv", rows, labels=False)), str(dirs["cls"]), max_length=12,
                    calibration_size=8, input_names=["input_ids", "attention_mask"])
    assert s["train_labels"] is None and s["evaluation_labels"] is None
    assert list(s["evaluation"]) == ["input_ids", "attention_mask"] and s["evaluation"]["input_ids"].shape == (20, 12)
    numbered = [(t, "1" if y == "positive" else "0") for t, y in rows]
    s = text_splits(str(write_csv(tmp_path / "b.csv", numbered)), str(dirs["cls"]), max_length=12, calibration_size=8)
    texts = {t: y for t, y in numbered}
    assert s["train_labels"].dtype == np.int64 and set(s["train_labels"]) <= {0, 1}
    assert len(texts) == 80
    other = [(t, "good" if y == "positive" else "awful") for t, y in rows]
    base_dir = dirs["root"] / "nolabels"
    shutil.copytree(dirs["base"], base_dir, dirs_exist_ok=True)
    config = json.loads((base_dir / "config.json").read_text())
    config.pop("label2id", None), config.pop("id2label", None)
    (base_dir / "config.json").write_text(json.dumps(config))
    s = text_splits(str(write_jsonl(tmp_path / "c.jsonl", other)), str(base_dir), max_length=12, calibration_size=8)
    assert set(s["evaluation_labels"]) <= {0, 1}  # sorted unique: awful=0, good=1


def broken(dirs, tmp_path, name, drop=(), config=None):
    directory = tmp_path / name
    shutil.copytree(dirs["cls"], directory)
    for file in drop:
        (directory / file).unlink()
    if config:
        data = json.loads((directory / "config.json").read_text())
        (directory / "config.json").write_text(json.dumps({**data, **config}))
    return str(directory)


def test_directory_errors(dirs, tmp_path):
    cases = [
        (str(tmp_path / "absent"), "no such directory"),
        (broken(dirs, tmp_path, "noconfig", drop=["config.json"]), "no config.json in"),
        (broken(dirs, tmp_path, "noweights", drop=["model.safetensors"]), "no weights in"),
        (broken(dirs, tmp_path, "unknown", config={"architectures": ["FooForBar"]}), "FooForBar"),
    ]
    for directory, message in cases:
        with pytest.raises(RecipeError, match=message) as err:
            hf.describe(directory)
        assert str(err.value).startswith(f"model.source 'hf:{directory}'") and "\n" not in str(err.value)
    assert hf.check_directory(str(dirs["cls"])) == dirs["cls"]


def test_task_errors(dirs):
    with pytest.raises(RecipeError, match="no image_classification model"):
        hf.describe(str(dirs["cls"]), task="image_classification")
    with pytest.raises(RecipeError, match="task 'translation' is not one of"):
        hf.describe(str(dirs["cls"]), task="translation")
    with pytest.raises(RecipeError, match="no trained sequence_classification head.*use task feature_extraction"):
        hf.load_module(str(dirs["base"]), task="sequence_classification")


def test_missing_transformers_names_the_extra(dirs, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(RecipeError, match=r"pip install 'optimizer\[hf\]'"):
        hf.check_directory(str(dirs["cls"]))


def test_text_errors(dirs, tmp_path):
    cls = str(dirs["cls"])
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "notext.jsonl").write_text('{"sentence": "good", "label": 1}\n')
    (tmp_path / "blank.jsonl").write_text('{"text": "good film"}\n{"text": ""}\n')
    (tmp_path / "data.txt").write_text("good\n")
    notok = tmp_path / "notok"
    shutil.copytree(dirs["cls"], notok)
    for file in ("tokenizer.json", "tokenizer_config.json"):
        (notok / file).unlink()
    few, enough = write_jsonl(tmp_path / "few.jsonl", sentences(10)), write_jsonl(tmp_path / "ok.jsonl", sentences(120))
    cases = [
        (str(tmp_path / "absent.jsonl"), cls, "no such file"),
        (str(tmp_path / "data.txt"), cls, "unsupported file type '.txt'"),
        (str(tmp_path / "empty.jsonl"), cls, "no rows in"),
        (str(tmp_path / "notext.jsonl"), cls, r"no text column 'text' \(columns found: label, sentence\)"),
        (str(tmp_path / "blank.jsonl"), cls, "line 2 has no text"),
        (str(enough), str(notok), "no tokenizer in .*notok.*tokenizer.json, vocab.txt"),
        (str(few), cls, "10 rows are too few"),
    ]
    for path, tokenizer_dir, message in cases:
        with pytest.raises(RecipeError, match=message) as err:
            text_splits(path, tokenizer_dir)
        assert str(err.value).startswith(f"data.source 'text:{path}'") and "\n" not in str(err.value)


def test_offline_env_is_restored(dirs):
    before = os.environ.get("HF_HUB_OFFLINE")
    hf.load_module(str(dirs["cls"]))
    assert os.environ.get("HF_HUB_OFFLINE") == before
