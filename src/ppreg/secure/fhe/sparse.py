"""fhe2 for a sparse G with a public pattern (the B-spline operand), without densifying it.

Row x of G holds ``values[x, s]`` in column ``columns[x, s]``; the pattern is public
(both parties derive it from the control grid and the sampled voxels), the values are
party2's. party1 needs only column sums Σ_x F_k(x)·G(x, c), so the layout puts every
entry of column c in the slots of one *class* (slots k ≡ j(c) mod T of every ciphertext;
T a power of two ≥ the number of columns in the block): entry u of column c goes to
ciphertext u // (S/T), slot j(c) + T·(u mod S/T). party1 multiplies slot by slot with
its features of the entry's row — feature a in the real and feature b in the imaginary
part — and adds the products of all ciphertexts up. The class sums R[a, c] + i·R[b, c]
are then read from 2T coefficients of the decryption (as fhe2's dense reveal,
:func:`~ppreg.secure.fhe.reveal.slot_class_sums`): no rotation, no mask, and the
decryption yields exactly the class sums and nothing about single products.

A block needs as many ciphertexts as its longest column needs slots per class, so a
column far denser than the others (the B-spline operand's J column, present in every
row) goes to a dense :class:`~ppreg.secure.fhe.layouts.InterleavedLayout` part instead:
the densest columns move there as long as each move halves the ciphertext count
(:func:`dense_columns`; only then, because a class sum in a dense part of period P carries
flooding noise ∝ N/(2√P), far more than in a block of T ≫ P classes). More than S columns are split into blocks of at most S classes.
Each block and the dense part is one *part*: one result ciphertext (per plane), one c1,
its own revealed coefficients.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np

from ppreg.secure.fhe.layouts import ClassSumPart, InterleavedLayout, Plane, with_zero_padding, next_power_of_two

MAX_DENSE_COLUMNS = 64  # candidates for the dense part (each costs N·P/S ciphertexts there)


@dataclass(frozen=True, eq=False)
class ClassBlock(ClassSumPart):
    """Up to S columns of a sparse G, column ``column_index[j]`` in slot class j (mod ``period``).

    ``entries[i, k]`` is the flat index (into ``values.ravel()``) of the entry in slot k
    of ciphertext i, or −1 for an empty slot.
    """

    column_index: np.ndarray  # (q_part,) G's columns
    period: int  # T
    slots: int
    entries: np.ndarray  # (n_ciphertexts, S) int64
    stride: int  # s, entries per row of the pattern

    replicas = 1
    imaginary = True
    feature_factor = math.sqrt(2.0)

    @property
    def n_ciphertexts(self) -> int:
        return self.entries.shape[0]

    def operand_slots(self, values: np.ndarray) -> np.ndarray:
        """party2's slots, shape (n_ciphertexts, S): each entry's value in its slot."""
        flat = np.append(np.asarray(values, dtype=np.float64).ravel(), 0.0)
        return flat[self.entries]  # −1 picks the appended zero

    def plane_slots(self, features: np.ndarray, plane: Plane) -> np.ndarray:
        """party1's slots for ``plane``: the features of each entry's row (F is N × m), complex."""
        extended = with_zero_padding(features)
        rows = np.where(self.entries >= 0, self.entries // self.stride, -1)
        real, imag = np.full(self.period, -1), np.full(self.period, -1)
        real[: len(self.column_index)], imag[: len(self.column_index)] = plane.real[0], plane.imag[0]
        classes = np.arange(self.slots) % self.period
        return extended[rows, real[classes][None, :]] + 1j * extended[rows, imag[classes][None, :]]

    def largest_coefficient(self, values: np.ndarray, scale: float, feature_bound: float) -> float:
        """(2Δ/N)·Σ_c |class sum c| ≤ (2Δ/N)·√2·|F|max·Σ|entries of this block|."""
        flat = np.append(np.abs(np.asarray(values, dtype=np.float64)).ravel(), 0.0)
        return 2.0 * scale / (2 * self.slots) * feature_bound * self.feature_factor * float(flat[self.entries].sum())

    def decode(self, coefficients, scale: float) -> np.ndarray:
        """Complex class sums, shape (1, q_part)."""
        return self.class_sums(coefficients, scale)[: len(self.column_index)].reshape(1, -1)


class SparseLayout:
    """The parts of a sparse G: class blocks plus, if any, a dense part.

    Parameters
    ----------
    pattern : ndarray of int, shape (N, s)
        Public column index of every entry (``SparseOperand.columns``).
    n_columns : int
        q.
    slots : int
        S = N/2.
    """

    imaginary = True

    def __init__(self, pattern: np.ndarray, n_columns: int, slots: int) -> None:
        pattern = np.asarray(pattern, dtype=np.int64)
        if pattern.ndim != 2 or pattern.size == 0 or pattern.min() < 0 or pattern.max() >= n_columns:
            raise ValueError(f"a sparse pattern needs N × s column indices below {n_columns}")
        self.rows, self.stride = pattern.shape
        self.columns, self.slots = n_columns, slots
        self.digest = pattern_digest(pattern, n_columns)
        counts = np.bincount(pattern.ravel(), minlength=n_columns)
        dense = dense_columns(counts, self.rows, slots)
        self.dense_columns = dense
        classed = np.setdiff1d(np.flatnonzero(counts), dense)
        self.blocks = [self._block(pattern, columns, counts) for columns in _blocks(classed, slots)]
        self.dense = (InterleavedLayout(self.rows, len(dense), slots, column_map=tuple(int(c) for c in dense))
                      if len(dense) else None)

    def _block(self, pattern: np.ndarray, columns: np.ndarray, counts: np.ndarray) -> ClassBlock:
        period = next_power_of_two(len(columns))
        per_class = self.slots // period
        flat = pattern.ravel()
        class_of = np.full(self.columns, -1)
        class_of[columns] = np.arange(len(columns))
        members = np.flatnonzero(class_of[flat] >= 0)
        members = members[np.argsort(flat[members], kind="stable")]  # by column, then by row
        starts = np.concatenate([[0], np.cumsum(counts[columns])])
        rank = np.arange(len(members)) - np.repeat(starts[:-1], counts[columns])
        n_ciphertexts = math.ceil(int(counts[columns].max()) / per_class)
        entries = np.full((n_ciphertexts, self.slots), -1, dtype=np.int64)
        entries[rank // per_class, class_of[flat[members]] + period * (rank % per_class)] = members
        return ClassBlock(columns, period, self.slots, entries, self.stride)

    @property
    def parts(self) -> tuple:
        return (*self.blocks, *([self.dense] if self.dense is not None else []))

    @property
    def n_ciphertexts(self) -> int:
        return sum(part.n_ciphertexts for part in self.parts)

    def dense_operand(self, values: np.ndarray, pattern: np.ndarray) -> np.ndarray:
        """The dense columns of G as an N × |dense| matrix (party2)."""
        matrix = np.zeros((self.rows, len(self.dense_columns)))
        for local, column in enumerate(self.dense_columns):
            matrix[:, local] = np.where(pattern == column, values, 0.0).sum(axis=1)
        return matrix

    def part_operands(self, values: np.ndarray, pattern: np.ndarray) -> list[np.ndarray]:
        """What each part's ``operand_slots`` and ``largest_coefficient`` take (party2)."""
        return [values] * len(self.blocks) + ([self.dense_operand(values, pattern)] if self.dense is not None else [])


