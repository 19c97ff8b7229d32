"""Hugging Face model directories (``model.source=hf:<dir>``), loaded offline.

``load_module`` wraps the model so that ``forward`` takes the tokenizer's (or image processor's)
tensors positionally, in the model's forward order, and returns a tensor or a tuple of tensors:
both ONNX exporters take that as it is. The wrapper doubles as the factory of a torch artifact
(``optimizer.sources.hf:load_module`` with ``{"directory", "task"}``), which rebuilds it from the
directory with the same state dict keys. Only eager attention is used: ONNX Runtime's transformer
optimizer fuses Attention from its MatMul/Softmax pattern, not from a fused SDPA kernel."""

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List

from optimizer.errors import RecipeError
from optimizer.sources.hf_weights import check_weights
from optimizer.sources import hf_seq2seq
from optimizer.sources.hf_module import DECODER_STEP, ENCODER, PROCESSOR_INPUTS, wrapper_class

TASKS = ("auto", "sequence_classification", "image_classification", "feature_extraction", "causal_lm")
CAUSAL_LM_NOTE = ("a causal LM is exported as one forward pass giving logits over the vocabulary at every position "
                  "(task causal_lm, scored by next-token agreement with the source); generation and the KV cache are "
                  "not handled yet")
WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_AUTO = {"sequence_classification": "AutoModelForSequenceClassification",
         "image_classification": "AutoModelForImageClassification", "feature_extraction": "AutoModel",
         "causal_lm": "AutoModelForCausalLM"}
_MAPPING = {"sequence_classification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES",
            "image_classification": "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES",
            "feature_extraction": "MODEL_MAPPING_NAMES", "causal_lm": "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"}


def _label(directory: str, what: str) -> str:
    return f"{what} {'hf:' + str(directory)!r}"


def transformers_module(what: str):
    """``import transformers``, or a RecipeError telling how to install the optional extra."""
    try:
        import transformers
    except ImportError as e:
        raise RecipeError(f"{what}: Hugging Face sources need transformers: pip install 'optimizer[hf]'") from e
    return transformers


def _mappings(what: str) -> Dict[str, Dict[str, Any]]:
    transformers_module(what)
    from transformers.models.auto import modeling_auto

    return {name: getattr(modeling_auto, name) for name in dir(modeling_auto)
            if name.startswith("MODEL_") and name.endswith("MAPPING_NAMES")}


def _class_names(mapping: Dict[str, Any]) -> set:
    names = set()
    for value in mapping.values():
        names.update([value] if isinstance(value, str) else value)
    return names


def read_config(directory: str, what: str = "model.source"):
    """The directory's ``PretrainedConfig`` (checked by ``check_directory`` first), read offline."""
    path = check_directory(directory, what)
    from transformers import AutoConfig

    try:
        with offline():
            return AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as e:
        raise RecipeError(f"{_label(directory, what)}: cannot read config.json: {str(e).splitlines()[0]}") from e


def check_directory(directory: str, what: str = "model.source") -> Path:
    """The directory as a Path; a RecipeError naming the problem when it cannot be loaded."""
    label, path = _label(directory, what), Path(directory).expanduser()
    if not path.is_dir():
        raise RecipeError(f"{label}: no such directory {path}")
    if not (path / "config.json").is_file():
        raise RecipeError(f"{label}: no config.json in {path}")
    if not any((path / name).is_file() for name in WEIGHTS):
        raise RecipeError(f"{label}: no weights in {path} (expected one of {', '.join(WEIGHTS)})")
    config = json_file(path / "config.json", label)
    refuse_remote_code(path, label)
    known = set().union(*map(_class_names, _mappings(label).values()))
    architectures = config.get("architectures") or []
    if isinstance(architectures, str):  # one class name written without its list
        architectures = [architectures]
    if not isinstance(architectures, list) or not all(isinstance(a, str) for a in architectures):
        raise RecipeError(f"{label}: config.json 'architectures' must be a list of class names, got {architectures!r}")
    unknown = [a for a in architectures if a not in known]
    if unknown or not architectures and config.get("model_type") not in _mappings(label)["MODEL_MAPPING_NAMES"]:
        named = ", ".join(unknown) or f"model_type {config.get('model_type')!r}"
        raise RecipeError(f"{label}: config.json names {named}, which no transformers AutoModel class can load")
    return path


