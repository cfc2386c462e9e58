"""fhe1 (paper PPIR(FHE)-v1): chunk-by-chunk DotProducts with rotations.

party2 encrypts each column of G in chunks of S = N/2 rows; per iteration party1
computes, for every chunk i and column j, the DotProduct ⟨[G_ij], F_i⟩ — a plaintext
multiplication followed by rotate-and-add steps — and adds the chunks up, as the paper
does. The rotations are those of a trace of order T (:class:`ColumnChunkLayout`): the
paper's sum over all S slots (T = S, log2(S) = 12 rotations) for images; for point clouds
the smallest T that keeps the d² packed results apart (T = 16 in 3D: 4 rotations, and
Galois keys for those 4 only). Column j's sum is then the constant coefficient (T/S)·Δ·R_j
of its ciphertext, the other coefficients below T being zero; multiplying by the monomial
X^(f·q + j) moves the result of column j with the f-th feature to coefficient f·q + j, so
all m·q results travel back in one ciphertext.
"""

from __future__ import annotations

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import ProtocolError
from ppreg.io.images import Image
from ppreg.io.points import PointSet
from ppreg.secure.base import LevelContext
from ppreg.secure.fhe.engine import FHEClient, FHEServer
from ppreg.secure.fhe.keys import galois_element
from ppreg.secure.fhe.layouts import ColumnChunkLayout, Plane, next_power_of_two
from ppreg.secure.fhe.params import CKKSParameters
from ppreg.secure.fhe.sealbytes import ciphertext_words
from ppreg.similarity.base import FixedOperand
from ppreg.transport.channel import Channel


def column_chunk_layout(rows: int, columns: int, slots: int, features: int, trace_order: int) -> ColumnChunkLayout:
    """All ``features`` per ciphertext while the packed coefficients stay below the trace
    order T (the trace keeps the coefficients at multiples of T; shifted results must not
    land on each other)."""
    return ColumnChunkLayout(rows, columns, slots, trace_order, replicas=max(1, min(features, trace_order // columns)))


def packed_trace_order(slots: int, columns: int, features: int) -> int:
    """Smallest trace order that keeps all ``features`` × ``columns`` results apart."""
    return min(slots, next_power_of_two(features * columns))


class FHE1Server(FHEServer):
    """Party2's half of fhe1; shares the Galois keys of the first level's trace.

    Images get the paper's DotProduct over all S slots (T = S, the construction
    ``benchmarks/fhe_affine.py`` compares with fhe2); a point set, which has one level and
    d² results, the smallest trace that packs them (docs/fhe.md §3).
    """

    name = "fhe1"

    def __init__(self, parameters: CKKSParameters | None = None) -> None:
        super().__init__(parameters)
        self._packed_trace = False

    def start_level(self, channel: Channel, level_index: int, operand: FixedOperand, fixed_level: Image | PointSet) -> None:
        self._packed_trace = isinstance(fixed_level, PointSet)
        super().start_level(channel, level_index, operand, fixed_level)

    def dense_layout(self, rows: int, columns: int, features: int) -> ColumnChunkLayout:
        slots = self.parameters.slots
        order = packed_trace_order(slots, columns, features) if self._packed_trace else slots
        return column_chunk_layout(rows, columns, slots, features, order)

    def galois_steps(self, layout: ColumnChunkLayout) -> tuple[int, ...]:
        return layout.rotation_steps

    def layout_announcement(self, layout: ColumnChunkLayout) -> dict:
        return {"trace_order": layout.trace_order}


class FHE1Client(FHEClient):
    """Party1's half of fhe1."""

    name = "fhe1"

    def __init__(self) -> None:
        super().__init__()
        self._monomials: dict[int, object] = {}
        self._trace_order = 0

    def _layout_for(self, level: LevelContext, meta: dict) -> ColumnChunkLayout:
        order = meta.get("trace_order")
        if not isinstance(order, int) or isinstance(order, bool):
            raise ProtocolError(f"party2 announced a trace order {order!r}")
        self._trace_order = order
        try:
            layout = super()._layout_for(level, meta)
        except ValueError as error:
            raise ProtocolError(f"party2 announced an unusable fhe1 layout: {error}") from None
        galois = self._keys.galois
        missing = [step for step in layout.rotation_steps
                   if galois is None or not galois.has_key(galois_element(step, self._keys.degree))]
        if missing:
            raise ProtocolError(f"party2 sent no Galois keys for the rotations {missing} its trace needs")
        return layout

    def dense_layout(self, rows: int, columns: int, features: int) -> ColumnChunkLayout:
        return column_chunk_layout(rows, columns, self.parameters.slots, features, self._trace_order)

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
        """[slot sums of g ⊙ f over each class mod S/T]: multiply, then rotate-and-add (the trace)."""
        evaluator, galois = self._keys.evaluator, self._keys.galois
        total = sealapi.Ciphertext()
        evaluator.multiply_plain(ciphertext, plain, total)
        for step in self._layout.rotation_steps:
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
