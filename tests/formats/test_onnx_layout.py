"""``model.batch_axis``: a model whose batch is not on axis 0 (a state [2, batch, 16]) or absent (a per-call
value) gets a batch-first boundary, and computes exactly what it did."""

import numpy as np
import onnxruntime as ort
import pytest

from optimizer.errors import RecipeError
from optimizer.formats.onnx import read_io
from optimizer.formats.onnx_layout import batch_first, check_unbatched
from tests.helpers import stateful_vad, vad_like


def _run(path, feeds):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def test_state_axes_move_to_the_front_and_the_numbers_stay(tmp_path):
    src = stateful_vad(tmp_path / "vad.onnx")
    applied = batch_first(src, tmp_path / "out.onnx", {"state": 1, "stateN": 1})
    assert applied == {"state": 1, "stateN": 1}
    io = read_io(tmp_path / "out.onnx")
    assert [t.shape for t in io.inputs] == [("batch", 64), ("batch", 2, 16), ()]
    assert [t.shape for t in io.outputs] == [("batch", 1), ("batch", 2, 16)]
    rng = np.random.default_rng(0)
    x, state = rng.normal(size=(3, 64)).astype(np.float32), rng.normal(size=(2, 3, 16)).astype(np.float32)
    y0, s0 = _run(src, {"x": x, "state": state, "sr": np.array(16000)})
    y1, s1 = _run(tmp_path / "out.onnx", {"x": x, "state": state.transpose(1, 0, 2).copy(), "sr": np.array(16000)})
    np.testing.assert_array_equal(y0, y1)
    np.testing.assert_array_equal(s0.transpose(1, 0, 2), s1)


def test_an_input_without_a_batch_axis_takes_one_value_per_call(tmp_path):
    src = vad_like(tmp_path / "vad.onnx")
    assert batch_first(src, tmp_path / "out.onnx", {"sr": None}) == {"sr": None}
    assert read_io(tmp_path / "out.onnx").inputs[1].shape == ("batch",)
    x = np.random.default_rng(0).normal(size=(4, 64)).astype(np.float32)
    np.testing.assert_array_equal(_run(tmp_path / "out.onnx", {"x": x, "sr": np.full(4, 8000)})[0],
                                  _run(src, {"x": x, "sr": np.array(8000)})[0])
    check_unbatched({"sr": np.full(4, 8000)}, {"sr": None}, "train")
    with pytest.raises(RecipeError, match=r"^model.batch_axis.sr: null means one value per call, but the train split"):
        check_unbatched({"sr": np.array([8000, 16000])}, {"sr": None}, "train")


@pytest.mark.parametrize("axes, message", [
    ({"state": 3}, "model.batch_axis.state: axis 3 is beyond the tensor's 3 axes (0 to 2, or null for none)"),
    ({"h": 1}, "model.batch_axis.h: the model has no input or output 'h'; its inputs are ['sr', 'state', 'x']"),
    ({"stateN": None}, "model.batch_axis.stateN: an output needs a batch axis (0 to 2); only an input may have none"),
    ({"state": "one"}, "model.batch_axis.state: 'one' is not an axis; give an integer or null (no batch axis)"),
])
def test_bad_batch_axes_name_the_key(tmp_path, axes, message):
    with pytest.raises(RecipeError) as e:
        batch_first(stateful_vad(tmp_path / "vad.onnx"), tmp_path / "out.onnx", axes)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
