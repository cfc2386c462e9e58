"""Wiring parties together: in one process (threads + counted local channels)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ppreg.errors import PeerError, PpregError
from ppreg.io.images import Image
from ppreg.secure.engines import check_available, client_for, server_for
from ppreg.secure.session import FixedParty, FixedPartyProxy
from ppreg.transport.channel import local_pair


class _PartyThread(threading.Thread):
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


@contextlib.contextmanager
def in_process_session(fixed: Image, pet: str, timeout: float = 600.0) -> Iterator[FixedPartyProxy]:
    """Party2 (and the dealer, when the engine needs one) in threads of this process.

    Every message still crosses a :class:`~ppreg.transport.channel.Channel` as bytes.
    """
    check_available(pet)
    party1_end, party2_end = local_pair("party1", "party2", timeout=timeout)
    party2 = FixedParty(fixed, {pet: lambda: server_for(pet)})
    thread = _PartyThread("party2", party2.serve, party2_end)
    thread.start()
    proxy = FixedPartyProxy(channel=party1_end, engine=client_for(pet))
    try:
        yield proxy
    except PeerError:
        party1_end.close()
        thread.join(timeout=30)
        if isinstance(thread.error, PpregError) and not isinstance(thread.error, PeerError):
            raise thread.error from None  # in one process, party2's input error is the user's error
        raise
    finally:
        party1_end.close()
        thread.join(timeout=30)
        party2_end.close()
