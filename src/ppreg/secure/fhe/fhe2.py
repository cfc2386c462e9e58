"""fhe2 (paper PPIR(FHE)-v2): element-wise products of flattened G and replicated F.

party2 flattens G row by row (each row repeated r = ⌈m/2⌉ times, padded to a power of
two P) and encrypts it once per level; party1 puts its features in the matching slots
(two per slot: real and imaginary part), multiplies ciphertext by plaintext slot by slot
and adds the products up — no DotProduct, no rotation, no key switching. The reduction
over slots that the paper's Sum does with rotations is done at decryption, where it
costs nothing: the sums of slots k ≡ c (mod P) are a 2P-point DFT of 2P coefficients of
the decryption (see :func:`~ppreg.secure.fhe.reveal.slot_class_sums`). So the work is
shared: party1 does N·P/S plaintext products per iteration, party2 the decryption shares
of the 2P coefficients that carry the reduction, and all m·q results travel in one
ciphertext. A sparse G (B-spline) is laid out by column instead (:mod:`ppreg.secure.fhe.sparse`).
"""

from __future__ import annotations

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import EngineUnavailableError
from ppreg.secure.fhe.engine import FHEClient, FHEServer
from ppreg.secure.fhe.layouts import InterleavedLayout, Plane, next_power_of_two
from ppreg.secure.fhe.sparse import SparseLayout

MAX_PERIOD = 256  # party2 keeps 2P rows of the secret key (2P × N int64) per level


def interleaved_layout(rows: int, columns: int, slots: int, features: int = 1) -> InterleavedLayout:
    """Replicas for all ``features`` (two per replica) as far as P ≤ MAX_PERIOD allows."""
    limit = min(MAX_PERIOD, slots)
    if next_power_of_two(columns) > limit:
        raise EngineUnavailableError(f"fhe2 packs at most {limit} dense operand columns, got {columns}")
    replicas = max(1, min(-(-features // 2), limit // columns))
    return InterleavedLayout(rows, columns, slots, replicas=replicas, imaginary=features > 1)


class FHE2Server(FHEServer):
    """Party2's half of fhe2."""

    name = "fhe2"

    def dense_layout(self, rows: int, columns: int, features: int) -> InterleavedLayout:
        return interleaved_layout(rows, columns, self.parameters.slots, features)

    def sparse_layout(self, pattern: np.ndarray, columns: int) -> SparseLayout:
        return SparseLayout(pattern, columns, self.parameters.slots)


class FHE2Client(FHEClient):
    """Party1's half of fhe2."""

    name = "fhe2"
    metrics = ("ssd", "points", "bspline")

    def dense_layout(self, rows: int, columns: int, features: int) -> InterleavedLayout:
        return interleaved_layout(rows, columns, self.parameters.slots, features)

    def sparse_layout(self, pattern: np.ndarray, columns: int) -> SparseLayout:
        return SparseLayout(pattern, columns, self.parameters.slots)

    def encrypted_product(self, part_index: int, features: np.ndarray, plane: Plane):
        """Σ_i [G_i] ⊙ F̃_i over the part's ciphertexts, F̃_i the plane's slots; None if all zero."""
        keys, scale = self._keys, 2.0**self.parameters.feature_scale_bits
        part = self._layout.parts[part_index]
        result = None
        for ciphertext, vector in zip(self._operand[part_index], part.plane_slots(features, plane)):
            if not vector.any():
                continue
            plain = keys.encode(vector if vector.imag.any() else vector.real, scale)
            if plain.is_zero():  # SEAL refuses products that are transparent
                continue
            term = sealapi.Ciphertext()
            keys.evaluator.multiply_plain(ciphertext, plain, term)
            if result is None:
                result = term
            else:
                keys.evaluator.add_inplace(result, term)
        return result
