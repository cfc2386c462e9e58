"""The dealer (the paper's crypto provider): correlated randomness, never data.

It gives party1 and party2 one 32-byte seed each. From these, U (party1's masks) and
V (party2's per-level masks) and Z₂ (party2's share of UᵀV) are expanded by the
parties themselves; the dealer sends party1 only Z₁ = UᵀV − Z₂ for the selected
entries of each product. It learns shapes and counters, nothing else.
"""

from __future__ import annotations

import numpy as np

from ppreg.errors import ProtocolError
from ppreg.io.images import Grid
from ppreg.secure.mpc.cc_dealer import CC_DEALER_KINDS, CCDealer
from ppreg.secure.mpc.engine import LevelOperand, u_label, unpack_selection, v_label, z_label
from ppreg.secure.mpc.prg import MaskStream, new_seed
from ppreg.secure.mpc.ring import ring_sub
from ppreg.similarity.base import LevelRequest
from ppreg.similarity.operands import operand_columns, operand_pattern
from ppreg.transport.channel import Channel

MAX_DEALER_ELEMENTS = 2**31  # refuse absurd shapes from a misbehaving peer


class Dealer:
    """Serves one session: a party1 channel and a party2 channel."""

    def __init__(self) -> None:
        self.seeds = {"party1": new_seed(), "party2": new_seed()}
        self._level: int | None = None
        self._level_masks: LevelOperand | None = None  # V of the current level
        self._cc: CCDealer | None = None  # ppreg ants sessions

    def greet(self, channel: Channel, expected_role: str) -> str:
        """Receive a party's hello, check its role, send its seed; returns the session id."""
        hello = channel.recv("hello")
        role = hello.meta.get("role")
        if role != expected_role:
            raise ProtocolError(f"the dealer expected {expected_role}, got {role!r}")
        channel.send("seed", {}, seed=np.frombuffer(self.seeds[role], dtype=np.uint8))
        return str(hello.meta.get("session"))

    def serve_party1(self, channel: Channel) -> int:
        """Answer triple requests until party1 says bye; returns the number served."""
        served = 0
        while True:
            message = channel.recv()
            if message.kind == "bye":
                return served
            if message.kind == "level":
                self._start_level(message)
                continue
            if message.kind in CC_DEALER_KINDS:
                self._cc = self._cc or CCDealer(self.seeds, MAX_DEALER_ELEMENTS)
                self._cc.serve(channel, message)
                continue
            if message.kind != "triples":
                raise ProtocolError(f"the dealer got an unexpected {message.kind!r} message")
            # One answer per request, computed on demand (concurrently with party2's share):
            # nothing is sent for a product party1 never makes, e.g. at a level's end.
            channel.send("triples", share=self._party1_share(message))
            served += 1

    def _party1_share(self, message) -> np.ndarray:
        level, counter = int(message.meta["level"]), int(message.meta["counter"])
        n, m, q = (int(message.meta[key]) for key in ("n", "m", "q"))
        if min(n, m, q) < 1 or max(n * m, n * q) > MAX_DEALER_ELEMENTS:
            raise ProtocolError(f"the dealer refuses a product of shape ({n}×{m})ᵀ·({n}×{q})")
        if level != self._level or (n, q) != (self._level_masks.n_rows, self._level_masks.n_columns):
            raise ProtocolError("the dealer got a product that does not match the current level")
        selection = unpack_selection(message.arrays["selection"], m, q)
        masks_party1 = MaskStream(self.seeds["party1"], u_label(level, counter)).uint64((n, m))
        product = self._level_masks.transpose_product(masks_party1)
        share_party2 = MaskStream(self.seeds["party2"], z_label(level, counter)).uint64((m, q))
        return ring_sub(product, share_party2)[selection]

    def _start_level(self, message) -> None:
        """Expand party2's level masks V (shape from public geometry only)."""
        request = LevelRequest.from_meta(message.meta["request"])
        grid = None if message.meta["grid"] is None else Grid.from_meta(message.meta["grid"])
        samples = message.arrays.get("samples")
        n_rows = int(message.meta["rows"])
        if n_rows > MAX_DEALER_ELEMENTS:
            raise ProtocolError("the dealer refuses an oversized level")
        columns = None if grid is None else operand_pattern(request, grid, samples)
        if columns is not None and len(columns) != n_rows:
            raise ProtocolError("the dealer got a sparse level whose samples do not match its row count")
        n_columns = operand_columns(request)
        shape = (n_rows, n_columns) if columns is None else columns.shape
        self._level = int(message.meta["index"])
        masks = MaskStream(self.seeds["party2"], v_label(self._level)).uint64(shape)
        self._level_masks = LevelOperand(masks, columns, n_columns)


def run_dealer_session(first: Channel, second_factory) -> int:
    """Serve one session: greet the first connection (party1, which asks first), then the
    second (party2, which connects once party1 has said hello to it); check both name the
    same session; answer party1's requests. Returns the number of products served."""
    dealer = Dealer()
    session_party1 = dealer.greet(first, "party1")
    second = second_factory()
    session_party2 = dealer.greet(second, "party2")
    if session_party1 != session_party2:
        raise ProtocolError("party1 and party2 named different sessions to the dealer")
    try:
        return dealer.serve_party1(first)
    finally:
        second.close()
