"""Text data files that are not what they claim are input errors (exit 2) naming the file, never defects."""

import json

import pytest

from optimizer.errors import RecipeError
from optimizer.sources.text import labels, read_rows
from tests.helpers import tiny_bert


@pytest.mark.parametrize("name, content, why", [
    ("latin.csv", "text,label\ncafé crème,1\n".encode("latin-1"), r"is not UTF-8 text \(byte 0xe9 at offset 14\)"),
    ("utf16.jsonl", '{"text": "a"}\n'.encode("utf-16"), r"is not UTF-8 text \(byte 0xff at offset 0\)"),
    ("binary.jsonl", b"\x7fELF\x02\x01\x01\0\0\0\0", "is not a text file"),
])
def test_a_file_that_is_not_utf8_text_is_named(tmp_path, name, content, why):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(RecipeError, match=f"data.source: {path} {why}"):
        read_rows(str(path), "data.source")


def test_a_csv_with_a_byte_order_mark_reads_its_first_column(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufefftext,label\nhello there,1\n".encode("utf-8"))
    assert read_rows(str(path), "data.source") == [(2, {"text": "hello there", "label": "1"})]


@pytest.mark.parametrize("label2id, why", [({"negative": "zero", "positive": 1}, "must map label names to integer ids"),
                                           ([0, 1], "must map label names to integer ids")])
def test_a_label2id_that_is_not_names_to_ids_is_named(tmp_path, label2id, why):
    d = tiny_bert(tmp_path / "bert")
    config = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**config, "label2id": label2id}))
    with pytest.raises(RecipeError, match=why):
        labels([(1, {"label": "positive"})], "label", str(d), "data.source")