def json_file(path: Path, label: str) -> Dict[str, Any]:
    """A JSON object file of a model directory; RecipeError naming the file when it is not one."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise RecipeError(f"{label}: {path} is not valid JSON ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise RecipeError(f"{label}: cannot read {path}: {e.strerror or e}") from None
    if not isinstance(value, dict):
        raise RecipeError(f"{label}: {path} must hold a JSON object, not a {type(value).__name__}")
    return value


def refuse_remote_code(directory: Path, label: str) -> None:
    """A directory whose config or tokenizer config maps classes to its own Python files (``auto_map``) asks
    transformers to run that code: refused before transformers reads it (and before it could ask on stdin).
    Every load also passes ``trust_remote_code=False``."""
    for name in ("config.json", "tokenizer_config.json", "preprocessor_config.json"):
        path = directory / name
        if not path.is_file():
            continue
        auto_map = json_file(path, label).get("auto_map")
        if auto_map:
            values = auto_map.values() if isinstance(auto_map, dict) else [auto_map]
            named = ", ".join(sorted({str(c) for v in values for c in (v if isinstance(v, list) else [v]) if c}))[:120]
            raise RecipeError(f"{label}: {name} names code of its own (auto_map: {named}); optimizer never runs "
                              f"code from a model directory: save the model with a transformers class, or load it "
                              f"through a factory you wrote (model.source=pkg.module:function)")


def resolve_task(config, task: str, label: str) -> str:
    """The task to load: ``auto`` follows the config's architectures; an explicit one must be loadable."""
    if task not in TASKS:
        raise RecipeError(f"{label}: task {task!r} is not one of {', '.join(TASKS)}")
    architectures = config.architectures or []
    if task == "auto":
        if any(a.endswith("ForSequenceClassification") for a in architectures):
            return "sequence_classification"
        if any(a.endswith("ForImageClassification") for a in architectures):
            return "image_classification"
        if set(architectures) & _class_names(_mappings(label)[_MAPPING["causal_lm"]]):
            return "causal_lm"  # never silently a pooled embedder: its LM head is what it is for
        return "feature_extraction"
    if config.model_type not in _mappings(label)[_MAPPING[task]]:
        raise RecipeError(f"{label}: model_type {config.model_type!r} has no {task} model in transformers")
    return task


def _model_class(config, task: str, label: str):
    import transformers

    name = _mappings(label)[_MAPPING[task]][config.model_type]
    name = name if isinstance(name, str) else name[0]
    return getattr(transformers, name)


def tokenizer_inputs(path: Path):
    """The tokenizer's model_input_names from tokenizer_config.json, or None when unknown."""
    file = path / "tokenizer_config.json"
    if not file.is_file():
        return None
    tok = json.loads(file.read_text())
    if tok.get("model_input_names"):
        return list(tok["model_input_names"])
    import transformers

    cls = getattr(transformers, str(tok.get("tokenizer_class")), None)
    return list(cls.model_input_names) if cls is not None and hasattr(cls, "model_input_names") else None


def input_names(path: Path, config, task: str, label: str) -> List[str]:
    """The processor outputs the model's forward takes, in the forward's order."""
    import inspect

    params = list(inspect.signature(_model_class(config, task, label).forward).parameters)
    for signal in ("pixel_values", "input_values", "input_features"):  # an image or audio model: one tensor
        if signal in params and "input_ids" not in params:
            return [signal]
    produced = tokenizer_inputs(path)
    if produced is None:  # no tokenizer here: token types only when the model has more than one
        types = getattr(config, "type_vocab_size", 0) > 1
        produced = ["input_ids", "attention_mask"] + (["token_type_ids"] if types else [])
    names = [p for p in params if p in PROCESSOR_INPUTS and p in produced]
    if not names:
        raise RecipeError(f"{label}: the model's forward takes none of {', '.join(PROCESSOR_INPUTS)}")
    return names


