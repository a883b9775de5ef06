"""Fields of serialised ONNX protobuf messages, read without the ``onnx`` package (which the runtime does not
install): the opset a model imports (``hub.onnx_opset``) and the initializers of its graph
(``models.quantised_from``).

Messages are memoryviews over a mapped file, so the bytes of a tensor are never copied. A message that ends
inside a field, or is not protobuf, raises ``ValueError``; its callers decide what an unreadable file means.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path
from typing import TypeAlias

Value: TypeAlias = memoryview | int
"""A field's value: the number of a varint, the bytes of a length-delimited or fixed-width field."""
Tensor: TypeAlias = tuple[tuple[int, Value], ...]
"""A TensorProto's fields in file order (type, shape, data and the rest), less its name and data location."""

# Field numbers of onnx.proto.
_MODEL_GRAPH, _MODEL_OPSET_IMPORT = 7, 8  # ModelProto
_OPSET_DOMAIN, _OPSET_VERSION = 1, 2  # OperatorSetIdProto
_GRAPH_INITIALIZER = 5  # GraphProto
_TENSOR_NAME, _TENSOR_DATA_LOCATION = 8, 14  # TensorProto
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_DEFAULT_DOMAINS = (b"", b"ai.onnx")


def mapped(path: Path) -> memoryview:
    """The bytes of the file at ``path``, mapped read-only (``ValueError`` if it is empty). The map is closed
    when the last view of it goes rather than by ``mmap.close``, which a view kept alive by an exception's
    traceback would turn into a ``BufferError``."""
    with path.open("rb") as handle:
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def default_opset(model: memoryview) -> int:
    """The version of the default-domain opset a ModelProto imports; 0 if it imports none. The graph field
    before ``opset_import`` is skipped by its length, not read."""
    for entry in submessages(model, _MODEL_OPSET_IMPORT):
        facts = dict(fields(entry))
        domain, version = facts.get(_OPSET_DOMAIN, b""), facts.get(_OPSET_VERSION)
        if not isinstance(domain, int) and bytes(domain) in _DEFAULT_DOMAINS and isinstance(version, int):
            return version
    return 0


def initializers(model: memoryview) -> dict[str, Tensor]:
    """The initializers of a ModelProto's graph by name. ``ValueError`` if one keeps its data in another file,
    which is not read. The data location is left out of a ``Tensor`` because some tools write its default
    and others leave it out."""
    out = {}
    for graph in submessages(model, _MODEL_GRAPH):
        for tensor in submessages(graph, _GRAPH_INITIALIZER):
            name, kept = "", []
            for number, value in fields(tensor):
                if number == _TENSOR_NAME and isinstance(value, memoryview):
                    name = bytes(value).decode("utf-8", "replace")
                elif number == _TENSOR_DATA_LOCATION:
                    if value == _EXTERNAL:
                        raise ValueError(f"initializer {name or '(unnamed)'} keeps its data in another file")
                else:
                    kept.append((number, value))
            out[name] = tuple(kept)
    return out


def submessages(message: memoryview, number: int) -> Iterator[memoryview]:
    """The bytes of each field ``number`` of ``message`` (a single or repeated message field)."""
    return (value for found, value in fields(message) if found == number and isinstance(value, memoryview))


def fields(message: memoryview) -> Iterator[tuple[int, Value]]:
    """(field number, value) of each top-level field of a serialised protobuf message."""
    at = 0
    while at < len(message):
        key, at = _varint(message, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(message, at)
            yield number, value
            continue
        if wire == 2:
            size, at = _varint(message, at)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
        else:  # 3 and 4 (groups) are not in onnx.proto; 6 and 7 are not protobuf
            raise ValueError(f"protobuf wire type {wire} at byte {at}")
        if at + size > len(message):
            raise ValueError("truncated protobuf field")
        yield number, message[at : at + size]
        at += size


def _varint(message: memoryview, at: int) -> tuple[int, int]:
    """The varint at ``at`` and the position after it."""
    value = shift = 0
    while at < len(message):
        byte = message[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if byte < 0x80:
            return value, at
        shift += 7
    raise ValueError("truncated protobuf varint")
