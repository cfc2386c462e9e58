"""fhe1 / fhe2 engines against the clear oracle, key hygiene, masking and bad input."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tenseal as ts
import tenseal.sealapi as sealapi

from ppreg.core.transforms import AffineModel
from ppreg.errors import ConfigError, EngineUnavailableError, InputError, PeerError, ProtocolError
from ppreg.io.points import PointSet
from ppreg.secure.base import LevelContext
from ppreg.secure.fhe import CKKSParameters, FHE1Client, FHE1Server, FHE2Client, FHE2Server
from ppreg.secure.fhe.keys import KeyOwner, PublicKeys
from ppreg.secure.fhe.layouts import ColumnChunkLayout, InterleavedLayout
from ppreg.secure.fhe.params import OTHER_ERROR_BOUND
from ppreg.secure.fhe.reveal import (
    ResultShare,
    coefficient_indices,
    crt_centered,
    flood_noise,
    key_rows,
    partial_decryption,
    slot_class_sums,
)
from ppreg.secure.fhe.sealbytes import ciphertext_range, ciphertext_words
from ppreg.similarity.base import DenseOperand, LevelRequest, SparseOperand
from ppreg.similarity.mi import MIOperand
from ppreg.transport.channel import local_pair

ENGINES = [(FHE1Client, FHE1Server), (FHE2Client, FHE2Server)]
REL_TOLERANCE = 1e-4  # of max|R|; measured ≈ 3e-7 (docs/fhe.md)


def make_operand(rng: np.random.Generator, rows: int, columns: int) -> np.ndarray:
    """G like the SSD operand: steepest-descent columns up to ±50, then J in [0, 1]."""
    dense = rng.uniform(-50.0, 50.0, (rows, columns))
    dense[:, -1] = rng.uniform(0.0, 1.0, rows)
    return dense


def level_context(index: int, shape: tuple[int, int], metric: str = "ssd") -> LevelContext:
    model = AffineModel(kind="affine", dim=2, center=np.zeros(2), scale=1.0)
    request = LevelRequest(metric=metric, shrink=1, sigma=0.0, model=model)
    return LevelContext(index, request, None, None, shape)


def serve(server, channel, operands, errors) -> None:
    """A minimal party2 loop: one operand per 'level', products until 'next' or 'bye'."""
    try:
        for index, operand in enumerate(operands):
            channel.recv("level")
            server.start_level(channel, index, DenseOperand(dense=operand), None)
            channel.send("level_ready")
            while (message := channel.recv()).kind not in ("next", "bye"):
                server.serve_product(channel, message)
    except Exception as error:  # noqa: BLE001 - reported to the test thread
        errors.append(error)
        channel.send_error(str(error))
    finally:
        server.close()


class Session:
    """Runs a server half in a thread and drives the client half level by level."""

    def __init__(self, client, server, operands) -> None:
        self.client, self.operands, self.errors = client, operands, []
        self.party1, party2 = local_pair("party1", "party2", timeout=120)
        self.thread = threading.Thread(target=serve, args=(server, party2, operands, self.errors), daemon=True)
        self.thread.start()
        self.level = -1

    def next_level(self) -> None:
        if self.level >= 0:
            self.party1.send("next")
        self.level += 1
        self.party1.send("level")
        self.client.start_level(self.party1, level_context(self.level, self.operands[self.level].shape))
        self.party1.recv("level_ready")

    def product(self, features: np.ndarray, selection: np.ndarray | None = None) -> np.ndarray:
        columns = self.operands[self.level].shape[1]
        selection = np.ones((1, columns), dtype=bool) if selection is None else selection
        return self.client.product(self.party1, features[:, None], selection)

    def close(self) -> None:
        self.party1.send("bye")
        self.thread.join(timeout=60)
        self.client.close()
        assert not self.errors, self.errors


def relative_error(result: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(result - reference)) / np.max(np.abs(reference)))


@pytest.mark.parametrize(("client_type", "server_type"), ENGINES, ids=["fhe1", "fhe2"])
def test_product_matches_clear_oracle_over_levels(client_type, server_type):
    rng = np.random.default_rng(5)
    operands = [make_operand(rng, 10007, 7), make_operand(rng, 3001, 7)]  # ragged chunks, odd q
    session = Session(client_type(), server_type(), operands)
    for operand in operands:
        session.next_level()
        for _ in range(2):
            features = rng.uniform(0.0, 1.0, len(operand))
            result = session.product(features)
            assert result.shape == (1, 7)
            assert relative_error(result, DenseOperand(dense=operand).left_product(features[:, None])) < REL_TOLERANCE
    keys_bytes = session.party1.stats.bytes_received
    session.close()
    assert keys_bytes > 0


@pytest.mark.parametrize("columns", [1, 3, 6])
def test_fhe2_odd_and_small_column_counts_with_selection(columns):
    rng = np.random.default_rng(columns)
    operand = make_operand(rng, 5003, columns)
    session = Session(FHE2Client(), FHE2Server(), [operand])
    session.next_level()
    selection = np.zeros((1, columns), dtype=bool)
    selection[0, ::2] = True
    features = rng.uniform(0.0, 1.0, len(operand))
    result = session.product(features, selection)
    reference = features @ operand
    assert np.all(result[0, ~selection[0]] == 0.0)
    assert np.max(np.abs(result[0, selection[0]] - reference[selection[0]])) < REL_TOLERANCE * np.max(np.abs(reference))
    assert np.max(np.abs(session.product(np.zeros(len(operand))))) < 1e-2  # flooding std ≈ 5e-4
    beyond = np.full(len(operand), 3.0)  # beyond the bound the flooding assumes: divided by 4, R times 4
    assert relative_error(session.product(beyond), beyond @ operand) < REL_TOLERANCE
    with pytest.raises(ValueError, match="finite"):
        session.product(np.full(len(operand), np.nan))
    session.close()


def test_public_context_holds_no_secret_key():
    owner = KeyOwner(CKKSParameters())
    public = ts.context_from(owner.public_context())
    assert not public.is_private() and not public.has_secret_key()
    assert not public.has_relin_keys() and not public.has_galois_keys()
    with pytest.raises(ValueError):
        public.secret_key()
    # a ciphertext of party2's cannot be decrypted with what party1 holds
    private = ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 60, 60])
    foreign = ts.ckks_vector_from(public, ts.ckks_vector(owner._context, [1.0, 2.0], scale=2.0**40).serialize())
    with pytest.raises(ValueError):
        foreign.decrypt()
    # party1 refuses a context that carries a secret key
    with pytest.raises(ProtocolError, match="secret key"):
        PublicKeys(CKKSParameters(), private.serialize(save_secret_key=True))
    owner.close()


def test_mismatched_context_and_corrupted_ciphertexts_are_protocol_errors():
    owner = KeyOwner(CKKSParameters())
    keys = PublicKeys(CKKSParameters(), owner.public_context())
    with pytest.raises(ProtocolError, match="does not match"):
        PublicKeys(CKKSParameters(poly_modulus_degree=16384), owner.public_context())
    other = KeyOwner(CKKSParameters(coeff_mod_bit_sizes=(50, 50, 50)))
    scale = 2.0**60
    with pytest.raises(ProtocolError):
        keys.load_ciphertext(other.encrypt(np.ones(8), scale), scale, "operand")
    good = owner.encrypt(np.ones(8), scale)
    with pytest.raises(ProtocolError):
        keys.load_ciphertext(good[: len(good) // 2], scale, "operand")
    corrupted = bytearray(good)
    corrupted[20:40] = b"\xff" * 20
    with pytest.raises(ProtocolError):
        keys.load_ciphertext(bytes(corrupted), scale, "operand")
    with pytest.raises(ProtocolError, match="scale"):
        keys.load_ciphertext(good, 2.0**40, "operand")
    for ring in (owner, keys, other):
        ring.close()


def test_server_rejects_a_corrupted_result_frame():
    rng = np.random.default_rng(1)
    operand = make_operand(rng, 700, 7)
    party1, party2 = local_pair("party1", "party2", timeout=60)
    server, client = FHE2Server(), FHE2Client()
    server.start_level(party2, 0, DenseOperand(dense=operand), None)
    client.start_level(party1, level_context(0, operand.shape))
    for bad in (np.zeros((2, 8192), dtype=np.int64), np.zeros((2, 100), dtype=np.uint64),
                np.full((2, 8192), 2**63, dtype=np.uint64)):
        party1.send("fhe_product", {"level": 0}, c1=bad)
        with pytest.raises(ProtocolError):
            server.serve_product(party2, party2.recv())
    party1.send("fhe_product", {"level": 0})  # no c1 at all
    party1.send("fhe_product", {"level": 3}, c1=np.zeros((2, 8192), dtype=np.uint64))  # another level
    for _ in range(2):
        with pytest.raises(ProtocolError):
            server.serve_product(party2, party2.recv())
    party2.send_error("party2 failed")
    with pytest.raises(PeerError):
        client.product(party1, rng.uniform(0, 1, (700, 1)), np.ones((1, 7), dtype=bool))
    server.close()
    client.close()


class LyingTraceServer(FHE1Server):
    """Announces another trace order than the one its Galois keys were made for."""

    def __init__(self, announced: int) -> None:
        super().__init__()
        self.announced = announced

    def layout_announcement(self, layout) -> dict:
        return {"trace_order": self.announced}


@pytest.mark.parametrize(("announced", "message"), [(4, "unusable"), (12, "unusable"), (4096, "no Galois keys"),
                                                    (True, "trace order")])
def test_party1_refuses_a_trace_its_keys_or_packing_cannot_serve(announced, message):
    """The server packs 7 columns with the trace of order 8 (3 Galois keys, as for a point set)."""
    operand = make_operand(np.random.default_rng(6), 700, 7)
    party1, party2 = local_pair("party1", "party2", timeout=60)
    server, client = LyingTraceServer(announced), FHE1Client()
    server.start_level(party2, 0, DenseOperand(dense=operand), PointSet(np.zeros((700, 3))))
    assert server._keys.rotation_steps == (512, 1024, 2048)
    with pytest.raises(ProtocolError, match=message):
        client.start_level(party1, level_context(0, operand.shape))
    server.close()
    client.close()


def test_fhe1_packed_trace_matches_the_oracle_over_chunks():
    """A point set's fhe1 layout: the trace of order 16 over 3 chunks, 3 features × 3 columns in one c1."""
    rng = np.random.default_rng(7)
    operand = rng.uniform(-1.0, 1.0, (10000, 3)) * 64.0
    features = rng.uniform(-1.0, 1.0, (10000, 3))
    party1, party2 = local_pair("party1", "party2", timeout=120)
    server, client = FHE1Server(), FHE1Client()
    server.start_level(party2, 0, DenseOperand(dense=operand, feature_columns=3), PointSet(np.zeros((10000, 3))))
    client.start_level(party1, level_context(0, operand.shape))
    assert client._layout.trace_order == 16 and client._layout.replicas == 3
    thread = threading.Thread(target=lambda: server.serve_product(party2, party2.recv()), daemon=True)
    thread.start()
    result = client.product(party1, features, np.ones((3, 3), dtype=bool))
    thread.join(timeout=60)
    assert party1.stats.messages_sent == 1  # one c1 for all nine entries
    assert relative_error(result, features.T @ operand) < REL_TOLERANCE
    server.close()
    client.close()


