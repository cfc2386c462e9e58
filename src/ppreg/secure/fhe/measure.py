"""Per-iteration cost and accuracy of fhe1 and fhe2; docs/fhe.md quotes its output.

``python -m ppreg.secure.fhe.measure --rows 6554 65536 --flood-bits 1 16 24 32 40``
times one level of products on a synthetic SSD-shaped operand (G: n × 7, steepest
descent columns in ±50 and J in [0, 1]; F uniform in [0, 1]). Both halves run in
threads of one process over a counted in-process channel; times are each party's own
CPU time (thread time), so waiting for the peer is not counted.

``--registration`` also registers a known affine transform of data/brain_t1_slice.png
(URS and GMS sampling) with clear, fhe1 and fhe2 and prints how far each transform is
from the clear one.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ppreg.core.transforms import AffineModel
from ppreg.secure.base import LevelContext
from ppreg.secure.fhe.fhe1 import FHE1Client, FHE1Server
from ppreg.secure.fhe.fhe2 import FHE2Client, FHE2Server
from ppreg.secure.fhe.params import CKKSParameters
from ppreg.similarity.base import DenseOperand, LevelRequest
from ppreg.transport.channel import local_pair
from ppreg.transport.wire import encode

ENGINES = {"fhe1": (FHE1Client, FHE1Server), "fhe2": (FHE2Client, FHE2Server)}


@dataclass
class Measurement:
    engine: str
    rows: int
    columns: int
    level_bytes: int = 0  # party2 → party1 when the level starts (keys + encrypted operand)
    key_bytes: int = 0  # of which the public context and Galois keys (first level only)
    party1_seconds: list[float] = field(default_factory=list)
    party2_seconds: list[float] = field(default_factory=list)
    party1_bytes: list[int] = field(default_factory=list)
    party2_bytes: list[int] = field(default_factory=list)
    relative_errors: list[float] = field(default_factory=list)

    def row(self) -> str:
        return (
            f"| {self.engine} | {self.rows} | {np.mean(self.party1_seconds):.3f} | {np.mean(self.party2_seconds):.3f} "
            f"| {np.mean(self.party1_bytes) / 1e6:.3f} | {np.mean(self.party2_bytes) / 1e6:.4f} "
            f"| {self.key_bytes / 1e6:.2f} | {(self.level_bytes - self.key_bytes) / 1e6:.2f} "
            f"| {max(self.relative_errors):.1e} |"
        )


HEADER = (
    "| engine | rows n | party1 s/iter | party2 s/iter | party1 MB/iter | party2 MB/iter | key MB (once) "
    "| operand MB/level | max rel. error |\n|---|---|---|---|---|---|---|---|---|"
)


def _serve(server, channel, operand, seconds: list[float]) -> None:
    channel.recv("level")
    server.start_level(channel, 0, DenseOperand(dense=operand), None)
    channel.send("level_ready")
    while (message := channel.recv()).kind != "bye":
        started = time.thread_time()
        server.serve_product(channel, message)
        seconds.append(time.thread_time() - started)
    server.close()


def measure(engine: str, rows: int, columns: int = 7, iterations: int = 3, seed: int = 0,
            parameters: CKKSParameters | None = None) -> Measurement:
    """Run one level of ``iterations`` products and record cost and error."""
    rng = np.random.default_rng(seed)
    operand = rng.uniform(-50.0, 50.0, (rows, columns))
    operand[:, -1] = rng.uniform(0.0, 1.0, rows)
    client_type, server_type = ENGINES[engine]
    server = server_type(parameters) if parameters else server_type()
    result = Measurement(engine, rows, columns)
    party1, party2 = local_pair("party1", "party2", timeout=None)
    thread = threading.Thread(target=_serve, args=(server, party2, operand, result.party2_seconds), daemon=True)
    thread.start()
    model = AffineModel(kind="affine", dim=2, center=np.zeros(2), scale=1.0)
    level = LevelContext(0, LevelRequest(metric="ssd", shrink=1, sigma=0.0, model=model), None, None, operand.shape)
    client = client_type()
    party1.send("level")
    counting = _CountingEnd(party1)
    client.start_level(counting, level)
    party1.recv("level_ready")
    result.key_bytes = counting.received["fhe_keys"]
    result.level_bytes = sum(counting.received.values())
    selection = np.ones((1, columns), dtype=bool)
    for _ in range(iterations):
        features = rng.uniform(0.0, 1.0, rows)
        before, started = party1.stats.copy(), time.thread_time()
        product = client.product(party1, features[:, None], selection)
        result.party1_seconds.append(time.thread_time() - started)
        delta = party1.stats - before
        result.party1_bytes.append(delta.bytes_sent)
        result.party2_bytes.append(delta.bytes_received)
        reference = features @ operand
        result.relative_errors.append(float(np.max(np.abs(product[0] - reference)) / np.max(np.abs(reference))))
    party1.send("bye")
    thread.join()
    client.close()
    return result


class _CountingEnd:
    """A channel end that also tallies received frame bytes by message kind."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self.received: Counter = Counter()

    def send(self, kind, meta=None, **arrays):
        return self.channel.send(kind, meta, **arrays)

    def recv(self, kind=None):
        message = self.channel.recv(kind)
        self.received[message.kind] += len(encode(message))
        return message


