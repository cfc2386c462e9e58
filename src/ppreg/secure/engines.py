"""Which privacy engines exist, and how each party builds its half."""

from __future__ import annotations

from ppreg.errors import EngineUnavailableError
from ppreg.secure.base import EngineClient, EngineServer
from ppreg.secure.clear import ClearClient, ClearServer

PETS = ("clear", "mpc", "fhe1", "fhe2")
AVAILABLE = {"clear": (ClearClient, ClearServer)}


def check_available(pet: str, metric: str | None = None) -> None:
    """Raise a clear error for an engine that is not implemented (never fall back to clear)."""
    if pet not in PETS:
        raise EngineUnavailableError(f"--pet must be one of {', '.join(PETS)}, got {pet!r}")
    if pet not in AVAILABLE:
        raise EngineUnavailableError(f"--pet {pet} is not available yet in this version of ppreg")


def client_for(pet: str, **resources) -> EngineClient:
    check_available(pet)
    return AVAILABLE[pet][0](**resources)


def server_for(pet: str, **resources) -> EngineServer:
    check_available(pet)
    return AVAILABLE[pet][1](**resources)


def needs_dealer(pet: str) -> bool:
    return pet == "mpc"
