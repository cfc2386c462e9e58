"""The dealer's part of the local-CC protocol (:mod:`ppreg.secure.mpc.cc`).

party1 announces each level's public geometry (grid shape, window radius) and asks once per
iteration; the dealer answers with Z₁ for X on the grid, for c, r1, r2 and Σc² per slot (all
N slots: it never learns the support S nor its size) and party1's share bits of the AND
that reveals S, all computed from the two parties' seeds alone. It never sees any data.
Being data-independent, an iteration's tensors are computed ahead, right after the previous
ones are sent (iteration 0's when the level is announced), while the parties build their
level, warp their images and update their fields (party1 says
how many iterations the level has, so no set is computed for nothing unless a level stops
early on convergence).
"""

from __future__ import annotations

import math

from ppreg.errors import ProtocolError
from ppreg.secure.mpc.cc import CCScales, dealer_shares
from ppreg.similarity.cc import window_size
from ppreg.transport.channel import Channel, Message

CC_DEALER_KINDS = ("cc_level", "cc_iteration")
MAX_RADIUS = 8
MAX_ITERATIONS = 100_000


class CCDealer:
    """Serves the CC requests of one session (the seeds are the session's)."""

    def __init__(self, seeds: dict[str, bytes], max_elements: int):
        self.seeds, self.max_elements = seeds, max_elements
        self.level: int | None = None
        self.ahead: tuple | None = None  # ((level, iteration), tensors) computed ahead

    def serve(self, channel: Channel, message: Message) -> None:
        if message.kind == "cc_level":
            self._start_level(message)
            return
        level, iteration = int(message.meta["level"]), int(message.meta["iteration"])
        if level != self.level or iteration < 0:
            raise ProtocolError("the dealer got a CC iteration that does not match the current level")
        channel.send("cc_shares", {"level": level, "iteration": iteration}, **self._shares(iteration))
        if iteration + 1 < self.iterations:
            self.ahead = (level, iteration + 1), self._compute(iteration + 1)

    def _shares(self, iteration: int) -> dict:
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] == (self.level, iteration):
            return ahead[1]
        return self._compute(iteration)

    def _compute(self, iteration: int) -> dict:
        return dealer_shares(self.seeds["party1"], self.seeds["party2"], self.level, iteration, self.shape,
                             self.radius, self.scales)

    def _start_level(self, message: Message) -> None:
        shape = tuple(int(v) for v in message.meta["shape"])
        radius = int(message.meta["radius"])
        if not 2 <= len(shape) <= 3 or min(shape) < 1 or math.prod(shape) > self.max_elements:
            raise ProtocolError(f"the dealer refuses a CC level of shape {shape}")
        if not 1 <= radius <= MAX_RADIUS:
            raise ProtocolError(f"the dealer refuses a CC window radius {radius}")
        iterations = int(message.meta.get("iterations", 0))
        if not 0 <= iterations <= MAX_ITERATIONS:
            raise ProtocolError(f"the dealer refuses a CC level of {iterations} iterations")
        self.level, self.shape, self.radius, self.iterations = int(message.meta["level"]), shape, radius, iterations
        self.scales = CCScales.for_window(window_size(radius, len(shape)))
        # the parties now build their level (pyramid, field resampling): time to compute iteration 0
        self.ahead = ((self.level, 0), self._compute(0)) if iterations > 0 else None
