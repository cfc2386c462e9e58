"""Wiring parties together in one process: threads joined by counted local channels."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator

from ppreg.errors import PeerError, PpregError
from ppreg.io.images import Image
from ppreg.secure.engines import check_available, client_for, needs_dealer, server_for
from ppreg.secure.mpc.dealer import run_dealer_session
from ppreg.secure.session import FixedParty, FixedPartyProxy
from ppreg.transport.channel import Channel, local_pair


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
def in_process_session(fixed: Image, pet: str, timeout: float = 600.0) -> Iterator[FixedPartyProxy]:
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
