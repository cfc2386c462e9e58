"""The message protocol shared by fhe1 and fhe2 (DESIGN.md §2, docs/fhe.md).

::

    party1 (features F)                          party2 (operand G, secret key)
                                        ←  fhe_keys {parameters} context[, galois]   (first level only)
                                        ←  fhe_level {rows, columns, ciphertexts[, trace_order]}
                                        ←  fhe_operand × B  (G encrypted once per level)
    per iteration:
      [m_u] = (c0, c1) = Fᵀ·[G] per part and plane (engine-specific), re-randomised
      fhe_product {planes per part} c1 × U (coefficients)  →
                                        ←  fhe_reveal shares (c1·s)_t + η_t at each part's agreed t
      R = decode(c0_t + shares)          (c0 never leaves party1)

A layout has one or more *parts* (a dense G: one; a sparse G: class blocks and a dense
part, :mod:`ppreg.secure.fhe.sparse`), each with its own revealed coefficients and
flooding σ; per product party1 fills one or more *planes* per part (which features go
where, :func:`~ppreg.secure.fhe.layouts.plan_planes`), one result ciphertext each.
Subclasses give the layouts and the homomorphic product; everything else is here.
"""

from __future__ import annotations

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import EngineUnavailableError, ProtocolError
from ppreg.io.images import Image
from ppreg.secure.base import EngineClient, EngineServer, LevelContext
from ppreg.secure.fhe.keys import KeyOwner, PublicKeys
from ppreg.secure.fhe.layouts import Plane, plan_planes
from ppreg.secure.fhe.params import CKKSParameters, check_magnitude, flood_std
from ppreg.secure.fhe.reveal import (
    ResultShare,
    add_noise,
    check_residues,
    flood_noise,
    key_rows,
    partial_decryption,
    secure_generator,
)
from ppreg.secure.fhe.sparse import SparseLayout
from ppreg.similarity.base import DenseOperand, FixedOperand, SparseOperand
from ppreg.similarity.operands import operand_pattern
from ppreg.transport.channel import Channel, Message

BATCH_BYTES = 32 * 2**20  # operand ciphertexts per message, so no frame grows unbounded
MAX_PLANES = 64  # result ciphertexts per part in one product (bounds what one request costs party2)
MAX_FEATURES = 64  # feature columns party2 may announce for a dense operand
KEY_ROW_LIMIT = 64  # up to this many revealed coefficients: ternary dot products; beyond: one NTT product


def _as_blob(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8)


def _blob_bytes(message: Message, name: str) -> bytes:
    array = message.arrays.get(name)
    if array is None or array.dtype != np.uint8 or array.ndim != 1:
        raise ProtocolError(f"{message.kind!r} message lacks a byte array {name!r}")
    return array.tobytes()