def registration_differences(data_dir: Path, pets: tuple[str, ...] = ("fhe2", "fhe1")) -> list[str]:
    """RMSE (px) between clear and each engine's transform on a known-transform case."""
    from ppreg.api import run_affine, transform_difference
    from ppreg.config import AffineConfig, load_config
    from ppreg.io.images import read_image
    from ppreg.secure.runtime import in_process_session
    from ppreg.synthetic import known_affine, warp_with

    fixed = read_image(data_dir / "brain_t1_slice.png")
    moving = warp_with(fixed, *known_affine(2, 6.0, (4.0, -3.0), 0.05, fixed.grid.center()))
    lines = []
    for sampling in ("urs", "gms"):
        outcomes = {}
        for pet in ("clear", *pets):
            config = load_config(AffineConfig, None, {"sampling": sampling, "pet": pet})
            with in_process_session(fixed, pet) as proxy:
                outcomes[pet] = run_affine(moving, proxy, config)
        for pet in pets:
            difference = transform_difference(outcomes["clear"].sitk_transform(), outcomes[pet].sitk_transform(), fixed.grid)
            iterations = sum(len(level.iterations) for level in outcomes[pet].result.levels)
            lines.append(f"{pet}, {sampling}: RMSE to clear {difference['rmse_mm']:.4f} px, max {difference['max_mm']:.4f} px, "
                         f"{iterations} iterations, {outcomes[pet].wall_seconds:.1f} s")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[6554, 65536])
    parser.add_argument("--columns", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES))
    parser.add_argument("--flood-bits", type=int, nargs="*", default=[], help="also report fhe2 error at these κ")
    parser.add_argument("--registration", action="store_true", help="also compare registrations with clear")
    parser.add_argument("--data", type=Path, default=Path("data"), help="the repository's data/ folder")
    args = parser.parse_args(argv)
    print(HEADER)
    for rows in args.rows:
        for engine in args.engines:
            print(measure(engine, rows, args.columns, args.iterations).row(), flush=True)
    for bits in args.flood_bits:
        found = measure("fhe2", args.rows[0], args.columns, args.iterations, parameters=CKKSParameters(flood_bits=bits))
        print(f"fhe2, N={args.rows[0]}, flood_bits={bits}: max rel. error {max(found.relative_errors):.1e}", flush=True)
    if args.registration:
        for line in registration_differences(args.data):
            print(line, flush=True)


if __name__ == "__main__":
    main()
