"""Encode and decode V2 inference requests and responses (JSON and binary-tensor bodies).

The four entry points take and return whole HTTP bodies. ``header_length`` is the value
of the ``Inference-Header-Content-Length`` header (None for a pure JSON body); encoders
return it alongside the body so the caller can set that header.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from tierwise.errors import ProtocolError
from tierwise.protocol.limits import DEFAULT_LIMITS, CodecLimits
from tierwise.protocol.messages import InferRequest, InferResponse, RequestedOutput
from tierwise.protocol.wire import (
    decode_tensors,
    dumps,
    dumps_numeric_json,
    encode_tensors,
    get_optional_str,
    get_parameters,
    load_document,
    selector,
)

__all__ = [
    "HEADER_LENGTH_HEADER",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "parse_header_length",
]

#: The HTTP header that carries the JSON header's length in binary-tensor bodies.
HEADER_LENGTH_HEADER: Final = "Inference-Header-Content-Length"

Body = bytes | bytearray | memoryview


def parse_header_length(value: str | bytes | None) -> int | None:
    """The ``Inference-Header-Content-Length`` header value as an int (None when absent)."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    if not (text.isascii() and text.isdigit()):
        raise ProtocolError(
            f"{HEADER_LENGTH_HEADER} must be a non-negative integer, got {text!r:.40}"
        )
    return int(text)


def _requested_outputs(raw: Any, limits: CodecLimits) -> list[RequestedOutput] | None:
    if raw is None:
        return None
    if type(raw) is not list:
        raise ProtocolError("'outputs' must be a list")
    if len(raw) > limits.max_tensors:
        raise ProtocolError(f"{len(raw)} requested outputs, over the limit of {limits.max_tensors}")
    result: list[RequestedOutput] = []
    seen: set[str] = set()
    for index, entry in enumerate(raw):
        if type(entry) is not dict:
            raise ProtocolError(f"requested output #{index} must be an object")
        name = entry.get("name")
        if type(name) is not str or not name:
            raise ProtocolError(f"requested output #{index} has no 'name' (a non-empty string)")
        if name in seen:
            raise ProtocolError("duplicate requested output", tensor=name)
        seen.add(name)
        params = get_parameters(entry, name)
        binary = entry.get("binary_data", False)
        if "binary_data" in params:
            params = dict(params)
            binary = params.pop("binary_data")
        if type(binary) is not bool:
            raise ProtocolError(f"binary_data must be true or false, got {binary!r}", tensor=name)
        result.append(RequestedOutput(name, binary, params))
    return result


def decode_request(
    body: Body, *, header_length: int | None = None, limits: CodecLimits = DEFAULT_LIMITS
) -> InferRequest:
    """Parse a V2 request body; raises ProtocolError (or PayloadTooLargeError) on any fault.

    Numeric tensors sent in binary are zero-copy views of ``body``.
    """
    doc, section = load_document(body, header_length, limits)
    inputs, input_parameters = decode_tensors(doc.get("inputs"), "input", section, limits)
    if len(doc) == 1:  # only "inputs": the usual request has nothing else to read
        return InferRequest(inputs, input_parameters=input_parameters)
    return InferRequest(
        inputs=inputs,
        id=get_optional_str(doc, "id"),
        parameters=get_parameters(doc),
        outputs=_requested_outputs(doc.get("outputs"), limits),
        input_parameters=input_parameters,
    )


def _pure_json(binary: bool | Collection[str]) -> bool:
    """True when a ``binary`` argument asks for no binary tensors at all."""
    return binary is False or (type(binary) in (frozenset, set, list, tuple) and not binary)


def encode_request(
    request: InferRequest, *, binary: bool | Collection[str] = False
) -> tuple[bytes, int | None]:
    """The body of ``request`` and its header length (None when pure JSON).

    ``binary`` sends all inputs (True) or the named ones in the binary-tensor extension.
    """
    doc: dict[str, Any] = {}
    if request.id is not None:
        doc["id"] = request.id
    if request.parameters:
        doc["parameters"] = request.parameters
    doc["inputs"] = None  # filled below; keeps the field order
    if request.outputs is not None:
        doc["outputs"] = [output.to_dict() for output in request.outputs]
    if _pure_json(binary) and not request.input_parameters:
        body = dumps_numeric_json(doc, "inputs", request.inputs)
        if body is not None:
            return body, None
    entries, chunks = encode_tensors(
        request.inputs, request.input_parameters, selector(binary, "binary")
    )
    doc["inputs"] = entries
    return dumps(doc, chunks, len(chunks) > 0)


def decode_response(
    body: Body, *, header_length: int | None = None, limits: CodecLimits = DEFAULT_LIMITS
) -> InferResponse:
    """Parse a V2 response body; raises ProtocolError (or PayloadTooLargeError) on any fault."""
    doc, section = load_document(body, header_length, limits)
    model_name = doc.get("model_name")
    if type(model_name) is not str:
        raise ProtocolError("missing 'model_name' (a string)")
    outputs, output_parameters = decode_tensors(doc.get("outputs"), "output", section, limits)
    return InferResponse(
        model_name=model_name,
        outputs=outputs,
        model_version=get_optional_str(doc, "model_version"),
        id=get_optional_str(doc, "id"),
        parameters=get_parameters(doc),
        output_parameters=output_parameters,
    )


def encode_response(
    response: InferResponse, *, binary_outputs: bool | Collection[str] = False
) -> tuple[bytes, int | None]:
    """The body of ``response`` and its header length (None when pure JSON).

    ``binary_outputs`` is typically ``binary_outputs_requested(request)``.
    """
    doc: dict[str, Any] = {"model_name": response.model_name}
    if response.model_version is not None:
        doc["model_version"] = response.model_version
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    if _pure_json(binary_outputs) and not response.output_parameters:
        body = dumps_numeric_json(doc, "outputs", response.outputs)
        if body is not None:
            return body, None
    entries, chunks = encode_tensors(
        response.outputs, response.output_parameters, selector(binary_outputs, "binary_outputs")
    )
    doc["outputs"] = entries
    return dumps(doc, chunks, len(chunks) > 0)
