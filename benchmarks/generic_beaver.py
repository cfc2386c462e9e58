"""The paper's construction, run for real: Sᵀ·J by a generic Beaver product on shares.

party1 holds S (N × p, the steepest-descent images of its moving image), party2 holds J
(N, its fixed image). As in the paper's SPDZ route both are secret-shared and multiplied
with a dealer's matrix triple (A, B, C = A·B), X = Sᵀ (p × N), Y = J (N × 1):

  setup           dealer → each party      a 32-byte seed (its triple shares expand from it)
                  party2 → party1          its share of J                     N elements
  per iteration   dealer → party2          C₁ = A·B − C₀                      p elements
                  party1 → party2          its share of S (S changes)        N·p
                  each party → the other   its shares of ε = X − A, δ = Y − B  N·p + N
                  party2 → party1          its share of Z = Sᵀ·J             p

Every message crosses a counted in-process :class:`~ppreg.transport.channel.Channel`,
so the bytes reported are frames on the wire, not formulas. Triples are preprocessing
(offline); their time is reported apart from the online round.
"""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ppreg.secure.mpc.beaver import MatmulTripleShare, beaver_bytes_per_party, beaver_finish, beaver_open_round, dealer_matmul_triple
from ppreg.secure.mpc.fixed import DEFAULT_FRAC_BITS, check_product_budget, decode_product, encode, product_error_bound
from ppreg.secure.mpc.prg import MaskStream, new_seed
from ppreg.secure.mpc.ring import ring_add, ring_matmul, ring_sub
from ppreg.transport.channel import Channel, TrafficStats, local_pair

ELEMENT_BYTES = 8


def run_generic_beaver(steepest: np.ndarray, fixed_values: np.ndarray, iterations: int = 3,
                       frac_bits: int = DEFAULT_FRAC_BITS) -> dict:
    """Run ``iterations`` Beaver products Sᵀ·J over real channels and check the result.

    Parameters
    ----------
    steepest : ndarray, shape (N, p)
        party1's S.
    fixed_values : ndarray, shape (N,)
        party2's J.

    Returns
    -------
    dict
        Bytes per iteration per party (measured frames and the element count formula),
        setup bytes, online and triple seconds per iteration, and the correctness check.
    """
    n, p = steepest.shape
    check_product_budget(n, float(np.max(np.abs(steepest))), float(np.max(np.abs(fixed_values))), frac_bits)
    party1_party2, party2_party1 = local_pair("party1", "party2", timeout=600)
    dealer_party1, party1_dealer = local_pair("dealer", "party1", timeout=600)
    dealer_party2, party2_dealer = local_pair("dealer", "party2", timeout=600)
    barrier = threading.Barrier(3)  # benchmark instrumentation only: separates offline from online
    with ThreadPoolExecutor(max_workers=2) as pool:
        dealer = pool.submit(_dealer, dealer_party1, dealer_party2, n, p, iterations, barrier)
        party2 = pool.submit(_party2, party2_party1, party2_dealer, fixed_values, n, p, iterations, frac_bits, barrier)
        party1 = _party1(party1_party2, party1_dealer, steepest, iterations, frac_bits, barrier)
        dealer_report, party2_report = dealer.result(), party2.result()
    revealed = party1.pop("revealed")
    oracle = ring_matmul(encode(steepest, frac_bits).T, encode(fixed_values, frac_bits)[:, None])
    float_result = steepest.T @ fixed_values
    bound = product_error_bound(n, float(np.max(np.abs(steepest))), float(np.max(np.abs(fixed_values))), frac_bits)
    error = float(np.max(np.abs(decode_product(revealed[:, 0], frac_bits) - float_result)))
    formula = {"party1": ELEMENT_BYTES * n * p + beaver_bytes_per_party(p, n, 1),
               "party2": beaver_bytes_per_party(p, n, 1) + ELEMENT_BYTES * p,
               "dealer": ELEMENT_BYTES * p}
    return {
        "n": n, "p": p, "iterations": iterations,
        "bytes_per_iteration": {"party1": party1["bytes_per_iteration"], "party2": party2_report["bytes_per_iteration"],
                                "dealer": dealer_report["bytes_per_iteration"]},
        "bytes_per_iteration_elements_only": formula,
        "setup_bytes": {"party1": party1["setup_bytes"], "party2": party2_report["setup_bytes"],
                        "dealer": dealer_report["setup_bytes"]},
        "online_seconds_per_iteration": statistics.median(party1["online_seconds"]),
        "triple_seconds_per_iteration": statistics.median(dealer_report["triple_seconds"]),
        "check": {"equals_ring_product": bool(np.array_equal(revealed, oracle)), "max_abs_error": error,
                  "error_bound": bound, "within_bound": error <= bound},
    }


