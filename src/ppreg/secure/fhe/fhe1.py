"""fhe1 (paper PPIR(FHE)-v1): chunk-by-chunk DotProducts with rotations.

party2 encrypts each column of G in chunks of S = N/2 rows; per iteration party1
computes, for every chunk i and column j, the DotProduct ⟨[G_ij], F_i⟩ — a plaintext
multiplication followed by log2(S) rotate-and-add steps that leave the sum in every
slot — and adds the chunks up, as the paper does. Column j's sum is then the constant
coefficient Δ·R_j of its ciphertext; multiplying by the monomial X^j moves it to
coefficient j, so the q results travel back in one ciphertext.
"""

from __future__ import annotations

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.secure.fhe.engine import FHEClient, FHEServer
from ppreg.secure.fhe.layouts import ColumnChunkLayout
from ppreg.secure.fhe.sealbytes import ciphertext_words


def rotation_steps(slots: int) -> tuple[int, ...]:
    """Rotations 1, 2, 4, …, S/2: rotate-and-add over them sums all S slots."""
    return tuple(1 << i for i in range(slots.bit_length() - 1))


class FHE1Server(FHEServer):
    """Party2's half of fhe1 (also shares the Galois keys of :func:`rotation_steps`)."""

    name = "fhe1"

    @property
    def rotation_steps(self) -> tuple[int, ...]:
        return rotation_steps(self.parameters.slots)

    def layout(self, rows: int, columns: int) -> ColumnChunkLayout:
        return ColumnChunkLayout(rows, columns, self.parameters.slots)


class FHE1Client(FHEClient):
    """Party1's half of fhe1."""

    name = "fhe1"

    def __init__(self) -> None:
        super().__init__()
        self._monomials: dict[int, object] = {}

    def layout(self, rows: int, columns: int) -> ColumnChunkLayout:
        return ColumnChunkLayout(rows, columns, self.parameters.slots)

    def prepare_level(self) -> None:
        for power in range(1, self._layout.columns):
            if power not in self._monomials:
                self._monomials[power] = monomial_plaintext(self._keys, power)

    def encrypted_product(self, features: np.ndarray, columns: np.ndarray):
        """Σ_j X^j · Σ_i DotProduct([G_ij], F_i); None if every term is zero."""
        keys, scale, q = self._keys, 2.0**self.parameters.feature_scale_bits, self._layout.columns
        sums: list = [None] * q
        for chunk, vector in enumerate(self._layout.feature_slots(features)):
            plain = keys.encode(vector, scale) if vector.any() else None
            if plain is None or plain.is_zero():
                continue
            for column in np.flatnonzero(columns):
                term = self._dot_product(self._operand[chunk * q + column], plain)
                if sums[column] is None:
                    sums[column] = term
                else:
                    keys.evaluator.add_inplace(sums[column], term)
        return self._pack(sums)

    def _dot_product(self, ciphertext, plain):
        """[⟨g, f⟩ in every slot]: multiply, then rotate-and-add over all slots."""
        evaluator, galois = self._keys.evaluator, self._keys.galois
        total = sealapi.Ciphertext()
        evaluator.multiply_plain(ciphertext, plain, total)
        for step in rotation_steps(self.parameters.slots):
            rotated = sealapi.Ciphertext()
            evaluator.rotate_vector(total, step, galois, rotated)
            evaluator.add_inplace(total, rotated)
        return total

    def _pack(self, sums: list):
        evaluator, result = self._keys.evaluator, None
        for column, total in enumerate(sums):
            if total is None:
                continue
            if column:
                evaluator.multiply_plain_inplace(total, self._monomials[column])
            if result is None:
                result = total
            else:
                evaluator.add_inplace(result, total)
        return result


def monomial_plaintext(ring, power: int):
    """NTT-form plaintext of X^power at scale 1: multiplying by it shifts coefficients."""
    n_primes, degree = len(ring.primes), ring.degree
    coefficients = np.zeros((n_primes, degree), dtype=np.uint64)
    coefficients[:, power] = 1
    carrier = ring.io.build_ciphertext(np.stack([coefficients, np.ones_like(coefficients)]), ring.data_parms_id, False, 1.0)
    ring.evaluator.transform_to_ntt_inplace(carrier)
    words = ciphertext_words(carrier, np.arange(n_primes * degree))
    return ring.io.build_plaintext(words, ring.data_parms_id, 1.0)
