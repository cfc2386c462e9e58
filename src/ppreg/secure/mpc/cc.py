"""Local CC under mpc: r1 revealed to party1 only, r2 to party2 only, nothing else but mean c².

Notation of :mod:`ppreg.similarity.cc`. party1 holds a, e, Î; party2 b, f, Ĵ. Every
product of a party1 value A and a party2 value B uses the same pattern ("cross product"):
party1 opens Ã = A − U, party2 opens B̃ = B − V (U, V fresh masks expanded from the seeds
each party shares with the dealer), the dealer sends party1 Z₁ = Σ w·U⊙V − Z₂ (Z₂ expands
from party2's seed), and

  party1's share = Σ w·A⊙B̃ + Z₁,   party2's share = Σ w·Ã⊙V + Z₂,   sum = Σ w·A⊙B.

Per iteration (all element-wise on the level grid, N voxels; ring Z_2^64):

  1. X = n·D = B(a, b) with B(x, y) = n·box(x⊙y) − box(x)⊙box(y) bilinear, so the same
     pattern works through the (linear) box sums: party1 opens ã, party2 opens b̃, the
     dealer's Z is B(U, V). Shares of X are truncated locally to scale 2^fx.
  2. c = X·e·f = (X₁·e)·f + e·(X₂·f): party1 opens X₁e and e, party2 f and X₂f.
     Shares of c are truncated locally to scale 2^fc.
  3. r1 = c·Ĵ − c²·Î and r2 = c·Î − c²·Ĵ with c = C₁ + C₂ expanded into cross products of
     party1's {C₁, Î·C₁, Î, C₁²} and party2's {Ĵ, C₂, C₂², Ĵ·C₂} (opened once, used by
     both outputs) plus local terms; Σc² = Σ(C₁² + 2C₁C₂ + C₂²) likewise (one scalar).
  4. party2 sends its share of r1 (with its round-3 openings), party1 its share of r2;
     both send their share of Σc².

Wire per iteration and voxel: 8 ring elements from each party, 4 from the dealer.
Truncation is SecureML's local probabilistic one (:func:`~ppreg.secure.mpc.fixed.truncate_share`);
the values truncated stay below 2^TRUNCATION_BITS, so a voxel fails with probability
≤ 2^(TRUNCATION_BITS+1−64). A failure turns that voxel's r into garbage, which the |r| ≤ 2
check at the reveal catches (r is then 0 and counted in ``CCForces.discarded``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ppreg.errors import ProtocolError
from ppreg.secure.cc import PARTY1, CCJoint
from ppreg.secure.mpc.box import ring_covariance
from ppreg.secure.mpc.fixed import decode, encode, truncate_share
from ppreg.secure.mpc.prg import MaskStream
from ppreg.secure.mpc.ring import RING_DTYPE, ring_add, ring_mul, ring_sub, ring_sum
from ppreg.similarity.cc import VARIANCE_FLOOR, CCForces, LocalStats, window_size
from ppreg.transport.channel import Channel

TRUNCATION_BITS = 36  # |values truncated| < 2^36: failure ≤ 2^-27 per voxel and truncation
FORCE_BOUND = 2.0  # |r| = |c|·|Ĵ − c·Î| ≤ 2
COVARIANCE_PRECISION = 1e-3

PARTY1_MASKS = ("a", "xe", "e", "c", "ic", "i", "cc")  # U: ã, X₁e, e, C₁, Î·C₁, Î, C₁²
PARTY2_MASKS = ("b", "f", "xf", "j", "c", "cc", "jc")  # V: b̃, f, X₂f, Ĵ, C₂, C₂², Ĵ·C₂
SHARES = ("x", "c", "r1", "r2")  # Z₂ tensors; plus the scalar "m" (Σc²)


@dataclass(frozen=True)
class CCScales:
    """Fixed-point bits per quantity, chosen from the window size n (public).

    intensity : f_a, so that |X| < 2^TRUNCATION_BITS at scale 2^(2 f_a) (|X| ≤ n²/4)
    covariance : f_x, X after the first truncation: its rounding, amplified by e·f up to
        1/(n²·VARIANCE_FLOOR), stays below COVARIANCE_PRECISION in c
    norm : f_e = f_f, for e = 1/√(nE) and f, with c·2^(f_x + 2 f_e) < 2^TRUNCATION_BITS as |c| ≤ 1
    correlation : f_c, c after the second truncation
    normalized : f_i, for Î and Ĵ; r and Σc² are revealed at scale 2^(2 f_c + f_i), 2^(2 f_c)
    """

    intensity: int
    covariance: int
    norm: int
    correlation: int = 16
    normalized: int = 16

    @classmethod
    def for_window(cls, n: int) -> "CCScales":
        intensity = min(16, int((TRUNCATION_BITS - math.log2(n * n / 4.0)) // 2))
        covariance = min(2 * intensity, math.ceil(-math.log2(2 * COVARIANCE_PRECISION * n * n * VARIANCE_FLOOR)))
        norm = (TRUNCATION_BITS - covariance) // 2
        if intensity < 6 or norm < 8:
            raise ProtocolError(f"a window of {n} voxels leaves too few fixed-point bits")
        return cls(intensity, covariance, norm)

    @property
    def covariance_shift(self) -> int:
        return 2 * self.intensity - self.covariance

    @property
    def correlation_shift(self) -> int:
        return self.covariance + 2 * self.norm - self.correlation

    @property
    def force_bits(self) -> int:
        return 2 * self.correlation + self.normalized


def label(level: int, iteration: int, name: str) -> str:
    return f"cc/{level}/{iteration}/{name}"


def expand(seed: bytes, level: int, iteration: int, names, shape) -> dict[str, np.ndarray]:
    return {name: MaskStream(seed, label(level, iteration, name)).uint64(shape) for name in names}


def party2_scalar(seed: bytes, level: int, iteration: int) -> np.uint64:
    return MaskStream(seed, label(level, iteration, "m")).uint64(1)[0]


def dealer_shares(seed1: bytes, seed2: bytes, level: int, iteration: int, shape, radius: int,
                  scales: CCScales) -> dict[str, np.ndarray]:
    """The dealer's tensors for party1: Z₁ = Σ w·U⊙V − Z₂ for each output (data-independent)."""
    u = expand(seed1, level, iteration, PARTY1_MASKS, shape)
    v = expand(seed2, level, iteration, PARTY2_MASKS, shape)
    z2 = expand(seed2, level, iteration, SHARES, shape)
    weight = RING_DTYPE(1 << scales.correlation)
    two = RING_DTYPE(2)
    products = {
        "x": ring_covariance(u["a"], v["b"], radius),
        "c": ring_add(ring_mul(u["xe"], v["f"]), ring_mul(u["e"], v["xf"])),
        "r1": ring_sub(ring_sub(ring_mul(weight, ring_mul(u["c"], v["j"])), ring_mul(two, ring_mul(u["ic"], v["c"]))),
                       ring_mul(u["i"], v["cc"])),
        "r2": ring_sub(ring_sub(ring_mul(weight, ring_mul(u["i"], v["c"])), ring_mul(two, ring_mul(u["c"], v["jc"]))),
                       ring_mul(u["cc"], v["j"])),
    }
    shares = {name: ring_sub(products[name], z2[name]) for name in SHARES}
    metric = ring_mul(two, ring_sum(ring_mul(u["c"], v["c"])))
    shares["m"] = np.atleast_1d(ring_sub(metric, party2_scalar(seed2, level, iteration)))
    return shares


