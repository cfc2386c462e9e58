"""Calibrated Gaussian noise on the revealed joint terms (``--reveal-noise σ``).

Every joint product reveals Fᵀ·G to party1, and over many iterations these values say
something about party2's image (docs/privacy.md, "Reconstruction attack"). With
``reveal_noise`` σ > 0, party2 adds fresh Gaussian noise to each revealed entry before it
leaves party2's hands: in the mpc engine to its share of the result, in the clear engine
(no privacy anyway) where party1 computes the product, so both engines give the same
accuracy cost.

Calibration: entry (k, j) of Fᵀ·G receives N(0, (σ·‖G[:, j]‖₂)²). That is exactly the
spread of Σ_x ε(x)·G(x, j) with ε(x) ~ N(0, σ²) independent per sample, i.e. as if every
feature value party1 contributes (normalised intensity I(W) ∈ [0, 1] for SSD; for the
B-spline also ∇Ĩ in intensity per mm) were perturbed by noise of standard deviation σ.
party2 computes the column norms from its own operand; party1 learns only σ. The noise
is not a formal differential-privacy guarantee: it is fresh for every revealed value, so
K evaluations average it down by about √K for an attacker who pools them.
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from ppreg.errors import ConfigError
from ppreg.similarity.base import FixedOperand, SparseOperand


def check_reveal_noise(sigma) -> float:
    """σ as a float; finite and ≥ 0, else :class:`ConfigError`."""
    try:
        value = float(sigma)
    except (TypeError, ValueError):
        raise ConfigError(f"reveal_noise must be a number ≥ 0, got {sigma!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"reveal_noise must be a finite number ≥ 0, got {sigma!r}")
    return value


def operand_column_norms(operand: FixedOperand) -> np.ndarray:
    """‖G[:, j]‖₂ for every column j of party2's operand, shape (q,)."""
    if isinstance(operand, SparseOperand):
        squares = np.zeros(operand.n_columns)
        np.add.at(squares, operand.columns.ravel(), operand.values.ravel() ** 2)
        return np.sqrt(squares)
    return np.linalg.norm(operand.dense_matrix(), axis=0)


class RevealNoise:
    """Noise for the revealed entries of one level's products (party2's side).

    Parameters
    ----------
    sigma : float
        Per-sample feature noise σ the revealed values should look perturbed by (≥ 0).
    operand : FixedOperand
        party2's operand G of the level, shape (N, q).
    """

    def __init__(self, sigma: float, operand: FixedOperand):
        self.sigma = check_reveal_noise(sigma)
        self.scale = self.sigma * operand_column_norms(operand)  # (q,)
        # Seeded from the OS CSPRNG: party1 must not be able to predict and subtract it.
        self._rng = np.random.Generator(np.random.Philox(secrets.randbits(128)))

    def sample(self, rows: int) -> np.ndarray:
        """Fresh noise for an (rows × q) product: column j has standard deviation σ·‖G[:, j]‖."""
        if self.sigma == 0:
            return np.zeros((rows, len(self.scale)))
        return self._rng.standard_normal((rows, len(self.scale))) * self.scale[None, :]
