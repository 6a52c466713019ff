"""A KServe Python ModelServer serving one ONNX file with onnxruntime, for comparison.

Usage: python benchmarks/kserve_onnx_server.py MODEL.onnx NAME PORT
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):  # type: ignore[misc]
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        self.path = path
        self.session: ort.InferenceSession | None = None
        self.load()

    def load(self) -> bool:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, options, providers=["CPUExecutionProvider"])
        self.ready = True
        return True

    def predict(
        self, payload: InferRequest, headers: Any = None, response_headers: Any = None
    ) -> InferResponse:
        assert self.session is not None
        feeds = {i.name: i.as_numpy() for i in payload.inputs}
        names = [o.name for o in self.session.get_outputs()]
        outputs = []
        for name, value in zip(names, self.session.run(None, feeds), strict=True):
            out = InferOutput(
                name=name,
                shape=list(value.shape),
                datatype="FP32" if value.dtype.kind == "f" else "INT64",
            )
            out.set_data_from_numpy(value, binary_data=False)
            outputs.append(out)
        return InferResponse(
            model_name=self.name, infer_outputs=outputs, response_id=payload.id or str(uuid.uuid4())
        )


if __name__ == "__main__":
    path, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ModelServer(http_port=port, grpc_port=0, workers=1, enable_grpc=False).start(
        [OnnxModel(name, path)]
    )
