"""``model.constants``: inputs a model takes but the data does not vary (a sample rate as a 0-d input) are
folded into the ONNX graph, so the data, every step and the served model no longer need them."""

import numpy as np
import onnxruntime as ort
import pytest

from optimizer.cache import Cache
from optimizer.config import ModelConfig
from optimizer.errors import RecipeError
from optimizer.sources.models import check_source
from optimizer.sources.onnx_file import load
from tests.helpers import vad_like


def _splits():
    from tests.factories import audio_frames

    return audio_frames(16)


def test_a_scalar_input_is_folded_into_the_graph(tmp_path):
    src = vad_like(tmp_path / "vad.onnx")
    with pytest.raises(RecipeError, match=r"needs input sr"):
        load(ModelConfig(source=str(src)), _splits(), Cache(tmp_path / "c"), 0)
    art = load(ModelConfig(source=str(src), constants={"sr": 8000}), _splits(), Cache(tmp_path / "c"), 0)
    assert [i["name"] for i in art.meta["io"]["inputs"]] == ["x"] and art.meta["constants"] == {"sr": 8000}
    x = _splits().evaluation["x"][:4]
    folded = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    full = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x, "sr": np.array(8000)})[0]
    np.testing.assert_allclose(folded, full, rtol=1e-6)
    again = load(ModelConfig(source=str(src), constants={"sr": 8000}), _splits(), Cache(tmp_path / "c"), 0)
    assert again.id == art.id and again.id != load(ModelConfig(source=str(src), constants={"sr": 16000}), _splits(),
                                                   Cache(tmp_path / "c"), 0).id


@pytest.mark.parametrize("constants, message", [
    ({"rate": 8000}, "model.constants.rate: the model has no input 'rate'; its inputs are ['sr', 'x']"),
    ({"sr": [8000, 16000]}, "model.constants.sr: the input has shape []; the value given has [2]"),
    ({"sr": "fast"}, "model.constants.sr: 'fast' is not a int64 value"),
])
def test_bad_constants_name_the_key(tmp_path, constants, message):
    src = vad_like(tmp_path / "vad.onnx")
    with pytest.raises(RecipeError) as e:
        load(ModelConfig(source=str(src), constants=constants), _splits(), Cache(tmp_path / "c"), 0)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_constants_on_a_torch_source_are_refused_at_plan_time():
    with pytest.raises(RecipeError, match=r"^model.constants: folds inputs of an ONNX model, and model.source "
                                          r"'tests.factories:tiny_cnn' gives a torch model"):
        check_source(ModelConfig(source="tests.factories:tiny_cnn", constants={"sr": 16000}))
