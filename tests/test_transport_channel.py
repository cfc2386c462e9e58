"""Counted channels over the in-process link (local_pair)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from ppreg.errors import PeerError, ProtocolError
from ppreg.transport.channel import Channel, TrafficStats, local_pair
from ppreg.transport.wire import Message, encode

pytestmark = pytest.mark.timeout(30)


def run_in_thread(target):
    """Run ``target`` in a thread; return a function that joins and re-raises."""
    outcome: dict = {}

    def body():
        try:
            outcome["value"] = target()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()

    def join():
        thread.join(10)
        assert not thread.is_alive(), "party thread hung"
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]

    return join


def test_two_threads_exchange_arrays_and_stats_count_exact_frame_bytes():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    rng = np.random.default_rng(3)
    request = rng.integers(0, 2**63, size=(50, 3), dtype=np.uint64)

    def serve():
        message = party2.recv("masked")
        return party2.send("product", {"iteration": message.meta["iteration"]}, result=message.arrays["s"].sum(axis=0))

    join = run_in_thread(serve)
    sent_bytes = party1.send("masked", {"iteration": 4}, s=request)
    answer = party1.recv("product")
    answer_bytes = join()

    np.testing.assert_array_equal(answer.arrays["result"], request.sum(axis=0))
    assert answer.meta == {"iteration": 4}
    expected_request = len(encode(Message("masked", {"iteration": 4}, {"s": request})))
    assert sent_bytes == expected_request
    assert party1.stats == TrafficStats(sent_bytes, answer_bytes, 1, 1)
    assert party2.stats == TrafficStats(answer_bytes, sent_bytes, 1, 1)


def test_stats_copy_sub_and_as_dict():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    party1.send("a", {}, x=np.zeros(10))
    before = party1.stats.copy()
    size = party1.send("b", {}, x=np.zeros(3))
    delta = party1.stats - before
    assert delta == TrafficStats(bytes_sent=size, messages_sent=1)
    assert before.messages_sent == 1, "copy must not follow later traffic"
    assert delta.as_dict() == {"bytes_sent": size, "bytes_received": 0, "messages_sent": 1, "messages_received": 0}


def test_messages_arrive_in_order():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    for index in range(20):
        party1.send("step", {"i": index})
    assert [party2.recv("step").meta["i"] for _ in range(20)] == list(range(20))


def test_kind_mismatch_raises_protocol_error():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    party1.send("level")
    with pytest.raises(ProtocolError, match="expected a 'product' message from party1, got 'level'"):
        party2.recv("product")


def test_error_message_propagates_as_peer_error():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    party2.send_error("fixed image is 3D but moving image is 2D")
    with pytest.raises(PeerError, match="^party2: fixed image is 3D but moving image is 2D$") as caught:
        party1.recv("product")
    assert not isinstance(caught.value, ProtocolError)


def test_send_error_never_raises_even_when_peer_is_gone():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    party2.close()
    party1.send_error("giving up")
    party1.close()
    party1.send_error("after own close")


def test_close_makes_the_other_sides_recv_raise_peer_error():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    join = run_in_thread(lambda: party2.recv())
    time.sleep(0.05)
    party1.close()
    with pytest.raises(PeerError, match="party1 closed the connection"):
        join()
    with pytest.raises(PeerError, match="party1 closed the connection"):
        party2.recv()
    with pytest.raises(PeerError, match="party1 closed the connection"):
        party2.send("late")


def test_messages_sent_before_close_are_still_delivered():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    party1.send("bye", {"reason": "done"})
    party1.close()
    assert party2.recv("bye").meta == {"reason": "done"}
    with pytest.raises(PeerError, match="closed"):
        party2.recv()


def test_recv_timeout_raises_peer_error_naming_the_peer():
    party1, _party2 = local_pair("party1", "dealer", timeout=0.2)
    started = time.monotonic()
    with pytest.raises(PeerError, match=r"no answer from dealer within 0\.2 s"):
        party1.recv()
    assert 0.15 < time.monotonic() - started < 3


def test_using_a_closed_channel_raises_peer_error():
    party1, _party2 = local_pair("party1", "party2", timeout=1)
    party1.close()
    party1.close()  # idempotent
    with pytest.raises(PeerError, match="already closed"):
        party1.send("x")
    with pytest.raises(PeerError, match="already closed"):
        party1.recv()


def test_frames_really_cross_as_bytes():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    original = np.arange(4.0)
    party1.send("x", {}, a=original)
    original[0] = 42.0
    received = party2.recv().arrays["a"]
    assert received[0] == 0.0
    assert not np.shares_memory(received, original)


def test_malformed_frame_from_link_is_counted_then_refused():
    class GarbageLink:
        def send_frame(self, frame):
            pass

        def recv_frame(self, timeout):
            return b"\x00" * 30

        def close(self):
            pass

    channel = Channel(GarbageLink(), local="party1", remote="party2")
    with pytest.raises(ProtocolError):
        channel.recv()
    assert channel.stats.bytes_received == 30


def test_send_message_allows_array_names_that_clash_with_parameters():
    party1, party2 = local_pair("party1", "party2", timeout=5)
    party1.send_message(Message("x", {}, {"kind": np.ones(1), "meta": np.zeros(1)}))
    assert sorted(party2.recv().arrays) == ["kind", "meta"]
