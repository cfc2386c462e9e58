"""The application protocol between party1 (moving) and party2 (fixed).

party1                                   party2
  hello {pet, dim, version}        →
                                   ←     hello {grid of the fixed image}
  level {request, samples}         →     builds its level image and operand G
                                   ←     engine-specific level messages
                                   ←     level_ready {summary arrays}
  product … (engine-specific)      ↔     (per iteration)
  bye                              →
                                   ←     bye {party2's traffic and time}

Party2 never receives the moving image, only what the engine sends (masked or
encrypted features, except for the clear engine, where party2 *sends* its image).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import numpy as np

from ppreg import __version__
from ppreg.core.pyramid import pyramid_level, shrink_grid
from ppreg.errors import InputError, PpregError, ProtocolError
from ppreg.io.images import Grid, Image
from ppreg.io.points import PointSet
from ppreg.secure.base import EngineClient, EngineServer, LevelContext
from ppreg.secure.reveal_noise import check_reveal_noise
from ppreg.similarity.base import LevelRequest, normalize_intensity
from ppreg.similarity.operands import build_fixed_operand, operand_columns
from ppreg.similarity.points import POINTCLOUD_MODEL, POINTS_METRIC
from ppreg.transport.channel import Channel, Message, TrafficStats

PROTOCOL = 1
SYN_MODEL = "ants"  # party2 runs its own half (ppreg.registration.syn)


@dataclass
class Traffic:
    """Bytes and messages per party, as seen from party1's channels."""

    party1: int = 0
    party2: int = 0
    dealer: int = 0
    rounds: int = 0

    def as_dict(self) -> dict:
        return {"party1": self.party1, "party2": self.party2, "dealer": self.dealer, "rounds": self.rounds}


def traffic_between(peer: tuple[TrafficStats, TrafficStats | None], before: tuple[TrafficStats, TrafficStats | None]) -> Traffic:
    """Traffic from ``before`` to ``peer`` (snapshots of party1's party2 and dealer channels)."""
    party2_now, dealer_now = peer
    party2_then, dealer_then = before
    delta = party2_now - party2_then
    traffic = Traffic(party1=delta.bytes_sent, party2=delta.bytes_received, rounds=delta.messages_sent)
    if dealer_now is not None:
        dealer_delta = dealer_now - dealer_then
        traffic.party1 += dealer_delta.bytes_sent
        traffic.dealer = dealer_delta.bytes_received
        traffic.rounds += dealer_delta.messages_sent
    return traffic


