"""Each pass on its own: export parity, fusion op counts, the three quantization modes."""

import numpy as np
import onnxruntime as ort
import pytest

from optimizer.config import HardwareConfig
from optimizer.errors import ParityError
from optimizer.passes.fuse import FuseConfig, fuse
from optimizer.passes.onnx_export import ExportConfig, onnx_export, verify
from optimizer.passes.quantize import IntType, Mode, QuantizeConfig, quantize
from optimizer.registry import PASSES, Context, load_passes


@pytest.fixture(scope="module")
def exported(builtin, splits, tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    return onnx_export(builtin, ExportConfig(), Context(d, "export", splits, HardwareConfig()))


def _ctx(tmp_path, splits, step="q"):
    return Context(tmp_path, step, splits, HardwareConfig())


def test_registry_finds_every_pass():
    load_passes()
    assert {"onnx_export", "fuse", "quantize"} <= set(PASSES)
    assert (PASSES["quantize"].takes, PASSES["quantize"].makes) == ("onnx", "onnx")


def test_export_has_dynamic_batch_and_matches_torch(exported, splits):
    sess = ort.InferenceSession(str(exported.path), providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    assert isinstance(inp.shape[0], str) and inp.shape[1:] == [1, 32, 32]
    for n in (1, 5, 37):
        assert sess.run(None, {inp.name: splits.evaluation["input"][:n]})[0].shape == (n, 10)
    assert exported.meta["export_max_abs_diff"] < 1e-4 and exported.format == "onnx"


def test_verify_names_output_and_difference():
    ref = np.zeros((4, 3), np.float32)
    bad = ref.copy()
    bad[2, 1] = 0.5
    with pytest.raises(ParityError, match=r"step 'export': output 'logits' differs from torch by up to 0.5"):
        verify(ref, bad, "logits", "export", atol=1e-4, rtol=1e-3)
    assert verify(ref, ref + 1e-6, "logits", "export", atol=1e-4, rtol=1e-3) == pytest.approx(1e-6)


def test_fuse_records_op_counts(exported, splits, tmp_path):
    art = fuse(exported, FuseConfig(), _ctx(tmp_path, splits, "fuse"))
    assert art.meta["nodes_after"] <= art.meta["nodes_before"]
    assert art.meta["op_counts"]["Conv"] == 9 and "BatchNormalization" not in art.meta["op_counts"]


def _accuracy(art, splits):
    sess = ort.InferenceSession(str(art.path), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {sess.get_inputs()[0].name: splits.evaluation["input"]})[0]
    return (logits.argmax(1) == splits.evaluation_labels).mean() * 100


def test_static_int8_uint8_activations(exported, splits, tmp_path):
    art = quantize(exported, QuantizeConfig(calibration_samples=64), _ctx(tmp_path, splits))
    assert art.meta["activation_type"] == "uint8" and art.meta["calibration_samples"] == 64
    assert art.meta["op_counts"]["QuantizeLinear"] >= 10
    assert _accuracy(art, splits) >= 97.0


def test_int8_activations_on_request(exported, splits, tmp_path):
    art = quantize(exported, QuantizeConfig(calibration_samples=32, activation_type=IntType.int8), _ctx(tmp_path, splits))
    assert art.meta["activation_type"] == "int8"


def test_dynamic_keeps_conv_in_float(exported, splits, tmp_path):
    art = quantize(exported, QuantizeConfig(mode=Mode.dynamic), _ctx(tmp_path, splits))
    ops = art.meta["op_counts"]
    assert "ConvInteger" not in ops and ops["Conv"] == 9 and art.meta["precision"] == "int8-dynamic"
    assert _accuracy(art, splits) >= 97.0


def test_fp16_halves_the_file(exported, splits, tmp_path):
    art = quantize(exported, QuantizeConfig(mode=Mode.fp16), _ctx(tmp_path, splits))
    assert art.path.stat().st_size < 0.6 * exported.path.stat().st_size
    assert _accuracy(art, splits) >= 97.0