class RecordingServer(FHE2Server):
    """Keeps what party2 receives and computes, before flooding."""

    def __init__(self) -> None:
        super().__init__()
        self.received: list[np.ndarray] = []
        self.shares: list[np.ndarray] = []

    def _shares(self, c1: np.ndarray, part) -> np.ndarray:
        self.received.append(c1.copy())
        self.shares.append(super()._shares(c1, part))
        return self.shares[-1]


def test_party2_sees_nothing_but_pseudorandom_values():
    rng = np.random.default_rng(2)
    operand = make_operand(rng, 4099, 7)
    server = RecordingServer()
    session = Session(FHE2Client(), server, [operand])
    session.next_level()
    features = rng.uniform(0.0, 1.0, len(operand))
    result = session.product(features)
    session.product(features)
    session.close()
    primes = server._keys.primes
    layout = InterleavedLayout(len(operand), 7, 4096)
    as_seen = layout.decode(crt_centered(server.shares[0], primes), CKKSParameters().product_scale)[0].real
    assert np.all(np.abs(as_seen - result[0]) > 1e3 * np.max(np.abs(result)))
    assert not np.array_equal(server.received[0], server.received[1])  # re-randomised each time
    fractions = server.received[0] / np.asarray(primes, dtype=np.float64)[:, None]
    assert abs(fractions.mean() - 0.5) < 0.01 and abs(fractions.std() - np.sqrt(1 / 12)) < 0.01