@dataclass
class FixedPartyProxy:
    """Party1's handle on party2: the only way the registration code reaches the fixed image."""

    channel: Channel
    engine: EngineClient
    session: str
    dealer_channel: Channel | None = None
    fixed_grid: Grid | None = None
    fixed_points: int | None = None  # number of party2's points (point-set sessions)
    _level: LevelContext | None = None
    party2_report: dict = field(default_factory=dict)
    reveal_noise: float = 0.0  # σ party1 asks for; after hello, the σ party2 applies (≥ the request)

    def hello(self, dim: int, model: str) -> Grid | None:
        self.channel.send("hello", {"pet": self.engine.name, "dim": dim, "model": model, "session": self.session,
                                    "protocol": PROTOCOL, "version": __version__,
                                    "reveal_noise": self.reveal_noise})
        reply = self.channel.recv("hello")
        if reply.meta.get("protocol") != PROTOCOL:
            raise ProtocolError(f"party2 speaks protocol {reply.meta.get('protocol')}, we speak {PROTOCOL}")
        applied = reply.meta.get("reveal_noise")
        if not isinstance(applied, (int, float)) or isinstance(applied, bool) or applied < self.reveal_noise:
            raise ProtocolError(f"party2 did not confirm --reveal-noise {self.reveal_noise:g} (it answered {applied!r})")
        self.reveal_noise = float(applied)
        self.fixed_grid = Grid.from_meta(reply.meta["grid"]) if "grid" in reply.meta else None
        self.fixed_points = int(reply.meta["points"]) if "points" in reply.meta else None
        return self.fixed_grid

    def level_grid(self, shrink: int) -> Grid:
        """The fixed grid at a shrink factor (computed locally, as party2 does)."""
        return self.fixed_grid if shrink == 1 else shrink_grid(self.fixed_grid, shrink)

    def start_level(self, index: int, request: LevelRequest, sample_index: np.ndarray | None) -> dict:
        """Open a level; returns party2's per-level summary (public to party1)."""
        if self.fixed_points is not None:
            grid, n_rows = None, self.fixed_points
        else:
            grid = self.level_grid(request.shrink)
            n_rows = grid.n_voxels if sample_index is None else len(sample_index)
        arrays = {} if sample_index is None else {"samples": np.asarray(sample_index, dtype=np.uint32)}
        self.channel.send("level", {"index": index, "request": request.to_meta()}, **arrays)
        self._level = LevelContext(index, request, grid, sample_index, (n_rows, operand_columns(request)))
        self.engine.start_level(self.channel, self._level)
        ready = self.channel.recv("level_ready")
        return {name: np.asarray(value, dtype=np.float64) for name, value in ready.arrays.items()}

    def product(self, features: np.ndarray, selection: np.ndarray) -> np.ndarray:
        """Fᵀ·G for the current level (selected entries only)."""
        if features.shape[0] != self._level.operand_shape[0]:
            raise ValueError(f"features have {features.shape[0]} rows, the level has {self._level.operand_shape[0]}")
        return self.engine.product(self.channel, features, selection)

    def session_traffic(self) -> Traffic:
        """Everything sent since the channels opened (dealer handshake included)."""
        empty = (TrafficStats(), None if self.dealer_channel is None else TrafficStats())
        return traffic_between(self.snapshot(), empty)

    def snapshot(self) -> tuple[TrafficStats, TrafficStats | None]:
        dealer = self.dealer_channel.stats.copy() if self.dealer_channel is not None else None
        return self.channel.stats.copy(), dealer

    def close(self) -> dict:
        """Say goodbye; returns party2's own report (its bytes and busy time)."""
        self.channel.send("bye")
        self.party2_report = dict(self.channel.recv("bye").meta)
        self.engine.close()
        self.channel.close()
        return self.party2_report