def _dealer(to_party1: Channel, to_party2: Channel, n: int, p: int, iterations: int, barrier) -> dict:
    seeds = (new_seed(), new_seed())
    to_party1.send("seed", {}, seed=np.frombuffer(seeds[0], dtype=np.uint8))
    to_party2.send("seed", {}, seed=np.frombuffer(seeds[1], dtype=np.uint8))
    barrier.wait()
    before = _sent(to_party1) + _sent(to_party2)
    triple_seconds = []
    for iteration in range(iterations):
        started = time.perf_counter()
        label = f"triple/{iteration}"
        _, share1 = dealer_matmul_triple((p, n), (n, 1), MaskStream(seeds[0], label), MaskStream(seeds[1], label))
        to_party2.send("triple", {"iteration": iteration}, c=share1.c)
        triple_seconds.append(time.perf_counter() - started)
        barrier.wait()  # offline done
        barrier.wait()  # online done
    return {"setup_bytes": before, "bytes_per_iteration": (_sent(to_party1) + _sent(to_party2) - before) / iterations,
            "triple_seconds": triple_seconds}


def _party1(to_party2: Channel, to_dealer: Channel, steepest: np.ndarray, iterations: int, frac_bits: int,
            barrier) -> dict:
    seed = bytes(to_dealer.recv("seed").arrays["seed"])
    share_of_j = to_party2.recv("j_share").arrays["share"]
    private = MaskStream(new_seed(), "party1/S")
    barrier.wait()
    before = _sent(to_party2) + _sent(to_dealer)
    online_seconds, revealed = [], None
    n, p = steepest.shape
    for iteration in range(iterations):
        stream = MaskStream(seed, f"triple/{iteration}")
        triple = MatmulTripleShare(stream.uint64((p, n)), stream.uint64((n, 1)), stream.uint64((p, 1)))
        barrier.wait()
        started = time.perf_counter()
        own_share = private.uint64((n, p))
        to_party2.send("s_share", {}, share=ring_sub(encode(steepest, frac_bits), own_share))
        z_share = _open_and_finish(0, to_party2, own_share.T, share_of_j, triple)
        revealed = ring_add(z_share, to_party2.recv("z_share").arrays["share"])
        online_seconds.append(time.perf_counter() - started)
        barrier.wait()
    return {"setup_bytes": before, "bytes_per_iteration": (_sent(to_party2) + _sent(to_dealer) - before) / iterations,
            "online_seconds": online_seconds, "revealed": revealed}


def _party2(to_party1: Channel, to_dealer: Channel, fixed_values: np.ndarray, n: int, p: int, iterations: int,
            frac_bits: int, barrier) -> dict:
    seed = bytes(to_dealer.recv("seed").arrays["seed"])
    own_j = MaskStream(new_seed(), "party2/J").uint64((n, 1))
    to_party1.send("j_share", {}, share=ring_sub(encode(fixed_values, frac_bits)[:, None], own_j))
    barrier.wait()
    before = _sent(to_party1) + _sent(to_dealer)
    for iteration in range(iterations):
        stream = MaskStream(seed, f"triple/{iteration}")
        a_share, b_share = stream.uint64((p, n)), stream.uint64((n, 1))
        triple = MatmulTripleShare(a_share, b_share, to_dealer.recv("triple").arrays["c"])
        barrier.wait()
        share_of_s = to_party1.recv("s_share").arrays["share"]
        z_share = _open_and_finish(1, to_party1, share_of_s.T, own_j, triple)
        to_party1.send("z_share", {}, share=z_share)
        barrier.wait()
    return {"setup_bytes": before, "bytes_per_iteration": (_sent(to_party1) + _sent(to_dealer) - before) / iterations}


def _open_and_finish(index: int, peer: Channel, x_share, y_share, triple: MatmulTripleShare) -> np.ndarray:
    """Open ε = X − A and δ = Y − B (send ours, receive theirs), then this party's share of X·Y."""
    eps_share, delta_share = beaver_open_round(x_share, y_share, triple)
    peer.send("open", {}, eps=np.ascontiguousarray(eps_share), delta=delta_share)
    theirs = peer.recv("open")
    eps = ring_add(eps_share, theirs.arrays["eps"])
    delta = ring_add(delta_share, theirs.arrays["delta"])
    return beaver_finish(index, eps, delta, triple)


def _sent(channel: Channel) -> int:
    stats: TrafficStats = channel.stats.copy()
    return stats.bytes_sent
