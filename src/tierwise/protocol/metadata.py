"""V2 metadata documents: server (``GET /v2``), model (``GET /v2/models/{name}``), tensors.

Slotted dataclasses with ``to_dict``/``from_dict``; ``from_dict`` validates strictly and
raises :class:`~tierwise.errors.ProtocolError` so a client can trust what it parsed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tierwise.errors import ProtocolError
from tierwise.protocol.datatypes import DATATYPES

__all__ = ["ModelMetadata", "ServerMetadata", "TensorMetadata"]


def _str(doc: dict[str, Any], key: str, where: str, *, tensor: str | None = None) -> str:
    value = doc.get(key)
    if type(value) is not str:
        raise ProtocolError(f"{where}: missing '{key}' (a string)", tensor=tensor)
    return value


def _str_list(doc: dict[str, Any], key: str, where: str) -> list[str]:
    value = doc.get(key, [])
    if type(value) is not list or not all(type(v) is str for v in value):
        raise ProtocolError(f"{where}: '{key}' must be a list of strings")
    return list(value)


def _object(doc: Any, where: str) -> dict[str, Any]:
    if type(doc) is not dict:
        raise ProtocolError(f"{where} must be a JSON object")
    return doc


@dataclass(slots=True)
class TensorMetadata:
    """A model input or output: ``shape`` uses -1 for a dynamic dimension."""

    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.datatype not in DATATYPES:
            raise ProtocolError(
                f"unknown datatype {self.datatype!r}; expected one of {', '.join(DATATYPES)}",
                tensor=self.name,
            )
        if type(self.shape) is not list or any(type(d) is not int or d < -1 for d in self.shape):
            raise ProtocolError(
                f"shape {self.shape!r} must hold integers >= 0, or -1 for dynamic",
                tensor=self.name,
            )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "datatype": self.datatype, "shape": self.shape}
        if self.parameters:
            out["parameters"] = self.parameters
        return out

    @classmethod
    def from_dict(cls, doc: Any) -> TensorMetadata:
        doc = _object(doc, "tensor metadata")
        name = _str(doc, "name", "tensor metadata")
        params = doc.get("parameters", {})
        if type(params) is not dict:
            raise ProtocolError("'parameters' must be an object", tensor=name)
        return cls(
            name=name,
            datatype=_str(doc, "datatype", "tensor metadata", tensor=name),
            shape=doc.get("shape"),  # checked in __post_init__
            parameters=params,
        )


def _tensors(doc: dict[str, Any], key: str) -> list[TensorMetadata]:
    value = doc.get(key, [])
    if type(value) is not list:
        raise ProtocolError(f"model metadata: '{key}' must be a list")
    return [TensorMetadata.from_dict(item) for item in value]


@dataclass(slots=True)
class ModelMetadata:
    """What ``GET /v2/models/{name}[/versions/{v}]`` answers."""

    name: str
    platform: str
    versions: list[str] = field(default_factory=list)
    inputs: list[TensorMetadata] = field(default_factory=list)
    outputs: list[TensorMetadata] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "versions": self.versions,
            "platform": self.platform,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }
        if self.parameters:
            out["parameters"] = self.parameters
        return out

    @classmethod
    def from_dict(cls, doc: Any) -> ModelMetadata:
        doc = _object(doc, "model metadata")
        params = doc.get("parameters", {})
        if type(params) is not dict:
            raise ProtocolError("model metadata: 'parameters' must be an object")
        return cls(
            name=_str(doc, "name", "model metadata"),
            platform=_str(doc, "platform", "model metadata"),
            versions=_str_list(doc, "versions", "model metadata"),
            inputs=_tensors(doc, "inputs"),
            outputs=_tensors(doc, "outputs"),
            parameters=params,
        )


@dataclass(slots=True)
class ServerMetadata:
    """What ``GET /v2`` answers."""

    name: str
    version: str
    extensions: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "extensions": self.extensions}

    @classmethod
    def from_dict(cls, doc: Any) -> ServerMetadata:
        doc = _object(doc, "server metadata")
        return cls(
            name=_str(doc, "name", "server metadata"),
            version=_str(doc, "version", "server metadata"),
            extensions=_str_list(doc, "extensions", "server metadata"),
        )
