"""A stateful model (``model.state``) served with Triton's sequence batcher and implicit state: the server keeps
each sequence's state between its requests, so a client sends only the model's other inputs, with a sequence id
and start / end flags, and gets only the other outputs.

The dynamic batcher's tuned values carry over to the ``oldest`` strategy (preferred batch size, queue delay),
which batches requests of up to ``max_batch_size`` different sequences; each state starts as zeros
(``initial_state``, as the data's states do). The queue policies have no counterpart there (the sequence
batcher holds a sequence's requests in order and refuses none) and are dropped."""

from typing import Dict, Mapping

IDLE_US = 5_000_000  # a sequence idle this long is ended and its state slot freed (Triton's default is 1 s)


def stateful(config, state: Mapping[str, str]) -> None:
    """Turn ``config`` (a ModelConfig built for stateless serving) into a sequence-batched one keeping ``state``
    (``{input: output}``) in the server."""
    inputs = {t.name: t for t in config.input}
    preferred = list(config.dynamic_batching.preferred_batch_size)
    delay = config.dynamic_batching.max_queue_delay_microseconds
    config.ClearField("dynamic_batching")
    sequence = config.sequence_batching
    sequence.max_sequence_idle_microseconds = IDLE_US
    if config.max_batch_size > 0:
        sequence.oldest.max_candidate_sequences = config.max_batch_size
        sequence.oldest.preferred_batch_size.extend(preferred)
        sequence.oldest.max_queue_delay_microseconds = delay
    else:
        sequence.direct.SetInParent()
    for name, out in state.items():
        t = inputs[name]
        s = sequence.state.add()
        s.input_name, s.output_name, s.data_type = name, out, t.data_type
        s.dims.extend(t.dims)
        zeros = s.initial_state.add()
        zeros.name, zeros.data_type, zeros.zero_data = f"{name}_zeros", t.data_type, True
        zeros.dims.extend(d if d > 0 else 1 for d in t.dims)
    kept_in = [t for t in config.input if t.name not in state]
    kept_out = [t for t in config.output if t.name not in set(state.values())]
    del config.input[:]
    config.input.extend(kept_in)
    del config.output[:]
    config.output.extend(kept_out)
    config.ClearField("model_warmup")  # a warm-up request has no sequence id, which a sequence batcher refuses


def note(state: Mapping[str, str]) -> Dict[str, str]:
    """What the summary says of the smoke test a stateful model does not get."""
    return {"skipped": f"the model keeps state {dict(state)} in the server (sequence batcher): the smoke test and "
                       f"serve_check send stateless requests, so they are not run; send sequences with a sequence id "
                       f"and start/end flags"}