def _blocks(columns: np.ndarray, slots: int) -> list[np.ndarray]:
    return [columns[start:start + slots] for start in range(0, len(columns), slots)]


def _class_ciphertexts(columns: np.ndarray, counts: np.ndarray, slots: int) -> int:
    """Ciphertexts the class blocks of ``columns`` need: per block, its longest column's share."""
    return sum(math.ceil(int(counts[block].max()) * next_power_of_two(len(block)) / slots)
               for block in _blocks(columns, slots))


def dense_columns(counts: np.ndarray, rows: int, slots: int) -> np.ndarray:
    """The k densest columns, k raised each time that halves the ciphertext count of the best k so far."""
    used = np.flatnonzero(counts)
    by_density = used[np.argsort(-counts[used], kind="stable")]
    best, best_cost = 0, _class_ciphertexts(used, counts, slots)
    for k in range(1, min(MAX_DENSE_COLUMNS, len(used) - 1) + 1):
        cost = (_class_ciphertexts(np.sort(by_density[k:]), counts, slots)
                + math.ceil(rows * next_power_of_two(k) / slots))
        if 2 * cost <= best_cost:
            best, best_cost = k, cost
    return np.sort(by_density[:best])


def pattern_digest(pattern: np.ndarray, n_columns: int) -> str:
    """A short fingerprint of the public pattern, so the parties notice if theirs differ."""
    digest = hashlib.sha256(np.ascontiguousarray(pattern, dtype="<i8").tobytes())
    digest.update(str((pattern.shape, n_columns)).encode())
    return digest.hexdigest()[:32]
