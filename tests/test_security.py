"""What crosses the wire in an in-process mpc run (issue 4 security acceptance).

Every channel end is wiretapped: ``ppreg.secure.runtime.local_pair`` is wrapped so each
end's link records the frames it receives, exactly as they crossed (bytes). Then:

* party2 never receives the moving image: no array it receives equals it, and no run of
  the image's own bytes (16 bytes starting at an element boundary of the raw uint8 /
  float64 image or its normalised copy) appears anywhere in what it receives;
* the masked features party1 sends pass a chi-square uniformity test over byte values;
* the report counts per-iteration bytes for party1, party2 and the dealer, and setup
  bytes apart;
* with the same ``--seed``, clear runs are identical and mpc runs agree to 1e-6 mm while
  their masks (the bytes on the wire) differ.

The detector itself is checked on the clear engine, where party2 does send its image.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import stats

import ppreg.secure.mpc.dealer as dealer_module
import ppreg.secure.runtime as runtime
from conftest import DATA_DIR, RunSpec, known_case
from ppreg.api import affine_report, run_affine, transform_difference
from ppreg.config import AffineConfig, load_config
from ppreg.io.images import Image, read_image
from ppreg.secure.mpc.fixed import encode
from ppreg.secure.runtime import in_process_session
from ppreg.similarity.base import normalize_intensity
from ppreg.transport.wire import Message, decode

RUN_BYTES = 16
MIN_DISTINCT_BYTES = 5  # windows of background or constant values are not "the image's bytes"
UNIFORMITY_P = 1e-3
HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


class RecordingLink:
    """A Link that keeps a copy of every frame its end receives."""

    def __init__(self, link, frames: list[bytes]):
        self._link, self._frames = link, frames

    def send_frame(self, frame: bytes) -> None:
        self._link.send_frame(frame)

    def recv_frame(self, timeout):
        frame = self._link.recv_frame(timeout)
        self._frames.append(bytes(frame))
        return frame

    def close(self) -> None:
        self._link.close()


@dataclass
class Wiretap:
    """Frames received, keyed by (receiver, sender)."""

    frames: dict

    def received(self, receiver: str, sender: str) -> list[bytes]:
        return self.frames[(receiver, sender)]

    def messages(self, receiver: str, sender: str) -> list[Message]:
        return [decode(frame) for frame in self.received(receiver, sender)]

    def all_received_by(self, receiver: str) -> bytes:
        return b"".join(frame for (to, _), frames in self.frames.items() if to == receiver for frame in frames)


@dataclass
class TappedRun:
    outcome: object
    wiretap: Wiretap
    moving: Image
    fixed: Image


def tapped_registration(moving: Image, fixed: Image, config: AffineConfig, dealer_seeds=None) -> TappedRun:
    """Register in process with every channel end recording what it receives.

    ``dealer_seeds``: a callable replacing the dealer's CSPRNG seeds (deterministic masks).
    """
    frames = defaultdict(list)
    original_pair = runtime.local_pair

    def recording_pair(name_a, name_b, timeout=120.0):
        ends = original_pair(name_a, name_b, timeout=timeout)
        for end in ends:
            end._link = RecordingLink(end._link, frames[(end.local, end.remote)])
        return ends

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runtime, "local_pair", recording_pair)
        if dealer_seeds is not None:
            patch.setattr(dealer_module, "new_seed", dealer_seeds)
        with in_process_session(fixed, config.pet) as proxy:
            outcome = run_affine(moving, proxy, config)
    return TappedRun(outcome, Wiretap(dict(frames)), moving, fixed)


def seeded_dealer_seeds(seed: int):
    stream = np.random.default_rng(seed)
    return lambda: stream.bytes(32)


def mpc_config(**settings) -> AffineConfig:
    return load_config(AffineConfig, None, {"pet": "mpc", **settings})


SSD_3D = dict(metric="ssd", sampling="urs", sampling_fraction=0.1, levels="4x2x1", smoothing="2x1x0",
              iterations="50x30x10", seed=0)
MI_2D = dict(metric="mi", sampling="urs", sampling_fraction=0.05, levels="4x2", smoothing="2x1", iterations="6x3",
             bins=16, seed=0)


@pytest.fixture(scope="module")
def mpc_runs_3d():
    """Two mpc runs of the same 3D case and seed, with the dealer's real (CSPRNG) seeds."""
    case = known_case("mni")
    return [tapped_registration(case.moving, case.fixed, mpc_config(**SSD_3D)) for _ in range(2)]


