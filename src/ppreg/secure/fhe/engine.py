"""The message protocol shared by fhe1 and fhe2 (DESIGN.md §2, docs/fhe.md).

::

    party1 (features F)                          party2 (operand G, secret key)
                                        ←  fhe_keys {parameters} context[, galois]   (first level only)
                                        ←  fhe_level {rows, columns, ciphertexts}
                                        ←  fhe_operand × B  (G encrypted once per level)
    per iteration:
      [m] = (c0, c1) = Fᵀ·[G] (engine-specific), re-randomised
      fhe_product  c1 (coefficients)     →
                                        ←  fhe_reveal shares (c1·s)_t + η_t at the agreed t
      R = decode(c0_t + shares)          (c0 never leaves party1)

Subclasses give the layout and the homomorphic product; everything else is here.
"""

from __future__ import annotations

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import EngineUnavailableError, ProtocolError
from ppreg.io.images import Image
from ppreg.secure.base import EngineClient, EngineServer, LevelContext
from ppreg.secure.fhe.keys import KeyOwner, PublicKeys
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
from ppreg.similarity.base import DenseOperand, FixedOperand
from ppreg.transport.channel import Channel, Message

BATCH_BYTES = 32 * 2**20  # operand ciphertexts per message, so no frame grows unbounded


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
    rotation_steps: tuple[int, ...] = ()

    def __init__(self, parameters: CKKSParameters | None = None) -> None:
        self.parameters = parameters or CKKSParameters()
        self._keys: KeyOwner | None = None
        self._secret: np.ndarray | None = None
        self._rows: np.ndarray | None = None
        self._layout = None
        self._level_index = -1
        self._sigma = 0.0
        self._rng = secure_generator()

    def layout(self, rows: int, columns: int):
        raise NotImplementedError

    def start_level(self, channel: Channel, level_index: int, operand: FixedOperand, fixed_level: Image) -> None:
        if not isinstance(operand, DenseOperand):  # MI and B-spline operands: refuse before densifying
            raise EngineUnavailableError(f"--pet {self.name} serves the dense SSD operand only, not {type(operand).__name__}")
        dense = np.asarray(operand.dense_matrix(), dtype=np.float64)
        if self._keys is None:
            self._keys = KeyOwner(self.parameters, self.rotation_steps)
            self._secret = self._keys.secret_coefficients()
            channel.send("fhe_keys", {"engine": self.name, "parameters": self.parameters.to_meta()},
                         context=_as_blob(self._keys.public_context()), galois=_as_blob(self._keys.galois_keys()))
        layout = self.layout(*dense.shape)
        self._sigma = flood_std(self.parameters, layout.summed_products, layout.n_ciphertexts, layout.amplification)
        largest = layout.largest_coefficient(dense, self.parameters.product_scale, self.parameters.feature_bound)
        check_magnitude(self.parameters, self._keys.modulus, largest, self._sigma)
        self._layout, self._rows, self._level_index = layout, key_rows(self._secret, layout.positions), level_index
        channel.send("fhe_level", {"level": level_index, "rows": layout.rows, "columns": layout.columns,
                                   "ciphertexts": layout.n_ciphertexts})
        self._send_operand(channel, layout.operand_slots(dense))

    def _send_operand(self, channel: Channel, slot_vectors: np.ndarray) -> None:
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
        if message.kind != "fhe_product" or self._layout is None:
            raise ProtocolError(f"unexpected {message.kind!r} message for the {self.name} engine")
        if message.meta.get("level") != self._level_index:
            raise ProtocolError(f"party1 asks for level {message.meta.get('level')}, party2 serves {self._level_index}")
        keys = self._keys
        c1 = message.arrays.get("c1")
        check_residues(c1, (len(keys.primes), keys.degree), keys.primes, 0, "party1's result polynomial")
        shares = self._shares(c1)
        channel.send("fhe_reveal", {}, shares=add_noise(shares, flood_noise(self._sigma, len(shares), self._rng), keys.primes))

    def _shares(self, c1: np.ndarray) -> np.ndarray:
        """(c1·s)_t at the agreed positions, before flooding; shape (n_pos, L)."""
        return partial_decryption(self._rows, c1, self._keys.primes)

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()


