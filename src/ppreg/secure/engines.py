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
# What each joint product is called on the command line (the metric of its level requests).
METRIC_LABELS = {"ssd": "affine --metric ssd", "mi": "affine --metric mi", "bspline": "ppreg bspline",
                 "points": "ppreg pointcloud", "ants": "ppreg ants"}


def supports(pet: str, metric: str) -> bool:
    """Whether engine ``pet`` computes the joint product of ``metric`` (its client's
    ``metrics``; an engine without that list computes every product)."""
    metrics = getattr(AVAILABLE[pet][0], "metrics", None)
    return metrics is None or metric in metrics


def check_available(pet: str, metric: str | None = None) -> None:
    """Raise a clear error for an engine that is not implemented, or (given ``metric``)
    cannot compute that metric's joint product — before anything connects. Never fall
    back to clear."""
    if pet not in PETS:
        raise EngineUnavailableError(f"--pet must be one of {', '.join(PETS)}, got {pet!r}")
    if pet not in AVAILABLE:
        raise EngineUnavailableError(f"--pet {pet} is not available yet in this version of ppreg")
    if metric is not None and not supports(pet, metric):
        able = [other for other in AVAILABLE if supports(other, metric)]
        offered = [METRIC_LABELS.get(name, name) for name in AVAILABLE[pet][0].metrics]
        raise EngineUnavailableError(f"--pet {pet} does not support {METRIC_LABELS.get(metric, metric)} "
                                     f"(it supports {', '.join(offered)}); use --pet {_either(able)}")


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


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