def describe(directory: str, task: str = "auto", component: str = "auto") -> Dict[str, Any]:
    """Task, input and output names (and the inputs the data must hold), transformer shape and labels, from the
    config alone. An encoder–decoder gives the piece ``component`` names (``hf_seq2seq``)."""
    label = _label(directory, "model.source")
    config = read_config(directory)
    path = Path(directory).expanduser()
    if hf_seq2seq.is_seq2seq(config):
        return hf_seq2seq.describe(config, tokenizer_inputs(path), task, component, label)
    if component != "auto":
        raise RecipeError(f"{label}: model.component={component!r} picks a piece of an encoder–decoder model; "
                          f"{config.model_type} is not one: leave model.component=auto")
    task = resolve_task(config, task, label)
    names = input_names(path, config, task, label)
    return {
        "task": task,
        "input_names": names, "data_input_names": names,
        "output_names": ["embeddings"] if task == "feature_extraction" else ["logits"],
        "warnings": [CAUSAL_LM_NOTE] if task == "causal_lm" else [],
        "transformer": {"model_type": config.model_type, "num_heads": getattr(config, "num_attention_heads", None),
                        "hidden_size": getattr(config, "hidden_size", None)},
        "num_labels": config.num_labels if task in ("sequence_classification", "image_classification") else None,
    }


@contextlib.contextmanager
def offline():
    """Forbid Hugging Face Hub downloads while loading (with ``local_files_only=True``)."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_hf(path: Path, task: str, label: str, auto: str = ""):
    """The transformers model (``auto`` names its auto class, else the task's), eager attention, eval mode; a
    missing trained head is an error. The weight files are checked first (``hf_weights``): a pickled one is only
    ever read with ``weights_only=True``."""
    import transformers

    check_weights(path, label)

    level, bars = transformers.logging.get_verbosity(), transformers.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()  # unused-weight notices of a head-less AutoModel
    transformers.logging.disable_progress_bar()
    try:
        with offline():
            model, info = getattr(transformers, auto or _AUTO[task]).from_pretrained(
                str(path), local_files_only=True, attn_implementation="eager", output_loading_info=True,
                trust_remote_code=False, weights_only=True)
    except (OSError, ValueError) as e:
        raise RecipeError(f"{label}: cannot load the {task} model: {str(e).splitlines()[0]}") from e
    finally:
        transformers.logging.set_verbosity(level)
        if bars:
            transformers.logging.enable_progress_bar()
    if task not in ("feature_extraction", ENCODER) and info.get("missing_keys"):
        missing = ", ".join(sorted(info["missing_keys"])[:3])
        other = "model.component=encoder" if task == DECODER_STEP else "task feature_extraction"
        raise RecipeError(f"{label}: no trained {task} head in the weights (missing {missing}); use {other}")
    return model.eval()


def load_module(directory: str, task: str = "auto", component: str = "auto"):
    """The model as an export-ready ``nn.Module`` in eval mode: ``forward(*inputs) -> tensor``,
    with ``input_names``, ``output_names``, ``task`` and ``dynamic_axes`` (beyond batch) attributes."""
    info = describe(directory, task, component)
    label = _label(directory, "model.source")
    seq2seq = info["task"] in (ENCODER, DECODER_STEP)
    auto = hf_seq2seq.auto_class(read_config(directory), label) if seq2seq else ""
    model = _load_hf(Path(directory).expanduser(), info["task"], label, auto)
    module = wrapper_class(tuple(info["input_names"]))(model, info["task"], info["output_names"]).eval()
    module.dynamic_axes = hf_seq2seq.dynamic_axes(info["input_names"])
    return module
