"""How a dense G (N × q, party2) and F (N × m, party1) are packed into CKKS slots, per engine.

Both parties build the same layout from public numbers (N, q, the replica count, the
slot count). Rows beyond the last full ciphertext are zero-padded, so ragged last
chunks and odd q are exact: zeros contribute nothing to Fᵀ·G.

A layout is one *part* (:mod:`ppreg.secure.fhe.sparse` splits a sparse G into several):
per product, party1 fills one or more *planes* — which of its feature columns go into
the real and the imaginary part of each result class (:func:`plan_planes`) — and each
plane yields one result ciphertext, one c1 sent and one set of revealed coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ppreg.secure.fhe.reveal import slot_class_sums


def next_power_of_two(value: int) -> int:
    return 1 << max(0, (int(value) - 1).bit_length())


@dataclass(frozen=True)
class Plane:
    """Feature columns party1 puts in one result ciphertext (−1: none).

    ``real[f, j]`` (``imag[f, j]``) is the feature column multiplied into the real
    (imaginary) part of replica f of local column j; its product with G's column j is
    revealed as the real (imaginary) part of that class's sum.
    """

    real: np.ndarray  # (replicas, q_part) int
    imag: np.ndarray  # (replicas, q_part) int

    def scatter(self, values: np.ndarray, columns: np.ndarray, result: np.ndarray) -> None:
        """Write the decoded class values (replicas, q_part) into R (m × q) at their features."""
        for parts, take in ((self.real, np.real), (self.imag, np.imag)):
            replica, local = np.nonzero(parts >= 0)
            result[parts[replica, local], columns[local]] = take(values[replica, local])


def plan_planes(selection: np.ndarray, columns: np.ndarray, replicas: int, imaginary: bool) -> list[Plane]:
    """Spread the selected (feature, column) pairs of a part over as few planes as possible.

    Parameters
    ----------
    selection : ndarray of bool, shape (m, q)
        Entries of Fᵀ·G party1 asks for.
    columns : ndarray of int, shape (q_part,)
        G's columns in this part (local column j is G's column ``columns[j]``).
    replicas : int
        Copies of each column per ciphertext (a plane holds ``replicas`` features per column
        in real parts, as many again in imaginary parts when ``imaginary``).
    imaginary : bool
        Whether imaginary parts carry features (fhe2) or stay empty (fhe1).
    """
    chosen = np.asarray(selection, dtype=bool)[:, columns]  # (m, q_part)
    width = 2 if imaginary else 1
    capacity = replicas * width
    rank = np.cumsum(chosen, axis=0) - 1  # the u-th selected feature of each column
    features, local = np.nonzero(chosen)
    plane, within = np.divmod(rank[features, local], capacity)
    replica, part = np.divmod(within, width)
    n_planes = -(-int(chosen.sum(axis=0).max(initial=0)) // capacity)
    assigned = np.full((2, n_planes, replicas, len(columns)), -1)
    assigned[part, plane, replica, local] = features
    return [Plane(assigned[0, p], assigned[1, p]) for p in range(n_planes)]


def with_zero_padding(features: np.ndarray) -> np.ndarray:
    """F with an extra zero column (index −1) and an extra zero row (index −1)."""
    extended = np.zeros((features.shape[0] + 1, features.shape[1] + 1))
    extended[:-1, :-1] = features
    return extended


@dataclass(frozen=True)
class ColumnChunkLayout:
    """fhe1 (paper v1): ciphertext (i, j) holds rows [i·S, (i+1)·S) of column j (S slots).

    party1 multiplies each by its feature chunk and rotate-and-adds it over the
    ``trace_order`` = T slots of each class mod S/T (the paper's DotProduct when T = S):
    the trace onto the subring of coefficients at multiples of T, so column j's result for
    replica f is the constant coefficient (T/S)·Δ·R and every other coefficient below T is
    zero. The monomial X^(f·q + j) moves it to coefficient f·q + j, so ``replicas``
    features × q columns (at most T) travel in one ciphertext.
    """

    rows: int
    columns: int
    slots: int
    trace_order: int  # T, a power of two ≤ S
    replicas: int = 1

    parts = property(lambda self: (self,))
    imaginary = False
    feature_factor = 1.0  # features enter as real numbers

    def __post_init__(self) -> None:
        order = self.trace_order
        if order & (order - 1) or not 1 <= order <= self.slots:
            raise ValueError(f"a trace order must be a power of two in [1, {self.slots}], got {order}")
        if self.replicas * self.columns > order:
            raise ValueError(f"{self.replicas} × {self.columns} packed results do not fit a trace of order {order}")

    @property
    def column_index(self) -> np.ndarray:
        return np.arange(self.columns)

    @property
    def chunks(self) -> int:
        return math.ceil(self.rows / self.slots)

    @property
    def n_ciphertexts(self) -> int:
        return self.chunks * self.columns

    @property
    def rotation_steps(self) -> tuple[int, ...]:
        """Rotations S/T, 2S/T, …, S/2 (log2 T of them): rotate-and-add over them is the trace."""
        stride = self.slots // self.trace_order
        return tuple(stride << i for i in range(self.trace_order.bit_length() - 1))

    @property
    def summed_products(self) -> int:
        """Ciphertext products whose F∗e error reaches one revealed coefficient (a trace keeps
        each product's in its own coefficients)."""
        return self.chunks

    @property
    def summed_ciphertexts(self) -> int:
        """Ciphertexts whose other errors (re-randomisation, key switching) reach every coefficient."""
        return self.chunks * self.columns * self.replicas

    @property
    def amplification(self) -> float:
        """The trace adds T images of each coefficient: it multiplies coefficient 0 (and its error) by T."""
        return float(self.trace_order)

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.replicas * self.columns)

    def operand_slots(self, operand: np.ndarray) -> np.ndarray:
        """Slot vectors of G, shape (chunks·q, S), ordered chunk by chunk then column."""
        padded = np.zeros((self.chunks * self.slots, self.columns))
        padded[: self.rows] = operand
        return padded.reshape(self.chunks, self.slots, self.columns).transpose(0, 2, 1).reshape(-1, self.slots)

    def feature_slots(self, features: np.ndarray) -> np.ndarray:
        """Slot vectors of one feature column, shape (chunks, S)."""
        padded = np.zeros(self.chunks * self.slots)
        padded[: self.rows] = features
        return padded.reshape(self.chunks, self.slots)

    def largest_coefficient(self, operand: np.ndarray, scale: float, feature_bound: float) -> float:
        """Bound on |(T/S)·Δ·R_j| = |revealed coefficient|."""
        gain = self.trace_order / self.slots
        return gain * scale * feature_bound * float(np.max(np.abs(operand).sum(axis=0), initial=0.0))

    def decode(self, coefficients, scale: float) -> np.ndarray:
        """R per (replica, column), shape (replicas, q), from coefficients 0 … replicas·q − 1."""
        unit = scale * self.trace_order / self.slots
        return np.array([c / unit for c in coefficients], dtype=np.float64).reshape(self.replicas, self.columns)


class ClassSumPart:
    """What every fhe2 part shares: its revealed values are sums over slot classes mod ``period``,
    read from 2·period coefficients of one sum of ciphertext products (no trace amplification).
    Needs ``period``, ``slots`` and ``n_ciphertexts``."""

    amplification = 1.0

    @property
    def summed_products(self) -> int:
        return self.n_ciphertexts

    @property
    def summed_ciphertexts(self) -> int:
        return self.n_ciphertexts

    @property
    def positions(self) -> np.ndarray:
        return np.arange(2 * self.period) * (self.slots // self.period)

    def class_sums(self, coefficients, scale: float) -> np.ndarray:
        return slot_class_sums(coefficients, self.period, 2 * self.slots, scale)


@dataclass(frozen=True)
class InterleavedLayout(ClassSumPart):
    """fhe2 (paper v2): G flattened row by row, each row replicated, padded to a power of two P.

    Slot k of ciphertext i holds G[i·S/P + k // P, (k mod P) mod q] for k mod P < r·q
    (r replicas of the row); party1 puts its features in the matching slots — feature
    a in the real and feature b in the imaginary part of replica f's slots (a :class:`Plane`).
    Products are element-wise and summed over ciphertexts; the class sums over k ≡ c
    (mod P) are R[a, j] + i·R[b, j], which party2 reads from 2P coefficients of the
    decryption (:func:`~ppreg.secure.fhe.reveal.slot_class_sums`), so nobody rotates anything.

    ``imaginary`` is False when F has one column (SSD): imaginary parts stay empty and the
    flooding need not cover them. ``column_map`` maps the local columns to G's columns (all
    of them by default; a sparse G puts only its dense columns here).
    """

    rows: int
    columns: int
    slots: int
    replicas: int = 1
    imaginary: bool = True
    column_map: tuple[int, ...] | None = None

    parts = property(lambda self: (self,))

    @property
    def feature_factor(self) -> float:
        """|a + i·b| ≤ √2 · the feature bound when imaginary parts carry features."""
        return math.sqrt(2.0) if self.imaginary else 1.0

    @property
    def column_index(self) -> np.ndarray:
        return np.arange(self.columns) if self.column_map is None else np.asarray(self.column_map)

    @property
    def period(self) -> int:
        return next_power_of_two(self.replicas * self.columns)

    @property
    def rows_per_ciphertext(self) -> int:
        return self.slots // self.period

    @property
    def n_ciphertexts(self) -> int:
        return math.ceil(self.rows / self.rows_per_ciphertext)

    def _padded_rows(self) -> int:
        return self.n_ciphertexts * self.rows_per_ciphertext

    def operand_slots(self, operand: np.ndarray) -> np.ndarray:
        """Flattened, replicated G (N × q, this layout's columns), shape (n_ciphertexts, S)."""
        padded = np.zeros((self._padded_rows(), self.period))
        replicated = np.tile(operand, (1, self.replicas))
        padded[: self.rows, : replicated.shape[1]] = replicated
        return padded.reshape(self.n_ciphertexts, self.slots)

    def plane_slots(self, features: np.ndarray, plane: Plane) -> np.ndarray:
        """Party1's slots for ``plane``: complex, shape (n_ciphertexts, S); F is (N, m)."""
        extended = with_zero_padding(features)[:-1]
        real, imag = np.full(self.period, -1), np.full(self.period, -1)
        real[: plane.real.size], imag[: plane.imag.size] = plane.real.ravel(), plane.imag.ravel()
        padded = np.zeros((self._padded_rows(), self.period), dtype=np.complex128)
        padded[: self.rows] = extended[:, real] + 1j * extended[:, imag]
        return padded.reshape(self.n_ciphertexts, self.slots)

    def largest_coefficient(self, operand: np.ndarray, scale: float, feature_bound: float) -> float:
        """Bound on a revealed coefficient: (2Δ/N)·Σ_c |class sum c| ≤ (2Δ/N)·r·√2·|F|max·Σ|G|."""
        total = self.replicas * float(np.abs(operand).sum())
        return 2.0 * scale / (2 * self.slots) * feature_bound * self.feature_factor * total

    def decode(self, coefficients, scale: float) -> np.ndarray:
        """Complex class sums per (replica, local column), shape (replicas, q), from the 2P coefficients."""
        return self.class_sums(coefficients, scale)[: self.replicas * self.columns].reshape(self.replicas, self.columns)
