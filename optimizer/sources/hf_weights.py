"""The weights of a Hugging Face model directory, checked before transformers loads them, so that a broken
file is named in one line (RecipeError) instead of failing inside transformers.

The files are the ones transformers reads, in its order: ``model.safetensors``, its sharded index, then
``pytorch_model.bin``, its sharded index. A safetensors file must open (its header is read: a garbage or
truncated file fails here). A pickled ``pytorch_model.bin`` is read only with torch's weights-only unpickler
(``torch.load(weights_only=True)``, as transformers itself loads it): tensors, containers and numbers load,
no Python object is built and no code runs; a checkpoint holding anything else (a whole pickled model, a
payload) is refused, with the advice to save the weights as safetensors."""

import json
import re
from pathlib import Path
from typing import List

from optimizer.errors import RecipeError, one_line

ORDER = (("model.safetensors", "model.safetensors.index.json"), ("pytorch_model.bin", "pytorch_model.bin.index.json"))
RESAVE = "re-export the model with save_pretrained (it writes model.safetensors)"


def weight_files(path: Path, label: str) -> List[Path]:
    """The weight files transformers would read from ``path``: one file, or the shards an index names."""
    for single, index in ORDER:
        if (path / single).is_file():
            return [path / single]
        if (path / index).is_file():
            return shards(path / index, label)
    return []


def shards(index: Path, label: str) -> List[Path]:
    """The shard files of a sharded checkpoint's index: plain file names beside it, each present."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8")).get("weight_map")
    except (OSError, ValueError, UnicodeDecodeError, AttributeError) as e:
        raise RecipeError(f"{label}: {index.name} is not a readable JSON index ({one_line(e)}); {RESAVE}") from None
    if not isinstance(weight_map, dict) or not weight_map:
        raise RecipeError(f"{label}: {index.name} has no 'weight_map' of tensor names to shard files; {RESAVE}")
    files = []
    for name in sorted({str(v) for v in weight_map.values()}):
        if Path(name).name != name or name in (".", ".."):
            raise RecipeError(f"{label}: {index.name} names shard {name!r}, which is not a file in the directory")
        if not (index.parent / name).is_file():
            raise RecipeError(f"{label}: {index.name} names shard {name!r}, which is missing from the directory")
        files.append(index.parent / name)
    return files


def check_weights(path: Path, label: str) -> None:
    """Every weight file of the directory opens as what it claims to be; RecipeError naming the first that
    does not and what to do."""
    for file in weight_files(path, label):
        if file.suffix == ".safetensors":
            check_safetensors(file, label)
        else:
            check_pickled(file, label)


def check_safetensors(file: Path, label: str) -> None:
    """``file`` opens as safetensors: a header that parses and covers the whole file."""
    from safetensors import safe_open

    try:
        with safe_open(str(file), framework="pt") as handle:
            handle.keys()
    except Exception as e:  # safetensors raises its own SafetensorError, or OSError
        raise RecipeError(f"{label}: {file.name} is not a readable safetensors file ({one_line(e)}): "
                          f"{RESAVE}") from None


def check_pickled(file: Path, label: str) -> None:
    """``file`` loads with torch's weights-only unpickler onto the meta device (no tensor data is read)."""
    import pickle
    import warnings

    import torch

    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols: the error says what matters
            warnings.simplefilter("ignore")
            torch.load(str(file), map_location="meta", weights_only=True)
    except pickle.UnpicklingError as e:
        named = re.search(r"GLOBAL ([\w.]+)", str(e))
        if named:
            raise RecipeError(f"{label}: {file.name} is a pickled checkpoint that holds more than tensors (it names "
                              f"{named.group(1)}); optimizer unpickles tensors only: {RESAVE}") from None
        raise RecipeError(f"{label}: {file.name} is not a readable PyTorch checkpoint (not a pickle of tensors "
                          f"only): {RESAVE}") from None
    except (OSError, RuntimeError, EOFError, ValueError) as e:
        raise RecipeError(f"{label}: {file.name} is not a readable PyTorch checkpoint ({one_line(e)}): "
                          f"{RESAVE}") from None
