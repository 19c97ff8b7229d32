"""A stateful model's config: the sequence batcher keeps ``model.state`` in the server, the tuned batching carries
over to its ``oldest`` strategy, and the state tensors leave the client's inputs and outputs."""

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

from optimizer.triton import emit
from optimizer.triton.sequence import stateful
from tests.helpers import QUEUED

IO = {"inputs": [{"name": "x", "data_type": "TYPE_FP32", "dims": [-1, 64]},
                 {"name": "state", "data_type": "TYPE_FP32", "dims": [-1, 2, 16]}],
      "outputs": [{"name": "y", "data_type": "TYPE_FP32", "dims": [-1, 1]},
                  {"name": "stateN", "data_type": "TYPE_FP32", "dims": [-1, 2, 16]}]}


def test_state_moves_into_the_sequence_batcher(tmp_path):
    config = emit.build_config("vad", "onnx", IO, QUEUED, False, {"x": [64], "state": [2, 16]})
    preferred = list(config.dynamic_batching.preferred_batch_size)
    stateful(config, {"state": "stateN"})
    assert [t.name for t in config.input] == ["x"] and [t.name for t in config.output] == ["y"]
    assert not config.HasField("dynamic_batching") and not config.model_warmup
    oldest = config.sequence_batching.oldest
    assert list(oldest.preferred_batch_size) == preferred and oldest.max_candidate_sequences == config.max_batch_size
    (s,) = config.sequence_batching.state
    assert (s.input_name, s.output_name, list(s.dims), s.data_type) == ("state", "stateN", [2, 16], mc.TYPE_FP32)
    assert s.initial_state[0].zero_data and list(s.initial_state[0].dims) == [2, 16]
    path = tmp_path / "vad" / "config.pbtxt"
    path.parent.mkdir()
    path.write_text(text_format.MessageToString(config))
    assert emit.validate(path, IO) == []
    broken = text_format.Parse(path.read_text(), mc.ModelConfig())
    broken.sequence_batching.state[0].dims[:] = [2, 8]
    path.write_text(text_format.MessageToString(broken))
    assert emit.validate(path, IO) == ["input 'state': config says ('TYPE_FP32', [2, 8]), model has ('TYPE_FP32', [2, 16])",
                                       "output 'stateN': config says ('TYPE_FP32', [2, 8]), model has "
                                       "('TYPE_FP32', [2, 16])"]
