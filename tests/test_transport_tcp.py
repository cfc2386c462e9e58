"""Stream framing over plain socket pairs: short reads, peer close, timeouts, size limit."""

from __future__ import annotations

import socket
import struct
import threading

import numpy as np
import pytest

from ppreg.errors import PeerError, ProtocolError
from ppreg.transport.channel import Channel
from ppreg.transport.tcp import SocketLink
from ppreg.transport.wire import MAX_FRAME_BYTES, Message, decode, encode

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def socket_pair():
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_frame_written_in_small_pieces_is_reassembled(socket_pair):
    left, right = socket_pair
    frame = encode(Message("level", {"n": 3}, {"a": np.arange(1000, dtype=np.int64)}))

    def dribble():
        for start in range(0, len(frame), 7):
            left.sendall(frame[start : start + 7])

    writer = threading.Thread(target=dribble)
    writer.start()
    received = SocketLink(right, remote="party1").recv_frame(timeout=5)
    writer.join(5)
    assert received == frame
    assert decode(received).arrays["a"].tolist() == list(range(1000))


def test_large_frame_both_ways_through_channels(socket_pair):
    left, right = socket_pair
    party1 = Channel(SocketLink(left, "party2"), "party1", "party2", timeout=5)
    party2 = Channel(SocketLink(right, "party1"), "party2", "party1", timeout=5)
    big = np.random.default_rng(1).integers(0, 2**64, size=300_000, dtype=np.uint64, endpoint=False)

    echo = threading.Thread(target=lambda: party2.send("echo", {}, v=party2.recv("big").arrays["v"]))
    echo.start()
    size = party1.send("big", {}, v=big)
    answer = party1.recv("echo")
    echo.join(5)
    np.testing.assert_array_equal(answer.arrays["v"], big)
    assert party1.stats.bytes_sent == size == party2.stats.bytes_received
    assert party1.stats.bytes_received == party2.stats.bytes_sent


def test_peer_closing_mid_frame_raises_peer_error(socket_pair):
    left, right = socket_pair
    frame = encode(Message("product", {}, {"a": np.zeros(100)}))
    left.sendall(frame[: len(frame) // 2])
    left.shutdown(socket.SHUT_RDWR)
    link = SocketLink(right, remote="party2")
    with pytest.raises(PeerError, match="^party2 closed the connection$"):
        link.recv_frame(timeout=5)
    with pytest.raises(PeerError, match="unusable"):
        link.recv_frame(timeout=5)


def test_peer_closing_between_frames_raises_peer_error(socket_pair):
    left, right = socket_pair
    SocketLink(left, remote="party1").close()
    with pytest.raises(PeerError, match="^party2 closed the connection$"):
        SocketLink(right, remote="party2").recv_frame(timeout=5)


def test_silence_raises_peer_error_and_keeps_the_link_usable(socket_pair):
    left, right = socket_pair
    link = SocketLink(right, remote="party2")
    with pytest.raises(PeerError, match=r"^no answer from party2 within 0\.2 s$"):
        link.recv_frame(timeout=0.2)
    frame = encode(Message("late", {}, {}))
    left.sendall(frame)
    assert link.recv_frame(timeout=5) == frame


def test_timeout_inside_a_frame_breaks_the_link(socket_pair):
    left, right = socket_pair
    frame = encode(Message("late", {}, {"a": np.zeros(10)}))
    left.sendall(frame[:20])
    link = SocketLink(right, remote="party2")
    with pytest.raises(PeerError, match="no answer"):
        link.recv_frame(timeout=0.2)
    left.sendall(frame[20:])
    with pytest.raises(PeerError, match="unusable"):
        link.recv_frame(timeout=1)


def test_oversize_length_prefix_refused_without_reading(socket_pair):
    left, right = socket_pair
    left.sendall(struct.pack(">I", MAX_FRAME_BYTES - 3) + b"\x02")
    with pytest.raises(ProtocolError, match="limit"):
        SocketLink(right, remote="party2").recv_frame(timeout=5)


def test_send_to_closed_peer_raises_peer_error(socket_pair):
    left, right = socket_pair
    right.close()
    link = SocketLink(left, remote="party2")
    with pytest.raises(PeerError, match="party2"):
        for _ in range(100):  # the first sends may still fit in kernel buffers
            link.send_frame(encode(Message("x", {}, {"a": np.zeros(10_000)})))


def test_send_to_a_peer_that_stops_reading_times_out(socket_pair):
    left, _right = socket_pair
    link = SocketLink(left, remote="party2", send_timeout=0.3)
    with pytest.raises(PeerError, match="did not take our data within 0.3 s"):
        link.send_frame(encode(Message("x", {}, {"a": np.zeros(2_000_000)})))
