"""The ``mpc`` engine: a one-sided product with a dealer, over Z_2^64 (docs/mpc.md).

F (N × m) is party1's, G (N × q) party2's and constant for a level. With fixed-point
encodings F̃, G̃, masks U (party1 ↔ dealer seed, fresh per product) and V (party2 ↔
dealer seed, one per level), and the dealer's W = UᵀV split as W = Z₁ + Z₂:

  once per level   party2 → party1   G̃ − V                      (N·q ring elements)
  per product      party1 → party2   E = F̃ − U                  (N·m)
                   dealer → party1   Z₁ (selected entries)       Z₂ expands from a seed
                   party2 → party1   Eᵀ·G̃ + Z₂ (selected)
  party1 adds Uᵀ·(G̃ − V) + Z₁ + (Eᵀ·G̃ + Z₂) = F̃ᵀ·G̃ and decodes at scale 2^(2f).

Every value that crosses the wire is masked by a fresh uniform ring element, except the
selected entries of the result, which party1 is entitled to. No truncation is needed
because the result is revealed at scale 2^(2f); the error bound is
``fixed.product_error_bound``. With ``--reveal-noise σ`` party2 adds Gaussian noise
(encoded at scale 2^(2f)) to its share Eᵀ·G̃ + Z₂, so the revealed entries carry it
(ppreg.secure.reveal_noise).
"""

from __future__ import annotations

import numpy as np

from ppreg.errors import ProtocolError
from ppreg.io.images import Image
from ppreg.secure.base import EngineClient, EngineServer, LevelContext
from ppreg.secure.mpc.fixed import DEFAULT_FRAC_BITS, check_product_budget, decode_product, encode
from ppreg.secure.mpc.prg import MaskStream
from ppreg.secure.mpc.ring import RING_DTYPE, ring_add, ring_sub, ring_transpose_matmul_narrow
from ppreg.secure.mpc.sparse import SparsePattern
from ppreg.secure.reveal_noise import RevealNoise
from ppreg.similarity.base import FixedOperand, SparseOperand
from ppreg.similarity.operands import operand_pattern
from ppreg.transport.channel import Channel, Message


def dealer_hello(dealer: Channel, role: str, session: str) -> bytes:
    """Introduce ourselves to the dealer and receive our 32-byte seed."""
    dealer.send("hello", {"role": role, "session": session})
    reply = dealer.recv("seed")
    seed = bytes(np.asarray(reply.arrays["seed"], dtype=np.uint8))
    if len(seed) != 32:
        raise ProtocolError("the dealer sent a malformed seed")
    return seed


def power_of_two_bound(value: float) -> float:
    """Smallest power of two ≥ value: reveals only the magnitude of party2's operand."""
    return float(2.0 ** np.ceil(np.log2(max(value, 2.0**-16))))


def u_label(level: int, counter: int) -> str:
    return f"U/{level}/{counter}"


def v_label(level: int) -> str:
    return f"V/{level}"


def z_label(level: int, counter: int) -> str:
    return f"Z/{level}/{counter}"


class MPCClient(EngineClient):
    """Party1's half."""

    name = "mpc"

    def __init__(self, dealer: Channel, session: str, frac_bits: int = DEFAULT_FRAC_BITS):
        self.dealer, self.frac_bits = dealer, frac_bits
        self.seed = dealer_hello(dealer, "party1", session)
        self._operand = None
        self._level = None
        self._counter = 0

    def start_level(self, channel: Channel, level: LevelContext) -> None:
        columns = operand_pattern(level.request, level.grid, level.sample_index)
        # The dealer needs sample positions only to derive a public sparsity pattern; for a
        # dense operand the row count suffices (GMS indices depend on the moving image).
        samples = {} if level.sample_index is None or columns is None else {
            "samples": np.asarray(level.sample_index, dtype=np.int64)}
        grid = None if level.grid is None else level.grid.to_meta()  # None: a point set of ``rows`` points
        self.dealer.send("level", {"index": level.index, "request": level.request.to_meta(), "grid": grid,
                                   "rows": level.operand_shape[0]}, **samples)
        message = channel.recv("mpc_level")
        masked = np.asarray(message.arrays["masked_operand"])
        expected = level.operand_shape if columns is None else columns.shape
        if masked.dtype != RING_DTYPE or masked.shape != expected:
            raise ProtocolError(f"party2 sent a masked operand {masked.dtype}{masked.shape}, expected uint64{expected}")
        self._operand = LevelOperand(masked, columns, level.operand_shape[1])
        self._operand_bound = float(message.meta["operand_bound"])
        self._level, self._counter = level.index, 0

    def product(self, channel: Channel, features: np.ndarray, selection: np.ndarray) -> np.ndarray:
        n, m = features.shape
        q = self._operand.n_columns
        check_product_budget(n, float(np.max(np.abs(features), initial=0.0)), self._operand_bound, self.frac_bits)
        counter, self._counter = self._counter, self._counter + 1
        mask = MaskStream(self.seed, u_label(self._level, counter)).uint64((n, m))
        header = {"level": self._level, "counter": counter}
        selection_bytes = np.packbits(selection.ravel())
        # party2 first (its answer is the critical path), then the dealer, whose Z₁ depends
        # on masks only; both work while we compute our own share Uᵀ·(G̃ − V).
        channel.send("mpc_product", header, masked_features=ring_sub(encode(features, self.frac_bits), mask),
                     selection=selection_bytes)
        self.dealer.send("triples", {**header, "n": n, "m": m, "q": q}, selection=selection_bytes)
        count = int(selection.sum())
        own_share = self._operand.transpose_product(mask)[selection]
        dealer_share = self._receive_entries(self.dealer, "triples", count)
        peer_share = self._receive_entries(channel, "mpc_share", count)
        revealed = ring_add(ring_add(own_share, dealer_share), peer_share)
        result = np.zeros((m, q))
        result[selection] = decode_product(revealed, self.frac_bits)
        return result

    @staticmethod
    def _receive_entries(channel: Channel, kind: str, count: int) -> np.ndarray:
        values = np.asarray(channel.recv(kind).arrays["share"])
        if values.dtype != RING_DTYPE or values.shape != (count,):
            raise ProtocolError(f"{channel.remote} sent a share {values.dtype}{values.shape}, expected uint64({count},)")
        return values

    def close(self) -> None:
        self.dealer.send("bye")
        self.dealer.close()


