"""model.py for Triton's python backend: runs ``<version>/model.onnx`` with ONNX Runtime.

Copied by ``optimizer.tritonserver.server.stage`` when the server has no ONNX Runtime backend. It reads
the same config.pbtxt: ``intra_op_thread_count``/``inter_op_thread_count`` parameters set the
session's threads, ``execution_mode`` and ``optimization.graph.level`` as the onnxruntime backend reads them, and with ``max_batch_size > 0`` the requests the dynamic batcher hands over
in one ``execute`` call run as one ONNX Runtime batch. Not imported by the optimizer itself."""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(params.get("intra_op_thread_count") or 0)
        opts.inter_op_num_threads = int(params.get("inter_op_thread_count") or 0)
        if params.get("execution_mode") == "1":
            opts.execution_mode = ort.ExecutionMode.ORT_PARALLEL
        level = int(config.get("optimization", {}).get("graph", {}).get("level", 0))
        opts.graph_optimization_level = {-1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                         1: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                         2: ort.GraphOptimizationLevel.ORT_DISABLE_ALL}.get(
                                             level, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
        path = os.path.join(args["model_repository"], args["model_version"], "model.onnx")
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.batching = int(config.get("max_batch_size", 0)) > 0

    def _run(self, feeds):
        return self.session.run(self.outputs, feeds)

    def execute(self, requests):
        arrays = [{n: pb_utils.get_input_tensor_by_name(r, n).as_numpy() for n in self.inputs} for r in requests]
        if not self.batching or len(requests) == 1:
            results = [self._run(a) for a in arrays]
        else:  # one ONNX Runtime call for the whole dynamic batch, split back per request
            outs = self._run({n: np.concatenate([a[n] for a in arrays]) for n in self.inputs})
            bounds = np.cumsum([0] + [a[self.inputs[0]].shape[0] for a in arrays])
            results = [[o[bounds[i]:bounds[i + 1]] for o in outs] for i in range(len(arrays))]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(n, np.ascontiguousarray(o))
                                                           for n, o in zip(self.outputs, res)])
                for res in results]
