"""The one wire format: length-prefixed, versioned frames of a compact binary header + raw arrays.

Frame layout (integers big-endian unless said otherwise, array bytes little-endian; see
docs/transport.md)::

    u32 body length L | u8 wire version | kind | u8 layout | [meta] | array entries | array bytes

* kind: a u8 code from :data:`KIND_CODES`, or 0 followed by a u8 length and the name;
* layout: bit 7 set when meta follows, bits 0-6 the number of arrays;
* meta: a LEB128 length and that many bytes of UTF-8 JSON (an object);
* array entry: name (u8 code from :data:`NAME_CODES`, or 0, u8 length, name), u8 dtype
  code, u8 ndim, ndim LEB128 sizes; the arrays' bytes follow back to back in entry order.

``L`` counts every byte after the 4-byte prefix, so a whole frame is ``4 + L`` bytes. A
message of one small array and no meta costs 11 bytes of framing (version 1 spent about
140 on a JSON header): the per-iteration messages of party2 and the dealer are 8·s bytes
of payload, and their framing must not dominate them (docs/mpc.md).

Nothing here ever unpickles: arrays are rebuilt from a whitelisted dtype code, a shape
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

WIRE_VERSION: int = 2
# Frames up to 4 GiB: a whole pyramid level of a large 3D volume as uint64 shares fits,
# while a corrupted or hostile length prefix cannot make a reader allocate more.
MAX_FRAME_BYTES: int = 2**32

PREFIX = struct.Struct(">I")
PREFIX_BYTES = PREFIX.size
MIN_BODY_BYTES = 3  # version, kind code, layout

# Codes are part of the wire version: append only, never renumber. Code 0 means "the
# name follows literally", so any kind or array name can travel; the tables only make
# the frequent ones cost one byte.
DTYPE_NAMES = ("bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64",
               "float32", "float64")
KINDS = ("hello", "seed", "level", "level_ready", "bye", "error", "welcome",
         "mpc_level", "mpc_product", "mpc_share", "triples",
         "clear_level", "clear_product", "clear_result",
         "fhe_keys", "fhe_level", "fhe_operand", "fhe_product", "fhe_reveal",
         "cc_level", "cc_iteration", "cc_open1", "cc_open2", "cc_open3", "cc_shares", "cc_share2", "cc_clear",
         "syn_level", "syn_iterate", "syn_fields", "syn_finish")
NAMES = ("share", "shares", "masked_features", "selection", "masked_operand", "seed", "samples",
         "features", "result", "operand", "blob", "field", "inverse", "fixed", "a", "b", "c", "f", "j", "m",
         "xe", "r2", "c1")
ALLOWED_DTYPES = frozenset(DTYPE_NAMES)
DTYPE_CODES = {name: code for code, name in enumerate(DTYPE_NAMES, start=1)}
KIND_CODES = {name: code for code, name in enumerate(KINDS, start=1)}
NAME_CODES = {name: code for code, name in enumerate(NAMES, start=1)}
_LITTLE_DTYPES = {code: np.dtype(name).newbyteorder("<") for name, code in DTYPE_CODES.items()}
_NATIVE_DTYPES = {code: np.dtype(name) for name, code in DTYPE_CODES.items()}
_CODE_OF_NATIVE = {dtype: code for code, dtype in _NATIVE_DTYPES.items()}
_META_FLAG = 0x80
MAX_ARRAYS = 0x7F
# numpy refuses arrays with more dimensions than this on some versions; refusing early
# keeps a hostile shape from turning into a numpy ValueError.
MAX_NDIM = 32
# Kinds and array names travel in error messages and logs, so keep them plain tokens.
TOKEN = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_LITTLE_ENDIAN_HOST = np.dtype("=u8").byteorder == "=" and np.little_endian


@dataclass(frozen=True, eq=False)
class Message:
    """One message between two parties.

    Parameters
    ----------
    kind : str
        Message type, a token of letters, digits, ``_``, ``.`` or ``-`` (e.g. ``"hello"``,
        ``"level"``, ``"mpc_product"``, ``"error"``, ``"bye"``).
    meta : dict
        JSON-able values only: str, int, finite float, bool, None, lists and dicts with
        str keys. Tuples come back as lists.
    arrays : dict of str to ndarray
        Numeric arrays of an allowed dtype (see :data:`ALLOWED_DTYPES`), any shape,
        including 0-d and empty; at most :data:`MAX_ARRAYS` of them.

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
        If the kind or an array name is not a plain token, there are too many arrays,
        or meta holds NaN/inf.
    ProtocolError
        If the frame would exceed :data:`MAX_FRAME_BYTES`.
    """
    _check_token(message.kind, "message kind")
    if not isinstance(message.meta, dict):
        raise TypeError(f"meta must be a dict, not {type(message.meta).__name__}")
    if not isinstance(message.arrays, dict):
        raise TypeError(f"arrays must be a dict, not {type(message.arrays).__name__}")
    if len(message.arrays) > MAX_ARRAYS:
        raise ValueError(f"a message carries at most {MAX_ARRAYS} arrays, not {len(message.arrays)}")
    head = bytearray([WIRE_VERSION])
    _put_name(head, message.kind, KIND_CODES)
    layout = len(message.arrays)
    meta_bytes = b""
    if message.meta:
        layout |= _META_FLAG
        meta_bytes = json.dumps(_jsonable(message.meta, "meta"), allow_nan=False,
                                separators=(",", ":")).encode("utf-8")
    head.append(layout)
    if meta_bytes:
        _put_varint(head, len(meta_bytes))
        head += meta_bytes
    chunks = []
    for name, array in message.arrays.items():
        _check_token(name, "array name")
        data, code, shape = _array_bytes(name, array)
        _put_name(head, name, NAME_CODES)
        head.append(code)
        head.append(len(shape))
        for size in shape:
            _put_varint(head, size)
        chunks.append(data)
    body_len = len(head) + sum(len(chunk) for chunk in chunks)
    if PREFIX_BYTES + body_len > MAX_FRAME_BYTES:
        raise ProtocolError(
            f"message {message.kind!r} needs {PREFIX_BYTES + body_len} bytes, "
            f"above the frame limit of {MAX_FRAME_BYTES}"
        )
    return b"".join([PREFIX.pack(body_len), head, *chunks])


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
        On any malformation: wrong length, other wire version, unknown kind, name or dtype
        code, bad meta JSON, non-finite meta numbers, bad sizes, arrays not filling the
        payload exactly. Nothing else is raised.
    """
    if not isinstance(frame, (bytes, bytearray, memoryview)):
        raise ProtocolError(f"a frame must be bytes, not {type(frame).__name__}")
    try:
        view = memoryview(frame).cast("B")
    except TypeError:
        raise ProtocolError("a frame must be a contiguous byte buffer") from None
    if len(view) < PREFIX_BYTES + MIN_BODY_BYTES:
        raise ProtocolError(f"truncated frame: {len(view)} bytes, need at least {PREFIX_BYTES + MIN_BODY_BYTES}")
    length = body_length(view[:PREFIX_BYTES])
    if length != len(view) - PREFIX_BYTES:
        raise ProtocolError(f"frame announces {length} body bytes but carries {len(view) - PREFIX_BYTES}")
    reader = _Reader(view, PREFIX_BYTES)
    version = reader.byte("wire version")
    if version != WIRE_VERSION:
        raise ProtocolError(
            f"wire version mismatch: peer sent version {version}, this ppreg speaks version {WIRE_VERSION}"
        )
    kind = reader.name(KINDS, "message kind")
    layout = reader.byte("layout")
    meta = _parse_meta(reader.take(reader.varint("meta length"), "meta")) if layout & _META_FLAG else {}
    entries = [_read_entry(reader) for _ in range(layout & MAX_ARRAYS)]
    arrays: dict[str, np.ndarray] = {}
    for name, code, shape in entries:
        if name in arrays:
            raise ProtocolError(f"array {name!r} appears twice in the frame header")
        nbytes = math.prod(shape) * _LITTLE_DTYPES[code].itemsize
        arrays[name] = _rebuild(name, code, shape, reader.take(nbytes, f"array {name!r}"))
    if reader.position != len(view):
        raise ProtocolError(f"frame has {len(view) - reader.position} bytes after its last array")
    return Message(kind=kind, meta=meta, arrays=arrays)


