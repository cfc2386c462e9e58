"""Tests of the MPC primitives: ring, mask streams, fixed point, sharing, Beaver baseline."""

from __future__ import annotations

import warnings
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from ppreg.errors import InputError
from ppreg.secure.mpc import beaver, fixed, prg, ring, sharing

MOD = 2**64
ALL_ONES = np.uint64(MOD - 1)
SEED_A = bytes(range(32))
SEED_B = bytes(range(1, 33))
ONE_MEGABYTE = 1 << 20


def random_ring(generator: np.random.Generator, shape) -> np.ndarray:
    return generator.integers(0, MOD, size=shape, dtype=np.uint64)


def exact_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Reference product with Python integers, reduced modulo 2^64."""
    product = a.astype(object) @ b.astype(object)
    return (np.vectorize(lambda v: v % MOD, otypes=[object])(product)).astype(np.uint64)


def byte_uniformity_pvalue(values: np.ndarray) -> float:
    counts = np.bincount(np.ascontiguousarray(values).view(np.uint8), minlength=256)
    return stats.chisquare(counts).pvalue


def signed(value) -> int:
    """A uint64 ring element as a Python int in [-2^63, 2^63)."""
    value = int(value)
    return value - MOD if value >= MOD // 2 else value


# ---------------------------------------------------------------- ring


def test_elementwise_ring_ops_wrap_exactly_without_warnings():
    generator = np.random.default_rng(1)
    edges_a = np.array([MOD - 1, 0, 1, 2**63], dtype=np.uint64)
    edges_b = np.array([MOD - 1, MOD - 1, MOD - 1, 2], dtype=np.uint64)
    a = np.concatenate([random_ring(generator, 500), edges_a])
    b = np.concatenate([random_ring(generator, 500), edges_b])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        results = {
            "add": ring.ring_add(a, b),
            "sub": ring.ring_sub(a, b),
            "mul": ring.ring_mul(a, b),
            "neg": ring.ring_neg(a),
            "scalar": ring.ring_add(ALL_ONES, np.uint64(2)),
        }
    ints_a, ints_b = [int(v) for v in a], [int(v) for v in b]
    assert [int(v) for v in results["add"]] == [(x + y) % MOD for x, y in zip(ints_a, ints_b)]
    assert [int(v) for v in results["sub"]] == [(x - y) % MOD for x, y in zip(ints_a, ints_b)]
    assert [int(v) for v in results["mul"]] == [(x * y) % MOD for x, y in zip(ints_a, ints_b)]
    assert [int(v) for v in results["neg"]] == [(-x) % MOD for x in ints_a]
    assert int(results["scalar"]) == 1
    assert int(ring.ring_sum(a)) == sum(ints_a) % MOD


@pytest.mark.parametrize("shape", [(1, 1, 1), (7, 50, 5), (3, 300, 1), (12, 9, 40)])
def test_ring_matmul_matches_exact_reference(shape):
    n, m, q = shape
    generator = np.random.default_rng(sum(shape))
    a = random_ring(generator, (n, m))
    b = random_ring(generator, (m, q))
    assert np.array_equal(ring.ring_matmul(a, b), exact_matmul(a, b))
    assert np.array_equal(ring.ring_matmul(a, b[:, 0]), exact_matmul(a, b)[:, 0])
    a_transposed = np.ascontiguousarray(a.T)
    assert np.array_equal(ring.ring_transpose_matmul(a_transposed, b), exact_matmul(a, b))


def test_ring_matmul_extreme_values():
    a = np.full((4, 33), ALL_ONES)
    b = np.full((33, 6), ALL_ONES)
    # (-1)(-1) summed 33 times.
    assert np.array_equal(ring.ring_matmul(a, b), np.full((4, 6), 33, dtype=np.uint64))
    limbs_high = np.full((5, 40), np.uint64(0xFFFF_0000_FFFF_0000))
    limbs_low = np.full((40, 3), np.uint64(0x0000_FFFF_0000_FFFF))
    assert np.array_equal(
        ring.ring_matmul(limbs_high, limbs_low), exact_matmul(limbs_high, limbs_low)
    )


def test_ring_matmul_accepts_strided_operands():
    generator = np.random.default_rng(5)
    a = random_ring(generator, (20, 30))[:, ::2]
    b = random_ring(generator, (15, 14))[:, ::3]
    assert np.array_equal(ring.ring_matmul(a, b), exact_matmul(a, b))


@pytest.mark.parametrize("buffer_bytes", [None, 1 << 40])
def test_ring_matmul_inner_dimension_above_exact_float_block(monkeypatch, buffer_bytes):
    # With a huge buffer the blocks hit the 2^20 exactness cap: 2^20 rows, then 5.
    if buffer_bytes is not None:
        monkeypatch.setattr(ring, "_BUFFER_BYTES", buffer_bytes)
    rows = ring.MAX_EXACT_INNER + 5
    generator = np.random.default_rng(7)
    a = random_ring(generator, (rows, 2))
    b = random_ring(generator, (rows, 3))
    a[: rows // 2] = ALL_ONES
    b[: rows // 2] = ALL_ONES
    assert np.array_equal(ring.ring_transpose_matmul(a, b), a.T @ b)
    extreme_a, extreme_b = np.full((rows, 2), ALL_ONES), np.full((rows, 3), ALL_ONES)
    expected = np.full((2, 3), rows, dtype=np.uint64)
    assert np.array_equal(ring.ring_transpose_matmul(extreme_a, extreme_b), expected)


def test_float_blocks_are_small_enough_to_be_exact():
    largest_limb_product = (2**ring.LIMB_BITS - 1) ** 2
    assert ring.MAX_EXACT_INNER * largest_limb_product < 2**53
    for width in (1, 2, 64, 10_000):
        assert ring._block_rows(width, width) <= ring.MAX_EXACT_INNER


def test_ring_matmul_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        ring.ring_matmul(np.zeros((2, 3), np.uint64), np.zeros((4, 2), np.uint64))


# ---------------------------------------------------------------- PRG


def test_mask_stream_is_reproducible_and_continues():
    whole = prg.MaskStream(SEED_A, "masks").uint64(40)
    stream = prg.MaskStream(SEED_A, "masks")
    first, second = stream.uint64(15), stream.uint64((5, 5))
    assert np.array_equal(np.concatenate([first, second.ravel()]), whole)
    assert not np.array_equal(whole[:20], whole[20:])
    assert stream.bytes_produced == 40 * 8


def test_mask_stream_chunked_output_equals_small_calls():
    count = 3 * ONE_MEGABYTE // 8 + 3  # crosses several keystream chunks, odd tail
    whole = prg.MaskStream(SEED_B, "chunks").uint64(count)
    stream = prg.MaskStream(SEED_B, "chunks")
    pieces = [stream.uint64(size) for size in (7, 131_072, 1, 200_000)]
    pieces.append(stream.uint64(count - sum(piece.size for piece in pieces)))
    assert np.array_equal(np.concatenate(pieces), whole)


def test_mask_stream_differs_by_label_and_seed():
    base = prg.MaskStream(SEED_A, "label").uint64(64)
    assert not np.any(base == prg.MaskStream(SEED_A, "label2").uint64(64))
    assert not np.any(base == prg.MaskStream(SEED_B, "label").uint64(64))


def test_mask_stream_bytes_and_bits_are_uniform():
    masks = prg.MaskStream(SEED_A, "uniformity").uint64(ONE_MEGABYTE // 8)
    assert byte_uniformity_pvalue(masks) > 1e-4
    bits = (masks[:, None] >> np.arange(64, dtype=np.uint64)) & np.uint64(1)
    frequencies = bits.mean(axis=0)
    five_sigma = 5 * 0.5 / np.sqrt(masks.size)
    assert np.all(np.abs(frequencies - 0.5) < five_sigma)


def test_mask_stream_fills_given_buffer_and_checks_it():
    buffer = np.zeros((3, 4), dtype=np.uint64)
    returned = prg.MaskStream(SEED_A, "out").uint64((3, 4), out=buffer)
    assert returned is buffer
    assert np.array_equal(buffer, prg.MaskStream(SEED_A, "out").uint64((3, 4)))
    with pytest.raises(ValueError):
        prg.MaskStream(SEED_A, "out").uint64((4, 3), out=buffer)


def test_seeds_are_fresh_and_derived_seeds_independent():
    assert len(prg.new_seed()) == 32
    assert prg.new_seed() != prg.new_seed()
    derived = prg.derive_seed(SEED_A, "triple-0")
    assert len(derived) == 32
    assert derived == prg.derive_seed(SEED_A, "triple-0")
    siblings = (prg.derive_seed(SEED_A, "triple-1"), prg.derive_seed(SEED_B, "triple-0"))
    assert derived not in (SEED_A, *siblings)
    with pytest.raises(ValueError):
        prg.MaskStream(b"short", "label")


# ---------------------------------------------------------------- sharing


def test_shares_are_individually_uniform_and_reconstruct_exactly():
    secret = np.full(ONE_MEGABYTE // 8, 0x0123_4567_89AB_CDEF, dtype=np.uint64)
    share0, share1 = sharing.share(secret, prg.MaskStream(SEED_A, "share"))
    assert byte_uniformity_pvalue(share0) > 1e-4
    assert byte_uniformity_pvalue(share1) > 1e-4
    assert np.array_equal(sharing.reconstruct(share0, share1), secret)


def test_float_sharing_round_trip():
    values = np.random.default_rng(3).uniform(-100, 100, size=(50, 3))
    share0, share1 = sharing.share_float(values, prg.MaskStream(SEED_B, "floats"), frac_bits=20)
    recovered = sharing.reconstruct_float(share0, share1, frac_bits=20)
    assert np.max(np.abs(recovered - values)) <= 2.0**-21


# ---------------------------------------------------------------- fixed point


@pytest.mark.parametrize("frac_bits", [8, 16, 24])
def test_encode_decode_round_trip_error(frac_bits):
    values = np.random.default_rng(frac_bits).uniform(-1000, 1000, size=20_000)
    values[:3] = [0.0, -1.0, 2.0 ** -(frac_bits + 1)]
    recovered = fixed.decode(fixed.encode(values, frac_bits), frac_bits)
    assert np.max(np.abs(recovered - values)) <= 2.0 ** -(frac_bits + 1)
    assert recovered[1] == -1.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_encode_rejects_non_finite(bad):
    with pytest.raises(InputError):
        fixed.encode(np.array([0.5, bad]))


@pytest.mark.parametrize("frac_bits,bound_bits", [(16, 62), (16, 40), (20, 63)])
def test_encode_overflow_just_over_raises_just_under_passes(frac_bits, bound_bits):
    limit = 2.0 ** (bound_bits - frac_bits)
    # The largest float below the limit (limit - 2^-f itself may not be a float64).
    just_under = float(np.nextafter(limit, 0.0))
    encoded = fixed.encode(np.array([just_under, -just_under]), frac_bits, bound_bits)
    recovered = fixed.decode(encoded, frac_bits)
    assert np.max(np.abs(recovered - [just_under, -just_under])) <= 2.0 ** -(frac_bits + 1)
    for just_over in (limit, -limit, np.nextafter(limit, np.inf)):
        with pytest.raises(InputError, match="fixed-point overflow"):
            fixed.encode(np.array([0.0, just_over]), frac_bits, bound_bits)


def budget_edge(n_terms: int, max_abs_a: float, frac_bits: int) -> tuple[float, float]:
    """Largest float max_b inside the product budget and the smallest one outside it."""
    unit = Fraction(1, 2 ** (frac_bits + 1))
    limit = Fraction(2**63, n_terms * (Fraction(max_abs_a) + unit) * 2 ** (2 * frac_bits)) - unit
    outside = float(limit)
    if Fraction(outside) < limit:
        outside = float(np.nextafter(outside, np.inf))
    return float(np.nextafter(outside, 0.0)), outside


def test_check_product_budget_edges():
    n_terms, max_abs_a, frac_bits = 10_000, 1.0, 16
    inside, outside = budget_edge(n_terms, max_abs_a, frac_bits)
    fixed.check_product_budget(n_terms, max_abs_a, inside, frac_bits)
    with pytest.raises(InputError, match="fixed-point overflow"):
        fixed.check_product_budget(n_terms, max_abs_a, outside, frac_bits)


def revealed_error(a: np.ndarray, b: np.ndarray, frac_bits: int) -> Fraction:
    """Exact |revealed sum at scale 2^2f - true sum| for a secure-style dot product."""
    stream = prg.MaskStream(SEED_A, "dot")
    a_shares = sharing.share(fixed.encode(a, frac_bits), stream)
    revealed = ring.ring_matmul(sharing.reconstruct(*a_shares)[None, :], fixed.encode(b, frac_bits))
    true_sum = sum(Fraction(x) * Fraction(y) for x, y in zip(a.tolist(), b.tolist()))
    return abs(Fraction(signed(revealed[0]), 2 ** (2 * frac_bits)) - true_sum)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_products_at_the_budget_edge_stay_within_error_bound(sign):
    n_terms, max_abs_a, frac_bits = 64, 2.0**12, 16
    max_abs_b, _ = budget_edge(n_terms, max_abs_a, frac_bits)
    fixed.check_product_budget(n_terms, max_abs_a, max_abs_b, frac_bits)
    a = np.full(n_terms, max_abs_a)
    b = np.full(n_terms, sign * max_abs_b)
    # Same-sign extremes push the revealed sum to just below 2^63: any wrap is huge.
    bound = fixed.product_error_bound(n_terms, max_abs_a, max_abs_b, frac_bits)
    assert revealed_error(a, b, frac_bits) <= bound


def test_random_products_with_extremes_stay_within_error_bound():
    generator = np.random.default_rng(11)
    n_terms, max_abs_a, max_abs_b, frac_bits = 2_000, 1.0, 50.0, 16
    for _ in range(5):
        a = generator.uniform(-max_abs_a, max_abs_a, n_terms)
        b = generator.uniform(-max_abs_b, max_abs_b, n_terms)
        extremes = generator.choice(n_terms, size=100, replace=False)
        a[extremes] = max_abs_a * generator.choice([-1.0, 1.0], size=100)
        b[extremes] = max_abs_b * generator.choice([-1.0, 1.0], size=100)
        bound = fixed.product_error_bound(n_terms, max_abs_a, max_abs_b, frac_bits)
        error = revealed_error(a, b, frac_bits)
        assert error <= bound
    decoded = fixed.decode_product(fixed.encode(a) * fixed.encode(b))
    assert np.max(np.abs(decoded - a * b)) <= fixed.product_error_bound(1, 1.0, 50.0, 16)


def test_truncation_error_within_one_ulp():
    frac_bits, value_bits, samples = 16, 36, 100_000
    generator = np.random.default_rng(13)
    values = generator.integers(-(2**value_bits) + 1, 2**value_bits, size=samples, dtype=np.int64)
    share0, share1 = sharing.share(values.view(np.uint64), prg.MaskStream(SEED_B, "trunc"))
    truncated = sharing.reconstruct(*fixed.truncate_shares(share0, share1, frac_bits))
    # Result is floor(x / 2^f) or floor(x / 2^f) + 1: strictly within one unit of 2^-f.
    offset = truncated.view(np.int64) - (values >> frac_bits)
    assert set(np.unique(offset).tolist()) == {0, 1}
    assert fixed.truncation_failure_probability(value_bits) * samples < 1e-3


def test_truncation_fails_at_the_documented_rate_for_large_values():
    frac_bits, value_bits, samples = 16, 60, 100_000
    generator = np.random.default_rng(17)
    values = generator.integers(-(2**value_bits) + 1, 2**value_bits, size=samples, dtype=np.int64)
    share0, share1 = sharing.share(values.view(np.uint64), prg.MaskStream(SEED_A, "trunc-big"))
    truncated = sharing.reconstruct(
        fixed.truncate_share(0, share0, frac_bits), fixed.truncate_share(1, share1, frac_bits)
    )
    offset = truncated.view(np.int64) - (values >> frac_bits)
    failed = ~np.isin(offset, [0, 1])
    # A failure is off by 2^(64 - f) (mod 2^64), not by a little.
    assert np.all(np.abs(offset[failed]) >= 2 ** (63 - frac_bits))
    failure_rate = np.mean(failed)
    # Exact failure probability is |x| / 2^64; its mean here is 2^(value_bits - 65).
    expected = 2.0 ** (value_bits - 65)
    assert 0.7 * expected < failure_rate < 1.3 * expected
    assert failure_rate <= fixed.truncation_failure_probability(value_bits)
    with pytest.raises(ValueError):
        fixed.truncate_share(2, share0, frac_bits)


# ---------------------------------------------------------------- Beaver baseline


def run_beaver(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    stream_x = prg.MaskStream(SEED_A, "x")
    x_shares, y_shares = sharing.share(x, stream_x), sharing.share(y, stream_x)
    triple = beaver.dealer_matmul_triple(
        x.shape, y.shape, prg.MaskStream(SEED_A, "dealer0"), prg.MaskStream(SEED_B, "dealer1")
    )
    opened = [beaver.beaver_open_round(x_shares[p], y_shares[p], triple[p]) for p in (0, 1)]
    eps = sharing.reconstruct(opened[0][0], opened[1][0])
    delta = sharing.reconstruct(opened[0][1], opened[1][1])
    sent = opened[0][0].nbytes + opened[0][1].nbytes
    assert sent == beaver.beaver_bytes_per_party(x.shape[0], x.shape[1], y.shape[1])
    z_shares = [beaver.beaver_finish(p, eps, delta, triple[p]) for p in (0, 1)]
    return sharing.reconstruct(*z_shares)


def test_beaver_product_is_exact():
    generator = np.random.default_rng(19)
    x, y = random_ring(generator, (9, 30)), random_ring(generator, (30, 4))
    assert np.array_equal(run_beaver(x, y), exact_matmul(x, y))
    ones_x, ones_y = np.full((3, 5), ALL_ONES), np.full((5, 2), ALL_ONES)
    assert np.array_equal(run_beaver(ones_x, ones_y), np.full((3, 2), 5, dtype=np.uint64))


def test_beaver_fixed_point_product_within_error_bound():
    generator = np.random.default_rng(23)
    x, y = generator.uniform(-1, 1, (6, 200)), generator.uniform(-8, 8, (200, 3))
    product = fixed.decode_product(run_beaver(fixed.encode(x), fixed.encode(y)))
    bound = fixed.product_error_bound(200, 1.0, 8.0, fixed.DEFAULT_FRAC_BITS)
    assert np.max(np.abs(product - x @ y)) <= bound


def test_dealer_triple_is_consistent_and_party0_share_expands_from_its_seed():
    share0, share1 = beaver.dealer_matmul_triple(
        (4, 7), (7, 2), prg.MaskStream(SEED_A, "d0"), prg.MaskStream(SEED_B, "d1")
    )
    product = ring.ring_matmul(ring.ring_add(share0.a, share1.a), ring.ring_add(share0.b, share1.b))
    assert np.array_equal(ring.ring_add(share0.c, share1.c), product)
    replay = prg.MaskStream(SEED_A, "d0")
    assert np.array_equal(replay.uint64((4, 7)), share0.a)
    assert np.array_equal(replay.uint64((7, 2)), share0.b)
    assert np.array_equal(replay.uint64((4, 2)), share0.c)
    with pytest.raises(ValueError):
        beaver.dealer_matmul_triple((4, 7), (6, 2), replay, replay)


def test_beaver_bytes_formula():
    assert beaver.beaver_bytes_per_party(1000, 6, 1) == (6000 + 6) * 8
