"""The clear engine: party2 hands over its level image (or point set); party1 computes Fᵀ·G itself.

No privacy at all — it is the accuracy baseline and the oracle the secure engines
are tested against. It still runs through the counted channel, so its bytes are real.
"""

from __future__ import annotations

import numpy as np

from ppreg.errors import ProtocolError
from ppreg.io.images import Image
from ppreg.io.points import PointSet
from ppreg.secure.base import EngineClient, EngineServer, LevelContext
from ppreg.secure.reveal_noise import RevealNoise, check_reveal_noise
from ppreg.similarity.base import FixedOperand
from ppreg.similarity.operands import build_fixed_operand
from ppreg.transport.channel import Channel, Message


class ClearClient(EngineClient):
    name = "clear"

    def __init__(self) -> None:
        self._operand: FixedOperand | None = None
        self._noise: RevealNoise | None = None

    def start_level(self, channel: Channel, level: LevelContext) -> None:
        message = channel.recv("clear_level")
        values = np.asarray(message.arrays["fixed"], dtype=np.float64)
        expected = level.grid.shape if level.grid is not None else (level.operand_shape[0], level.request.model.dim)
        if values.shape != expected:
            raise ProtocolError(f"party2 sent level data of shape {values.shape}, expected {expected}")
        fixed_level = Image(array=values, grid=level.grid) if level.grid is not None else PointSet(points=values)
        self._operand = build_fixed_operand(level.request, fixed_level, level.sample_index)
        sigma = check_reveal_noise(message.meta.get("reveal_noise", 0.0))
        # No privacy here: the noise is added where party1 computes the product, so the
        # clear engine shows the same accuracy cost as the secure ones.
        self._noise = RevealNoise(sigma, self._operand) if sigma > 0 else None

    def product(self, channel: Channel, features: np.ndarray, selection: np.ndarray) -> np.ndarray:
        product = self._operand.left_product(features)
        if self._noise is not None:
            product = product + self._noise.sample(product.shape[0])
        return np.where(selection, product, 0.0)


class ClearServer(EngineServer):
    name = "clear"
    supports_reveal_noise = True

    def start_level(self, channel: Channel, level_index: int, operand: FixedOperand, fixed_level: Image | PointSet) -> None:
        values = fixed_level.points if isinstance(fixed_level, PointSet) else fixed_level.array
        channel.send("clear_level", {"level": level_index, "reveal_noise": self.reveal_noise}, fixed=values)

    def serve_product(self, channel: Channel, message: Message) -> None:
        raise ProtocolError("the clear engine takes no product requests")
