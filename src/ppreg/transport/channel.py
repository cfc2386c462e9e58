"""Channels: the only way two parties talk, and the one place traffic is counted.

A :class:`Channel` turns messages into frames (:mod:`ppreg.transport.wire`) and hands
them to a :class:`Link`, which only moves whole frames. Links exist for threads of one
process (:func:`local_pair`) and for TCP + mutual TLS (:mod:`ppreg.transport.tls`).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import numpy as np

from ppreg.errors import PeerError, ProtocolError
from ppreg.transport.wire import Message, decode, encode


class Link(Protocol):
    """Moves whole frames between two endpoints."""

    def send_frame(self, frame: bytes) -> None:
        """Deliver one frame; raise :class:`PeerError` if the peer is gone."""

    def recv_frame(self, timeout: float | None) -> bytes:
        """Return the next frame; raise :class:`PeerError` on timeout or closed peer."""

    def close(self) -> None:
        """Release the link; the peer's pending and later receives fail."""


@dataclass
class TrafficStats:
    """Frame bytes and messages through one channel end.

    Bytes are whole frames as :func:`~ppreg.transport.wire.encode` makes them (prefix
    included); TLS record overhead and handshakes are not counted.
    """

    bytes_sent: int = 0
    bytes_received: int = 0
    messages_sent: int = 0
    messages_received: int = 0

    def copy(self) -> TrafficStats:
        """Return a snapshot, e.g. to diff before and after one iteration."""
        return replace(self)

    def __sub__(self, other: TrafficStats) -> TrafficStats:
        if not isinstance(other, TrafficStats):
            return NotImplemented
        return TrafficStats(
            bytes_sent=self.bytes_sent - other.bytes_sent,
            bytes_received=self.bytes_received - other.bytes_received,
            messages_sent=self.messages_sent - other.messages_sent,
            messages_received=self.messages_received - other.messages_received,
        )

    def as_dict(self) -> dict:
        """Return the counters as a plain dict (for the JSON report)."""
        return asdict(self)


class Channel:
    """Counts every byte and message in one place; the only way parties talk.

    Parameters
    ----------
    link : Link
        Moves frames to and from the peer.
    local, remote : str
        Party names of this end and of the peer, used in error messages.
    timeout : float or None, default 120.0
        Seconds :meth:`recv` waits for a frame before raising :class:`PeerError`;
        None waits forever. May be changed later through the ``timeout`` attribute.

    Notes
    -----
    One thread uses a channel end at a time; the counters are guarded anyway so a
    reporting thread may read ``stats.copy()`` safely.
    """

    def __init__(self, link: Link, local: str, remote: str, timeout: float | None = 120.0) -> None:
        self.local = local
        self.remote = remote
        self.timeout = timeout
        self.stats = TrafficStats()
        self._link = link
        self._stats_lock = threading.Lock()

    def send(self, kind: str, meta: dict | None = None, **arrays: np.ndarray) -> int:
        """Send one message.

        Parameters
        ----------
        kind : str
            Message type, e.g. ``"level"``.
        meta : dict, optional
            JSON-able values (see :class:`~ppreg.transport.wire.Message`).
        **arrays : ndarray
            Named numeric arrays (names ``kind`` and ``meta`` are taken by the
            parameters; build a :class:`Message` and use :meth:`send_message` for those).

        Returns
        -------
        int
            Size of the frame sent, in bytes.
        """
        return self.send_message(Message(kind=kind, meta=dict(meta or {}), arrays=arrays))

    def send_message(self, message: Message) -> int:
        """Send an already built message; return the frame size in bytes."""
        frame = encode(message)
        self._link.send_frame(frame)
        with self._stats_lock:
            self.stats.bytes_sent += len(frame)
            self.stats.messages_sent += 1
        return len(frame)

    def recv(self, kind: str | None = None) -> Message:
        """Receive the next message.

        Parameters
        ----------
        kind : str, optional
            The kind the protocol expects here; anything else is a protocol error.

        Returns
        -------
        Message

        Raises
        ------
        PeerError
            On timeout, closed connection, or when the peer sent an ``"error"``
            message (text: ``"<remote>: <its message>"``).
        ProtocolError
            On a malformed frame or a message of another kind than ``kind``.
        """
        frame = self._link.recv_frame(self.timeout)
        with self._stats_lock:
            self.stats.bytes_received += len(frame)
            self.stats.messages_received += 1
        message = decode(frame)
        if message.kind == "error":
            raise PeerError(f"{self.remote}: {message.meta.get('message', 'unspecified error')}")
        if kind is not None and message.kind != kind:
            raise ProtocolError(f"expected a {kind!r} message from {self.remote}, got {message.kind!r}")
        return message

    def send_error(self, message: str) -> None:
        """Tell the peer why we stop, if it can still hear; never raises."""
        try:
            self.send("error", {"message": str(message)})
        except Exception:  # noqa: BLE001 - best effort on a path that is already failing
            pass

    def close(self) -> None:
        """Close the link; the peer's receives then raise :class:`PeerError`."""
        self._link.close()

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Channel({self.local!r} -> {self.remote!r}, {self.stats})"


_CLOSED = None  # queued to tell the other end that this end closed


class _QueueLink:
    """One end of an in-process link: frames go through thread-safe queues."""

    def __init__(self, inbox: queue.Queue, remote: str) -> None:
        self.remote = remote
        self.peer: _QueueLink | None = None
        self._inbox = inbox
        self._closed = False
        self._peer_closed = False

    def send_frame(self, frame: bytes) -> None:
        if self._closed:
            raise PeerError(f"connection to {self.remote} is already closed")
        if self._peer_closed or self.peer is None or self.peer._closed:
            raise PeerError(f"{self.remote} closed the connection")
        self.peer._inbox.put(bytes(frame))

    def recv_frame(self, timeout: float | None) -> bytes:
        if self._closed:
            raise PeerError(f"connection to {self.remote} is already closed")
        if self._peer_closed:
            raise PeerError(f"{self.remote} closed the connection")
        try:
            frame = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise PeerError(f"no answer from {self.remote} within {timeout:g} s") from None
        if frame is _CLOSED:
            self._peer_closed = True
            raise PeerError(f"{self.remote} closed the connection")
        return frame

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.peer is not None:
            self.peer._inbox.put(_CLOSED)


def local_pair(name_a: str, name_b: str, timeout: float | None = 120.0) -> tuple[Channel, Channel]:
    """Join two in-process channel ends, for parties running in threads of one process.

    Every message is really encoded to bytes and decoded again, so traffic counts and
    wire-format errors are exactly those of the TCP transport.

    Parameters
    ----------
    name_a, name_b : str
        Party names of the two ends.
    timeout : float or None, default 120.0
        Receive timeout of both ends, in seconds.

    Returns
    -------
    (Channel, Channel)
        The end held by ``name_a`` and the end held by ``name_b``.
    """
    end_a = _QueueLink(queue.Queue(), remote=name_b)
    end_b = _QueueLink(queue.Queue(), remote=name_a)
    end_a.peer, end_b.peer = end_b, end_a
    return (
        Channel(end_a, local=name_a, remote=name_b, timeout=timeout),
        Channel(end_b, local=name_b, remote=name_a, timeout=timeout),
    )
