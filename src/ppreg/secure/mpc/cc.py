"""Local CC under mpc: r1 revealed to party1 only, r2 to party2 only, nothing else but mean c²
and the joint support S.

Notation of :mod:`ppreg.similarity.cc`. party1 holds a, e, Î; party2 b, f, Ĵ. Every
product of a party1 value A and a party2 value B uses the same pattern ("cross product"):
party1 opens Ã = A − U, party2 opens B̃ = B − V (U, V fresh masks expanded from the seeds
each party shares with the dealer), the dealer sends party1 Z₁ = Σ w·U⊙V − Z₂ (Z₂ expands
from party2's seed), and

  party1's share = Σ w·A⊙B̃ + Z₁,   party2's share = Σ w·Ã⊙V + Z₂,   sum = Σ w·A⊙B.

Per iteration (N voxels of the level grid; ring Z_2^64):

  0. Support: c = X·e·f is 0 wherever e = 0 or f = 0 (flat windows), so only the voxels of
     S = {e ≠ 0} ∩ {f ≠ 0} need the rest. S is revealed to both parties by one AND of
     party1's bit (e ≠ 0) and party2's bit (f ≠ 0) per voxel, the same pattern over GF(2)
     (2 bits per voxel from each party). What S adds to the outputs: docs/privacy.md.
  1. X = n·D = B(a, b) with B(x, y) = n·box(x⊙y) − box(x)⊙box(y) bilinear, so the same
     pattern works through the (linear) box sums: party1 opens ã, party2 opens b̃ on S⁺ (S
     dilated by the window: every voxel some window of S reads), with masks at fixed grid
     positions; the dealer's Z is B(U, V) on the whole grid. X at the voxels of S only
     reads S⁺, so the unopened voxels (set to 0) never matter. Shares of X on S are
     truncated locally to scale 2^fx.
  2. On the K = |S| voxels of S, packed in grid order into slots 0..K−1 (masks and dealer
     tensors are per slot: slot k of a length-N stream, so the dealer needs neither S nor K):
     c = X·e·f = (X₁·e)·f + e·(X₂·f): party1 opens X₁e and e, party2 f and X₂f.
     Shares of c are truncated locally to scale 2^fc.
  3. r1 = c·Ĵ − c²·Î and r2 = c·Î − c²·Ĵ with c = C₁ + C₂ expanded into cross products of
     party1's {C₁, Î·C₁, Î, C₁²} and party2's {Ĵ, C₂, C₂², Ĵ·C₂} (opened once, used by
     both outputs) plus local terms; Σc² = Σ(C₁² + 2C₁C₂ + C₂²) likewise (per-slot dealer
     shares, summed over the K slots).
  4. party2 sends its share of r1 (with its round-3 openings), party1 its share of r2;
     both send their share of Σc². r = 0 outside S, as in the clear.

Wire per iteration: 2 bits per voxel, 1 ring element per voxel of S⁺ and 7 per voxel of S
from each party; the dealer sends party1 5 ring elements and 1 bit per voxel of the grid.
Truncation is SecureML's local probabilistic one (:func:`~ppreg.secure.mpc.fixed.truncate_share`);
the values truncated stay below 2^TRUNCATION_BITS, so a voxel fails with probability
≤ 2^(TRUNCATION_BITS+1−64). A failure turns that voxel's r into garbage, which the |r| ≤ 2
check at the reveal catches (r is then 0 and counted in ``CCForces.discarded``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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

PARTY1_MASKS = ("xe", "e", "c", "ic", "i", "cc")  # per slot U: X₁e, e, C₁, Î·C₁, Î, C₁²
PARTY2_MASKS = ("f", "xf", "j", "c", "cc", "jc")  # per slot V: f, X₂f, Ĵ, C₂, C₂², Ĵ·C₂
SLOT_SHARES = ("c", "r1", "r2", "m")  # per slot Z₂ (m: 2·C₁C₂ of Σc²)
DEALER_ARRAYS = ("x",) + SLOT_SHARES + ("s",)  # x: Z₁ of X on the grid; s: party1's share bits of S


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
    """Mask streams; a stream's first k elements do not depend on how many follow (AES-CTR),
    so a party expands the K slots it uses and the dealer all N."""
    return {name: MaskStream(seed, label(level, iteration, name)).uint64(shape) for name in names}


def support_bits(seed: bytes, level: int, iteration: int, name: str, size: int) -> np.ndarray:
    """``size`` uniform bits (bool) of a mask stream."""
    words = MaskStream(seed, label(level, iteration, name)).uint64(-(-size // 64))
    return np.unpackbits(words.view(np.uint8), count=size).astype(bool)


def dilate(support: np.ndarray, radius: int) -> np.ndarray:
    """S⁺: the voxels some window (edge-replicated, as the box sums) centred in S reads."""
    return ndimage.maximum_filter(support.view(np.uint8), size=2 * radius + 1, mode="nearest").astype(bool)


def dealer_shares(seed1: bytes, seed2: bytes, level: int, iteration: int, shape, radius: int,
                  scales: CCScales) -> dict[str, np.ndarray]:
    """The dealer's tensors for party1 (data-independent): Z₁ = Σ w·U⊙V − Z₂ of X on the
    grid, of c, r1, r2 and 2·C₁C₂ per slot (all N slots), and party1's share of the AND
    of the support bits."""
    size = math.prod(shape)
    grid_u, grid_v = expand(seed1, level, iteration, ("a",), shape), expand(seed2, level, iteration, ("b",), shape)
    u = expand(seed1, level, iteration, PARTY1_MASKS, (size,))
    v = expand(seed2, level, iteration, PARTY2_MASKS, (size,))
    z2 = expand(seed2, level, iteration, ("x",), shape) | expand(seed2, level, iteration, SLOT_SHARES, (size,))
    weight, two = RING_DTYPE(1 << scales.correlation), RING_DTYPE(2)
    products = {
        "x": ring_covariance(grid_u["a"], grid_v["b"], radius),
        "c": ring_add(ring_mul(u["xe"], v["f"]), ring_mul(u["e"], v["xf"])),
        "r1": ring_sub(ring_sub(ring_mul(weight, ring_mul(u["c"], v["j"])), ring_mul(two, ring_mul(u["ic"], v["c"]))),
                       ring_mul(u["i"], v["cc"])),
        "r2": ring_sub(ring_sub(ring_mul(weight, ring_mul(u["i"], v["c"])), ring_mul(two, ring_mul(u["c"], v["jc"]))),
                       ring_mul(u["cc"], v["j"])),
        "m": ring_mul(two, ring_mul(u["c"], v["c"])),
    }
    shares = {name: ring_sub(products[name], z2[name]) for name in products}
    bits = (support_bits(seed1, level, iteration, "s", size) & support_bits(seed2, level, iteration, "s", size)) \
        ^ support_bits(seed2, level, iteration, "z", size)
    shares["s"] = np.packbits(bits)
    return shares


class MPCCC(CCJoint):
    """Either party's half of the protocol in the module docstring."""

    name = "mpc"

    def __init__(self, role: str, channel: Channel, dealer: Channel, seed: bytes):
        super().__init__(role, channel)
        self.dealer, self.seed = dealer, seed
        self.level, self.iteration = -1, 0

    def start_level(self, level: int, shape: tuple[int, ...], radius: int, iterations: int = 0) -> None:
        self.level, self.iteration = level, 0
        self.shape, self.radius = tuple(int(v) for v in shape), radius
        self.size = math.prod(self.shape)
        self.scales = CCScales.for_window(window_size(radius, len(shape)))
        if self.role == PARTY1:
            self.dealer.send("cc_level", {"level": level, "shape": list(self.shape), "radius": radius,
                                          "iterations": iterations})

    def forces(self, own: LocalStats) -> CCForces:
        iteration, self.iteration = self.iteration, self.iteration + 1
        if own.warped.shape != self.shape:
            raise ValueError(f"statistics of shape {own.warped.shape}, the level is {self.shape}")
        if self.role == PARTY1:
            return _party1_iteration(self, own, iteration)
        return _party2_iteration(self, own, iteration)

    def receive(self, channel: Channel, kind: str, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
        """Arrays of the expected shapes (uint8 for packed bits ``s``/``t``, else ring elements)."""
        return self.checked(channel.recv(kind), shapes, channel.remote)

    def checked(self, message, shapes: dict[str, tuple], source: str) -> dict[str, np.ndarray]:
        arrays = {}
        for name, shape in shapes.items():
            values = np.asarray(message.arrays.get(name))
            dtype = np.dtype(np.uint8) if name in ("s", "t") else np.dtype(RING_DTYPE)
            if values.dtype != dtype or values.shape != tuple(shape):
                raise ProtocolError(f"{source} sent {message.kind}/{name} as {values.dtype}{values.shape}, "
                                    f"expected {dtype}{tuple(shape)}")
            arrays[name] = values
        return arrays

    def receive_dealer(self) -> dict[str, np.ndarray]:
        shapes = {"x": self.shape, **{name: (self.size,) for name in SLOT_SHARES}, "s": (-(-self.size // 8),)}
        return self.receive(self.dealer, "cc_shares", shapes)

    def bits(self) -> tuple[int]:
        return (-(-self.size // 8),)

    def unpack(self, packed: np.ndarray) -> np.ndarray:
        return np.unpackbits(packed, count=self.size).astype(bool)

    def layout(self, support: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flat indices of S in grid order = slot order, flat indices of S⁺)."""
        grid = support.reshape(self.shape)
        return np.flatnonzero(grid), np.flatnonzero(dilate(grid, self.radius))

    def scatter(self, values: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """A grid-shaped ring array with ``values`` at ``indices`` and 0 elsewhere."""
        full = np.zeros(self.size, dtype=RING_DTYPE)
        full[indices] = values
        return full.reshape(self.shape)

    def truncate(self, share: np.ndarray, bits: int) -> np.ndarray:
        return truncate_share(0 if self.role == PARTY1 else 1, share, bits)

    def reveal_forces(self, own_share: np.ndarray, peer_share: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, int]:
        values = decode(ring_add(own_share, peer_share), self.scales.force_bits)
        garbage = ~(np.abs(values) <= FORCE_BOUND * (1 + 1e-6))
        factor = np.zeros(self.size)
        factor[slots] = np.where(garbage, 0.0, values)
        return factor.reshape(self.shape), int(np.count_nonzero(garbage))

    def reveal_metric(self, own_share: np.ndarray, peer_share: np.ndarray) -> float:
        total = float(decode(ring_add(own_share, peer_share), 2 * self.scales.correlation)[0])
        mean = total / self.size
        return mean if -1e-6 <= mean <= 1 + 1e-6 else float("nan")  # nan: a truncation failure hit Σc²


def _party1_iteration(engine: MPCCC, own: LocalStats, iteration: int) -> CCForces:
    scales, level, meta = engine.scales, engine.level, {"iteration": iteration}
    engine.dealer.send("cc_iteration", {"level": level, "iteration": iteration})
    flat = engine.size
    mine = own.inv_norm.reshape(-1) > 0
    engine.channel.send("cc_support", meta, s=np.packbits(mine ^ support_bits(engine.seed, level, iteration, "s", flat)))
    peer = engine.receive(engine.channel, "cc_support", {"s": engine.bits(), "t": engine.bits()})
    dealer = engine.receive_dealer()
    share = (mine & engine.unpack(peer["s"])) ^ engine.unpack(dealer["s"])
    slots, window = engine.layout(share ^ engine.unpack(peer["t"]))
    a = encode(own.warped, scales.intensity)
    masked = ring_sub(a, expand(engine.seed, level, iteration, ("a",), engine.shape)["a"])
    engine.channel.send("cc_open1", meta, s=np.packbits(share), a=masked.reshape(-1)[window])
    peer = engine.receive(engine.channel, "cc_open1", {"b": window.shape})
    covariance = ring_add(ring_covariance(a, engine.scatter(peer["b"], window), engine.radius), dealer["x"])
    covariance = engine.truncate(covariance.reshape(-1)[slots], scales.covariance_shift)
    return _party1_slots(engine, own, iteration, slots, covariance, {k: dealer[k][:slots.size] for k in SLOT_SHARES})


def _party1_slots(engine: MPCCC, own: LocalStats, iteration: int, slots: np.ndarray, covariance: np.ndarray,
                  dealer: dict[str, np.ndarray]) -> CCForces:
    scales, meta, count = engine.scales, {"iteration": iteration}, (slots.size,)
    u = expand(engine.seed, engine.level, iteration, PARTY1_MASKS, count)
    e = encode(own.inv_norm.reshape(-1)[slots], scales.norm)
    i = encode(own.normalized.reshape(-1)[slots], scales.normalized)
    xe = ring_mul(covariance, e)
    engine.channel.send("cc_open2", meta, xe=ring_sub(xe, u["xe"]), e=ring_sub(e, u["e"]))
    peer = engine.receive(engine.channel, "cc_open2", {"f": count, "xf": count})
    corr = ring_add(ring_add(ring_mul(xe, peer["f"]), ring_mul(e, peer["xf"])), dealer["c"])
    corr = engine.truncate(corr, scales.correlation_shift)
    ic, cc = ring_mul(i, corr), ring_mul(corr, corr)
    engine.channel.send("cc_open3", meta, c=ring_sub(corr, u["c"]), ic=ring_sub(ic, u["ic"]), i=ring_sub(i, u["i"]),
                        cc=ring_sub(cc, u["cc"]))
    peer = engine.receive(engine.channel, "cc_open3", {**{k: count for k in ("j", "c", "cc", "jc", "r1")}, "m": (1,)})
    weight, two = RING_DTYPE(1 << scales.correlation), RING_DTYPE(2)
    r1 = ring_sub(ring_sub(ring_mul(weight, ring_mul(corr, peer["j"])), ring_mul(two, ring_mul(ic, peer["c"]))),
                  ring_add(ring_mul(i, peer["cc"]), ring_mul(i, cc)))
    r1 = ring_add(r1, dealer["r1"])
    r2 = ring_sub(ring_mul(weight, ring_add(ring_mul(i, peer["c"]), ring_mul(corr, i))),
                  ring_add(ring_mul(two, ring_mul(corr, peer["jc"])), ring_mul(cc, peer["j"])))
    r2 = ring_add(r2, dealer["r2"])
    metric = ring_add(ring_mul(two, ring_mul(corr, peer["c"])), ring_add(cc, dealer["m"]))
    metric = np.atleast_1d(ring_sum(metric))
    engine.channel.send("cc_share2", meta, r2=r2, m=metric)
    factor, discarded = engine.reveal_forces(r1, peer["r1"], slots)
    return CCForces(factor, engine.reveal_metric(metric, peer["m"]), discarded)


def _party2_iteration(engine: MPCCC, own: LocalStats, iteration: int) -> CCForces:
    scales, level, meta = engine.scales, engine.level, {"iteration": iteration}
    flat = engine.size
    mine = own.inv_norm.reshape(-1) > 0
    peer = engine.receive(engine.channel, "cc_support", {"s": engine.bits()})
    share = (engine.unpack(peer["s"]) & support_bits(engine.seed, level, iteration, "s", flat)) \
        ^ support_bits(engine.seed, level, iteration, "z", flat)
    engine.channel.send("cc_support", meta, s=np.packbits(mine ^ support_bits(engine.seed, level, iteration, "s", flat)),
                        t=np.packbits(share))
    message = engine.channel.recv("cc_open1")
    share ^= engine.unpack(engine.checked(message, {"s": engine.bits()}, engine.channel.remote)["s"])
    slots, window = engine.layout(share)
    peer = engine.checked(message, {"a": window.shape}, engine.channel.remote)
    b = encode(own.warped, scales.intensity)
    grid_v = expand(engine.seed, level, iteration, ("b",), engine.shape)["b"]
    engine.channel.send("cc_open1", meta, b=ring_sub(b, grid_v).reshape(-1)[window])
    covariance = ring_covariance(engine.scatter(peer["a"], window), grid_v, engine.radius)
    covariance = ring_add(covariance, expand(engine.seed, level, iteration, ("x",), engine.shape)["x"])
    covariance = engine.truncate(covariance.reshape(-1)[slots], scales.covariance_shift)
    return _party2_slots(engine, own, iteration, slots, covariance)


def _party2_slots(engine: MPCCC, own: LocalStats, iteration: int, slots: np.ndarray,
                  covariance: np.ndarray) -> CCForces:
    scales, meta, count = engine.scales, {"iteration": iteration}, (slots.size,)
    v = expand(engine.seed, engine.level, iteration, PARTY2_MASKS, count)
    z2 = expand(engine.seed, engine.level, iteration, SLOT_SHARES, count)
    f = encode(own.inv_norm.reshape(-1)[slots], scales.norm)
    j = encode(own.normalized.reshape(-1)[slots], scales.normalized)
    xf = ring_mul(covariance, f)
    peer = engine.receive(engine.channel, "cc_open2", {"xe": count, "e": count})
    engine.channel.send("cc_open2", meta, f=ring_sub(f, v["f"]), xf=ring_sub(xf, v["xf"]))
    corr = ring_add(ring_add(ring_mul(peer["xe"], v["f"]), ring_mul(peer["e"], v["xf"])), z2["c"])
    corr = engine.truncate(corr, scales.correlation_shift)
    jc, cc = ring_mul(j, corr), ring_mul(corr, corr)
    peer = engine.receive(engine.channel, "cc_open3", {k: count for k in ("c", "ic", "i", "cc")})
    weight, two = RING_DTYPE(1 << scales.correlation), RING_DTYPE(2)
    r1 = ring_sub(ring_sub(ring_mul(weight, ring_add(ring_mul(peer["c"], v["j"]), ring_mul(corr, j))),
                           ring_mul(two, ring_mul(peer["ic"], v["c"]))),
                  ring_mul(peer["i"], v["cc"]))
    r1 = ring_add(r1, z2["r1"])
    metric = ring_add(ring_mul(two, ring_mul(peer["c"], v["c"])), ring_add(cc, z2["m"]))
    metric = np.atleast_1d(ring_sum(metric))
    engine.channel.send("cc_open3", meta, j=ring_sub(j, v["j"]), c=ring_sub(corr, v["c"]), cc=ring_sub(cc, v["cc"]),
                        jc=ring_sub(jc, v["jc"]), r1=r1, m=metric)
    r2 = ring_sub(ring_mul(weight, ring_mul(peer["i"], v["c"])),
                  ring_add(ring_add(ring_mul(two, ring_mul(peer["c"], v["jc"])), ring_mul(peer["cc"], v["j"])),
                           ring_mul(j, cc)))
    r2 = ring_add(r2, z2["r2"])
    peer = engine.receive(engine.channel, "cc_share2", {"r2": count, "m": (1,)})
    factor, discarded = engine.reveal_forces(r2, peer["r2"], slots)
    return CCForces(factor, engine.reveal_metric(metric, peer["m"]), discarded)
