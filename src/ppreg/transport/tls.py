"""TCP channels between machines, authenticated both ways with mutual TLS 1.3.

The certificates come from :func:`ppreg.transport.keys.make_keys`: one private CA per
deployment, one certificate per party. Each side checks that the other's certificate
is signed by that CA *and* names the party it expects; the host name is not checked,
because the party name is the identity that matters and parties may sit behind
addresses that were unknown when the keys were made.

After the TLS handshake the server sends one small admission frame (``"welcome"``, or
``"error"`` with the reason it refuses) so that :func:`connect` fails at once, with the
server's reason, instead of on the first receive. That frame is connection setup, like
the handshake, and is not counted in :class:`~ppreg.transport.channel.TrafficStats`.
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from ppreg.errors import InputError, PeerError, ProtocolError
from ppreg.transport.channel import Channel
from ppreg.transport.keys import CA_CERT, PARTY_URI_PREFIX, cert_path, key_path
from ppreg.transport.tcp import SocketLink, ssl_reason
from ppreg.transport.wire import Message, decode, encode

WELCOME = "welcome"
RETRY_PAUSE = 0.1  # seconds between connection attempts while the server starts
ADDRESS = re.compile(r"\[(?P<ip6>[0-9A-Fa-f:.]+)\]:(?P<port6>\d{1,5})|(?P<host>[^\s:\[\]]+):(?P<port>\d{1,5})")


@dataclass(frozen=True)
class Identity:
    """One party's TLS material: the deployment CA, its certificate and private key.

    Parameters
    ----------
    ca, cert, key : Path
        PEM files: CA certificate, party certificate, party private key.
    name : str
        The party name its certificate carries (e.g. ``"party1"``).
    """

    ca: Path
    cert: Path
    key: Path
    name: str

    @classmethod
    def load(cls, certs_dir: Path | str, name: str) -> Identity:
        """Locate ``ca.pem``, ``NAME.pem`` and ``NAME.key.pem`` in a certificates directory.

        Raises
        ------
        InputError
            If any of the three files is missing.
        """
        certs_dir = Path(certs_dir)
        identity = cls(ca=certs_dir / CA_CERT, cert=cert_path(certs_dir, name), key=key_path(certs_dir, name), name=name)
        missing = [str(path) for path in (identity.ca, identity.cert, identity.key) if not path.is_file()]
        if missing:
            raise InputError(f"missing TLS file(s) for {name}: {', '.join(missing)} (make them with: ppreg keys {certs_dir})")
        return identity


def parse_address(text: str) -> tuple[str, int]:
    """Split ``"HOST:PORT"`` (or ``"[IPv6]:PORT"``) into host and port.

    Raises
    ------
    InputError
        If the text is not of that form or the port is above 65535.
    """
    match = ADDRESS.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise InputError(f"bad address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:5000 or [::1]:5000")
    host = match["ip6"] or match["host"]
    port = int(match["port6"] or match["port"])
    if port > 65535:
        raise InputError(f"bad address {text!r}: port {port} is above 65535")
    return host, port


def connect(
    address: str,
    identity: Identity,
    expect_peer: str,
    timeout: float = 30.0,
    retries_until: float = 10.0,
    *,
    channel_timeout: float | None = 120.0,
) -> Channel:
    """Open a mutually authenticated channel to a listening party.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` of the peer's :class:`Listener`.
    identity : Identity
        Our certificate and key, and the CA we trust.
    expect_peer : str
        Party name the server's certificate must carry.
    timeout : float, default 30.0
        Seconds for each TCP connect, the TLS handshake and the admission frame.
    retries_until : float, default 10.0
        Keep retrying a refused connection this many seconds, so a client started
        slightly before its server still gets through.
    channel_timeout : float or None, default 120.0
        Receive timeout of the returned channel.

    Returns
    -------
    Channel
        ``local`` is ``identity.name``, ``remote`` is ``expect_peer``.

    Raises
    ------
    PeerError
        Unreachable, wrong or untrusted server certificate, or the server refused us.
    InputError
        Bad address or unreadable certificate files.
    """
    host, port = parse_address(address)
    context = client_context(identity)
    raw = _open_tcp(host, port, timeout, time.monotonic() + retries_until, f"{expect_peer} at {address}")
    tls = tls_handshake(context, raw, timeout, f"{expect_peer} at {address}", server_side=False)
    link = SocketLink(tls, remote=expect_peer, send_timeout=channel_timeout)
    try:
        _check_server_name(link, tls, expect_peer, address, identity.name)
        _await_welcome(link, timeout, f"{expect_peer} at {address}")
    except PeerError:
        link.close()
        raise
    return Channel(link, local=identity.name, remote=expect_peer, timeout=channel_timeout)


class Listener:
    """A listening TLS endpoint that admits only certified, named parties.

    Parameters
    ----------
    address : str
        ``HOST:PORT`` to bind; port 0 picks a free port (see :attr:`port`).
    identity : Identity
        Our certificate and key, and the CA client certificates must chain to.
    timeout : float or None, default 120.0
        Bounds each TLS handshake, and is the receive timeout of accepted channels.
    """

    def __init__(self, address: str, identity: Identity, timeout: float | None = 120.0) -> None:
        host, port = parse_address(address)
        self.identity = identity
        self.timeout = timeout
        self._context = server_context(identity)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self._sock = socket.create_server((host, port), family=family)
        except OSError as exc:
            raise PeerError(f"cannot listen on {address}: {exc.strerror or exc}") from None

    @property
    def port(self) -> int:
        """The bound TCP port (useful after binding port 0)."""
        return self._sock.getsockname()[1]

    def accept(self, allowed_peers: set[str], timeout: float | None = None) -> tuple[Channel, str]:
        """Wait for one client, authenticate it and admit it if its name is allowed.

        Parameters
        ----------
        allowed_peers : set of str
            Party names that may connect (e.g. ``{"party1"}``); a single str is taken
            as one name.
        timeout : float or None, default None
            Seconds to wait for a TCP connection; None waits without limit.

        Returns
        -------
        (Channel, str)
            The channel and the client's party name.

        Raises
        ------
        PeerError
            Nobody connected in time, the TLS handshake failed (certificate not from our
            CA, expired, no certificate), or the client's name is not allowed. The
            connection is closed; the listener stays usable.
        """
        # A bare string would make `in` a substring test ("party" in "party1").
        allowed_peers = {allowed_peers} if isinstance(allowed_peers, str) else set(allowed_peers)
        raw, where = self._accept_tcp(allowed_peers, timeout)
        tls = self._handshake(raw, where)
        link = SocketLink(tls, remote=where, send_timeout=self.timeout)
        try:
            name = peer_party_name(tls.getpeercert(), where)
            link.remote = name
            self._admit(link, name, allowed_peers, where)
        except PeerError:
            link.close()
            raise
        return Channel(link, local=self.identity.name, remote=name, timeout=self.timeout), name

    def close(self) -> None:
        """Stop listening; channels already accepted stay open."""
        self._sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept_tcp(self, allowed_peers: set[str], timeout: float | None) -> tuple[socket.socket, str]:
        self._sock.settimeout(timeout)
        try:
            raw, peer_address = self._sock.accept()
        except TimeoutError:
            raise PeerError(f"no connection from {_either(allowed_peers)} within {timeout:g} s") from None
        except OSError as exc:
            raise PeerError(f"listener for {_either(allowed_peers)} failed: {exc}") from None
        _no_delay(raw)
        return raw, f"{peer_address[0]}:{peer_address[1]}"

    def _handshake(self, raw: socket.socket, where: str) -> ssl.SSLSocket:
        return tls_handshake(self._context, raw, self.timeout, f"client {where}", server_side=True)

    def _admit(self, link: SocketLink, name: str, allowed_peers: set[str], where: str) -> None:
        if name not in allowed_peers:
            refusal = f"{where} presented certificate for {name}, expected {_either(allowed_peers)}"
            message = f"{self.identity.name} refuses {name}: it expects {_either(allowed_peers)}"
            _send_quietly(link, Message("error", {"message": message}))
            raise PeerError(refusal)
        link.send_frame(encode(Message(WELCOME, {"party": self.identity.name})))


def server_context(identity: Identity) -> ssl.SSLContext:
    """TLS 1.3 server context that requires a client certificate from our CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Sessions are never resumed; tickets would only be extra state on the wire.
    context.num_tickets = 0
    _configure(context, identity)
    return context


def client_context(identity: Identity) -> ssl.SSLContext:
    """TLS 1.3 client context that presents our certificate and trusts only our CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # The party name is checked instead of the host name (see the module docstring).
    context.check_hostname = False
    _configure(context, identity)
    return context


def peer_party_name(cert: dict | None, where: str) -> str:
    """Return the one party name a verified peer certificate carries.

    The name is the subject CN and/or the SAN URI ``urn:ppreg:party:NAME``; when both
    are present they must agree.

    Raises
    ------
    PeerError
        If the certificate names no party or more than one.
    """
    cert = cert or {}
    common_names = {value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"}
    party_uris = {
        value[len(PARTY_URI_PREFIX) :]
        for kind, value in cert.get("subjectAltName", ())
        if kind == "URI" and value.startswith(PARTY_URI_PREFIX)
    }
    names = common_names | party_uris
    if len(names) != 1:
        raise PeerError(f"{where} presented a certificate naming {sorted(names) or 'no party'}, expected exactly one party")
    return names.pop()


def _configure(context: ssl.SSLContext, identity: Identity) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    try:
        context.load_verify_locations(cafile=str(identity.ca))
        context.load_cert_chain(certfile=str(identity.cert), keyfile=str(identity.key))
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"cannot load the TLS identity of {identity.name} ({identity.cert}): {exc}") from None


def _open_tcp(host: str, port: int, timeout: float, deadline: float, peer: str) -> socket.socket:
    """Connect, retrying refusals until ``deadline`` (time.monotonic) has passed."""
    while True:
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
        except ConnectionRefusedError as exc:
            if time.monotonic() >= deadline:
                raise PeerError(f"cannot reach {peer}: {exc.strerror or exc}") from None
            time.sleep(max(0.0, min(RETRY_PAUSE, deadline - time.monotonic())))
        except OSError as exc:
            raise PeerError(f"cannot reach {peer}: {exc.strerror or exc}") from None
        else:
            _no_delay(raw)
            return raw


def tls_handshake(
    context: ssl.SSLContext, raw: socket.socket, timeout: float | None, peer: str, server_side: bool
) -> ssl.SSLSocket:
    """Run the TLS handshake on a connected socket; on failure close it and raise.

    Raises
    ------
    PeerError
        ``"<peer>: certificate verify failed: <reason>"`` when we reject the peer's
        certificate, ``"<peer>: TLS handshake failed: <reason>"`` when the peer rejects
        ours or speaks another TLS version, or a timeout message.
    """
    raw.settimeout(timeout)
    tls = context.wrap_socket(raw, server_side=server_side, do_handshake_on_connect=False)
    try:
        tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        raise PeerError(f"{peer}: certificate verify failed: {exc.verify_message}") from None
    except TimeoutError:
        tls.close()
        raise PeerError(f"{peer}: no TLS handshake within {timeout:g} s") from None
    except (ssl.SSLError, OSError) as exc:
        tls.close()
        raise PeerError(f"{peer}: TLS handshake failed: {ssl_reason(exc)}") from None
    return tls


def _check_server_name(link: SocketLink, tls: ssl.SSLSocket, expect_peer: str, address: str, local: str) -> None:
    name = peer_party_name(tls.getpeercert(), address)
    if name != expect_peer:
        _send_quietly(link, Message("error", {"message": f"{local} expected {expect_peer} but reached {name}"}))
        raise PeerError(f"{address} presented certificate for {name}, expected {expect_peer}")


def _await_welcome(link: SocketLink, timeout: float, peer: str) -> None:
    """Read the server's admission frame; in TLS 1.3 this is also where we learn that
    the server rejected our certificate, because its alert arrives after our handshake."""
    try:
        message = decode(link.recv_frame(timeout))
    except ProtocolError as exc:
        raise ProtocolError(f"{peer}: {exc}") from None
    except PeerError as exc:
        raise PeerError(f"{peer} refused the connection during setup: {exc}") from None
    if message.kind == "error":
        raise PeerError(f"{peer} refused the connection: {message.meta.get('message', 'no reason given')}")
    if message.kind != WELCOME:
        raise ProtocolError(f"{peer} sent {message.kind!r} instead of {WELCOME!r} when we connected")


def _send_quietly(link: SocketLink, message: Message) -> None:
    # Telling the peer why is a courtesy; the refusal stands even if it cannot hear.
    try:
        link.send_frame(encode(message))
    except PeerError:
        pass


def _no_delay(sock: socket.socket) -> None:
    # Protocol rounds are small request/answer frames: Nagle's algorithm plus delayed
    # ACKs would add tens of milliseconds to every round.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _either(names: set[str]) -> str:
    return " or ".join(sorted(names)) or "nobody"
