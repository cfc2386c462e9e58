"""Mutual TLS channels on 127.0.0.1: exchange, and every way a peer is refused."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
import time

import numpy as np
import pytest

from ppreg.errors import InputError, PeerError
from ppreg.transport.keys import make_keys
from ppreg.transport.tls import Identity, Listener, connect, parse_address, peer_party_name
from ppreg.transport.wire import Message, encode

pytestmark = pytest.mark.timeout(60)

STEP = 5.0  # bound on every wait in these tests, in seconds


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("certs")
    make_keys(directory)
    return directory


@pytest.fixture(scope="module")
def other_certs(tmp_path_factory):
    """A second deployment: same party names, a different CA."""
    directory = tmp_path_factory.mktemp("other_certs")
    make_keys(directory)
    return directory


@pytest.fixture(scope="module")
def expired_certs(tmp_path_factory):
    """party2 and dealer valid, party1 expired yesterday, all from one CA."""
    directory = tmp_path_factory.mktemp("expired_certs")
    make_keys(directory, names=("party2", "dealer"))
    now = dt.datetime.now(dt.timezone.utc)
    make_keys(directory, names=("party1",), not_valid_before=now - dt.timedelta(days=3), not_valid_after=now - dt.timedelta(days=1))
    return directory


class Server:
    """A Listener on 127.0.0.1:0 whose accept() (and an optional handler) run in a thread."""

    def __init__(self, identity: Identity, allowed: set[str], handler=None, timeout: float = STEP):
        self.listener = Listener("127.0.0.1:0", identity, timeout=timeout)
        self.address = f"127.0.0.1:{self.listener.port}"
        self._outcome: dict = {}
        self._thread = threading.Thread(target=self._run, args=(allowed, handler), daemon=True)
        self._thread.start()

    def _run(self, allowed, handler):
        try:
            channel, name = self.listener.accept(allowed, timeout=STEP)
            self._outcome["value"] = (channel, name, handler(channel) if handler else None)
        except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
            self._outcome["error"] = exc

    def result(self):
        self._thread.join(2 * STEP)
        assert not self._thread.is_alive(), "server thread hung"
        self.listener.close()
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


def identity(directory, name) -> Identity:
    return Identity.load(directory, name)


def mixed_identity(ca_dir, cert_dir, name) -> Identity:
    """Trust one deployment's CA but present another deployment's certificate."""
    base = identity(cert_dir, name)
    return Identity(ca=identity(ca_dir, name).ca, cert=base.cert, key=base.key, name=name)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dial(server: Server, client_identity: Identity, expect: str = "party2"):
    return connect(server.address, client_identity, expect, timeout=STEP, retries_until=1.0, channel_timeout=STEP)


def test_exchange_arrays_both_ways_and_count_frame_bytes(certs):
    masked = np.random.default_rng(5).integers(0, 2**64, size=(200, 3), dtype=np.uint64, endpoint=False)

    def party2_side(channel):
        message = channel.recv("masked")
        channel.send("product", {"level": message.meta["level"]}, total=message.arrays["s"].sum(axis=0, dtype=np.uint64))
        return channel.recv("bye")

    server = Server(identity(certs, "party2"), {"party1"}, party2_side)
    party1 = dial(server, identity(certs, "party1"))
    request_bytes = party1.send("masked", {"level": 1}, s=masked)
    answer = party1.recv("product")
    bye_bytes = party1.send("bye")
    party2, name, _ = server.result()

    assert name == "party1" and party2.remote == "party1" and party2.local == "party2"
    assert party1.local == "party1" and party1.remote == "party2"
    np.testing.assert_array_equal(answer.arrays["total"], masked.sum(axis=0, dtype=np.uint64))
    assert request_bytes == len(encode(Message("masked", {"level": 1}, {"s": masked})))
    answer_bytes = len(encode(Message("product", {"level": 1}, {"total": answer.arrays["total"]})))
    assert party1.stats.as_dict() == {
        "bytes_sent": request_bytes + bye_bytes,
        "bytes_received": answer_bytes,
        "messages_sent": 2,
        "messages_received": 1,
    }
    assert party2.stats.bytes_received == party1.stats.bytes_sent
    assert party2.stats.bytes_sent == party1.stats.bytes_received
    party1.close()
    party2.close()


def test_client_refuses_server_certificate_from_another_ca(certs, other_certs):
    # The server would accept the client, but its own certificate is not from the client's CA.
    server = Server(mixed_identity(other_certs, certs, "party2"), {"party1"})
    with pytest.raises(PeerError, match="certificate verify failed"):
        dial(server, identity(other_certs, "party1"))
    with pytest.raises(PeerError, match="TLS handshake failed"):
        server.result()


def test_server_refuses_client_certificate_from_another_ca(certs, other_certs):
    # The client trusts the server, but presents a certificate from another CA.
    server = Server(identity(certs, "party2"), {"party1"})
    with pytest.raises(PeerError, match="refused the connection"):
        dial(server, mixed_identity(certs, other_certs, "party1"))
    with pytest.raises(PeerError, match="certificate verify failed"):
        server.result()


def test_two_deployments_refuse_each_other(certs, other_certs):
    server = Server(identity(certs, "party2"), {"party1"})
    with pytest.raises(PeerError, match="certificate verify failed"):
        dial(server, identity(other_certs, "party1"))
    with pytest.raises(PeerError):
        server.result()


def test_server_refuses_a_party_it_does_not_expect(certs):
    server = Server(identity(certs, "party2"), {"party1"})
    with pytest.raises(PeerError, match="party2 refuses dealer: it expects party1"):
        dial(server, identity(certs, "dealer"))
    with pytest.raises(PeerError, match="presented certificate for dealer, expected party1"):
        server.result()


def test_allowed_peers_given_as_a_string_is_one_name_not_a_substring_set(certs, tmp_path):
    make_keys(tmp_path, names=("party2", "party"))
    server = Server(identity(tmp_path, "party2"), "party1")
    with pytest.raises(PeerError, match="party2 refuses party: it expects party1"):
        dial(server, identity(tmp_path, "party"))
    with pytest.raises(PeerError, match="presented certificate for party,"):
        server.result()


def test_client_refuses_a_server_with_another_party_name(certs):
    server = Server(identity(certs, "party2"), {"party1"}, lambda channel: channel.recv())
    with pytest.raises(PeerError, match="presented certificate for party2, expected dealer"):
        dial(server, identity(certs, "party1"), expect="dealer")
    with pytest.raises(PeerError, match="party1"):
        server.result()


def test_server_refuses_an_expired_client_certificate(expired_certs):
    server = Server(identity(expired_certs, "party2"), {"party1"})
    with pytest.raises(PeerError, match="expired"):
        dial(server, identity(expired_certs, "party1"))
    with pytest.raises(PeerError, match="certificate has expired"):
        server.result()


def test_client_refuses_an_expired_server_certificate(expired_certs):
    server = Server(identity(expired_certs, "party1"), {"party2"})
    with pytest.raises(PeerError, match="certificate verify failed: certificate has expired"):
        dial(server, identity(expired_certs, "party2"), expect="party1")
    with pytest.raises(PeerError):
        server.result()


def test_client_without_certificate_is_refused(certs):
    server = Server(identity(certs, "party2"), {"party1"})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(certs / "ca.pem"))
    with socket.create_connection(("127.0.0.1", server.listener.port), timeout=STEP) as raw:
        with context.wrap_socket(raw) as tls:
            with pytest.raises((ssl.SSLError, OSError)):
                tls.recv(1)
    with pytest.raises(PeerError, match="TLS handshake failed"):
        server.result()


def test_tls_12_client_is_refused(certs):
    server = Server(identity(certs, "party2"), {"party1"})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cafile=str(certs / "ca.pem"))
    context.load_cert_chain(str(certs / "party1.pem"), str(certs / "party1.key.pem"))
    with socket.create_connection(("127.0.0.1", server.listener.port), timeout=STEP) as raw:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(raw)
    with pytest.raises(PeerError, match="unsupported protocol"):
        server.result()


def test_listener_stays_usable_after_refusing(certs):
    listener = Listener("127.0.0.1:0", identity(certs, "party2"), timeout=STEP)
    address = f"127.0.0.1:{listener.port}"
    outcomes: list = []

    def accept_twice():
        for _ in range(2):
            try:
                outcomes.append(listener.accept({"party1"}, timeout=STEP)[1])
            except PeerError as exc:
                outcomes.append(exc)

    thread = threading.Thread(target=accept_twice, daemon=True)
    thread.start()
    with pytest.raises(PeerError):
        connect(address, identity(certs, "dealer"), "party2", timeout=STEP, retries_until=1.0)
    channel = connect(address, identity(certs, "party1"), "party2", timeout=STEP, retries_until=1.0)
    thread.join(2 * STEP)
    listener.close()
    channel.close()
    assert isinstance(outcomes[0], PeerError) and outcomes[1] == "party1"


def test_connect_to_a_closed_port_fails_after_the_retry_window(certs):
    port = free_port()
    started = time.monotonic()
    with pytest.raises(PeerError, match=rf"cannot reach party2 at 127\.0\.0\.1:{port}: .*refused"):
        connect(f"127.0.0.1:{port}", identity(certs, "party1"), "party2", timeout=STEP, retries_until=0.5)
    elapsed = time.monotonic() - started
    assert 0.5 <= elapsed < 3.0


def test_client_started_before_the_server_gets_through(certs):
    port = free_port()
    outcome: dict = {}

    def late_server():
        time.sleep(0.5)
        with Listener(f"127.0.0.1:{port}", identity(certs, "party2"), timeout=STEP) as listener:
            channel, _ = listener.accept({"party1"}, timeout=STEP)
            outcome["message"] = channel.recv("hello").meta
            channel.close()

    thread = threading.Thread(target=late_server, daemon=True)
    thread.start()
    channel = connect(f"127.0.0.1:{port}", identity(certs, "party1"), "party2", timeout=STEP, retries_until=STEP)
    channel.send("hello", {"from": "party1"})
    thread.join(2 * STEP)
    channel.close()
    assert outcome["message"] == {"from": "party1"}


def test_peer_closing_while_we_wait_raises_peer_error(certs):
    server = Server(identity(certs, "party2"), {"party1"}, lambda channel: channel.close())
    party1 = dial(server, identity(certs, "party1"))
    server.result()
    with pytest.raises(PeerError, match="^party2 closed the connection$"):
        party1.recv()
    party1.close()


def test_peer_closing_mid_frame_raises_peer_error(certs):
    frame = encode(Message("product", {}, {"a": np.zeros(1000)}))

    def send_half_then_close(channel):
        channel._link._sock.sendall(frame[: len(frame) // 2])  # a party dying mid-write
        channel.close()

    server = Server(identity(certs, "party2"), {"party1"}, send_half_then_close)
    party1 = dial(server, identity(certs, "party1"))
    server.result()
    with pytest.raises(PeerError, match="^party2 closed the connection$"):
        party1.recv()
    party1.close()


def test_silent_peer_times_out(certs):
    server = Server(identity(certs, "party2"), {"party1"}, lambda channel: channel.recv("done"))
    party1 = connect(server.address, identity(certs, "party1"), "party2", timeout=STEP, retries_until=1.0, channel_timeout=0.3)
    with pytest.raises(PeerError, match=r"^no answer from party2 within 0\.3 s$"):
        party1.recv()
    party1.send("done")
    server.result()
    party1.close()


def test_accept_timeout_names_the_expected_parties(certs):
    with Listener("127.0.0.1:0", identity(certs, "party2"), timeout=STEP) as listener:
        with pytest.raises(PeerError, match=r"no connection from dealer or party1 within 0\.2 s"):
            listener.accept({"party1", "dealer"}, timeout=0.2)


def test_listen_on_a_busy_port_is_a_peer_error(certs):
    with Listener("127.0.0.1:0", identity(certs, "party2"), timeout=STEP) as first:
        with pytest.raises(PeerError, match="cannot listen"):
            Listener(f"127.0.0.1:{first.port}", identity(certs, "party2"))


def test_identity_load_reports_missing_files(tmp_path, certs):
    with pytest.raises(InputError, match="party9"):
        Identity.load(certs, "party9")
    with pytest.raises(InputError, match="ca.pem"):
        Identity.load(tmp_path, "party1")
    loaded = Identity.load(str(certs), "dealer")
    assert loaded.cert == certs / "dealer.pem" and loaded.key == certs / "dealer.key.pem" and loaded.name == "dealer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5000", ("127.0.0.1", 5000)),
        ("localhost:0", ("localhost", 0)),
        (" node-1.example.org:65535 ", ("node-1.example.org", 65535)),
        ("[::1]:8080", ("::1", 8080)),
    ],
)
def test_parse_address(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["127.0.0.1", "127.0.0.1:", ":5000", "host:port", "host:70000", "::1:5000", "a b:1", "", "h:-1"])
def test_parse_address_refuses_bad_text(text):
    with pytest.raises(InputError, match="bad address"):
        parse_address(text)


def test_peer_party_name_needs_one_consistent_name():
    cn_only = {"subject": ((("commonName", "dealer"),),)}
    both = {**cn_only, "subjectAltName": (("URI", "urn:ppreg:party:dealer"), ("DNS", "localhost"))}
    conflicting = {**cn_only, "subjectAltName": (("URI", "urn:ppreg:party:party1"),)}
    assert peer_party_name(cn_only, "x") == "dealer"
    assert peer_party_name(both, "x") == "dealer"
    with pytest.raises(PeerError, match="exactly one party"):
        peer_party_name(conflicting, "x")
    with pytest.raises(PeerError, match="no party"):
        peer_party_name({}, "x")
