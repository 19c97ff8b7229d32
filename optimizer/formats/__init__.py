"""``load(artifact, hardware)``: a callable session over numpy arrays for every format."""

from typing import Callable

import numpy as np

from optimizer.artifact import Artifact
from optimizer.config import Device, HardwareConfig


def threads(hw: HardwareConfig) -> int:
    return hw.intra_op_threads or hw.cores


class Session:
    """``session(x) -> logits``; ``close()`` frees the runtime's thread pool and memory."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], name: str, close: Callable[[], None] = lambda: None):
        self.run, self.name, self._close = run, name, close

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)

    def close(self) -> None:
        self._close()


def ort_session(path, hw: HardwareConfig):
    """An ONNX Runtime InferenceSession configured from the hardware entry."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads(hw)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    providers = ["CPUExecutionProvider"]
    if hw.device == Device.cuda:
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers)


def _onnx(art: Artifact, hw: HardwareConfig) -> Session:
    sess = ort_session(art.path, hw)
    name = sess.get_inputs()[0].name
    return Session(lambda x: sess.run(None, {name: x})[0], "onnxruntime")


def _torch(art: Artifact, hw: HardwareConfig) -> Session:
    import torch

    from optimizer.sources.models import load_module

    torch.set_num_threads(threads(hw))
    device = "cuda" if hw.device == Device.cuda else "cpu"
    module = load_module(art).to(device)

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return Session(run, "torch")


LOADERS = {"onnx": _onnx, "torch": _torch}


def load(art: Artifact, hw: HardwareConfig) -> Session:
    """A session that runs ``art`` on the hardware's device."""
    return LOADERS[art.format](art, hw)
