"""Labels the model cannot produce are refused before any work, instead of scoring a meaningless accuracy."""

import numpy as np
import pytest

from optimizer.errors import RecipeError
from optimizer.io import IOSpec, TensorSpec
from optimizer.evaluate import check_labels

TWO_CLASSES = IOSpec((TensorSpec("input_ids", "int64", ("batch", "sequence")),),
                     (TensorSpec("logits", "float32", ("batch", 2)),))


def test_labels_beyond_the_models_classes(tmp_path):
    with pytest.raises(RecipeError, match=r"data: label 2 is not a class the model can produce \(output 'logits' "
                                          r"has 2 classes: 0..1\)"):
        check_labels("classification", TWO_CLASSES, "logits", np.arange(5) % 5, {})
    with pytest.raises(RecipeError, match="label -1 is not a class"):
        check_labels("classification", TWO_CLASSES, "logits", np.array([0, -1, 1]), {})


def test_an_embedding_model_is_not_scored_against_labels():
    io = IOSpec(TWO_CLASSES.inputs, (TensorSpec("embeddings", "float32", ("batch", 32)),))
    with pytest.raises(RecipeError, match="the model gives embeddings .* set evaluation.task=embedding"):
        check_labels("classification", io, "embeddings", np.array([0, 1]), {"hf_task": "feature_extraction"})


def test_labels_the_model_can_produce_pass():
    check_labels("classification", TWO_CLASSES, "logits", np.array([0, 1, 1, 0]),
                 {"hf_task": "sequence_classification"})
    check_labels("embedding", TWO_CLASSES, "logits", None, {})
    check_labels("classification", TWO_CLASSES, "logits", np.array(["a", "b"]), {})  # names: mapped elsewhere