class FHEClient(EngineClient):
    """Party1's half: receives [G], computes [Fᵀ·G], sends its re-randomised c1, adds c0 to party2's shares."""

    name = "fhe"

    def __init__(self) -> None:
        self.parameters: CKKSParameters | None = None
        self._keys: PublicKeys | None = None
        self._share: ResultShare | None = None
        self._layout = None
        self._operand: list = []
        self._level_index = -1

    def layout(self, rows: int, columns: int):
        raise NotImplementedError

    def encrypted_product(self, features: np.ndarray, columns: np.ndarray):
        """[Σ_x F(x)·G(x, j)] for the selected columns, as one ciphertext at the data level."""
        raise NotImplementedError

    def prepare_level(self) -> None:
        """Per-level precomputation after the operand arrived (optional)."""

    def start_level(self, channel: Channel, level: LevelContext) -> None:
        if level.request.metric not in ("ssd", "points"):
            raise EngineUnavailableError(f"--pet {self.name} supports --metric ssd and point sets only, "
                                         f"not {level.request.metric!r}")
        if self._keys is None:
            self._receive_keys(channel.recv("fhe_keys"))
        meta = channel.recv("fhe_level").meta
        rows, columns = level.operand_shape
        layout = self.layout(rows, columns)
        if (meta.get("rows"), meta.get("columns"), meta.get("ciphertexts")) != (rows, columns, layout.n_ciphertexts):
            raise ProtocolError(f"party2 announced an operand {meta} that does not match the level ({rows} × {columns})")
        self._layout, self._level_index = layout, level.index
        self._operand = self._receive_operand(channel, layout.n_ciphertexts)
        self.prepare_level()

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
        if np.ndim(features) == 2 and features.shape[1] > 1:  # one masked round per feature column
            return np.vstack([self.product(channel, features[:, [j]], selection[[j]]) for j in range(features.shape[1])])
        features, columns = self._check_request(features, selection)
        result = self.encrypted_product(features, columns)
        if result is None:  # every feature was zero: the product is an encryption of zero
            result = sealapi.Ciphertext()
            self._keys.encryptor.encrypt_zero(self._keys.data_parms_id, result)
            result.scale = self.parameters.product_scale
        c1, kept = self._share.split(result, self._layout.positions)
        channel.send("fhe_product", {"level": self._level_index}, c1=c1)
        reply = channel.recv("fhe_reveal")
        coefficients = self._share.combine(reply.arrays.get("shares"), kept)
        values = self._layout.decode(coefficients, self.parameters.product_scale)
        return np.where(selection, values[None, :], 0.0)

    def _check_request(self, features: np.ndarray, selection: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        features = np.asarray(features, dtype=np.float64)
        if features.ndim != 2 or features.shape[1] != 1:
            raise EngineUnavailableError(f"--pet {self.name} computes Fᵀ·G for one feature column only (got {features.shape})")
        if features.shape[0] != self._layout.rows:
            raise ValueError(f"features have {features.shape[0]} rows, the level has {self._layout.rows}")
        bound = self.parameters.feature_bound
        # a relative 1e-6 over the bound (float rounding) changes the flooding margin negligibly
        if not np.all(np.isfinite(features)) or np.max(np.abs(features), initial=0.0) > bound * (1.0 + 1e-6):
            raise ValueError(f"features must be finite and within ±{bound:g} (the bound agreed for noise flooding)")
        columns = np.asarray(selection, dtype=bool).reshape(-1)
        if columns.size != self._layout.columns:
            raise ValueError(f"selection has {columns.size} entries, G has {self._layout.columns} columns")
        return features[:, 0], columns

    def close(self) -> None:
        if self._keys is not None:
            self._keys.close()
