"""Wire format: exact round trips, and nothing but ProtocolError on bad frames."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

import ppreg.transport as transport_package
from ppreg.errors import ProtocolError
from ppreg.transport.wire import (
    ALLOWED_DTYPES,
    DTYPE_CODES,
    KIND_CODES,
    KINDS,
    NAME_CODES,
    NAMES,
    MAX_FRAME_BYTES,
    WIRE_VERSION,
    Message,
    body_length,
    decode,
    encode,
)

pytestmark = pytest.mark.timeout(60)

DTYPES = sorted(ALLOWED_DTYPES)


def assert_same_message(got: Message, sent: Message) -> None:
    assert got.kind == sent.kind
    assert got.meta == sent.meta
    assert list(got.arrays) == list(sent.arrays)
    for name, array in sent.arrays.items():
        assert got.arrays[name].dtype == array.dtype, name
        assert got.arrays[name].shape == array.shape, name
        np.testing.assert_array_equal(got.arrays[name], array)


def sample_array(dtype: str, rng: np.random.Generator, shape=(3, 4)) -> np.ndarray:
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith("float"):
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def literal(name: str) -> bytes:
    return b"\x00" + bytes([len(name)]) + name.encode("ascii")


def entry(name: str = "a", dtype: str = "int32", shape=(2,)) -> bytes:
    """A hand-built array entry: literal name, dtype code, ndim, LEB128 sizes."""
    return literal(name) + bytes([DTYPE_CODES[dtype], len(shape)]) + b"".join(varint(size) for size in shape)


def build_frame(entries: list[bytes] = (), payload: bytes = b"", meta: bytes = b"", kind: bytes = literal("x"),
                version: int = WIRE_VERSION, count: int | None = None) -> bytes:
    """Hand-assemble a frame with a consistent length prefix, to reach the deeper checks."""
    layout = (len(entries) if count is None else count) | (0x80 if meta else 0)
    body = bytes([version]) + kind + bytes([layout]) + (varint(len(meta)) + meta if meta else b"")
    body += b"".join(entries) + payload
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_every_dtype(dtype):
    rng = np.random.default_rng(7)
    message = Message("product", {"level": 2}, {"values": sample_array(dtype, rng)})
    assert_same_message(decode(encode(message)), message)


@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip_zero_d_and_empty(dtype):
    rng = np.random.default_rng(8)
    message = Message(
        "level",
        {},
        {
            "scalar": sample_array(dtype, rng, shape=()),
            "empty": np.zeros((0,), dtype=dtype),
            "empty_2d": np.zeros((3, 0), dtype=dtype),
        },
    )
    got = decode(encode(message))
    assert_same_message(got, message)
    assert got.arrays["scalar"].ndim == 0


def test_round_trip_nested_meta_and_no_arrays():
    meta = {
        "text": "é ✓",
        "int": -(2**70),
        "float": 1.5e-300,
        "flag": False,
        "none": None,
        "list": [1, [2, [3, {"deep": "yes"}]]],
        "dict": {"a": {"b": {"c": []}}},
    }
    message = Message("hello", meta, {})
    assert_same_message(decode(encode(message)), message)


def test_uint64_and_int64_extremes():
    message = Message(
        "shares",
        {},
        {
            "ring": np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64),
            "signed": np.array([np.iinfo(np.int64).min, -1, 0, np.iinfo(np.int64).max], dtype=np.int64),
        },
    )
    got = decode(encode(message))
    assert got.arrays["ring"].tolist() == [0, 1, 2**63, 2**64 - 1]
    assert got.arrays["signed"].tolist() == [-(2**63), -1, 0, 2**63 - 1]


def test_float_arrays_keep_nan_inf_and_negative_zero():
    values = np.array([np.nan, np.inf, -np.inf, -0.0, 5e-324], dtype=np.float64)
    got = decode(encode(Message("x", {}, {"v": values}))).arrays["v"]
    assert got.tobytes() == values.tobytes()


def test_big_endian_and_strided_inputs_arrive_as_native_values():
    big_endian = np.arange(12, dtype=">i4").reshape(3, 4)
    strided = np.arange(24, dtype=np.float64).reshape(4, 6)[::2, ::3]
    got = decode(encode(Message("x", {}, {"big": big_endian, "strided": strided}))).arrays
    np.testing.assert_array_equal(got["big"], big_endian)
    np.testing.assert_array_equal(got["strided"], strided)
    assert got["big"].dtype == np.dtype("int32")


def test_array_bytes_on_the_wire_are_little_endian_c_order():
    array = np.array([[1, 2], [3, 4]], dtype=np.uint16)
    assert encode(Message("x", {}, {"a": array})).endswith(b"\x01\x00\x02\x00\x03\x00\x04\x00")


def test_decoded_arrays_are_writable_independent_copies():
    frame = bytearray(encode(Message("x", {}, {"a": np.arange(4, dtype=np.int32)})))
    got = decode(frame).arrays["a"]
    got[0] = 99
    frame[-4:] = b"\xff\xff\xff\xff"
    assert got.tolist() == [99, 1, 2, 3]
    assert got.flags.writeable and got.flags.c_contiguous


def test_frame_layout_matches_the_documentation():
    frame = encode(Message("bye", {"n": 1}, {"a": np.array([7], dtype=np.uint8), "odd": np.zeros((300,), np.int8)}))
    (body_len,) = struct.unpack(">I", frame[:4])
    assert body_len == len(frame) - 4
    assert frame[4] == WIRE_VERSION
    assert frame[5] == KIND_CODES["bye"]
    assert frame[6] == 0x80 | 2  # meta follows, two arrays
    assert frame[7] == len(b'{"n":1}') and frame[8:15] == b'{"n":1}'
    assert frame[15:19] == bytes([NAME_CODES["a"], DTYPE_CODES["uint8"], 1, 1])
    assert frame[19:28] == literal("odd") + bytes([DTYPE_CODES["int8"], 1]) + b"\xac\x02"  # 300 in LEB128
    assert frame[28:] == b"\x07" + bytes(300)


def test_a_small_share_costs_eleven_bytes_of_framing():
    # party2's and the dealer's per-iteration messages (docs/mpc.md): framing ≤ 11 bytes.
    share = np.arange(7, dtype=np.uint64)
    assert len(encode(Message("mpc_share", {}, {"share": share}))) == 56 + 11
    assert len(encode(Message("triples", {}, {"share": share}))) == 56 + 11


def test_unknown_kind_name_and_dtype_codes_refused():
    with pytest.raises(ProtocolError, match="unknown message kind code"):
        decode(build_frame(kind=bytes([len(KINDS) + 1])))
    with pytest.raises(ProtocolError, match="unknown array name code"):
        decode(build_frame([bytes([len(NAMES) + 1, DTYPE_CODES["int32"], 1, 2])], GOOD_PAYLOAD))
    with pytest.raises(ProtocolError, match="dtype code"):
        decode(build_frame([literal("a") + bytes([0, 1, 2])], GOOD_PAYLOAD))


def test_version_mismatch_names_both_versions():
    frame = bytearray(encode(Message("hello", {}, {})))
    frame[4] = WIRE_VERSION + 1
    with pytest.raises(ProtocolError, match=rf"version {WIRE_VERSION + 1}.*version {WIRE_VERSION}"):
        decode(bytes(frame))


def test_oversize_announcement_refused_before_reading():
    with pytest.raises(ProtocolError, match="limit"):
        body_length(struct.pack(">I", MAX_FRAME_BYTES - 3))
    with pytest.raises(ProtocolError, match="fewer"):
        body_length(struct.pack(">I", 2))


GOOD_ENTRY = entry()
GOOD_PAYLOAD = b"\x01\x00\x00\x00\x02\x00\x00\x00"


BAD_FRAMES = {
    "kind literal empty": build_frame(kind=b"\x00\x00"),
    "kind literal with spaces": build_frame(kind=literal("a b")),
    "kind literal not ascii": build_frame(kind=b"\x00\x02\xc3\xa9"),
    "kind literal truncated": build_frame(kind=b"\x00\x09abc"),
    "name literal bad": build_frame([b"\x00\x01 " + bytes([DTYPE_CODES["int32"], 1, 2])], GOOD_PAYLOAD),
    "dtype code zero": build_frame([literal("a") + bytes([0, 1, 2])], GOOD_PAYLOAD),
    "dtype code unknown": build_frame([literal("a") + bytes([200, 1, 2])], GOOD_PAYLOAD),
    "too many dims": build_frame([entry(shape=(1,) * 40)], GOOD_PAYLOAD),
    "shape overflows": build_frame([entry(shape=(0, 2**34, 2**34))]),
    "varint too long": build_frame([literal("a") + bytes([DTYPE_CODES["int32"], 1]) + b"\xff" * 6 + b"\x01"]),
    "varint not minimal": build_frame([literal("a") + bytes([DTYPE_CODES["int32"], 1]) + b"\x82\x00"], GOOD_PAYLOAD),
    "size mismatch": build_frame([entry(shape=(3,))], GOOD_PAYLOAD),
    "payload short": build_frame([entry()], GOOD_PAYLOAD[:5]),
    "more arrays announced than present": build_frame([entry()], GOOD_PAYLOAD, count=2),
    "entry truncated": build_frame([literal("a") + bytes([DTYPE_CODES["int32"], 2, 2])]),
    "meta not object": build_frame(meta=b"[1]"),
    "meta empty object": build_frame(meta=b"{}"),
    "meta bad json": build_frame(meta=b"{"),
    "meta length past the end": bytes(struct.pack(">I", 5)) + bytes([WIRE_VERSION, 1, 0x80, 0x7F, 0x7B]),
}


@pytest.mark.parametrize("case", sorted(BAD_FRAMES))
def test_structurally_bad_frames_raise_protocol_error(case):
    with pytest.raises(ProtocolError):
        decode(BAD_FRAMES[case])


def test_well_formed_hand_built_frame_decodes():
    # Guards the table above: the same builder with the good entry must succeed.
    got = decode(build_frame([GOOD_ENTRY], GOOD_PAYLOAD, meta=b'{"k":[1,2]}'))
    assert got.kind == "x" and got.meta == {"k": [1, 2]}
    assert got.arrays["a"].tolist() == [1, 2]


@pytest.mark.parametrize(
    "meta_text",
    [
        b'{"v":NaN}',
        b'{"v":Infinity}',
        b'{"v":-Infinity}',
        b'{"v":1e999}',
        b'{"v":' + b"9" * 5000 + b"}",
        b'{"k":1,"k":2}',
        b"[" * 100000 + b"]" * 100000,
        b"\xff\xfe not utf-8",
        b"{",
    ],
    ids=["nan", "inf", "-inf", "overflow", "long int", "duplicate key", "deep", "utf8", "open brace"],
)
def test_unreadable_or_non_finite_meta_json_raises_protocol_error(meta_text):
    with pytest.raises(ProtocolError):
        decode(build_frame(meta=meta_text))


def test_bool_bytes_other_than_zero_and_one_refused():
    frame = build_frame([entry(dtype="bool")], b"\x01\x02")
    with pytest.raises(ProtocolError, match="bool"):
        decode(frame)


def test_trailing_bytes_after_last_array_refused():
    with pytest.raises(ProtocolError, match="after its last array"):
        decode(build_frame([GOOD_ENTRY], GOOD_PAYLOAD + b"\x00"))


def test_duplicate_array_names_refused():
    with pytest.raises(ProtocolError, match="twice"):
        decode(build_frame([GOOD_ENTRY, GOOD_ENTRY], GOOD_PAYLOAD * 2))


@pytest.mark.parametrize("not_a_frame", [None, "text", 12, [1, 2]])
def test_non_bytes_input_raises_protocol_error(not_a_frame):
    with pytest.raises(ProtocolError):
        decode(not_a_frame)


def mutate(frame: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption: flips, truncation, extension, splice, or prefix damage;
    half of them re-fix the length prefix so the deeper checks are reached."""
    data = bytearray(frame)
    choice = rng.integers(6)
    if choice == 0:
        for index in rng.integers(0, len(data), size=rng.integers(1, 4)):
            data[index] ^= 1 << int(rng.integers(8))
    elif choice == 1:
        data = data[: rng.integers(0, len(data))]
    elif choice == 2:
        data += rng.integers(0, 256, size=rng.integers(1, 16)).astype(np.uint8).tobytes()
    elif choice == 3:
        start = int(rng.integers(4, len(data)))
        data[start : start + 8] = rng.integers(0, 256, size=8).astype(np.uint8).tobytes()
    elif choice == 4:
        data[: rng.integers(1, 5)] = b"\xff"
    else:
        start = int(rng.integers(4, len(data)))
        data[start : start + 1] = rng.choice(list(b'{}[]",:0-9eE.tfn\x00\\ '), size=rng.integers(0, 3)).astype(np.uint8).tobytes()
    if rng.integers(2) and len(data) >= 4:
        data[:4] = struct.pack(">I", len(data) - 4)
    return bytes(data)


