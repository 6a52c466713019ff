"""V2 datatype names and their numpy equivalents."""

from __future__ import annotations

from typing import Final

import numpy as np

from tierwise.errors import ProtocolError

__all__ = ["DATATYPES", "NUMERIC_DATATYPES", "datatype_of", "dtype_of", "element_size_bytes"]

#: Every Open Inference Protocol datatype and the numpy dtype that holds it.
#: BYTES tensors are numpy object arrays of ``bytes``.
DATATYPES: Final[dict[str, np.dtype[np.generic]]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(np.object_),
}

#: The V2 name of each native-byte-order numeric (and bool) numpy dtype.
NUMERIC_DATATYPES: Final[dict[np.dtype[np.generic], str]] = {
    dt: name for name, dt in DATATYPES.items() if name != "BYTES"
}
_BY_DTYPE = NUMERIC_DATATYPES


def dtype_of(datatype: str, *, tensor: str | None = None) -> np.dtype[np.generic]:
    """The numpy dtype for a V2 datatype name; ProtocolError names the tensor when unknown."""
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        raise ProtocolError(
            f"unknown datatype {datatype!r}; expected one of {', '.join(DATATYPES)}",
            tensor=tensor,
        ) from None


def datatype_of(array: np.ndarray, *, tensor: str | None = None) -> str:
    """The V2 datatype name for a numpy array (object, str and bytes arrays are BYTES)."""
    kind = array.dtype.kind
    if kind in ("O", "S", "U"):
        return "BYTES"
    dtype = array.dtype.newbyteorder("=") if array.dtype.byteorder == ">" else array.dtype
    name = _BY_DTYPE.get(dtype)
    if name is None:
        raise ProtocolError(f"numpy dtype {array.dtype} has no V2 datatype", tensor=tensor)
    return name


def element_size_bytes(datatype: str) -> int:
    """Bytes per element in the binary encoding (BYTES elements are variable: 0 here)."""
    if datatype == "BYTES":
        return 0
    return int(dtype_of(datatype).itemsize)