@pytest.fixture(scope="module")
def seeded_mpc_run_3d():
    case = known_case("mni")
    return tapped_registration(case.moving, case.fixed, mpc_config(**SSD_3D), seeded_dealer_seeds(1))


@pytest.fixture(scope="module")
def mpc_run_png():
    """MI on a real uint8 slice as moving image (r64 onto r16), deterministic dealer seeds."""
    moving, fixed = read_image(DATA_DIR / "r64.png"), read_image(DATA_DIR / "r16.png")
    return tapped_registration(moving, fixed, mpc_config(**MI_2D), seeded_dealer_seeds(2))


# --- the run detector -----------------------------------------------------------------

def window_hashes(data: bytes, element: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes and start offsets of the 16-byte windows of ``data`` starting at multiples of ``element``.

    A window is read as two little-endian uint64 words (one pass per start offset mod 8).
    """
    hashes, starts = [], []
    for offset in range(0, 8, element) if element < 8 else [0]:
        words = np.frombuffer(data, dtype="<u8", count=(len(data) - offset) // 8, offset=offset)
        hashes.append(words[:-1] * HASH_MULTIPLIER + words[1:])
        starts.append(offset + 8 * np.arange(max(len(words) - 1, 0)))
    return np.concatenate(hashes), np.concatenate(starts)


def informative(data: bytes, starts: np.ndarray) -> np.ndarray:
    """Windows with at least MIN_DISTINCT_BYTES different byte values."""
    windows = np.frombuffer(data, dtype=np.uint8)[starts[:, None] + np.arange(RUN_BYTES)]
    distinct = 1 + np.count_nonzero(np.diff(np.sort(windows, axis=1), axis=1), axis=1)
    return distinct >= MIN_DISTINCT_BYTES


class StreamIndex:
    """Every 16-byte window of a byte stream (any start offset), sorted by hash for look-ups."""

    def __init__(self, stream: bytes):
        hashes, self.starts = window_hashes(stream, 1)
        order = np.argsort(hashes)
        self.stream, self.hashes, self.starts = stream, hashes[order], self.starts[order]

    def runs_of(self, image_bytes: bytes, element: int) -> int:
        """How many 16-byte runs of ``image_bytes`` (element-aligned, informative) occur in the stream."""
        image_hashes, image_starts = window_hashes(image_bytes, element)
        keep = informative(image_bytes, image_starts)
        table = np.sort(image_hashes[keep])
        low, high = np.searchsorted(self.hashes, table), np.searchsorted(self.hashes, table, side="right")
        candidates = np.concatenate([self.starts[a:b] for a, b in zip(low, high) if b > a] or [np.empty(0, int)])
        if len(candidates) == 0:
            return 0
        runs = {image_bytes[start:start + RUN_BYTES] for start in image_starts[keep]}
        return len({int(start) for start in candidates if self.stream[start:start + RUN_BYTES] in runs})


def runs_found(image_bytes: bytes, element: int, stream: bytes) -> int:
    return StreamIndex(stream).runs_of(image_bytes, element)


def image_byte_views(image: Image, raw_uint8: np.ndarray | None = None) -> list[tuple[str, bytes, int]]:
    """The moving image as party1 holds it: (name, bytes, element size)."""
    normalised = normalize_intensity(image.array)[0]
    views = [("float64", image.array.astype("<f8").tobytes(), 8),
             ("normalised float64", normalised.astype("<f8").tobytes(), 8),
             ("fixed point", encode(normalised).tobytes(), 8)]
    if raw_uint8 is not None:
        views.append(("uint8 file pixels", raw_uint8.tobytes(), 1))
    return views


def test_detector_finds_the_image_party2_sends_in_the_clear():
    """Positive control: with the clear engine party2 sends its level images to party1."""
    case = known_case("r16")
    run = tapped_registration(case.moving, case.fixed, load_config(AffineConfig, None, {
        "levels": "2x1", "smoothing": "1x0", "iterations": "3x2"}))
    received = run.wiretap.all_received_by("party1")
    normalised = normalize_intensity(case.fixed.array)[0].astype("<f8").tobytes()
    assert runs_found(normalised, 8, received) > 1000
    assert runs_found(normalised, 8, run.wiretap.all_received_by("party2")) == 0


def test_detector_finds_a_run_hidden_at_an_odd_offset():
    image = np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    noise = np.random.default_rng(1).integers(0, 256, 10_000, dtype=np.uint8).tobytes()
    assert runs_found(image, 1, noise) == 0
    assert runs_found(image, 1, noise[:333] + image[1000:1017] + noise[333:]) == 2


# --- party2 never receives the moving image -------------------------------------------

def assert_no_moving_image(run: TappedRun, raw_uint8: np.ndarray | None = None) -> None:
    received = run.wiretap.all_received_by("party2")
    assert len(received) > 0
    index = StreamIndex(received)
    for name, data, element in image_byte_views(run.moving, raw_uint8):
        assert index.runs_of(data, element) == 0, f"a run of the moving image's {name} bytes reached party2"
    targets = [run.moving.array.ravel(), normalize_intensity(run.moving.array)[0].ravel()]
    for sender in ("party1", "dealer"):
        for message in run.wiretap.messages("party2", sender):
            for array in message.arrays.values():
                if array.size == run.moving.array.size:
                    values = np.asarray(array, dtype=np.float64).ravel()
                    assert not any(np.allclose(values, target) for target in targets)


def test_party2_never_receives_the_moving_volume(mpc_runs_3d):
    assert_no_moving_image(mpc_runs_3d[0])
    kinds = {message.kind for message in mpc_runs_3d[0].wiretap.messages("party2", "party1")}
    assert kinds == {"hello", "level", "mpc_product", "bye"}


def test_party2_never_receives_the_moving_slice_pixels(mpc_run_png):
    raw = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA_DIR / "r64.png")))
    assert raw.dtype == np.uint8
    assert_no_moving_image(mpc_run_png, raw)


def test_the_dealer_sends_party2_only_its_seed(mpc_runs_3d):
    messages = mpc_runs_3d[0].wiretap.messages("party2", "dealer")
    assert [message.kind for message in messages] == ["seed"]
    assert messages[0].arrays["seed"].nbytes == 32


# --- what party1 sends is uniform -----------------------------------------------------

def masked_feature_bytes(run: TappedRun) -> bytes:
    products = [m for m in run.wiretap.messages("party2", "party1") if m.kind == "mpc_product"]
    assert len(products) == sum(len(level.iterations) for level in run.outcome.result.levels)
    return b"".join(np.ascontiguousarray(m.arrays["masked_features"]).tobytes() for m in products)


def byte_uniformity_p(data: bytes) -> float:
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    return float(stats.chisquare(counts).pvalue)


@pytest.mark.parametrize("run_name", ["seeded_mpc_run_3d", "mpc_run_png"])
def test_masked_features_are_uniform_bytes(request, run_name):
    run = request.getfixturevalue(run_name)
    data = masked_feature_bytes(run)
    assert len(data) > 100_000
    assert byte_uniformity_p(data) > UNIFORMITY_P
    # Each byte position of the uint64 words on its own, too (catches a mask on low bits only).
    words = np.frombuffer(data, dtype=np.uint8).reshape(-1, 8)
    assert min(byte_uniformity_p(words[:, k].tobytes()) for k in range(8)) > UNIFORMITY_P / 8


def test_uniformity_test_rejects_unmasked_features():
    """Power check: the fixed-point features themselves are far from uniform."""
    normalised = normalize_intensity(known_case("mni").moving.array)[0]
    assert byte_uniformity_p(encode(normalised[::4, ::4, ::4]).tobytes()) < 1e-12


# --- traffic in the report ------------------------------------------------------------

def test_report_counts_iteration_and_setup_bytes_per_party(mpc_runs_3d):
    outcome = mpc_runs_3d[0].outcome
    report = affine_report(outcome, mpc_runs_3d[0].moving, None, None, None, {})
    per_iteration, setup = report["communication"]["per_iteration_mean"], report["communication"]["setup"]
    assert per_iteration["party1"] > 0 and per_iteration["party2"] > 0 and per_iteration["dealer"] > 0
    assert per_iteration["rounds"] >= 1
    # party2's masked operand G̃ − V is setup traffic: 8 bytes per ring element.
    level_operands = [m for m in mpc_runs_3d[0].wiretap.messages("party1", "party2") if m.kind == "mpc_level"]
    assert setup["party2"] >= sum(m.arrays["masked_operand"].nbytes for m in level_operands)
    samples_per_iteration = np.mean([level.n_samples for level in outcome.result.levels
                                     for _ in level.iterations])
    assert per_iteration["party1"] >= 8 * samples_per_iteration


def test_every_product_is_within_1_2x_of_the_protocols_minimum(mpc_runs_3d):
    """docs/mpc.md: per product party1 sends 8·N (+ its dealer request), party2 and the
    dealer 8·s each (s = p + 1 selected entries); framing may add at most 20 %."""
    wiretap = mpc_runs_3d[0].wiretap
    products = [decode(frame) for frame in wiretap.received("party2", "party1")]
    products = [m for m in products if m.kind == "mpc_product"]
    shares = [frame for frame in wiretap.received("party1", "party2") if decode(frame).kind == "mpc_share"]
    answers = [frame for frame in wiretap.received("party1", "dealer") if decode(frame).kind == "triples"]
    assert len(products) == len(shares) == len(answers) > 10
    selected = 13  # 3D affine: p + 1
    for frame in shares + answers:
        assert len(frame) <= 1.2 * 8 * selected, len(frame)
    requests = [frame for frame in wiretap.received("dealer", "party1") if decode(frame).kind == "triples"]
    product_frames = [frame for frame in wiretap.received("party2", "party1") if decode(frame).kind == "mpc_product"]
    for product, request, message in zip(product_frames, requests, products):
        minimum = 8 * message.arrays["masked_features"].shape[0]
        assert len(product) + len(request) <= 1.2 * minimum


def test_report_totals_equal_the_bytes_on_the_wire(mpc_runs_3d):
    run = mpc_runs_3d[0]
    total = affine_report(run.outcome, run.moving, None, None, None, {})["communication"]["total"]
    from_party2 = sum(len(frame) for frame in run.wiretap.received("party1", "party2"))
    from_dealer = sum(len(frame) for frame in run.wiretap.received("party1", "dealer"))
    sent = sum(len(frame) for frame in run.wiretap.received("party2", "party1")) + sum(
        len(frame) for frame in run.wiretap.received("dealer", "party1"))
    assert (total["party1"], total["party2"], total["dealer"]) == (sent, from_party2, from_dealer)


# --- seeds and masks ------------------------------------------------------------------

def test_mpc_masks_differ_between_runs_but_the_transform_does_not(mpc_runs_3d):
    first, second = mpc_runs_3d
    assert masked_feature_bytes(first) != masked_feature_bytes(second)
    first_frames = first.wiretap.received("party2", "party1")
    second_frames = second.wiretap.received("party2", "party1")
    product_pairs = [(a, b) for a, b in zip(first_frames, second_frames) if decode(a).kind == "mpc_product"]
    assert product_pairs and all(a != b for a, b in product_pairs)
    grid = first.fixed.grid
    difference = transform_difference(first.outcome.sitk_transform(), second.outcome.sitk_transform(), grid)
    assert difference["max_mm"] <= 1e-6


def test_mpc_matches_the_clear_run_with_the_same_seed(mpc_runs_3d, registrations):
    clear = registrations(RunSpec("mni", **SSD_3D))
    grid = mpc_runs_3d[0].fixed.grid
    assert transform_difference(mpc_runs_3d[0].outcome.sitk_transform(), clear.transform, grid)["rmse_mm"] <= 0.05


def test_clear_runs_with_the_same_seed_are_identical_and_other_seeds_differ():
    case = known_case("mni")
    settings = {**SSD_3D, "levels": "4x2", "smoothing": "2x1", "iterations": "20x10"}
    runs = []
    for seed in (4, 4, 5):
        with in_process_session(case.fixed, "clear") as proxy:
            runs.append(run_affine(case.moving, proxy, load_config(AffineConfig, None, {**settings, "seed": seed})))
    np.testing.assert_array_equal(runs[0].result.params, runs[1].result.params)
    assert not np.array_equal(runs[0].result.params, runs[2].result.params)
