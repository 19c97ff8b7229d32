"""A model's default name says which model it is: a generic stem (``model.onnx``, ``hf:out/model``, a factory
called ``model``) takes the nearest module or directory above it that is not generic."""

import pytest

from optimizer.recipe.guards import default_model_name
from optimizer.sources.models import default_name, generic


@pytest.mark.parametrize("source, name", [
    ("/srv/ocr/det/model.onnx", "det"),
    ("/srv/ocr/rec/model.onnx", "rec"),  # two OCR networks no longer share the Triton model name 'model'
    ("hf:/srv/whisper-tiny/onnx/model", "whisper-tiny"),
    ("/srv/vad/v2/model.pt2", "vad"),
    ("pkg.detector:model", "detector"),
    ("/srv/resnet50.onnx", "resnet50"),
    ("tests.factories:tiny_cnn", "tiny_cnn"),
    ("builtin", "digits_resnet"),
])
def test_generic_stems_take_the_nearest_telling_name(source, name):
    assert default_name(source) == name


def test_what_is_generic():
    assert generic("model") and generic("ONNX") and generic("v3") and generic("1") and generic("")
    assert not generic("silero_vad") and not generic("model_v2")


def test_the_name_is_made_safe_for_a_path():
    assert default_model_name("/srv/my models/model v2/model.onnx") == "model_v2"
    assert default_model_name("/srv/my models/v2/model.onnx") == "my_models"
