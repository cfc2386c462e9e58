"""The local-CC joint service of ``ppreg ants``: each party gets the force factor of its side.

Unlike the Fᵀ·G products of the other models, SyN is symmetric: both parties warp their
own image every iteration, so both call :meth:`CCJoint.forces` in lockstep with their
own :class:`~ppreg.similarity.cc.LocalStats` and each receives only its own factor r
(r1 = c·Ĵ − c²·Î for party1, r2 = c·Î − c²·Ĵ for party2) and the scalar metric.
The engine is built on top of the session's privacy engine (its dealer channel and seed).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ppreg.errors import EngineUnavailableError, ProtocolError
from ppreg.similarity.cc import CCForces, LocalStats, clear_forces
from ppreg.transport.channel import Channel

SYN_PETS = ("clear", "mpc")
PARTY1, PARTY2 = "party1", "party2"


class CCJoint(ABC):
    """One party's half of the local-CC joint computation."""

    name: str

    def __init__(self, role: str, channel: Channel):
        if role not in (PARTY1, PARTY2):
            raise ValueError(f"role must be party1 or party2, got {role!r}")
        self.role, self.channel = role, channel

    @abstractmethod
    def start_level(self, level: int, shape: tuple[int, ...], radius: int, iterations: int = 0) -> None:
        """Public geometry of the midpoint grid for the next iterations (at most ``iterations``,
        0 = not said; party1 says it so that the mpc dealer can work ahead)."""

    @abstractmethod
    def forces(self, own: LocalStats) -> CCForces:
        """This party's r (level shape) and the metric mean c², for one iteration."""


class ClearCC(CCJoint):
    """No privacy: the parties swap their warped images and statistics (the oracle)."""

    name = "clear"

    def start_level(self, level: int, shape: tuple[int, ...], radius: int, iterations: int = 0) -> None:
        self.shape = tuple(shape)

    def forces(self, own: LocalStats) -> CCForces:
        arrays = {"warped": own.warped, "inv_norm": own.inv_norm, "normalized": own.normalized}
        if self.role == PARTY1:
            self.channel.send("cc_clear", {}, **arrays)
            other = self._receive(own.radius)
        else:
            other = self._receive(own.radius)
            self.channel.send("cc_clear", {}, **arrays)
        return clear_forces(own, other)

    def _receive(self, radius: int) -> LocalStats:
        message = self.channel.recv("cc_clear")
        arrays = {}
        for name in ("warped", "inv_norm", "normalized"):
            values = np.asarray(message.arrays.get(name), dtype=np.float64)
            if values.shape != self.shape:
                raise ProtocolError(f"{self.channel.remote} sent {name} of shape {values.shape}, expected {self.shape}")
            arrays[name] = values
        return LocalStats(arrays["warped"], np.zeros(self.shape), arrays["inv_norm"], arrays["normalized"], radius)


def check_syn_pet(pet: str) -> None:
    """ants runs on clear and mpc only (the CKKS engines have no element-wise protocol)."""
    if pet not in SYN_PETS:
        raise EngineUnavailableError(f"ppreg ants supports --pet {' or '.join(SYN_PETS)}, not {pet!r}")


def cc_joint_for(engine, role: str, channel: Channel) -> CCJoint:
    """The CC half matching the session's engine (party1's client or party2's server)."""
    check_syn_pet(engine.name)
    if engine.name == "clear":
        return ClearCC(role, channel)
    from ppreg.secure.mpc.cc import MPCCC

    return MPCCC(role, channel, engine.dealer, engine.seed)
