"""ONNX Runtime sessions take the hardware entry's (or a search trial's) session options."""

from dataclasses import replace

import pytest

from optimizer.config import ExecutionMode, GraphLevel, HardwareConfig
from optimizer.formats import with_runtime
from optimizer.formats.onnx import ort_session
from tests.helpers import tiny_onnx


def test_a_session_opens_with_the_entrys_options(tmp_path):
    import onnxruntime as ort

    path = tiny_onnx(tmp_path / "m.onnx")
    hw = replace(HardwareConfig(), intra_op_threads=1, execution_mode=ExecutionMode.parallel, inter_op_threads=2,
                 graph_optimization_level=GraphLevel.basic)
    opts = ort_session(path, hw).get_session_options()
    assert opts.execution_mode == ort.ExecutionMode.ORT_PARALLEL and opts.inter_op_num_threads == 2
    assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert opts.intra_op_num_threads == 1
    plain = ort_session(path, HardwareConfig()).get_session_options()
    assert plain.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL and plain.inter_op_num_threads == 1
    assert plain.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL


def test_a_trials_runtime_options_replace_the_entrys():
    hw = with_runtime(HardwareConfig(), {"execution_mode": "parallel", "graph_optimization_level": "disabled",
                                         "intra_op_threads": "1"})
    assert (hw.execution_mode, hw.graph_optimization_level, hw.intra_op_threads) == \
        (ExecutionMode.parallel, GraphLevel.disabled, 1)
    assert with_runtime(HardwareConfig(), {}) == HardwareConfig()
    for bad in ({"cores": 4}, {"execution_mode": "fast"}, {"inter_op_threads": 0}):
        with pytest.raises(ValueError):
            with_runtime(HardwareConfig(), bad)
