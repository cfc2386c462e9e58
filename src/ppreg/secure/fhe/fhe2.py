"""fhe2 (paper PPIR(FHE)-v2): element-wise products of flattened G and replicated F.

party2 flattens G row by row (q padded to a power of two P) and encrypts it once per
level; party1 replicates each feature P times, multiplies ciphertext by plaintext slot
by slot and adds the products up — no DotProduct, no rotation, no key switching. The
reduction over slots that the paper's Sum does with rotations is done at decryption,
where it costs nothing: the sums of slots k ≡ j (mod P) are a 2P-point DFT
of 2P coefficients of the decryption (see :func:`~ppreg.secure.fhe.reveal.slot_class_sums`).
So the work is shared: party1 does N·P/S plaintext products per iteration, party2 the
decryption shares of the 2P coefficients that carry the reduction.
"""

from __future__ import annotations

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import EngineUnavailableError
from ppreg.secure.fhe.engine import FHEClient, FHEServer
from ppreg.secure.fhe.layouts import InterleavedLayout, next_power_of_two


MAX_PERIOD = 256  # party2 keeps 2P rows of the secret key (2P × N int64) per level


def interleaved_layout(rows: int, columns: int, slots: int) -> InterleavedLayout:
    if next_power_of_two(columns) > min(MAX_PERIOD, slots):
        raise EngineUnavailableError(f"fhe2 packs at most {min(MAX_PERIOD, slots)} operand columns, got {columns}")
    return InterleavedLayout(rows, columns, slots)


class FHE2Server(FHEServer):
    """Party2's half of fhe2."""

    name = "fhe2"

    def layout(self, rows: int, columns: int) -> InterleavedLayout:
        return interleaved_layout(rows, columns, self.parameters.slots)


class FHE2Client(FHEClient):
    """Party1's half of fhe2."""

    name = "fhe2"

    def layout(self, rows: int, columns: int) -> InterleavedLayout:
        return interleaved_layout(rows, columns, self.parameters.slots)

    def encrypted_product(self, features: np.ndarray, columns: np.ndarray):
        """Σ_i [G_i] ⊙ F̃_i over the ciphertexts, F̃_i the replicated feature slots; None if all zero."""
        keys, scale = self._keys, 2.0**self.parameters.feature_scale_bits
        result = None
        for ciphertext, vector in zip(self._operand, self._layout.feature_slots(features, columns)):
            if not vector.any():
                continue
            plain = keys.encode(vector, scale)
            if plain.is_zero():  # SEAL refuses products that are transparent
                continue
            term = sealapi.Ciphertext()
            keys.evaluator.multiply_plain(ciphertext, plain, term)
            if result is None:
                result = term
            else:
                keys.evaluator.add_inplace(result, term)
        return result
