"""Text classification data (``data.source=text:<file>``): a ``.jsonl`` or ``.csv`` file tokenized
by a Hugging Face directory's tokenizer into named int64 feeds, split three ways.

Every split is a dict ``{input name: int64 array [n, max_length]}``; labels are int64 ``[n]``, or
None when the file has no label column. The evaluation, calibration and training rows are
disjoint: the evaluation rows are drawn first, the calibration rows from the rest (the training
part), and the remaining rows train."""

import csv
import io
import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from optimizer.errors import RecipeError

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model",
                   "tokenizer.model")
Rows = List[Tuple[int, Dict[str, Any]]]  # (line number in the file, row)
# model types whose position ids start past the padding index (RoBERTa's embeddings): pad_token_id + 1 fewer tokens
PADDING_OFFSET = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "ibert", "data2vec-text",
                  "mpnet", "roberta-prelayernorm", "xmod")


def read_utf8(path: Path, label: str) -> str:
    """The file as text: UTF-8, a leading byte-order mark dropped; RecipeError for binary or other encodings."""
    data = path.read_bytes()
    if b"\0" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise RecipeError(f"{label}: {path} is not a text file (it holds NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RecipeError(f"{label}: {path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                          f"save it as UTF-8") from None


def _read_jsonl(path: Path, label: str) -> Rows:
    rows = []
    for number, line in enumerate(read_utf8(path, label).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            raise RecipeError(f"{label}: line {number} is not JSON ({e})") from e
        if not isinstance(row, dict):
            raise RecipeError(f"{label}: line {number} is not a JSON object")
        rows.append((number, row))
    return rows


def _read_csv(path: Path, label: str) -> Rows:
    reader = csv.DictReader(io.StringIO(read_utf8(path, label), newline=""))
    try:
        return [(reader.line_num, row) for row in reader]
    except csv.Error as e:
        raise RecipeError(f"{label}: line {reader.line_num}: {e}") from e


def read_rows(path: str, label: str) -> Rows:
    """The file's rows with their line numbers; RecipeError when missing, unsupported or empty."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise RecipeError(f"{label}: no such file {file}")
    readers = {".jsonl": _read_jsonl, ".csv": _read_csv}
    if file.suffix.lower() not in readers:
        raise RecipeError(f"{label}: unsupported file type {file.suffix or '(none)'!r}; use .jsonl or .csv")
    rows = readers[file.suffix.lower()](file, label)
    if not rows:
        raise RecipeError(f"{label}: no rows in {file}")
    return rows


def _texts(rows: Rows, column: str, label: str) -> List[str]:
    if not any(column in row for _, row in rows):
        found = sorted({key for _, row in rows for key in row if key is not None})
        raise RecipeError(f"{label}: no text column {column!r} (columns found: {', '.join(found)})")
    texts = []
    for number, row in rows:
        text = row.get(column)
        if not isinstance(text, str) or not text.strip():
            raise RecipeError(f"{label}: line {number} has no text in column {column!r}")
        texts.append(text)
    return texts


def _as_int(value) -> Optional[int]:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _label2id(tokenizer_dir: str) -> Dict[str, int]:
    """The model config's label2id, unless it is transformers' default ``LABEL_<i>`` naming."""
    from optimizer.sources.hf import json_file

    config = Path(tokenizer_dir).expanduser() / "config.json"
    if not config.is_file():
        return {}
    mapping = json_file(config, "data.source").get("label2id") or {}
    if not isinstance(mapping, dict) or not all(_as_int(v) is not None for v in mapping.values()):
        raise RecipeError(f"data.source: label2id in {config} must map label names to integer ids, got {mapping}"[:300])
    return {} if all(k.startswith("LABEL_") for k in mapping) else {str(k): _as_int(v) for k, v in mapping.items()}


def labels(rows: Rows, column: str, tokenizer_dir: str, label: str) -> Optional[np.ndarray]:
    """int64 labels, or None without a label column. Integers stay; strings map through the
    config's label2id when it names them, else through their sorted unique values."""
    if not any(column in row for _, row in rows):
        return None
    values = []
    for number, row in rows:
        value = row.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise RecipeError(f"{label}: line {number} has no label in column {column!r}")
        values.append(value)
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        return np.asarray(ints, dtype=np.int64)
    names = [str(v).strip() for v in values]
    mapping = _label2id(tokenizer_dir) or {name: i for i, name in enumerate(sorted(set(names)))}
    unknown = sorted(set(names) - set(mapping))
    if unknown:
        raise RecipeError(f"{label}: label {unknown[0]!r} is not in the model's label2id "
                          f"({', '.join(mapping)}) in {Path(tokenizer_dir) / 'config.json'}")
    return np.asarray([mapping[n] for n in names], dtype=np.int64)


def position_limit(model_dir: str) -> Optional[Tuple[int, str]]:
    """The most tokens the model's absolute position embeddings cover, with where that comes from, read from
    config.json alone (nothing imported); None when the config gives no such limit (rotary or relative
    positions, no ``max_position_embeddings``) or cannot be read (loading the model names that problem)."""
    try:
        config = json.loads((Path(model_dir).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or config.get("position_biased_input") is False:  # DeBERTa-v2: relative only
        return None
    if config.get("position_embedding_type") == "rotary" or any("rope" in str(k).split("_") for k in config):
        return None
    limit = _as_int(config.get("max_position_embeddings"))
    if limit is None or limit < 1:
        return None
    where = f"max_position_embeddings {limit} in {Path(model_dir) / 'config.json'}"
    if config.get("model_type") in PADDING_OFFSET:
        pad = _as_int(config.get("pad_token_id"))
        pad = 1 if pad is None or pad < 0 else pad
        return limit - pad - 1, f"{where}, less {pad + 1} for positions that start past the padding index"
    return limit, where


def load_tokenizer(tokenizer_dir: str, label: str):
    """The directory's tokenizer, offline; RecipeError naming the files it lacks."""
    from optimizer.sources.hf import offline, refuse_remote_code, transformers_module

    directory = Path(tokenizer_dir).expanduser()
    if not any((directory / name).is_file() for name in TOKENIZER_FILES):
        raise RecipeError(f"{label}: no tokenizer in {directory} (none of {', '.join(TOKENIZER_FILES)}); "
                          f"save one there with tokenizer.save_pretrained")
    refuse_remote_code(directory, label)
    transformers = transformers_module(label)
    try:
        with offline():
            return transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True,
                                                              trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        raise RecipeError(f"{label}: cannot load the tokenizer in {directory}: {str(e).splitlines()[0]}") from e


def tokenize(tokenizer, texts: List[str], max_length: int, padding: str, input_names, label: str):
    """int64 feeds keyed by the tokenizer's outputs, kept to ``input_names`` when given (in that order)."""
    if padding not in ("max_length", "longest"):
        raise RecipeError(f"{label}: padding {padding!r} must be 'max_length' or 'longest'")
    encoded = tokenizer(texts, padding=padding, truncation=True, max_length=max_length, return_tensors="np")
    feeds = {name: np.asarray(array, dtype=np.int64) for name, array in encoded.items()}
    if input_names is None:
        return feeds
    missing = [name for name in input_names if name not in feeds]
    if missing:
        raise RecipeError(f"{label}: the tokenizer gives {', '.join(feeds)} but the model takes {', '.join(missing)}")
    return {name: feeds[name] for name in input_names}


def _indices(n: int, evaluation_fraction: float, calibration_size: int, seed: int, label: str):
    order = np.random.default_rng(seed).permutation(n)
    n_eval = int(round(n * evaluation_fraction))
    if n_eval < 1 or calibration_size < 1 or n_eval + calibration_size >= n:
        raise RecipeError(f"{label}: {n} rows are too few for evaluation_fraction={evaluation_fraction} "
                          f"({n_eval} rows), calibration_size={calibration_size} and at least one training row")
    return order[n_eval + calibration_size:], order[n_eval:n_eval + calibration_size], order[:n_eval]


def text_splits(path: str, tokenizer_dir: str, *, text_column: str = "text", label_column: str = "label",
                max_length: int = 128, padding: str = "max_length", evaluation_fraction: float = 0.25,
                calibration_size: int = 64, seed: int = 0, input_names=None) -> Dict[str, Any]:
    """Tokenized train / calibration / evaluation feeds and labels (see the module docstring)."""
    label = f"data.source {'text:' + str(path)!r}"
    rows = read_rows(path, label)
    texts = _texts(rows, text_column, label)
    targets = labels(rows, label_column, tokenizer_dir, label)
    train, calibration, evaluation = _indices(len(rows), evaluation_fraction, calibration_size, seed, label)
    feeds = tokenize(load_tokenizer(tokenizer_dir, label), texts, max_length, padding, input_names, label)

    def take(idx):
        return {name: np.ascontiguousarray(array[idx]) for name, array in feeds.items()}

    return {"train": take(train), "train_labels": None if targets is None else targets[train],
            "calibration": take(calibration),
            "evaluation": take(evaluation), "evaluation_labels": None if targets is None else targets[evaluation]}
