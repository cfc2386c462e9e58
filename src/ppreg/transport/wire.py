"""The one wire format: length-prefixed, versioned frames of JSON header + raw arrays.

Frame layout (all integers big-endian, array bytes little-endian; see docs/transport.md)::

    u64 body length L | b"PPRG" | u16 wire version | u32 header length H |
    H bytes of UTF-8 JSON header | array bytes packed back to back

``L`` counts every byte after the 8-byte prefix, so a whole frame is ``8 + L`` bytes.
The header is ``{"kind": str, "meta": {...}, "arrays": [{"name", "dtype", "shape",
"offset", "nbytes"}, ...]}``; ``offset`` is relative to the first array byte.

Nothing here ever unpickles: arrays are rebuilt from a whitelisted dtype name, a shape
and raw bytes, so a hostile peer can at worst make :func:`decode` raise
:class:`~ppreg.errors.ProtocolError`.
"""

from __future__ import annotations

import json
import math
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ppreg.errors import ProtocolError

WIRE_VERSION: int = 1
MAGIC = b"PPRG"
# Frames up to 4 GiB: a whole pyramid level of a large 3D volume as uint64 shares fits,
# while a corrupted or hostile length prefix cannot make a reader allocate more.
MAX_FRAME_BYTES: int = 2**32

PREFIX = struct.Struct(">Q")
FIXED_HEAD = struct.Struct(">4sHI")  # magic, wire version, header length
PREFIX_BYTES = PREFIX.size
MIN_BODY_BYTES = FIXED_HEAD.size

ALLOWED_DTYPES = frozenset(
    {
        "bool",
        "uint8",
        "int8",
        "uint16",
        "int16",
        "uint32",
        "int32",
        "uint64",
        "int64",
        "float32",
        "float64",
    }
)
# numpy refuses arrays with more dimensions than this on some versions; refusing early
# keeps a hostile shape from turning into a numpy ValueError.
MAX_NDIM = 32
# Kinds and array names travel in error messages and logs, so keep them plain tokens.
TOKEN = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
ARRAY_KEYS = frozenset({"name", "dtype", "shape", "offset", "nbytes"})
HEADER_KEYS = frozenset({"kind", "meta", "arrays"})


@dataclass(frozen=True, eq=False)
class Message:
    """One message between two parties.

    Parameters
    ----------
    kind : str
        Message type, a token of letters, digits, ``_``, ``.`` or ``-`` (e.g. ``"hello"``,
        ``"level"``, ``"product"``, ``"error"``, ``"bye"``).
    meta : dict
        JSON-able values only: str, int, finite float, bool, None, lists and dicts with
        str keys. Tuples come back as lists.
    arrays : dict of str to ndarray
        Numeric arrays of an allowed dtype (see :data:`ALLOWED_DTYPES`), any shape,
        including 0-d and empty.

    Notes
    -----
    ``eq=False``: messages hold arrays, whose ``==`` is element-wise, so field-wise
    equality would raise; compare fields explicitly instead.
    Arrays returned by :func:`decode` are writable, C-contiguous, native-endian copies
    that share no memory with the frame.
    """

    kind: str
    meta: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def encode(message: Message) -> bytes:
    """Serialise a message into one complete frame, length prefix included.

    Parameters
    ----------
    message : Message
        The message to send.

    Returns
    -------
    bytes
        The frame, ready for :meth:`Link.send_frame`.

    Raises
    ------
    TypeError
        If the kind, meta or an array is of a type the wire cannot carry (a local bug).
    ValueError
        If the kind or an array name is not a plain token, or meta holds NaN/inf.
    ProtocolError
        If the frame would exceed :data:`MAX_FRAME_BYTES`.
    """
    _check_token(message.kind, "message kind")
    if not isinstance(message.meta, dict):
        raise TypeError(f"meta must be a dict, not {type(message.meta).__name__}")
    entries, chunks = _pack_arrays(message.arrays)
    header = {"kind": message.kind, "meta": _jsonable(message.meta, "meta"), "arrays": entries}
    header_bytes = json.dumps(header, allow_nan=False, separators=(",", ":")).encode("utf-8")
    body_len = FIXED_HEAD.size + len(header_bytes) + sum(len(chunk) for chunk in chunks)
    if PREFIX_BYTES + body_len > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"message {message.kind!r} needs {PREFIX_BYTES + body_len} bytes, "
            f"above the frame limit of {MAX_FRAME_BYTES}"
        )
    head = PREFIX.pack(body_len) + FIXED_HEAD.pack(MAGIC, WIRE_VERSION, len(header_bytes))
    return b"".join([head, header_bytes, *chunks])