def body_length(prefix: bytes) -> int:
    """Read the body length from a 4-byte prefix and refuse impossible sizes.

    Parameters
    ----------
    prefix : bytes
        The first :data:`PREFIX_BYTES` bytes of a frame.

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


def _put_name(out: bytearray, name: str, codes: dict[str, int]) -> None:
    code = codes.get(name)
    if code is not None:
        out.append(code)
    else:
        raw = name.encode("ascii")
        out.append(0)
        out.append(len(raw))
        out += raw


def _put_varint(out: bytearray, value: int) -> None:
    """Unsigned LEB128: 7 bits per byte, low bits first, high bit = more bytes follow."""
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


class _Reader:
    """Bounds-checked cursor over a frame; every overrun is a ProtocolError."""

    def __init__(self, view: memoryview, position: int) -> None:
        self.view, self.position = view, position

    def byte(self, what: str) -> int:
        if self.position >= len(self.view):
            raise ProtocolError(f"truncated frame: no room for its {what}")
        value = self.view[self.position]
        self.position += 1
        return value

    def take(self, count: int, what: str) -> memoryview:
        end = self.position + count
        if end > len(self.view):
            raise ProtocolError(f"{what} runs past the end of the frame")
        chunk = self.view[self.position : end]
        self.position = end
        return chunk

    def varint(self, what: str) -> int:
        value, shift = 0, 0
        while True:
            byte = self.byte(what)
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                if byte == 0 and shift:
                    raise ProtocolError(f"{what} is not minimally encoded")
                return value
            shift += 7
            if shift > 35:  # no size on the wire needs more than 5 bytes (< 2^35)
                raise ProtocolError(f"{what} is too long")

    def name(self, table: tuple[str, ...], what: str) -> str:
        code = self.byte(what)
        if code:
            if code > len(table):
                raise ProtocolError(f"unknown {what} code {code}")
            return table[code - 1]
        raw = bytes(self.take(self.byte(f"{what} length"), what))
        text = raw.decode("ascii", errors="replace")
        if not TOKEN.fullmatch(text):
            raise ProtocolError(f"bad {what} {text!r} in frame header")
        return text


def _read_entry(reader: _Reader) -> tuple[str, int, tuple[int, ...]]:
    name = reader.name(NAMES, "array name")
    code = reader.byte(f"dtype of array {name!r}")
    if code not in _LITTLE_DTYPES:
        raise ProtocolError(f"array {name!r} has unknown dtype code {code}")
    ndim = reader.byte(f"ndim of array {name!r}")
    if ndim > MAX_NDIM:
        raise ProtocolError(f"array {name!r} has {ndim} dimensions, more than {MAX_NDIM}")
    shape = tuple(reader.varint(f"shape of array {name!r}") for _ in range(ndim))
    # Bound the product of the non-zero sizes too: an empty array of shape (0, 2**34, 2**34)
    # would otherwise pass the byte count check and then overflow numpy.
    if math.prod(max(size, 1) for size in shape) > MAX_FRAME_BYTES:
        raise ProtocolError(f"array {name!r} has impossible shape {list(shape)}")
    return name, code, shape


def _parse_meta(raw: memoryview) -> dict:
    try:
        meta = json.loads(
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
        raise ProtocolError(f"unreadable frame meta: {exc}") from None
    if not isinstance(meta, dict) or not meta:
        raise ProtocolError("frame meta must be a non-empty JSON object (an empty one is not sent)")
    return meta


def _refuse_constant(name: str) -> Any:
    raise ProtocolError(f"frame meta holds the non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # e.g. 1e999 parses to inf
        raise ProtocolError(f"frame meta holds the non-finite number {text}")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ProtocolError("frame meta repeats a key in one object")
    return result


def _jsonable(value: Any, where: str) -> Any:
    """Return ``value`` as plain JSON types, refusing what would not round-trip."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:  # the common case, checked cheaply
        return value
    if isinstance(value, (bool, str)):
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