class FixedParty:
    """Party2: serves registrations of its fixed image (or point set); never sees party1's."""

    def __init__(self, fixed: Image | PointSet, engines: dict, allowed_pets: tuple[str, ...] | None = None,
                 reveal_noise: float = 0.0):
        if isinstance(fixed, Image):
            fixed = Image(array=normalize_intensity(fixed.array)[0], grid=fixed.grid)
        self.fixed = fixed
        self.engines = engines  # pet name → callable(hello meta) returning an EngineServer
        self.allowed_pets = allowed_pets
        self.reveal_noise = check_reveal_noise(reveal_noise)  # party2's floor; party1 may ask for more
        self.busy_seconds = 0.0

    def serve(self, channel: Channel) -> dict:
        """Run one registration session to its end; returns party2's report."""
        engine = None
        self.busy_seconds = 0.0
        try:
            with party1_input("hello"):
                engine = self._handshake(channel)
            while True:
                message = channel.recv() if self.model != SYN_MODEL else self._serve_syn(channel, engine)
                started = time.perf_counter()
                if message.kind == "bye":
                    report = {"bytes_sent": channel.stats.bytes_sent, "bytes_received": channel.stats.bytes_received,
                              "busy_seconds": self.busy_seconds, "pet": engine.name}
                    channel.send("bye", report)
                    return report
                with party1_input(message.kind):
                    if message.kind == "level":
                        self._start_level(channel, engine, message)
                    else:
                        engine.serve_product(channel, message)
                self.busy_seconds += time.perf_counter() - started
        except PpregError as error:
            # Tell party1 why we stop: a bad frame or request, or the dealer gone. When
            # party1's own connection is what failed, nobody hears it (send_error is quiet).
            channel.send_error(str(error))
            raise
        except Exception as error:  # report the failure to party1 instead of hanging it
            channel.send_error(f"party2 failed: {type(error).__name__}: {error}")
            raise
        finally:
            if engine is not None:
                engine.close()

    def _serve_syn(self, channel: Channel, engine: EngineServer):
        """SyN is symmetric: party2 runs its own half of the registration until party1's bye."""
        from ppreg.registration.syn import serve_syn

        self.busy_seconds = serve_syn(self.fixed, channel, engine)
        return Message(kind="bye")

    def _handshake(self, channel: Channel) -> EngineServer:
        hello = channel.recv("hello")
        self.model = str(hello.meta.get("model"))
        pet = str(hello.meta.get("pet"))
        if hello.meta.get("protocol") != PROTOCOL:
            raise ProtocolError(f"party1 speaks protocol {hello.meta.get('protocol')}, party2 speaks {PROTOCOL}")
        if self.allowed_pets is not None and pet not in self.allowed_pets:
            raise InputError(f"party2 refuses --pet {pet}; it serves {', '.join(self.allowed_pets)}")
        holds_points = isinstance(self.fixed, PointSet)
        if (hello.meta.get("model") == POINTCLOUD_MODEL) != holds_points:
            raise InputError("party2 serves a point set, use ppreg pointcloud" if holds_points
                             else "party2 serves an image, not a point set")
        what = "point set" if holds_points else "image"
        if int(hello.meta.get("dim", -1)) != self.fixed.dim:
            raise InputError(f"party1's data is {hello.meta.get('dim')}D but party2's fixed {what} is {self.fixed.dim}D")
        if pet not in self.engines:
            raise InputError(f"party2 has no engine {pet!r}")
        try:
            requested = check_reveal_noise(hello.meta.get("reveal_noise", 0.0))
        except InputError as error:
            raise ProtocolError(f"party1 sent a bad hello: {error}") from None
        reveal_noise = max(requested, self.reveal_noise)
        engine = self.engines[pet](hello.meta)
        try:
            engine.set_reveal_noise(reveal_noise)
        except PpregError:
            engine.close()
            raise
        shape = {"points": self.fixed.count} if holds_points else {"grid": self.fixed.grid.to_meta()}
        channel.send("hello", {**shape, "protocol": PROTOCOL, "version": __version__, "reveal_noise": reveal_noise})
        return engine

    def _start_level(self, channel: Channel, engine: EngineServer, message) -> None:
        request = LevelRequest.from_meta(message.meta["request"])
        samples = message.arrays.get("samples")
        if isinstance(self.fixed, PointSet):
            if request.metric != POINTS_METRIC or samples is not None:
                raise ProtocolError("party2 holds a point set: only unsampled 'points' levels are possible")
            fixed_level = self.fixed  # a point set has no pyramid
        else:
            check_level_request(request, self.fixed.grid)
            fixed_level = pyramid_level(self.fixed, request.shrink, request.sigma)
        if samples is not None:
            samples = np.asarray(samples, dtype=np.int64)
            if samples.ndim != 1 or samples.size == 0 or samples.min() < 0 or samples.max() >= fixed_level.grid.n_voxels:
                raise ProtocolError("sample indices out of range for the level grid")
        operand = build_fixed_operand(request, fixed_level, samples)
        engine.start_level(channel, int(message.meta["index"]), operand, fixed_level)
        channel.send("level_ready", {}, **operand.summary)


@contextlib.contextmanager
def party1_input(kind: str):
    """A message from party1 with content party2 cannot use (a missing key, a value of the
    wrong type) fails the session as a protocol error, named to party1, not as a crash."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, OverflowError) as error:
        raise ProtocolError(f"malformed {kind!r} message from party1 ({type(error).__name__}: {error})") from None


def check_level_request(request: LevelRequest, grid: Grid) -> None:
    """Refuse a level party2 should not compute: shrink or smoothing beyond the image, or
    an operand with absurdly many columns (a bad or hostile request would exhaust memory)."""
    largest = max(grid.size)
    if not 1 <= request.shrink <= largest or not 0 <= request.sigma <= largest:
        raise ProtocolError(f"level request out of range: shrink {request.shrink}, sigma {request.sigma} "
                            f"for an image of {largest} voxels")
    if request.model.dim != grid.dim or operand_columns(request) > max(grid.n_voxels, 4096):
        raise ProtocolError("level request does not fit party2's image (dimension or operand size)")