def test_random_mutations_raise_only_protocol_error():
    rng = np.random.default_rng(20240501)
    originals = [
        encode(Message("hello", {"party": "party1", "levels": [4, 2, 1], "f": 0.25}, {})),
        encode(Message("product", {"iteration": 3}, {"masked": np.arange(10, dtype=np.uint64), "flag": np.array(True)})),
        encode(Message("level", {"shape": [4, 5]}, {"fixed": np.ones((4, 5), np.float32), "e": np.zeros(0, np.int8)})),
    ]
    refused = 0
    for trial in range(1000):
        original = originals[trial % len(originals)]
        corrupted = mutate(original, rng)
        try:
            message = decode(corrupted)
        except ProtocolError:
            refused += 1
            continue
        # A flip inside array bytes or a meta digit still makes a well-formed frame.
        assert isinstance(message, Message)
    assert refused >= 700, f"only {refused} of 1000 corruptions were detected"


def test_every_truncation_raises_protocol_error():
    frame = encode(Message("product", {"i": 1}, {"a": np.arange(5, dtype=np.float64)}))
    for length in range(len(frame)):
        with pytest.raises(ProtocolError):
            decode(frame[:length])


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (Message("x", {}, {"a": [1, 2]}), TypeError),
        (Message("x", {}, {"a": np.array([1 + 2j])}), TypeError),
        (Message("x", {}, {"a": np.array(["s"])}), TypeError),
        (Message("x", {}, {"a": np.zeros(2, np.float16)}), TypeError),
        (Message("x", {"v": float("nan")}, {}), ValueError),
        (Message("x", {"v": np.float64("inf")}, {}), ValueError),
        (Message("x", {1: "int key"}, {}), TypeError),
        (Message("x", {"v": object()}, {}), TypeError),
        (Message("x", {"v": np.zeros(2)}, {}), TypeError),
        (Message("bad kind", {}, {}), ValueError),
        (Message("x", {}, {"bad name": np.zeros(1)}), ValueError),
        (Message("x", {}, {f"a{i}": np.zeros(1) for i in range(128)}), ValueError),
    ],
)
def test_encode_refuses_what_cannot_round_trip(message, error):
    with pytest.raises(error):
        encode(message)


def test_encode_converts_numpy_scalars_in_meta():
    meta = {"i": np.int64(3), "f": np.float32(0.5), "b": np.bool_(True), "t": (1, 2)}
    got = decode(encode(Message("x", meta, {}))).meta
    assert got == {"i": 3, "f": 0.5, "b": True, "t": [1, 2]}
    assert type(got["i"]) is int and type(got["b"]) is bool


def test_no_pickle_anywhere_in_transport():
    forbidden = re.compile(r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|marshal|shelve)\b|allow_pickle\s*=\s*True", re.M)
    sources = sorted(Path(transport_package.__file__).parent.glob("*.py"))
    assert len(sources) >= 5
    offenders = [path.name for path in sources if forbidden.search(path.read_text(encoding="utf-8"))]
    assert offenders == []
