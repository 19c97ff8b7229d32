"""``model.state``: a streaming model's state pairs are checked, and the states the data does not hold are the
source model's own, carried from sample to sample."""

import numpy as np
import onnxruntime as ort
import pytest

from optimizer.cache import Cache
from optimizer.config import HardwareConfig, ModelConfig
from optimizer.errors import RecipeError
from optimizer.sources.models import check_source
from optimizer.sources.onnx_file import load
from optimizer.sources.state import carried
from tests.helpers import stateful_vad

LAYOUT = {"state": 1, "stateN": 1}


def _splits():
    from tests.factories import audio_frames

    return audio_frames(12)


def _config(src, **over):
    return ModelConfig(source=str(src), **{"constants": {"sr": 16000}, "batch_axis": LAYOUT,
                                           "state": {"state": "stateN"}, **over})


def test_the_source_models_states_are_carried_through_each_split(tmp_path):
    src = stateful_vad(tmp_path / "vad.onnx")
    splits = _splits()
    art = load(_config(src), splits, Cache(tmp_path / "c"), 0)
    assert art.meta["state"] == {"state": "stateN"} and art.meta["batch_axis"] == LAYOUT
    filled = carried(art, splits, {"state": "stateN"}, HardwareConfig())
    assert set(filled.evaluation) == {"x", "state"} and filled.evaluation["state"].shape == (12, 2, 16)
    session = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"])
    state = np.zeros((2, 1, 16), np.float32)  # the original model, its own layout, one call per sample
    for i in range(12):
        np.testing.assert_allclose(filled.evaluation["state"][i], state[:, 0], rtol=1e-5, atol=1e-6)
        state = session.run(None, {"x": splits.evaluation["x"][i:i + 1], "state": state, "sr": np.array(16000)})[1]
    assert np.abs(filled.evaluation["state"][-1]).max() > 0.05  # a state that moved, not zeros
    np.testing.assert_array_equal(filled.evaluation["x"], splits.evaluation["x"])


@pytest.mark.parametrize("over, message", [
    ({"state": {"state": "y"}}, "model.state.state: input state (float32 [batch, 2, 16]) and output y "
                                "(float32 [batch, 1]) differ; a state output must have its input's type and shape"),
    ({"state": {"h": "stateN"}}, "model.state.h: the model has no input 'h'; its inputs are ['state', 'x']"),
    ({"state": {"state": "hn"}}, "model.state.state: the model has no output 'hn'; its outputs are ['stateN', 'y']"),
    ({"batch_axis": {}}, "model.state.state: the input is state (float32 [2, batch, 16]), its axis 0 is fixed, so "
                         "not the batch; set model.batch_axis for 'state' and 'stateN'"),
])
def test_bad_state_pairs_name_the_key(tmp_path, over, message):
    with pytest.raises(RecipeError) as e:
        load(_config(stateful_vad(tmp_path / "vad.onnx"), **over), _splits(), Cache(tmp_path / "c"), 0)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_state_and_batch_axes_on_a_torch_source_are_refused_at_plan_time():
    for key in ("batch_axis", "state"):
        with pytest.raises(RecipeError, match=rf"^model.{key}: applies to an ONNX model, and model.source "
                                              r"'tests.factories:tiny_cnn' gives a torch model"):
            check_source(ModelConfig(source="tests.factories:tiny_cnn", **{key: {"state": 1}}))


def test_a_variant_is_evaluated_carrying_its_own_state(tmp_path):
    from optimizer import formats
    from optimizer.sources.state import stream_predict

    src = stateful_vad(tmp_path / "vad.onnx")
    splits = _splits()
    art = load(_config(src), splits, Cache(tmp_path / "c"), 0)
    feeds = carried(art, splits, {"state": "stateN"}, HardwareConfig()).evaluation
    session = formats.load(art, HardwareConfig())
    own = stream_predict(session, feeds, {"state": "stateN"})
    forced = session(feeds)  # every call fed the source's carried states: the same numbers for the source itself
    np.testing.assert_allclose(own["y"], forced["y"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(own["stateN"][:-1], feeds["state"][1:], rtol=1e-5, atol=1e-6)
    wrong = {**feeds, "state": np.ones_like(feeds["state"])}  # what the data holds for a state input is not fed
    np.testing.assert_allclose(stream_predict(session, wrong, {"state": "stateN"})["y"], own["y"], rtol=1e-6)
    session.close()
