"""A :class:`~ppreg.transport.channel.Link` over a stream socket (plain or TLS).

Frames are written with ``sendall``; reading takes the 4-byte length prefix first, then
loops over short reads until the whole frame is in. The socket is usually an
``ssl.SSLSocket`` made by :mod:`ppreg.transport.tls`; tests also use plain socket pairs.
"""

from __future__ import annotations

import socket
import ssl

from ppreg.errors import PeerError, ProtocolError
from ppreg.transport.wire import PREFIX_BYTES, body_length

# A frame buffer starts at most this big and doubles while the peer keeps sending.
FIRST_ALLOCATION = 1 << 24


class SocketLink:
    """Frame link over a connected stream socket.

    Parameters
    ----------
    sock : socket.socket
        Connected socket (TLS already set up, if any). The link owns it.
    remote : str
        Peer party name, for error messages.
    send_timeout : float or None, default 120.0
        Seconds a single ``sendall`` may block on a peer that stops reading.
    """

    def __init__(self, sock: socket.socket, remote: str, send_timeout: float | None = 120.0) -> None:
        self.remote = remote
        self.send_timeout = send_timeout
        self._sock = sock
        self._closed = False
        # After a timeout or error inside a frame the stream position is lost for good.
        self._broken: str | None = None

    def send_frame(self, frame: bytes) -> None:
        """Write one whole frame; raise :class:`PeerError` if the peer is gone."""
        self._check_usable()
        try:
            self._sock.settimeout(self.send_timeout)
            self._sock.sendall(frame)
        except TimeoutError:
            self._broken = f"{self.remote} stopped reading"
            raise PeerError(f"{self.remote} did not take our data within {self.send_timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            self._broken = f"sending to {self.remote} failed"
            raise PeerError(_closed_or_failed(self.remote, exc)) from None

    def recv_frame(self, timeout: float | None) -> bytes:
        """Read one whole frame (prefix included).

        Raises
        ------
        PeerError
            On timeout (``"no answer from party2 within 120 s"``) or when the peer
            closes, even in the middle of a frame (``"party2 closed the connection"``).
        ProtocolError
            If the prefix announces a frame above the size limit.
        """
        self._check_usable()
        prefix = bytearray(PREFIX_BYTES)
        self._read_into(memoryview(prefix), timeout, frame_started=False)
        try:
            length = body_length(bytes(prefix))
        except ProtocolError:
            self._broken = f"{self.remote} sent a bad frame length"
            raise
        return bytes(self._read_body(prefix, PREFIX_BYTES + length, timeout))

    def _read_body(self, prefix: bytearray, total: int, timeout: float | None) -> bytearray:
        """Read the rest of a ``total``-byte frame into a buffer that grows (doubling) only
        as bytes arrive, so a length prefix that lies costs no memory it does not deliver."""
        frame = bytearray(min(total, FIRST_ALLOCATION))
        frame[:PREFIX_BYTES] = prefix
        filled = PREFIX_BYTES
        while filled < total:
            if filled == len(frame):
                frame.extend(bytes(min(len(frame), total - len(frame))))
            with memoryview(frame) as view, view[filled:] as rest:
                self._read_into(rest, timeout, frame_started=True)
            filled = len(frame)
        return frame

    def close(self) -> None:
        """Shut the connection down so the peer sees end-of-stream at once."""
        if self._closed:
            return
        self._closed = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already reset by the peer: nothing left to tell it
        self._sock.close()

    def _check_usable(self) -> None:
        if self._closed:
            raise PeerError(f"connection to {self.remote} is already closed")
        if self._broken is not None:
            raise PeerError(f"connection to {self.remote} is unusable: {self._broken}")

    def _read_into(self, view: memoryview, timeout: float | None, frame_started: bool) -> None:
        received = 0
        self._sock.settimeout(timeout)
        while received < len(view):
            chunk = self._recv_into(view[received:], timeout, frame_started or received > 0)
            if chunk == 0:
                self._broken = f"{self.remote} closed the connection"
                raise PeerError(f"{self.remote} closed the connection")
            received += chunk

    def _recv_into(self, view: memoryview, timeout: float | None, mid_frame: bool) -> int:
        try:
            return self._sock.recv_into(view)
        except TimeoutError:
            if mid_frame:
                self._broken = f"timed out inside a frame from {self.remote}"
            raise PeerError(f"no answer from {self.remote} within {timeout:g} s") from None
        except (ssl.SSLError, OSError) as exc:
            self._broken = f"receiving from {self.remote} failed"
            raise PeerError(_closed_or_failed(self.remote, exc)) from None


def _closed_or_failed(remote: str, exc: BaseException) -> str:
    """Word a socket error the way a user understands it."""
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError, BrokenPipeError, ConnectionResetError)):
        return f"{remote} closed the connection"
    return f"connection to {remote} failed: {ssl_reason(exc)}"


def ssl_reason(exc: BaseException) -> str:
    """Short text of a socket or TLS error, e.g. ``"tlsv1 alert unknown ca"``."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.lower().replace("_", " ")
    return str(exc)