def decode(frame: bytes) -> Message:
    """Parse one frame produced by :func:`encode` (length prefix included).

    Parameters
    ----------
    frame : bytes-like
        Exactly one frame.

    Returns
    -------
    Message
        With writable, independent array copies.

    Raises
    ------
    ProtocolError
        On any malformation: wrong length, bad magic, other wire version, bad header
        JSON, non-finite header numbers, unknown dtype, shape/size mismatch, arrays not
        packed exactly into the payload. Nothing else is raised.
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"a frame must be bytes, not {type(frame).__name__}")
    try:
        view = memoryview(frame).cast("B")
    except TypeError:
        raise ProtocolError("a frame must be a contiguous byte buffer") from None
    header_len = _check_fixed_part(view)
    header_start = PREFIX_BYTES + FIXED_HEAD.size
    header = _parse_header(view[header_start : header_start + header_len])
    payload = view[header_start + header_len :]
    arrays = _unpack_arrays(header["arrays"], payload)
    return Message(kind=header["kind"], meta=header["meta"], arrays=arrays)


def body_length(prefix: bytes) -> int:
    """Read the body length from an 8-byte prefix and refuse impossible sizes.

    Parameters
    ----------
    prefix : bytes
        The first 8 bytes of a frame.

    Returns
    -------
    int
        Number of bytes that follow the prefix.

    Raises
    ------
    ProtocolError
        If the announced frame is shorter than the fixed part or above
        :data:`MAX_FRAME_BYTES`.
    """
    (length,) = PREFIX.unpack(prefix)
    if length < MIN_BODY_BYTES:
        raise ProtocolError(f"frame announces {length} body bytes, fewer than the {MIN_BODY_BYTES} of its fixed part")
    if PREFIX_BYTES + length > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"frame announces {PREFIX_BYTES + length} bytes, above the limit of {MAX_FRAME_BYTES}"
        )
    return length


def _check_token(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not TOKEN.fullmatch(value):
        raise ValueError(f"{what} {value!r} must be 1-128 letters, digits, '_', '.' or '-'")


def _jsonable(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON types, refusing what would not round-trip."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise ValueError(f"{where} is {value}; only finite numbers may go in meta")
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict):
        return {_meta_key(key, where): _jsonable(item, f"{where}[{key!r}]") for key, item in value.items()}
    raise TypeError(f"{where} has type {type(value).__name__}; meta takes JSON values only (arrays go in arrays)")


def _meta_key(key: Any, where: str) -> str:
    # json.dumps would silently turn 1 into "1"; refusing keeps meta round-trips exact.
    if not isinstance(key, str):
        raise TypeError(f"{where} has key {key!r}; meta dict keys must be str")
    return key


def _pack_arrays(arrays: Any) -> tuple[list[dict], list[bytes]]:
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays must be a dict, not {type(arrays).__name__}")
    entries: list[dict] = []
    chunks: list[bytes] = []
    offset = 0
    for name, array in arrays.items():
        _check_token(name, "array name")
        data, dtype_name = _array_bytes(name, array)
        entries.append(
            {"name": name, "dtype": dtype_name, "shape": list(np.shape(array)), "offset": offset, "nbytes": len(data)}
        )
        chunks.append(data)
        offset += len(data)
    return entries, chunks


def _array_bytes(name: str, array: Any) -> tuple[bytes, str]:
    if not isinstance(array, (np.ndarray, np.generic)):
        raise TypeError(f"array {name!r} is a {type(array).__name__}; send numpy arrays so the dtype is explicit")
    dtype = np.asarray(array).dtype
    if dtype.fields is not None or dtype.name not in ALLOWED_DTYPES:
        raise TypeError(f"array {name!r} has dtype {dtype}; allowed: {', '.join(sorted(ALLOWED_DTYPES))}")
    little = np.asarray(array).astype(dtype.newbyteorder("<"), copy=False)
    return little.tobytes(order="C"), dtype.name


def _check_fixed_part(view: memoryview) -> int:
    """Validate prefix, magic and version; return the header length."""
    if len(view) < PREFIX_BYTES + MIN_BODY_BYTES:
        raise ProtocolError(f"truncated frame: {len(view)} bytes, need at least {PREFIX_BYTES + MIN_BODY_BYTES}")
    length = body_length(view[:PREFIX_BYTES])
    if length != len(view) - PREFIX_BYTES:
        raise ProtocolError(f"frame announces {length} body bytes but carries {len(view) - PREFIX_BYTES}")
    magic, version, header_len = FIXED_HEAD.unpack(view[PREFIX_BYTES : PREFIX_BYTES + FIXED_HEAD.size])
    if magic != MAGIC:
        raise ProtocolError(f"not a ppreg frame (magic {bytes(magic)!r}, expected {MAGIC!r})")
    if version != WIRE_VERSION:
        raise ProtocolError(
            f"wire version mismatch: peer sent version {version}, this ppreg speaks version {WIRE_VERSION}"
        )
    if header_len > length - FIXED_HEAD.size:
        raise ProtocolError(f"header length {header_len} exceeds the {length - FIXED_HEAD.size} bytes left in the frame")
    return header_len


def _parse_header(raw: memoryview) -> dict:
    try:
        header = json.loads(
            bytes(raw).decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except ProtocolError:
        raise
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and over-long integer literals;
        # RecursionError a hostile nesting depth.
        raise ProtocolError(f"unreadable frame header: {exc}") from None
    if not isinstance(header, dict) or set(header) != HEADER_KEYS:
        raise ProtocolError(f"frame header must be an object with exactly the keys {sorted(HEADER_KEYS)}")
    if not isinstance(header["kind"], str) or not TOKEN.fullmatch(header["kind"]):
        raise ProtocolError(f"bad message kind {header['kind']!r} in frame header")
    if not isinstance(header["meta"], dict):
        raise ProtocolError("frame header 'meta' must be an object")
    if not isinstance(header["arrays"], list):
        raise ProtocolError("frame header 'arrays' must be a list")
    return header


def _refuse_constant(name: str) -> Any:
    raise ProtocolError(f"frame header holds the non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999 parses to inf
        raise ProtocolError(f"frame header holds the non-finite number {text}")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ProtocolError("frame header repeats a key in one object")
    return result


def _unpack_arrays(entries: list, payload: memoryview) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for entry in entries:
        name, dtype, shape, nbytes = _check_entry(entry, offset)
        if name in arrays:
            raise ProtocolError(f"array {name!r} appears twice in the frame header")
        if offset + nbytes > len(payload):
            raise ProtocolError(f"array {name!r} runs past the end of the frame")
        arrays[name] = _rebuild(name, dtype, shape, payload[offset : offset + nbytes])
        offset += nbytes
    if offset != len(payload):
        raise ProtocolError(f"frame has {len(payload) - offset} bytes after its last array")
    return arrays


def _check_entry(entry: Any, expected_offset: int) -> tuple[str, np.dtype, tuple[int, ...], int]:
    """Validate one header array entry; arrays must be packed back to back in order."""
    if not isinstance(entry, dict) or set(entry) != ARRAY_KEYS:
        raise ProtocolError(f"array entry must be an object with exactly the keys {sorted(ARRAY_KEYS)}")
    name = entry["name"]
    if not isinstance(name, str) or not TOKEN.fullmatch(name):
        raise ProtocolError(f"bad array name {name!r} in frame header")
    if not isinstance(entry["dtype"], str) or entry["dtype"] not in ALLOWED_DTYPES:
        raise ProtocolError(f"array {name!r} has unknown dtype {entry['dtype']!r}")
    dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    shape = _check_shape(name, entry["shape"])
    offset, nbytes = entry["offset"], entry["nbytes"]
    if not _is_count(offset) or offset != expected_offset:
        raise ProtocolError(f"array {name!r} has offset {offset!r}, expected {expected_offset}")
    if not _is_count(nbytes) or nbytes != math.prod(shape) * dtype.itemsize:
        raise ProtocolError(f"array {name!r} has nbytes {nbytes!r}, which does not match shape {list(shape)} of {entry['dtype']}")
    return name, dtype, shape, nbytes


def _check_shape(name: str, shape: Any) -> tuple[int, ...]:
    if not isinstance(shape, list) or len(shape) > MAX_NDIM or not all(_is_count(size) for size in shape):
        raise ProtocolError(f"array {name!r} has bad shape {shape!r}")
    # Bound the product of the non-zero sizes too: an empty array of shape (0, 2**70)
    # would otherwise pass the byte count check and then overflow numpy.
    if math.prod(max(size, 1) for size in shape) > MAX_FRAME_BYTES:
        raise ProtocolError(f"array {name!r} has impossible shape {shape!r}")
    return tuple(shape)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rebuild(name: str, dtype: np.dtype, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    flat = np.frombuffer(raw, dtype=dtype)
    if dtype.kind == "b" and np.any(flat.view(np.uint8) > 1):
        # numpy would keep the odd byte values and behave inconsistently later.
        raise ProtocolError(f"bool array {name!r} holds bytes other than 0 and 1")
    return flat.reshape(shape).astype(dtype.newbyteorder("="), copy=True)