def _array_bytes(name: str, array: Any) -> tuple[Any, int, tuple[int, ...]]:
    if not isinstance(array, (np.ndarray, np.generic)):
        raise TypeError(f"array {name!r} is a {type(array).__name__}; send numpy arrays so the dtype is explicit")
    array = np.asarray(array)
    dtype = array.dtype
    code = _CODE_OF_NATIVE.get(dtype)  # dtype.name is slow (~10 µs): look native dtypes up directly
    if code is None and dtype.fields is None and dtype.name in DTYPE_CODES:
        code = DTYPE_CODES[dtype.name]  # a non-native byte order of an allowed dtype
    if code is None:
        raise TypeError(f"array {name!r} has dtype {dtype}; allowed: {', '.join(sorted(ALLOWED_DTYPES))}")
    if _LITTLE_ENDIAN_HOST and dtype.isnative and array.flags.c_contiguous:
        return memoryview(array).cast("B") if array.size else b"", code, array.shape
    little = array.astype(dtype.newbyteorder("<"), copy=False)
    return little.tobytes(order="C"), code, array.shape


def _rebuild(name: str, code: int, shape: tuple[int, ...], raw: memoryview) -> np.ndarray:
    flat = np.frombuffer(raw, dtype=_LITTLE_DTYPES[code])
    if code == DTYPE_CODES["bool"] and np.any(flat.view(np.uint8) > 1):
        # numpy would keep the odd byte values and behave inconsistently later.
        raise ProtocolError(f"bool array {name!r} holds bytes other than 0 and 1")
    return flat.reshape(shape).astype(_NATIVE_DTYPES[code], copy=True)
