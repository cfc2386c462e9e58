"""Wiring parties together in one process: threads joined by counted local channels."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator

from ppreg.errors import InputError, PeerError, PpregError
from ppreg.io.images import Image
from ppreg.io.points import PointSet
from ppreg.secure.engines import check_available, client_for, needs_dealer, server_for
from ppreg.secure.mpc.dealer import run_dealer_session
from ppreg.secure.session import FixedParty, FixedPartyProxy
from ppreg.transport.channel import Channel, local_pair
from ppreg.transport.tls import Identity, Listener, connect


class PartyThread(threading.Thread):
    """Runs one party's loop and keeps its exception for the caller."""

    def __init__(self, name: str, target, *args):
        super().__init__(name=name, daemon=True)
        self._target_fn, self._args = target, args
        self.error: BaseException | None = None
        self.result = None

    def run(self) -> None:
        try:
            self.result = self._target_fn(*self._args)
        except BaseException as error:  # surfaced by the caller after join
            self.error = error


def new_session_id() -> str:
    return secrets.token_hex(8)


@contextlib.contextmanager
def in_process_session(fixed: Image | PointSet, pet: str, timeout: float = 600.0) -> Iterator[FixedPartyProxy]:
    """Party2 (and the dealer, when the engine needs one) in threads of this process.

    Every message still crosses a :class:`~ppreg.transport.channel.Channel` as bytes.
    """
    check_available(pet)
    session = new_session_id()
    channels: list[Channel] = []
    threads: list[PartyThread] = []

    def pair(a: str, b: str) -> tuple[Channel, Channel]:
        ends = local_pair(a, b, timeout=timeout)
        channels.extend(ends)
        return ends

    party1_end, party2_end = pair("party1", "party2")
    dealer_for_party1 = dealer_for_party2 = None
    if needs_dealer(pet):
        dealer_for_party1, dealer_side_party1 = pair("party1", "dealer")
        dealer_for_party2, dealer_side_party2 = pair("party2", "dealer")
        threads.append(PartyThread("dealer", run_dealer_session, dealer_side_party1, lambda: dealer_side_party2))
        threads[-1].start()
    party2 = FixedParty(fixed, {pet: lambda meta: server_for(pet, dealer_for_party2, str(meta.get("session")))})
    threads.append(PartyThread("party2", party2.serve, party2_end))
    threads[-1].start()
    try:
        proxy = FixedPartyProxy(channel=party1_end, engine=client_for(pet, dealer_for_party1, session),
                                session=session, dealer_channel=dealer_for_party1)
        yield proxy
    except PeerError:
        _shutdown(channels, threads)
        for thread in threads:
            if isinstance(thread.error, PpregError) and not isinstance(thread.error, PeerError):
                raise thread.error from None  # in one process, party2's input error is the user's error
        raise
    finally:
        _shutdown(channels, threads)


def _shutdown(channels: list[Channel], threads: list[PartyThread]) -> None:
    for channel in channels:
        channel.close()
    for thread in threads:
        thread.join(timeout=30)


@contextlib.contextmanager
def remote_session(peer: str, dealer: str | None, certs_dir, pet: str, timeout: float = 600.0) -> Iterator[FixedPartyProxy]:
    """Party1 talking to a party2 (``ppreg serve``) and, for mpc, a dealer over mutual TLS."""
    check_available(pet)
    identity = Identity.load(certs_dir, "party1")
    session = new_session_id()
    dealer_channel = None
    if needs_dealer(pet):
        if dealer is None:
            raise InputError(f"--pet {pet} needs --dealer HOST:PORT")
        dealer_channel = connect(dealer, identity, "dealer", channel_timeout=timeout)
    channels = [c for c in (dealer_channel,) if c is not None]
    try:
        engine = client_for(pet, dealer_channel, session)
        channel = connect(peer, identity, "party2", channel_timeout=timeout)
        channels.append(channel)
        yield FixedPartyProxy(channel=channel, engine=engine, session=session, dealer_channel=dealer_channel)
    finally:
        for channel in channels:
            channel.close()


def serve_fixed(fixed: Image | PointSet, listener: Listener, certs_dir, dealer: str | None, allowed_pets: tuple[str, ...],
                on_session=None, sessions: int | None = None, reveal_noise: float = 0.0) -> int:
    """Party2's server loop: one registration after another. Returns sessions served.

    A failed session (peer died, bad request) is reported through ``on_session`` and
    the loop goes on; with ``sessions`` set, it stops after that many sessions and
    re-raises the last failure. ``reveal_noise`` is the least σ party2 applies to the
    revealed joint terms (a client may ask for more).
    """
    identity = Identity.load(certs_dir, "party2")

    def engine_factory(pet: str):
        def build(meta: dict):
            dealer_channel = None
            if needs_dealer(pet):
                if dealer is None:
                    raise InputError(f"party2 was started without --dealer; it cannot serve --pet {pet}")
                dealer_channel = connect(dealer, identity, "dealer")
            return server_for(pet, dealer_channel, str(meta.get("session")))
        return build

    party2 = FixedParty(fixed, {pet: engine_factory(pet) for pet in allowed_pets}, allowed_pets, reveal_noise)
    return _serve_sessions(listener, party2.serve, on_session, sessions)


def _serve_sessions(listener: Listener, serve_one, on_session, sessions: int | None) -> int:
    """Accept party1 connections one after another and serve each with ``serve_one``.

    A refused connection (bad certificate, wrong name) or a failed session is reported
    and the loop goes on; with ``sessions`` set, the last failure is re-raised.
    """
    served = 0
    while sessions is None or served < sessions:
        served += 1
        channel = None
        try:
            channel, _ = listener.accept({"party1"})
            report = serve_one(channel)
            if on_session is not None:
                on_session(served, report, None)
        except PpregError as error:
            if on_session is not None:
                on_session(served, None, error)
            if sessions is not None and served >= sessions:
                raise
        except Exception as error:  # a bug hit by one session must not take the server down
            if on_session is not None:
                on_session(served, None, PpregError(f"internal error: {type(error).__name__}: {error}"))
            if sessions is not None and served >= sessions:
                raise
        finally:
            if channel is not None:
                channel.close()
    return served


def serve_dealer(listener: Listener, on_session=None, sessions: int | None = None) -> int:
    """The dealer's server loop: sessions one after another (party1 connects first)."""

    def serve_one(first: Channel) -> dict:
        products = run_dealer_session(first, lambda: listener.accept({"party2"}, timeout=120)[0])
        return {"products": products}

    return _serve_sessions(listener, serve_one, on_session, sessions)