class MPCServer(EngineServer):
    """Party2's half."""

    name = "mpc"
    supports_reveal_noise = True

    def __init__(self, dealer: Channel, session: str, frac_bits: int = DEFAULT_FRAC_BITS):
        self.dealer, self.frac_bits = dealer, frac_bits
        self.seed = dealer_hello(dealer, "party2", session)
        self._operand = None
        self._noise: RevealNoise | None = None

    def start_level(self, channel: Channel, level_index: int, operand: FixedOperand, fixed_level: Image) -> None:
        if isinstance(operand, SparseOperand):
            encoded, columns = encode(operand.values, self.frac_bits), operand.columns
        else:
            encoded, columns = encode(operand.dense_matrix(), self.frac_bits), None
        self._operand = LevelOperand(encoded, columns, operand.shape[1])
        self._noise = RevealNoise(self.reveal_noise, operand) if self.reveal_noise > 0 else None
        self._level = level_index
        mask = MaskStream(self.seed, v_label(level_index)).uint64(encoded.shape)
        channel.send("mpc_level", {"level": level_index, "operand_bound": power_of_two_bound(operand.max_abs())},
                     masked_operand=ring_sub(encoded, mask))

    def serve_product(self, channel: Channel, message: Message) -> None:
        if message.kind != "mpc_product":
            raise ProtocolError(f"party2 expected an mpc_product message, got {message.kind!r}")
        level, counter = int(message.meta["level"]), int(message.meta["counter"])
        masked = np.asarray(message.arrays["masked_features"])
        n, q = self._operand.n_rows, self._operand.n_columns
        if level != self._level or masked.dtype != RING_DTYPE or masked.ndim != 2 or masked.shape[0] != n:
            raise ProtocolError("party1's masked features do not match the level")
        m = masked.shape[1]
        selection = unpack_selection(message.arrays["selection"], m, q)
        share = self._operand.transpose_product(masked)
        share = ring_add(share, MaskStream(self.seed, z_label(level, counter)).uint64((m, q)))
        if self._noise is not None:
            share = ring_add(share, encode(self._noise.sample(m), 2 * self.frac_bits))
        # No meta: the channel is ordered and party1 waits for exactly this answer, so the
        # frame is the s shares plus 11 bytes (docs/mpc.md, "the protocol's own minimum").
        channel.send("mpc_share", share=share[selection])

    def close(self) -> None:
        self.dealer.close()


class LevelOperand:
    """A level-constant ring operand (G̃, G̃ − V or V), dense or with a public pattern,
    stored in the layout that makes ``leftᵀ·operand`` fast."""

    def __init__(self, values: np.ndarray, columns: np.ndarray | None, n_columns: int):
        self.n_rows, self.n_columns = values.shape[0], n_columns
        if columns is None:
            self._pattern, self._values = None, np.ascontiguousarray(values.T)
        else:
            self._pattern = SparsePattern(columns, n_columns)
            self._values = self._pattern.sort_values(values)

    def transpose_product(self, left: np.ndarray) -> np.ndarray:
        """leftᵀ·operand mod 2^64 for left (N, m) uint64 → (m, q)."""
        if self._pattern is None:
            return ring_transpose_matmul_narrow(left, self._values)
        return self._pattern.transpose_product(left, self._values)


def unpack_selection(packed: np.ndarray, m: int, q: int) -> np.ndarray:
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8))
    if bits.size < m * q:
        raise ProtocolError("selection mask too short")
    return bits[: m * q].reshape(m, q).astype(bool)
