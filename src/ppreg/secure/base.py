"""The joint-product service every privacy engine implements (DESIGN.md §2).

Party1 holds features F (N × m), party2 an operand G (N × q, constant per level).
An engine returns Fᵀ·G (only the selected entries) to party1. The registration code
never knows which engine runs: it talks to :class:`ppreg.secure.session.FixedPartyProxy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from ppreg.errors import EngineUnavailableError
from ppreg.io.images import Grid, Image
from ppreg.io.points import PointSet
from ppreg.similarity.base import FixedOperand, LevelRequest
from ppreg.transport.channel import Channel, Message


@dataclass(frozen=True)
class LevelContext:
    """What party1 knows about the current level (all public)."""

    index: int
    request: LevelRequest
    grid: Grid | None  # None for a point set
    sample_index: np.ndarray | None
    operand_shape: tuple[int, int]


class EngineClient(ABC):
    """Party1's half of an engine."""

    name: str

    @abstractmethod
    def start_level(self, channel: Channel, level: LevelContext) -> None:
        """Receive whatever the engine needs once per level."""

    @abstractmethod
    def product(self, channel: Channel, features: np.ndarray, selection: np.ndarray) -> np.ndarray:
        """Fᵀ·G (m × q, float64); entries outside ``selection`` are 0 and never revealed."""

    def close(self) -> None:
        """Release engine resources (dealer connection)."""


class EngineServer(ABC):
    """Party2's half of an engine."""

    name: str
    supports_reveal_noise = False
    reveal_noise = 0.0  # σ of --reveal-noise (ppreg.secure.reveal_noise), set before the first level

    def set_reveal_noise(self, sigma: float) -> None:
        """Use noise σ on every revealed entry; engines that cannot add it refuse σ > 0."""
        if sigma > 0 and not self.supports_reveal_noise:
            raise EngineUnavailableError(f"--reveal-noise is not available with --pet {self.name} yet")
        self.reveal_noise = sigma

    @abstractmethod
    def start_level(self, channel: Channel, level_index: int, operand: FixedOperand,
                    fixed_level: Image | PointSet) -> None:
        """Send whatever party1 needs once per level."""

    @abstractmethod
    def serve_product(self, channel: Channel, message: Message) -> None:
        """Answer one product request."""

    def close(self) -> None:
        """Release engine resources (dealer connection)."""
