"""How G (N × q, party2) and F (N, party1) are packed into CKKS slots, per engine.

Both parties build the same layout from public numbers (N, q, slot count). Rows beyond
the last full ciphertext are zero-padded, so ragged last chunks and odd q are exact:
zeros contribute nothing to Fᵀ·G.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ppreg.secure.fhe.reveal import slot_class_sums


def next_power_of_two(value: int) -> int:
    return 1 << max(0, (int(value) - 1).bit_length())


@dataclass(frozen=True)
class ColumnChunkLayout:
    """fhe1 (paper v1): ciphertext (i, j) holds rows [i·S, (i+1)·S) of column j (S slots).

    party1 multiplies each by its feature chunk and sums all slots by rotations (the
    paper's DotProduct); column j's result ends up as the constant coefficient Δ·R_j of
    a fully traced polynomial, and the q results are packed into coefficients 0..q−1.
    """

    rows: int
    columns: int
    slots: int

    @property
    def chunks(self) -> int:
        return math.ceil(self.rows / self.slots)

    @property
    def n_ciphertexts(self) -> int:
        return self.chunks * self.columns

    @property
    def summed_products(self) -> int:
        """Ciphertext products summed into one revealed coefficient."""
        return self.chunks

    @property
    def amplification(self) -> float:
        """The all-slot sum multiplies coefficient 0 (and its error) by N/2."""
        return float(self.slots)

    @property
    def positions(self) -> np.ndarray:
        return np.arange(self.columns)

    def operand_slots(self, operand: np.ndarray) -> np.ndarray:
        """Slot vectors of G, shape (chunks·q, S), ordered chunk by chunk then column."""
        padded = np.zeros((self.chunks * self.slots, self.columns))
        padded[: self.rows] = operand
        return padded.reshape(self.chunks, self.slots, self.columns).transpose(0, 2, 1).reshape(-1, self.slots)

    def feature_slots(self, features: np.ndarray) -> np.ndarray:
        """Slot vectors of F, shape (chunks, S)."""
        padded = np.zeros(self.chunks * self.slots)
        padded[: self.rows] = features
        return padded.reshape(self.chunks, self.slots)

    def largest_coefficient(self, operand: np.ndarray, scale: float, feature_bound: float) -> float:
        """Bound on |Δ·R_j| = |revealed coefficient j|."""
        return scale * feature_bound * float(np.max(np.abs(operand).sum(axis=0), initial=0.0))

    def decode(self, coefficients, scale: float) -> np.ndarray:
        """R (q,) from the revealed coefficients 0..q−1."""
        return np.array([c / scale for c in coefficients], dtype=np.float64)


@dataclass(frozen=True)
class InterleavedLayout:
    """fhe2 (paper v2): G flattened row by row with q padded to a power of two P.

    Slot k of ciphertext i holds G[i·S/P + k // P, k mod P]; F is replicated P times
    to match. Products are element-wise and summed over ciphertexts; R_j is the sum of
    slots k ≡ j (mod P), which party2 reads from 2P coefficients of the decryption
    (:func:`~ppreg.secure.fhe.reveal.slot_class_sums`), so nobody rotates anything.
    """

    rows: int
    columns: int
    slots: int

    @property
    def period(self) -> int:
        return next_power_of_two(self.columns)

    @property
    def rows_per_ciphertext(self) -> int:
        return self.slots // self.period

    @property
    def n_ciphertexts(self) -> int:
        return math.ceil(self.rows / self.rows_per_ciphertext)

    @property
    def summed_products(self) -> int:
        return self.n_ciphertexts

    @property
    def amplification(self) -> float:
        return 1.0

    @property
    def positions(self) -> np.ndarray:
        return np.arange(2 * self.period) * (self.slots // self.period)

    def _padded_rows(self) -> int:
        return self.n_ciphertexts * self.rows_per_ciphertext

    def operand_slots(self, operand: np.ndarray) -> np.ndarray:
        """Flattened G, shape (n_ciphertexts, S)."""
        padded = np.zeros((self._padded_rows(), self.period))
        padded[: self.rows, : self.columns] = operand
        return padded.reshape(self.n_ciphertexts, self.slots)

    def feature_slots(self, features: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """F replicated over the selected columns (zeros elsewhere), shape (n_ciphertexts, S)."""
        padded = np.zeros(self._padded_rows())
        padded[: self.rows] = features
        weights = np.zeros(self.period)
        weights[: self.columns] = columns
        return (padded[:, None] * weights[None, :]).reshape(self.n_ciphertexts, self.slots)

    def largest_coefficient(self, operand: np.ndarray, scale: float, feature_bound: float) -> float:
        """Bound on a revealed coefficient: (2Δ/N)·Σ_j |R_j| with |R_j| ≤ ‖G_j‖₁·|F|max."""
        return 2.0 * scale / (2 * self.slots) * feature_bound * float(np.abs(operand).sum())

    def decode(self, coefficients, scale: float) -> np.ndarray:
        """R (q,) from the 2P revealed coefficients."""
        return slot_class_sums(coefficients, self.period, 2 * self.slots, scale)[: self.columns]
