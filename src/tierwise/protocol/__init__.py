"""Open Inference Protocol (V2) wire types and the numpy codec (JSON and binary tensors).

The only place in tierwise that parses the wire format; the server, the client and the
router all go through :func:`decode_request` / :func:`encode_response` and friends.
"""

from __future__ import annotations

from tierwise.protocol.codec import (
    HEADER_LENGTH_HEADER,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    parse_header_length,
)
from tierwise.protocol.datatypes import DATATYPES, datatype_of, dtype_of, element_size_bytes
from tierwise.protocol.limits import DEFAULT_LIMITS, CodecLimits
from tierwise.protocol.messages import (
    InferRequest,
    InferResponse,
    RequestedOutput,
    binary_outputs_requested,
)
from tierwise.protocol.metadata import ModelMetadata, ServerMetadata, TensorMetadata
from tierwise.protocol.parameters import (
    MAX_TIMEOUT_US,
    TIMEOUT_PARAMETER,
    timeout_parameter_us,
    timeout_us_of,
)

__all__ = [
    "DATATYPES",
    "DEFAULT_LIMITS",
    "HEADER_LENGTH_HEADER",
    "MAX_TIMEOUT_US",
    "TIMEOUT_PARAMETER",
    "CodecLimits",
    "InferRequest",
    "InferResponse",
    "ModelMetadata",
    "RequestedOutput",
    "ServerMetadata",
    "TensorMetadata",
    "binary_outputs_requested",
    "datatype_of",
    "decode_request",
    "decode_response",
    "dtype_of",
    "element_size_bytes",
    "encode_request",
    "encode_response",
    "parse_header_length",
    "timeout_parameter_us",
    "timeout_us_of",
]