def test_slot_class_sums_pin_seal_slot_order():
    owner = KeyOwner(CKKSParameters())
    keys = PublicKeys(CKKSParameters(), owner.public_context())
    secret = owner.secret_coefficients()
    values = np.random.default_rng(3).uniform(-1.0, 1.0, 4096)
    scale = 2.0**60
    for period in (1, 2, 8, 64):
        ciphertext = keys.load_ciphertext(owner.encrypt(values, scale), scale, "probe")
        positions = np.arange(2 * period) * (4096 // period)
        c1, kept = ResultShare(keys).split(ciphertext, positions)
        shares = partial_decryption(key_rows(secret, positions), c1, owner.primes)
        sums = slot_class_sums(ResultShare(keys).combine(shares, kept), period, 8192, scale)
        assert np.allclose(sums, values.reshape(-1, period).sum(axis=0), atol=1e-9)
    owner.close()
    keys.close()


def test_flood_noise_is_gaussian_with_full_low_bits():
    rng = np.random.default_rng(4)
    sigma = 2.0**70
    noise = np.array([float(n) for n in flood_noise(sigma, 4000, rng)])
    assert abs(noise.std() / sigma - 1.0) < 0.05 and abs(noise.mean()) < 0.1 * sigma
    low = [n % 1024 for n in flood_noise(sigma, 200, rng)]
    assert len(set(low)) > 150


def test_parameters_follow_the_he_standard():
    assert CKKSParameters().total_bits == 180
    with pytest.raises(ConfigError):
        CKKSParameters(coeff_mod_bit_sizes=(60, 60, 60, 60))  # 240 > 218 bits at N = 8192
    with pytest.raises(ConfigError):
        CKKSParameters(poly_modulus_degree=4096)  # 180 > 109 bits
    with pytest.raises(ProtocolError):
        CKKSParameters.from_meta({"poly_modulus_degree": 8192})


def test_unsupported_requests_are_refused():
    client = FHE2Client()
    party1, _ = local_pair("party1", "party2")
    with pytest.raises(EngineUnavailableError):
        client.start_level(party1, level_context(0, (10, 96), metric="mi"))
    with pytest.raises(EngineUnavailableError):
        FHE1Client().start_level(party1, level_context(0, (10, 51), metric="bspline"))
    sparse = SparseOperand(columns=np.zeros((10, 4), dtype=np.int64), values=np.ones((10, 4)), n_columns=50)
    with pytest.raises(EngineUnavailableError):
        FHE1Server().start_level(party1, 0, sparse, None)
    with pytest.raises(EngineUnavailableError):  # MI's operand: refused before densifying
        FHE2Server().start_level(party1, 0, MIOperand(bins=np.zeros(10, dtype=np.int64), coords=np.zeros((10, 2)),
                                                      n_bins=8, summary={}), None)
    operand = np.full((5000, 7), 1e7)
    with pytest.raises(InputError, match="too large"):
        FHE1Server().start_level(party1, 0, DenseOperand(dense=operand), None)


@pytest.mark.parametrize("trace_order", [16, 4096], ids=["point-cloud-trace", "all-slots"])
def test_error_terms_stay_within_the_flooding_bound(trace_order):
    """The non-dominant error terms σ covers: encryption of zero and fhe1's rotate-and-add
    (bounded here without the amplification by T that σ also allows for)."""
    parameters = CKKSParameters()
    steps = ColumnChunkLayout(4096, 1, 4096, trace_order).rotation_steps
    owner = KeyOwner(parameters, steps)
    keys = PublicKeys(parameters, owner.public_context(), owner.galois_keys())
    positions = np.arange(0, 8192, 97)
    rows = key_rows(owner.secret_coefficients(), positions)

    def largest_error(ciphertext) -> float:
        keys.evaluator.transform_from_ntt_inplace(ciphertext)
        degree = keys.degree
        kept = ciphertext_words(ciphertext, coefficient_indices(positions, 2, degree)).reshape(2, -1).T
        c1 = ciphertext_range(ciphertext, 2 * degree, 4 * degree).reshape(2, degree)
        return max(abs(v) for v in ResultShare(keys).combine(partial_decryption(rows, c1, keys.primes), kept))

    zero = sealapi.Ciphertext()
    keys.encryptor.encrypt_zero(keys.data_parms_id, zero)
    assert largest_error(zero) < 2**10
    scale = 2.0**parameters.operand_scale_bits
    total = keys.load_ciphertext(owner.encrypt(np.zeros(4096), scale), scale, "zero")
    for step in steps:
        rotated = sealapi.Ciphertext()
        keys.evaluator.rotate_vector(total, step, keys.galois, rotated)
        keys.evaluator.add_inplace(total, rotated)
    assert largest_error(total) < OTHER_ERROR_BOUND
    owner.close()
    keys.close()
