"""Which privacy engines exist, and how each party builds its half."""

from __future__ import annotations

from ppreg.errors import EngineUnavailableError
from ppreg.secure.clear import ClearClient, ClearServer
from ppreg.secure.fhe import FHE1Client, FHE1Server, FHE2Client, FHE2Server
from ppreg.secure.mpc.engine import MPCClient, MPCServer

PETS = ("clear", "mpc", "fhe1", "fhe2")
AVAILABLE = {
    "clear": (ClearClient, ClearServer),
    "mpc": (MPCClient, MPCServer),
    "fhe1": (FHE1Client, FHE1Server),
    "fhe2": (FHE2Client, FHE2Server),
}
WITH_DEALER = ("mpc",)


def check_available(pet: str) -> None:
    """Raise a clear error for an engine that is not implemented (never fall back to clear)."""
    if pet not in PETS:
        raise EngineUnavailableError(f"--pet must be one of {', '.join(PETS)}, got {pet!r}")
    if pet not in AVAILABLE:
        raise EngineUnavailableError(f"--pet {pet} is not available yet in this version of ppreg")


def needs_dealer(pet: str) -> bool:
    return pet in WITH_DEALER


def client_for(pet: str, dealer=None, session: str = ""):
    """Party1's half; engines with a dealer get their dealer channel."""
    check_available(pet)
    client = AVAILABLE[pet][0]
    return client(dealer=dealer, session=session) if needs_dealer(pet) else client()


def server_for(pet: str, dealer=None, session: str = ""):
    """Party2's half; engines with a dealer get their dealer channel."""
    check_available(pet)
    server = AVAILABLE[pet][1]
    return server(dealer=dealer, session=session) if needs_dealer(pet) else server()
