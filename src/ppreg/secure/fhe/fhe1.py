"""fhe1 (paper PPIR(FHE)-v1): chunk-by-chunk DotProducts with rotations.

party2 encrypts each column of G in chunks of S = N/2 rows; per iteration party1
computes, for every chunk i and column j, the DotProduct ⟨[G_ij], F_i⟩ — a plaintext
multiplication followed by log2(S) rotate-and-add steps that leave the sum in every
slot — and adds the chunks up, as the paper does. Column j's sum is then the constant
coefficient Δ·R_j of its ciphertext; multiplying by the monomial X^(f·q + j) moves the
result of column j with the f-th feature to coefficient f·q + j, so all m·q results
travel back in one ciphertext.
"""

from __future__ import annotations

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.secure.fhe.engine import FHEClient, FHEServer
from ppreg.secure.fhe.layouts import ColumnChunkLayout, Plane
from ppreg.secure.fhe.sealbytes import ciphertext_words


def rotation_steps(slots: int) -> tuple[int, ...]:
    """Rotations 1, 2, 4, …, S/2: rotate-and-add over them sums all S slots."""
    return tuple(1 << i for i in range(slots.bit_length() - 1))


def column_chunk_layout(rows: int, columns: int, slots: int, features: int = 1) -> ColumnChunkLayout:
    """All ``features`` per ciphertext while the packed coefficients stay below N/2 (the
    trace's imaginary part sits at N/2 and moves with them)."""
    return ColumnChunkLayout(rows, columns, slots, replicas=max(1, min(features, slots // columns)))


class FHE1Server(FHEServer):
    """Party2's half of fhe1 (also shares the Galois keys of :func:`rotation_steps`)."""

    name = "fhe1"

    @property
    def rotation_steps(self) -> tuple[int, ...]:
        return rotation_steps(self.parameters.slots)

    def dense_layout(self, rows: int, columns: int, features: int) -> ColumnChunkLayout:
        return column_chunk_layout(rows, columns, self.parameters.slots, features)


class FHE1Client(FHEClient):
    """Party1's half of fhe1."""

    name = "fhe1"

    def __init__(self) -> None:
        super().__init__()
        self._monomials: dict[int, object] = {}

    def dense_layout(self, rows: int, columns: int, features: int) -> ColumnChunkLayout:
        return column_chunk_layout(rows, columns, self.parameters.slots, features)

    def prepare_level(self) -> None:
        for power in range(1, len(self._layout.positions)):
            if power not in self._monomials:
                self._monomials[power] = monomial_plaintext(self._keys, power)

    def encrypted_product(self, part_index: int, features: np.ndarray, plane: Plane):
        """Σ_(f, j) X^(f·q + j) · Σ_i DotProduct([G_ij], F_i) with F = the plane's feature f; None if all zero."""
        q = self._layout.columns
        encoded = {int(k): self._encode_chunks(features[:, k]) for k in np.unique(plane.real[plane.real >= 0])}
        result = None
        for replica, column in zip(*np.nonzero(plane.real >= 0)):
            total = None
            for chunk, plain in enumerate(encoded[int(plane.real[replica, column])]):
                if plain is None:
                    continue
                term = self._dot_product(self._operand[part_index][chunk * q + column], plain)
                total = term if total is None else self._add(total, term)
            if total is None:
                continue
            power = int(replica) * q + int(column)
            if power:
                self._keys.evaluator.multiply_plain_inplace(total, self._monomials[power])
            result = total if result is None else self._add(result, total)
        return result

    def _encode_chunks(self, feature: np.ndarray) -> list:
        scale, plains = 2.0**self.parameters.feature_scale_bits, []
        for vector in self._layout.feature_slots(feature):
            plain = self._keys.encode(vector, scale) if vector.any() else None
            plains.append(None if plain is None or plain.is_zero() else plain)
        return plains

    def _add(self, total, term):
        self._keys.evaluator.add_inplace(total, term)
        return total

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


def monomial_plaintext(ring, power: int):
    """NTT-form plaintext of X^power at scale 1: multiplying by it shifts coefficients."""
    n_primes, degree = len(ring.primes), ring.degree
    coefficients = np.zeros((n_primes, degree), dtype=np.uint64)
    coefficients[:, power] = 1
    carrier = ring.io.build_ciphertext(np.stack([coefficients, np.ones_like(coefficients)]), ring.data_parms_id, False, 1.0)
    ring.evaluator.transform_to_ntt_inplace(carrier)
    words = ciphertext_words(carrier, np.arange(n_primes * degree))
    return ring.io.build_plaintext(words, ring.data_parms_id, 1.0)
