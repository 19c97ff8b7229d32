"""Encoder–decoder Hugging Face models (T5, BART, Whisper, ...): served as two pieces, each its own run.

``model.component`` picks the piece: ``encoder`` (the default) takes the processor's tensors (``input_ids``
and ``attention_mask``, or Whisper's ``input_features``) and gives ``last_hidden_state`` [batch, sequence,
hidden]; ``decoder_step`` takes ``decoder_input_ids``, the encoder's ``encoder_hidden_states`` (and
``encoder_attention_mask`` when the encoder takes a mask) and gives the logits over the vocabulary at every
decoder position. A decoder step's data is made from the source's data: the real encoder is run on it, and the
decoder tokens are random vocabulary ids after the decoder start token. Generation and the KV cache are not
handled: a decoder step recomputes every position."""

from typing import Any, Dict, List

from optimizer.errors import RecipeError
from optimizer.sources.hf_module import DECODER_STEP, ENCODER, PROCESSOR_INPUTS

COMPONENTS = {"auto": ENCODER, "encoder": ENCODER, "decoder_step": DECODER_STEP}
MAPPINGS = ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES", "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING_NAMES")
DECODER_TOKENS = 8  # decoder positions of a decoder step's data (the start token, then random vocabulary ids)
ENCODER_NOTE = ("{kind} is an encoder–decoder model: this run exports its encoder (model.component=encoder); its "
                "decoder step is a separate run with model.component=decoder_step")
DECODER_NOTE = ("{kind}: one decoder step is exported (decoder_input_ids and the encoder's hidden states in, logits "
                "over the vocabulary at every decoder position out, scored by next-token agreement); generation "
                "and the KV cache are not handled yet")


def is_seq2seq(config) -> bool:
    return bool(getattr(config, "is_encoder_decoder", False))


def resolve(config, task: str, component: str, label: str) -> str:
    """The piece to load (``seq2seq_encoder`` or ``seq2seq_decoder_step``) from ``model.component``; a task of
    its own (a rebuilt cache entry's) stands."""
    if component not in COMPONENTS:
        raise RecipeError(f"{label}: model.component={component!r} is not one of {', '.join(COMPONENTS)}")
    if task in (ENCODER, DECODER_STEP):
        return task
    if task != "auto":
        raise RecipeError(f"{label}: model.task={task!r}: {config.model_type} is an encoder–decoder model; leave "
                          f"model.task=auto and pick its piece with model.component=encoder or decoder_step")
    return COMPONENTS[component]


def model_class(config, label: str):
    """The transformers class that holds the encoder, the decoder and the LM head."""
    import transformers
    from transformers.models.auto import modeling_auto

    for mapping in MAPPINGS:
        name = getattr(modeling_auto, mapping).get(config.model_type)
        if name:
            return getattr(transformers, name if isinstance(name, str) else name[0])
    raise RecipeError(f"{label}: {config.model_type} is an encoder–decoder model with no sequence-to-sequence LM "
                      f"class in transformers (AutoModelForSeq2SeqLM, AutoModelForSpeechSeq2Seq)")


def encoder_inputs(config, produced, label: str) -> List[str]:
    """The processor outputs the encoder takes, in the model's forward order (``produced``: the tokenizer's
    outputs, None when unknown)."""
    import inspect

    params = list(inspect.signature(model_class(config, label).forward).parameters)
    for signal in ("input_features", "input_values", "pixel_values"):  # audio or image in: that one tensor
        if signal in params and "input_ids" not in params:
            return [signal]
    produced = produced or ["input_ids", "attention_mask"]
    return [p for p in params if p in ("input_ids", "attention_mask") and p in produced and p in PROCESSOR_INPUTS]


def describe(config, produced, task: str, component: str, label: str) -> Dict[str, Any]:
    """``hf.describe`` of one piece: its inputs and output, what the data must hold, a warning (``produced``:
    the tokenizer's outputs, None when unknown)."""
    task = resolve(config, task, component, label)
    encoder = encoder_inputs(config, produced, label)
    if task == ENCODER:
        names, outputs, note = encoder, ["last_hidden_state"], ENCODER_NOTE
    else:
        mask = ["encoder_attention_mask"] if "attention_mask" in encoder else []
        names, outputs, note = ["decoder_input_ids", "encoder_hidden_states", *mask], ["logits"], DECODER_NOTE
    return {"task": task, "input_names": names, "data_input_names": encoder, "output_names": outputs,
            "warnings": [note.format(kind=config.model_type)],
            "transformer": {"model_type": config.model_type,
                            "num_heads": getattr(config, "num_attention_heads", None),
                            "hidden_size": getattr(config, "hidden_size", None)},
            "num_labels": None}


def auto_class(config, label: str) -> str:
    """The transformers auto class that loads the whole model: the encoder, the decoder and the LM head."""
    from transformers.models.auto import modeling_auto

    speech = getattr(modeling_auto, MAPPINGS[1])
    model_class(config, label)  # a RecipeError when there is none
    return "AutoModelForSpeechSeq2Seq" if config.model_type in speech else "AutoModelForSeq2SeqLM"


def dynamic_axes(names: List[str]) -> Dict[str, Dict[int, str]]:
    """The decoder step's named axes beyond ``batch``: its own positions and the encoder's."""
    axes = {"decoder_input_ids": {1: "decoder_sequence"}, "encoder_hidden_states": {1: "encoder_sequence"},
            "encoder_attention_mask": {1: "encoder_sequence"}}
    return {n: axes[n] for n in names if n in axes}
