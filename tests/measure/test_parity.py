"""Parity that cannot be fooled: relative L2 error per output and per slice of its second axis beside cosine,
cosine only where a sample holds enough values, top-k agreement for logits, and the default constraints
catching what cosine alone let through."""

import numpy as np
import pytest

from optimizer.config import ConstraintsConfig
from optimizer.decide.select import violations
from optimizer.evaluate import metrics, output_parity
from optimizer.records import VariantRecord

RNG = np.random.default_rng(0)


def _verdict(outputs, reference, name):
    ev = metrics("embedding", outputs, None, name, reference)
    v = VariantRecord.from_dict({"name": "quantize", "status": "ok", "evaluation": {**ev, "score_drop": 0.0}})
    return ev, violations(v, ConstraintsConfig())


def test_a_one_wide_output_that_keeps_its_sign_but_not_its_size_fails():
    ref = RNG.normal(0, 4, (256, 1)).astype(np.float32)  # a voice-activity logit
    squashed = np.sign(ref) * np.abs(ref) ** 0.5  # every sign kept, magnitudes off by up to 7
    ev, why = _verdict({"speech": squashed}, {"speech": ref}, "speech")
    assert "mean_cosine" not in ev  # one value per sample: a cosine would be 1.0 (sign agreement)
    assert ev["max_abs_diff"] > 3 and ev["relative_error"] > 0.2 and ev["relative_error_output"] == "speech"
    assert why == [f"relative error of output 'speech' to the reference {ev['relative_error']:.4g} > 0.2 "
                   f"(worst slice of its second axis)"]


def test_a_detector_output_with_half_its_boxes_moved_fails_though_its_cosine_looks_fine():
    boxes = RNG.uniform(0, 640, (8, 4, 2100))  # cx, cy, w, h per anchor: large values
    scores = RNG.uniform(0, 0.02, (8, 18, 2100))  # class scores: small, a few confident anchors
    scores[:, 0, :50] = 0.9
    ref = np.concatenate([boxes, scores], 1).astype(np.float32)  # [batch, 22, 2100] like YOLO heads
    moved = ref.copy()
    moved[:, 4, :25] = 0.01  # half the detections gone (class 0 of the scores)
    ev, why = _verdict({"output0": moved}, {"output0": ref}, "output0")
    assert ev["mean_cosine"] > 0.998  # what fooled the cosine gate (0.99)
    assert ev["parity_outputs"]["output0"]["worst_slice"] == 4 and ev["relative_error"] > 0.5
    assert len(why) == 1 and "output 'output0'" in why[0]


def test_a_faithful_variant_passes_and_every_output_is_reported():
    ref = {"logits": RNG.normal(0, 3, (128, 10)), "features": RNG.normal(0, 1, (128, 64))}
    close = {k: v + RNG.normal(0, 0.02, v.shape) * np.abs(v).mean() for k, v in ref.items()}
    ev, why = _verdict(close, ref, "logits")
    assert why == [] and set(ev["parity_outputs"]) == {"logits", "features"}
    assert ev["top1_agreement"] > 95 and ev["top5_agreement"] > 95 and ev["relative_error"] < 0.05


@pytest.mark.parametrize("width, cosine, topk", [(1, False, False), (2, False, False), (8, True, True),
                                                 (100, True, True)])
def test_which_figures_an_output_gets(width, cosine, topk):
    a = RNG.normal(size=(16, width))
    got = output_parity(a, a)
    assert ("mean_cosine" in got) == cosine and ("top5_agreement" in got) == topk
    assert got["relative_error"] == 0.0 and got["max_abs_diff"] == 0.0