class FHEServer(EngineServer):
    """Party2's half: owns the keys, encrypts G once per level, returns flooded decryption shares.

    Parameters
    ----------
    parameters : CKKSParameters, optional
        Encryption parameters (defaults: N = 8192, moduli 60/60/60 bits).
    """

    name = "fhe"

    def __init__(self, parameters: CKKSParameters | None = None) -> None:
        self.parameters = parameters or CKKSParameters()
        self._keys: KeyOwner | None = None
        self._secret: np.ndarray | None = None
        self._parts: list[_RevealedPart] = []
        self._level_index = -1
        self._rng = secure_generator()

    def dense_layout(self, rows: int, columns: int, features: int):
        raise NotImplementedError

    def sparse_layout(self, pattern: np.ndarray, columns: int) -> SparseLayout:
        raise EngineUnavailableError(f"--pet {self.name} serves dense operands only (not the B-spline operand)")

    def galois_steps(self, layout) -> tuple[int, ...]:
        """Slot rotations party1 needs for ``layout``; their Galois keys go with the first level's keys."""
        return ()

    def layout_announcement(self, layout) -> dict:
        """What party1 needs, beyond the operand's shape, to rebuild ``layout``."""
        return {}

    def start_level(self, channel: Channel, level_index: int, operand: FixedOperand, fixed_level: Image) -> None:
        layout, part_operands, announced = self._layout_for(operand)  # refuses unknown operands before any work
        steps = self.galois_steps(layout)
        if self._keys is None:
            self._keys = KeyOwner(self.parameters, steps)
            self._secret = self._keys.secret_coefficients()
            channel.send("fhe_keys", {"engine": self.name, "parameters": self.parameters.to_meta()},
                         context=_as_blob(self._keys.public_context()), galois=_as_blob(self._keys.galois_keys()))
        elif not set(steps) <= set(self._keys.rotation_steps):
            raise RuntimeError(f"level {level_index} needs rotations {steps} beyond the session's Galois keys")
        scale, bound = self.parameters.product_scale, self.parameters.feature_bound
        self._parts = []
        for part, part_operand in zip(layout.parts, part_operands):
            sigma = flood_std(self.parameters, part.summed_products, part.summed_ciphertexts, part.amplification,
                              part.feature_factor)
            check_magnitude(self.parameters, self._keys.modulus, part.largest_coefficient(part_operand, scale, bound), sigma)
            rows = key_rows(self._secret, part.positions) if len(part.positions) <= KEY_ROW_LIMIT else None
            self._parts.append(_RevealedPart(part.positions, sigma, rows))
        self._level_index = level_index
        rows, columns = operand.shape
        channel.send("fhe_level", {"level": level_index, "rows": rows, "columns": columns,
                                   "ciphertexts": layout.n_ciphertexts, **announced,
                                   **self.layout_announcement(layout)})
        self._send_operand(channel, (vector for part, part_operand in zip(layout.parts, part_operands)
                                     for vector in part.operand_slots(part_operand)))

    def _layout_for(self, operand: FixedOperand):
        """The layout, each part's operand, and what party1 needs to rebuild the layout."""
        if isinstance(operand, SparseOperand):
            layout = self.sparse_layout(operand.columns, operand.n_columns)
            return layout, layout.part_operands(operand.values, operand.columns), {"pattern": layout.digest}
        if not isinstance(operand, DenseOperand):  # e.g. MI: refuse before densifying anything
            raise EngineUnavailableError(f"--pet {self.name} does not serve {type(operand).__name__}")
        dense = np.asarray(operand.dense_matrix(), dtype=np.float64)
        layout = self.dense_layout(*dense.shape, operand.feature_columns)
        return layout, [dense], {"features": operand.feature_columns}

    def _send_operand(self, channel: Channel, slot_vectors) -> None:
        scale = 2.0**self.parameters.operand_scale_bits
        blobs: list[bytes] = []
        for vector in slot_vectors:
            blobs.append(self._keys.encrypt(vector, scale))
            if sum(map(len, blobs)) >= BATCH_BYTES:
                self._send_batch(channel, blobs)
                blobs = []
        if blobs:
            self._send_batch(channel, blobs)

    @staticmethod
    def _send_batch(channel: Channel, blobs: list[bytes]) -> None:
        channel.send("fhe_operand", {}, blob=_as_blob(b"".join(blobs)), sizes=np.array([len(b) for b in blobs]))

    def serve_product(self, channel: Channel, message: Message) -> None:
        if message.kind != "fhe_product" or not self._parts:
            raise ProtocolError(f"unexpected {message.kind!r} message for the {self.name} engine")
        if message.meta.get("level") != self._level_index:
            raise ProtocolError(f"party1 asks for level {message.meta.get('level')}, party2 serves {self._level_index}")
        planes = message.meta.get("planes")
        if (not isinstance(planes, list) or len(planes) != len(self._parts)
                or not all(isinstance(p, int) and not isinstance(p, bool) and 0 <= p <= MAX_PLANES for p in planes)):
            raise ProtocolError(f"party1 asks for planes {planes!r}; the level has {len(self._parts)} parts")
        keys = self._keys
        c1 = message.arrays.get("c1")
        check_residues(c1, (sum(planes), len(keys.primes), keys.degree), keys.primes, 1, "party1's result polynomials")
        units = [part for part, count in zip(self._parts, planes) for _ in range(count)]
        shares = [add_noise(self._shares(polynomial, part), flood_noise(part.sigma, len(part.positions), self._rng),
                            keys.primes) for polynomial, part in zip(c1, units)]
        empty = np.zeros((0, len(keys.primes)), dtype=np.uint64)
        channel.send("fhe_reveal", {}, shares=np.concatenate(shares) if shares else empty)

    def _shares(self, c1: np.ndarray, part: _RevealedPart) -> np.ndarray:
        """(c1·s)_t at the part's positions, before flooding; shape (n_pos, L)."""
        if part.key_rows is not None:
            return partial_decryption(part.key_rows, c1, self._keys.primes)
        return np.ascontiguousarray(self._keys.times_secret(c1)[:, part.positions].T)

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()