class MPCCC(CCJoint):
    """Either party's half of the protocol in the module docstring."""

    name = "mpc"

    def __init__(self, role: str, channel: Channel, dealer: Channel, seed: bytes):
        super().__init__(role, channel)
        self.dealer, self.seed = dealer, seed
        self.level, self.iteration = -1, 0

    def start_level(self, level: int, shape: tuple[int, ...], radius: int) -> None:
        self.level, self.iteration = level, 0
        self.shape, self.radius = tuple(int(v) for v in shape), radius
        self.scales = CCScales.for_window(window_size(radius, len(shape)))
        if self.role == PARTY1:
            self.dealer.send("cc_level", {"level": level, "shape": list(self.shape), "radius": radius})

    def forces(self, own: LocalStats) -> CCForces:
        iteration, self.iteration = self.iteration, self.iteration + 1
        if own.warped.shape != self.shape:
            raise ValueError(f"statistics of shape {own.warped.shape}, the level is {self.shape}")
        if self.role == PARTY1:
            return _party1_iteration(self, own, iteration)
        return _party2_iteration(self, own, iteration)

    def receive(self, channel: Channel, kind: str, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Ring arrays of the level shape (a scalar for ``m``), checked before use."""
        message = channel.recv(kind)
        arrays = {}
        for name in names:
            values = np.asarray(message.arrays.get(name))
            shape = (1,) if name == "m" else self.shape
            if values.dtype != RING_DTYPE or values.shape != shape:
                raise ProtocolError(f"{channel.remote} sent {kind}/{name} as {values.dtype}{values.shape}, "
                                    f"expected uint64{shape}")
            arrays[name] = values
        return arrays

    def truncate(self, share: np.ndarray, bits: int) -> np.ndarray:
        return truncate_share(0 if self.role == PARTY1 else 1, share, bits)

    def reveal_forces(self, own_share: np.ndarray, peer_share: np.ndarray) -> tuple[np.ndarray, int]:
        values = decode(ring_add(own_share, peer_share), self.scales.force_bits)
        garbage = ~(np.abs(values) <= FORCE_BOUND * (1 + 1e-6))
        return np.where(garbage, 0.0, values), int(np.count_nonzero(garbage))

    def reveal_metric(self, own_share: np.ndarray, peer_share: np.ndarray) -> float:
        total = float(decode(ring_add(own_share, peer_share), 2 * self.scales.correlation)[0])
        mean = total / math.prod(self.shape)
        return mean if -1e-6 <= mean <= 1 + 1e-6 else float("nan")  # nan: a truncation failure hit Σc²


def _party1_iteration(engine: MPCCC, own: LocalStats, iteration: int) -> CCForces:
    scales, radius, meta = engine.scales, engine.radius, {"iteration": iteration}
    engine.dealer.send("cc_iteration", {"level": engine.level, "iteration": iteration})
    u = expand(engine.seed, engine.level, iteration, PARTY1_MASKS, engine.shape)
    a, e = encode(own.warped, scales.intensity), encode(own.inv_norm, scales.norm)
    i = encode(own.normalized, scales.normalized)
    engine.channel.send("cc_open1", meta, a=ring_sub(a, u["a"]))
    peer = engine.receive(engine.channel, "cc_open1", ("b",))
    dealer = engine.receive(engine.dealer, "cc_shares", SHARES + ("m",))
    covariance = engine.truncate(ring_add(ring_covariance(a, peer["b"], radius), dealer["x"]), scales.covariance_shift)
    xe = ring_mul(covariance, e)
    engine.channel.send("cc_open2", meta, xe=ring_sub(xe, u["xe"]), e=ring_sub(e, u["e"]))
    peer = engine.receive(engine.channel, "cc_open2", ("f", "xf"))
    corr = ring_add(ring_add(ring_mul(xe, peer["f"]), ring_mul(e, peer["xf"])), dealer["c"])
    corr = engine.truncate(corr, scales.correlation_shift)
    ic, cc = ring_mul(i, corr), ring_mul(corr, corr)
    engine.channel.send("cc_open3", meta, c=ring_sub(corr, u["c"]), ic=ring_sub(ic, u["ic"]), i=ring_sub(i, u["i"]),
                        cc=ring_sub(cc, u["cc"]))
    peer = engine.receive(engine.channel, "cc_open3", ("j", "c", "cc", "jc", "r1", "m"))
    weight, two = RING_DTYPE(1 << scales.correlation), RING_DTYPE(2)
    r1 = ring_sub(ring_sub(ring_mul(weight, ring_mul(corr, peer["j"])), ring_mul(two, ring_mul(ic, peer["c"]))),
                  ring_add(ring_mul(i, peer["cc"]), ring_mul(i, cc)))
    r1 = ring_add(r1, dealer["r1"])
    r2 = ring_sub(ring_mul(weight, ring_add(ring_mul(i, peer["c"]), ring_mul(corr, i))),
                  ring_add(ring_mul(two, ring_mul(corr, peer["jc"])), ring_mul(cc, peer["j"])))
    r2 = ring_add(r2, dealer["r2"])
    metric = ring_add(ring_add(ring_sum(cc), ring_mul(two, ring_sum(ring_mul(corr, peer["c"])))), dealer["m"])
    engine.channel.send("cc_share2", meta, r2=r2, m=metric)
    factor, discarded = engine.reveal_forces(r1, peer["r1"])
    return CCForces(factor, engine.reveal_metric(metric, peer["m"]), discarded)


def _party2_iteration(engine: MPCCC, own: LocalStats, iteration: int) -> CCForces:
    scales, radius, meta = engine.scales, engine.radius, {"iteration": iteration}
    v = expand(engine.seed, engine.level, iteration, PARTY2_MASKS, engine.shape)
    z2 = expand(engine.seed, engine.level, iteration, SHARES, engine.shape)
    b, f = encode(own.warped, scales.intensity), encode(own.inv_norm, scales.norm)
    j = encode(own.normalized, scales.normalized)
    peer = engine.receive(engine.channel, "cc_open1", ("a",))
    engine.channel.send("cc_open1", meta, b=ring_sub(b, v["b"]))
    covariance = engine.truncate(ring_add(ring_covariance(peer["a"], v["b"], radius), z2["x"]), scales.covariance_shift)
    xf = ring_mul(covariance, f)
    peer = engine.receive(engine.channel, "cc_open2", ("xe", "e"))
    engine.channel.send("cc_open2", meta, f=ring_sub(f, v["f"]), xf=ring_sub(xf, v["xf"]))
    corr = ring_add(ring_add(ring_mul(peer["xe"], v["f"]), ring_mul(peer["e"], v["xf"])), z2["c"])
    corr = engine.truncate(corr, scales.correlation_shift)
    jc, cc = ring_mul(j, corr), ring_mul(corr, corr)
    peer = engine.receive(engine.channel, "cc_open3", ("c", "ic", "i", "cc"))
    weight, two = RING_DTYPE(1 << scales.correlation), RING_DTYPE(2)
    r1 = ring_sub(ring_sub(ring_mul(weight, ring_add(ring_mul(peer["c"], v["j"]), ring_mul(corr, j))),
                           ring_mul(two, ring_mul(peer["ic"], v["c"]))),
                  ring_mul(peer["i"], v["cc"]))
    r1 = ring_add(r1, z2["r1"])
    metric = ring_add(ring_add(ring_sum(cc), ring_mul(two, ring_sum(ring_mul(peer["c"], v["c"])))),
                      party2_scalar(engine.seed, engine.level, iteration))
    metric = np.atleast_1d(metric)
    engine.channel.send("cc_open3", meta, j=ring_sub(j, v["j"]), c=ring_sub(corr, v["c"]), cc=ring_sub(cc, v["cc"]),
                        jc=ring_sub(jc, v["jc"]), r1=r1, m=metric)
    r2 = ring_sub(ring_mul(weight, ring_mul(peer["i"], v["c"])),
                  ring_add(ring_add(ring_mul(two, ring_mul(peer["c"], v["jc"])), ring_mul(peer["cc"], v["j"])),
                           ring_mul(j, cc)))
    r2 = ring_add(r2, z2["r2"])
    peer = engine.receive(engine.channel, "cc_share2", ("r2", "m"))
    factor, discarded = engine.reveal_forces(r2, peer["r2"])
    return CCForces(factor, engine.reveal_metric(metric, peer["m"]), discarded)