class _RevealedPart:
    """What party2 keeps per layout part: the coefficients it reveals, σ, and key rows for few positions."""

    def __init__(self, positions: np.ndarray, sigma: float, rows: np.ndarray | None) -> None:
        self.positions, self.sigma, self.key_rows = positions, sigma, rows


class FHEClient(EngineClient):
    """Party1's half: receives [G], computes [Fᵀ·G], sends its re-randomised c1s, adds c0 to party2's shares."""

    name = "fhe"
    metrics: tuple[str, ...] = ("ssd", "points")

    def __init__(self) -> None:
        self.parameters: CKKSParameters | None = None
        self._keys: PublicKeys | None = None
        self._share: ResultShare | None = None
        self._layout = None
        self._operand: list[list] = []  # ciphertexts per part
        self._level_index = -1

    def dense_layout(self, rows: int, columns: int, features: int):
        raise NotImplementedError

    def sparse_layout(self, pattern: np.ndarray, columns: int) -> SparseLayout:
        raise EngineUnavailableError(f"--pet {self.name} supports dense operands only")

    def encrypted_product(self, part_index: int, features: np.ndarray, plane: Plane):
        """[Σ_x F(x)·G(x, ·)] for one part and plane, one ciphertext at the data level; None if all zero."""
        raise NotImplementedError

    def prepare_level(self) -> None:
        """Per-level precomputation after the operand arrived (optional)."""

    def start_level(self, channel: Channel, level: LevelContext) -> None:
        if level.request.metric not in self.metrics:
            raise EngineUnavailableError(f"--pet {self.name} supports {' and '.join(self.metrics)} only, "
                                         f"not {level.request.metric!r}")
        if self._keys is None:
            self._receive_keys(channel.recv("fhe_keys"))
        meta = channel.recv("fhe_level").meta
        layout = self._layout_for(level, meta)
        rows, columns = level.operand_shape
        if (meta.get("rows"), meta.get("columns"), meta.get("ciphertexts")) != (rows, columns, layout.n_ciphertexts):
            raise ProtocolError(f"party2 announced an operand {meta} that does not match the level ({rows} × {columns})")
        self._layout, self._level_index = layout, level.index
        ciphertexts = self._receive_operand(channel, layout.n_ciphertexts)
        bounds = np.cumsum([0] + [part.n_ciphertexts for part in layout.parts])
        self._operand = [ciphertexts[start:stop] for start, stop in zip(bounds[:-1], bounds[1:])]
        self.prepare_level()

    def _layout_for(self, level: LevelContext, meta: dict):
        rows, columns = level.operand_shape
        pattern = operand_pattern(level.request, level.grid, level.sample_index)
        if pattern is not None:
            layout = self.sparse_layout(pattern, columns)
            if meta.get("pattern") != layout.digest:
                raise ProtocolError("party2 laid out a different sparsity pattern than party1 derived")
            return layout
        features = meta.get("features")
        if not isinstance(features, int) or isinstance(features, bool) or not 1 <= features <= MAX_FEATURES:
            raise ProtocolError(f"party2 announced {features!r} feature columns")
        return self.dense_layout(rows, columns, features)

    def _receive_keys(self, message: Message) -> None:
        if message.meta.get("engine") != self.name:
            raise ProtocolError(f"party2 runs engine {message.meta.get('engine')!r}, party1 runs {self.name!r}")
        self.parameters = CKKSParameters.from_meta(message.meta.get("parameters", {}))
        galois = message.arrays.get("galois")
        self._keys = PublicKeys(self.parameters, _blob_bytes(message, "context"),
                                galois.tobytes() if galois is not None else b"")
        self._share = ResultShare(self._keys)

    def _receive_operand(self, channel: Channel, expected: int) -> list:
        scale = 2.0**self.parameters.operand_scale_bits
        ciphertexts: list = []
        while len(ciphertexts) < expected:
            message = channel.recv("fhe_operand")
            blob, sizes = _blob_bytes(message, "blob"), np.asarray(message.arrays.get("sizes", []), dtype=np.int64)
            if sizes.ndim != 1 or np.any(sizes <= 0) or sizes.sum() != len(blob) or len(ciphertexts) + len(sizes) > expected:
                raise ProtocolError("party2 sent a malformed batch of operand ciphertexts")
            offsets = np.concatenate([[0], np.cumsum(sizes)])
            for start, stop in zip(offsets[:-1], offsets[1:]):
                ciphertexts.append(self._keys.load_ciphertext(blob[start:stop], scale, "party2's operand ciphertext"))
        return ciphertexts

    def product(self, channel: Channel, features: np.ndarray, selection: np.ndarray) -> np.ndarray:
        features, selection, gains = self._check_request(features, selection)
        units, c1s, counts = [], [], []
        for index, part in enumerate(self._layout.parts):
            planes = plan_planes(selection, part.column_index, part.replicas, part.imaginary)
            counts.append(len(planes))
            for plane in planes:
                result = self.encrypted_product(index, features, plane)
                if result is None:  # every feature was zero: the product is an encryption of zero
                    result = sealapi.Ciphertext()
                    self._keys.encryptor.encrypt_zero(self._keys.data_parms_id, result)
                    result.scale = self.parameters.product_scale
                c1, kept = self._share.split(result, part.positions)
                units.append((part, plane, kept))
                c1s.append(c1)
        revealed = np.zeros(selection.shape)
        if not units:
            return revealed
        channel.send("fhe_product", {"level": self._level_index, "planes": counts}, c1=np.stack(c1s))
        shares = channel.recv("fhe_reveal").arrays.get("shares")
        expected = sum(len(kept) for _, _, kept in units)
        if not isinstance(shares, np.ndarray) or shares.ndim != 2 or len(shares) != expected:
            raise ProtocolError(f"party2 returned decryption shares of shape {getattr(shares, 'shape', None)}, "
                                f"expected {expected} rows")
        offset = 0
        for part, plane, kept in units:
            coefficients = self._share.combine(shares[offset:offset + len(kept)], kept)
            offset += len(kept)
            plane.scatter(part.decode(coefficients, self.parameters.product_scale), part.column_index, revealed)
        return np.where(selection, revealed * gains[:, None], 0.0)

    def _check_request(self, features: np.ndarray, selection: np.ndarray):
        """F (N × m) scaled into the agreed bound, the selection (m × q), and the powers of two undone on R."""
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[0] != self._layout.rows:
            raise ValueError(f"features have shape {features.shape}, the level has {self._layout.rows} rows")
        if not np.all(np.isfinite(features)):
            raise ValueError("features must be finite")
        selection = np.asarray(selection, dtype=bool)
        if selection.shape != (features.shape[1], self._layout.columns):
            raise ValueError(f"selection has shape {selection.shape}, expected {(features.shape[1], self._layout.columns)}")
        # Columns beyond the bound the flooding assumes are divided by a power of two (exact),
        # and R's rows multiplied back; a relative 1e-6 over the bound is float rounding.
        peaks = np.max(np.abs(features), axis=0, initial=0.0) / (self.parameters.feature_bound * (1.0 + 1e-6))
        gains = np.exp2(np.ceil(np.log2(np.maximum(peaks, 1.0))))
        return features / gains[None, :], selection, gains

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()
