"""ppreg ants: local CC math, the mpc CC protocol against the clear oracle, SyN recovery of
known deformations (2D and a 4 mm 3D brain), mpc vs clear, outputs and the apply chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from ppreg.api import apply_transform, transform_difference
from ppreg.api_syn import run_ants
from ppreg.cli.app import app
from ppreg.config import AntsConfig, load_config
from ppreg.core.displacement import compose, invert
from ppreg.core.pyramid import pyramid_level
from ppreg.errors import ProtocolError
from ppreg.io.images import Image, read_image, write_image
from ppreg.io.transforms import linear_to_sitk, write_transform
from ppreg.registration.syn import converged
from ppreg.registration.syn_half import SynLevel
from ppreg.secure.cc import ClearCC, cc_joint_for
from ppreg.secure.mpc.box import ring_box_sum
from ppreg.secure.mpc.cc import MPCCC, dilate
from ppreg.secure.mpc.dealer import run_dealer_session
from ppreg.secure.mpc.engine import dealer_hello
from ppreg.secure.mpc.fixed import encode
from ppreg.secure.mpc.prg import MaskStream, new_seed
from ppreg.secure.mpc.ring import ring_add, ring_sub
from ppreg.secure.runtime import PartyThread, in_process_session
from ppreg.similarity.cc import box_sum, clear_forces, correlation, joint_covariance, local_statistics
from ppreg.synthetic import smooth_deformation, warp_with_dense_deformation
from ppreg.transport.channel import local_pair

DATA = Path(__file__).resolve().parents[1] / "data"
# convergence 0: fixed iteration counts, so mpc and clear run the same steps
CONFIG_2D = AntsConfig(levels="4x2x1", smoothing="2x1x0", iterations="30x20x10", convergence=0).validate()
CONFIG_3D = AntsConfig(levels="2x1", smoothing="1x0", iterations="20x10", convergence=0).validate()


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.sum(a & b) / (np.sum(a) + np.sum(b))


def register(moving, fixed, pet, config, initial_transform=None):
    with in_process_session(fixed, pet) as proxy:
        return run_ants(moving, proxy, config, initial_transform)


@pytest.fixture(scope="module")
def slice_case():
    """r16 deformed by a seeded smooth field (max 4 mm)."""
    fixed = read_image(DATA / "r16.png")
    control, coefficients = smooth_deformation(fixed.grid, 4.0, np.random.default_rng(3), mesh=4)
    moving = warp_with_dense_deformation(fixed, control, coefficients)
    mask = read_image(DATA / "r16_mask.png").array > 0
    return fixed, moving, control.to_sitk(coefficients), mask


@pytest.fixture(scope="module")
def brain_case():
    """The MNI T1 at 4 mm deformed by a seeded smooth field (max 6 mm), with its GM labels."""
    shrink = lambda path: pyramid_level(read_image(DATA / path), 2, 1.0)  # noqa: E731
    fixed, gm, mask = shrink("mni_t1_2mm.nii.gz"), shrink("mni_gm_2mm.nii.gz"), shrink("mni_mask_2mm.nii.gz")
    control, coefficients = smooth_deformation(fixed.grid, 6.0, np.random.default_rng(7), mesh=3)
    moving = warp_with_dense_deformation(fixed, control, coefficients)
    moving_gm = warp_with_dense_deformation(gm, control, coefficients)
    return fixed, moving, control.to_sitk(coefficients), mask.array > 0.5, gm, moving_gm


@pytest.fixture(scope="module")
def slice_outcomes(slice_case):
    fixed, moving, _, _ = slice_case
    return {pet: register(moving, fixed, pet, CONFIG_2D) for pet in ("clear", "mpc")}


@pytest.fixture(scope="module")
def brain_outcomes(brain_case):
    fixed, moving = brain_case[:2]
    return {pet: register(moving, fixed, pet, CONFIG_3D) for pet in ("clear", "mpc")}


def test_ring_box_sum_of_shares_is_the_box_sum():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 1000, size=(6, 7, 8))
    mask = MaskStream(new_seed(), "t").uint64(values.shape)
    share = ring_sub(values.astype(np.uint64), mask)
    total = ring_add(ring_box_sum(mask, 2), ring_box_sum(share, 2)).view(np.int64)
    assert np.array_equal(total, np.rint(box_sum(values.astype(float), 2)).astype(np.int64))


def test_correlation_matches_a_direct_window_computation():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(size=(9, 10)), rng.uniform(size=(9, 10))
    own, other = local_statistics(a, 1), local_statistics(b, 1)
    corr = correlation(joint_covariance(a, b, 1), own.inv_norm, other.inv_norm)
    pad_a, pad_b = np.pad(a, 1, mode="edge"), np.pad(b, 1, mode="edge")
    window_a, window_b = pad_a[3:6, 4:7].ravel(), pad_b[3:6, 4:7].ravel()  # the window of voxel (3, 4)
    assert corr[3, 4] == pytest.approx(np.corrcoef(window_a, window_b)[0, 1], abs=1e-9)


def test_force_is_the_derivative_of_the_local_cc():
    """g1(x) = (2/√E)·r1 is ∂c(x)²/∂a(x) (the paper's Eq. 10, ANTs' centre-voxel gradient),
    away from the edges (where replication counts the centre voxel more than once)."""
    rng = np.random.default_rng(2)
    a, b = rng.uniform(size=(10, 11)), rng.uniform(size=(10, 11))
    own, other = local_statistics(a, 2), local_statistics(b, 2)
    analytic = (own.gradient_scale() * clear_forces(own, other).factor)[2:-2, 2:-2]
    step, numeric = 1e-6, np.zeros_like(analytic)
    for inner in np.ndindex(analytic.shape):
        index = (inner[0] + 2, inner[1] + 2)
        def c2(delta):
            moved = a.copy()
            moved[index] += delta
            stats = local_statistics(moved, 2)
            return correlation(joint_covariance(moved, b, 2), stats.inv_norm, other.inv_norm)[index] ** 2
        numeric[inner] = (c2(step) - c2(-step)) / (2 * step)
    cosine = np.sum(analytic * numeric) / (np.linalg.norm(analytic) * np.linalg.norm(numeric))
    assert cosine >= 0.99
    assert np.allclose(analytic, numeric, atol=1e-4)


def run_cc_protocol(stats_a, stats_b, pet: str):
    """Both parties' CC halves over counted channels (and the dealer for mpc)."""
    to_party2, to_party1 = local_pair("party1", "party2")
    dealer = None
    if pet == "mpc":
        party1_dealer, dealer_party1 = local_pair("party1", "dealer")
        party2_dealer, dealer_party2 = local_pair("party2", "dealer")
        dealer = PartyThread("dealer", run_dealer_session, dealer_party1, lambda: dealer_party2)
        dealer.start()
        seed1 = dealer_hello(party1_dealer, "party1", "s")
        seed2 = dealer_hello(party2_dealer, "party2", "s")
        halves = MPCCC("party1", to_party2, party1_dealer, seed1), MPCCC("party2", to_party1, party2_dealer, seed2)
    else:
        halves = ClearCC("party1", to_party2), ClearCC("party2", to_party1)
    for half in halves:
        half.start_level(0, stats_a.warped.shape, stats_a.radius)
    other = PartyThread("party2", halves[1].forces, stats_b)
    other.start()
    forces1 = halves[0].forces(stats_a)
    other.join()
    if dealer is not None:
        party1_dealer.send("bye")
        dealer.join()
    return forces1, other.result, to_party2.stats


@pytest.mark.parametrize("shape, radius", [((20, 22), 2), ((9, 10, 11), 2), ((12, 11), 1)])
def test_mpc_cc_protocol_matches_the_clear_oracle(shape, radius):
    rng = np.random.default_rng(4)
    a = np.clip(rng.uniform(size=shape) * 0.5 + np.linspace(0, 0.5, shape[-1]), 0, 1)
    b = np.clip(0.7 * a + 0.3 * rng.uniform(size=shape), 0, 1)
    a[:5] = 0.2  # a flat region: no force where a whole window lies in it
    stats_a, stats_b = local_statistics(a, radius), local_statistics(b, radius)
    oracle1, oracle2 = clear_forces(stats_a, stats_b), clear_forces(stats_b, stats_a)
    forces1, forces2, traffic = run_cc_protocol(stats_a, stats_b, "mpc")
    assert np.max(np.abs(forces1.factor - oracle1.factor)) < 2e-3
    assert np.max(np.abs(forces2.factor - oracle2.factor)) < 2e-3
    assert forces1.metric == pytest.approx(oracle1.metric, abs=1e-3) and forces2.metric == forces1.metric
    assert forces1.discarded == forces2.discarded == 0
    assert np.all(forces1.factor[:3] == 0)
    support = (stats_a.inv_norm > 0) & (stats_b.inv_norm > 0)
    assert np.all(forces1.factor[~support] == 0) and np.all(forces2.factor[~support] == 0)
    # 2 bits per voxel, 1 ring element per voxel of S⁺ (S dilated by the window), 7 per voxel of S
    payload = 2 * (-(-support.size // 8)) + 8 * np.count_nonzero(dilate(support, radius)) + 7 * 8 * support.sum()
    assert payload <= traffic.bytes_sent <= payload + 4096
    assert payload < 8 * 8 * support.size


@pytest.mark.parametrize("flat", ["party1", "both", "none"])
def test_mpc_cc_protocol_at_the_edges_of_the_support(flat):
    """S empty (one image or both flat) or the whole grid: the protocol still matches the oracle."""
    rng = np.random.default_rng(6)
    a, b = rng.uniform(size=(7, 8, 9)), rng.uniform(size=(7, 8, 9))
    if flat in ("party1", "both"):
        a[:] = 0.4
    if flat == "both":
        b[:] = 0.6
    stats_a, stats_b = local_statistics(a, 1), local_statistics(b, 1)
    forces1, forces2, traffic = run_cc_protocol(stats_a, stats_b, "mpc")
    assert np.max(np.abs(forces1.factor - clear_forces(stats_a, stats_b).factor)) < 2e-3
    assert np.max(np.abs(forces2.factor - clear_forces(stats_b, stats_a).factor)) < 2e-3
    assert forces1.metric == pytest.approx(clear_forces(stats_a, stats_b).metric, abs=1e-3)
    if flat != "none":
        assert np.all(forces1.factor == 0) and traffic.bytes_sent < 1024
    else:
        assert np.all(stats_a.inv_norm > 0) and traffic.bytes_sent >= 8 * 8 * a.size


def test_dilated_support_covers_every_window_read():
    support = np.zeros((9, 10), dtype=bool)
    support[0, 4] = support[6, 9] = True
    dilated = dilate(support, 2)
    for index in zip(*np.nonzero(support)):
        window = tuple(slice(max(0, k - 2), k + 3) for k in index)
        assert np.all(dilated[window])
    assert dilated.sum() == 3 * 5 + 5 * 3


def test_clear_cc_protocol_is_the_oracle():
    rng = np.random.default_rng(5)
    stats_a, stats_b = (local_statistics(rng.uniform(size=(10, 12)), 2) for _ in range(2))
    forces1, forces2, _ = run_cc_protocol(stats_a, stats_b, "clear")
    assert np.allclose(forces1.factor, clear_forces(stats_a, stats_b).factor)
    assert np.allclose(forces2.factor, clear_forces(stats_b, stats_a).factor)


def test_no_ants_on_fhe_engines():
    class Engine:
        name = "fhe2"
    with pytest.raises(Exception, match="clear or mpc"):
        cc_joint_for(Engine(), "party1", None)


def test_2d_recovers_a_known_deformation(slice_case, slice_outcomes):
    fixed, _, truth, mask = slice_case
    error = transform_difference(slice_outcomes["clear"].sitk_transform(), truth, fixed.grid, mask)
    assert error["mean_mm"] <= 0.3, error
    for level in slice_outcomes["clear"].result.levels:  # the cost falls at every level
        assert level.iterations[-1].metric < level.iterations[0].metric


def test_2d_mpc_matches_clear(slice_case, slice_outcomes):
    fixed, _, _, mask = slice_case
    clear, mpc = slice_outcomes["clear"], slice_outcomes["mpc"]
    difference = transform_difference(mpc.sitk_transform(), clear.sitk_transform(), fixed.grid, mask)
    assert difference["rmse_mm"] <= 0.1, difference
    iterations = [r for level in mpc.result.levels for r in level.iterations]
    assert all(r.traffic.party1 > 0 and r.traffic.party2 > 0 and r.traffic.dealer > 0 for r in iterations)


def test_3d_brain_recovers_a_known_deformation_and_improves_dice(brain_case, brain_outcomes):
    fixed, moving, truth, mask, gm, moving_gm = brain_case
    clear = brain_outcomes["clear"]
    error = transform_difference(clear.sitk_transform(), truth, fixed.grid, mask)
    assert error["mean_mm"] <= 1.0, error
    labels = gm.array > 0.5
    before = dice(labels, moving_gm.array > 0.5)
    after = dice(labels, apply_transform(clear.sitk_transform(), moving_gm, fixed.grid).array > 0.5)
    assert after > before + 0.05, (before, after)


def test_3d_mpc_matches_clear(brain_case, brain_outcomes):
    fixed, _, _, mask, gm, moving_gm = brain_case
    clear, mpc = brain_outcomes["clear"], brain_outcomes["mpc"]
    difference = transform_difference(mpc.sitk_transform(), clear.sitk_transform(), fixed.grid, mask)
    assert difference["rmse_mm"] <= 0.1, difference
    labels = gm.array > 0.5
    scores = [dice(labels, apply_transform(o.sitk_transform(), moving_gm, fixed.grid).array > 0.5)
              for o in (clear, mpc)]
    assert abs(scores[0] - scores[1]) <= 0.01, scores


def test_warp_and_inverse_warp_are_inverse(slice_case, slice_outcomes):
    fixed = slice_case[0]
    result = slice_outcomes["mpc"].result
    round_trip = compose(result.inverse_warp, result.warp, fixed.grid)
    assert np.max(np.linalg.norm(round_trip, axis=-1)) < 0.05
    field = np.zeros(fixed.grid.shape + (2,))
    field[..., 0] = 2.0 * np.sin(np.linspace(0, np.pi, fixed.grid.shape[1]))[None, :]
    inverse, residual = invert(field, fixed.grid)
    assert residual < 0.01 and np.max(np.abs(compose(field, inverse, fixed.grid))) < 0.02


def test_cli_ants_with_initial_affine_and_apply_chain(tmp_path, slice_case):
    """Outputs are ITK displacement fields; apply AFFINE WARP equals the warped output and
    SimpleITK's resampling through the same chain; labels go through --interpolation nearest."""
    fixed, moving, _, _ = slice_case
    affine = linear_to_sitk(np.array([[1.02, 0.03], [-0.02, 0.99]]), np.array([1.5, -1.0]), fixed.grid.center(),
                            rigid=False)
    write_transform(affine, tmp_path / "affine.tfm")
    write_image(moving, tmp_path / "moving.nii.gz")
    write_image(fixed, tmp_path / "fixed.nii.gz")
    result = CliRunner().invoke(app, [
        "ants", str(tmp_path / "moving.nii.gz"), str(tmp_path / "fixed.nii.gz"), "-o", str(tmp_path / "s_"),
        "--levels", "2x1", "--smoothing", "1x0", "--iterations", "5x3", "--pet", "mpc",
        "--initial-transform", str(tmp_path / "affine.tfm"), "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "s_report.json").read_text())
    assert report["model"] == "ants" and report["transform"]["initial_affine"] is not None
    assert report["privacy"]["revealed_to_party1"]["values_per_iteration"][-1] == fixed.grid.n_voxels + 1
    warp = sitk.ReadImage(str(tmp_path / "s_warp.nii.gz"))
    assert warp.GetPixelID() == sitk.sitkVectorFloat64
    chain = sitk.CompositeTransform([affine, sitk.DisplacementFieldTransform(sitk.Cast(warp, sitk.sitkVectorFloat64))])
    result = CliRunner().invoke(app, ["apply", str(tmp_path / "affine.tfm"), str(tmp_path / "s_warp.nii.gz"),
                                      str(tmp_path / "moving.nii.gz"), "-r", str(tmp_path / "fixed.nii.gz"),
                                      "-o", str(tmp_path / "applied.nii.gz")])
    assert result.exit_code == 0, result.output
    applied = read_image(tmp_path / "applied.nii.gz").array
    assert np.allclose(applied, read_image(tmp_path / "s_warped.nii.gz").array, atol=1e-3)
    itk = sitk.Resample(sitk.ReadImage(str(tmp_path / "moving.nii.gz"), sitk.sitkFloat64),
                        sitk.ReadImage(str(tmp_path / "fixed.nii.gz")), chain, sitk.sitkLinear, 0.0)
    assert np.max(np.abs(applied - sitk.GetArrayFromImage(itk))) <= 1e-3 * np.ptp(moving.array)
    labels = Image(array=(moving.array > np.median(moving.array)).astype(np.float64) * 3, grid=moving.grid)
    write_image(labels, tmp_path / "labels.nii.gz")
    result = CliRunner().invoke(app, ["apply", str(tmp_path / "affine.tfm"), str(tmp_path / "s_warp.nii.gz"),
                                      str(tmp_path / "labels.nii.gz"), "-r", str(tmp_path / "fixed.nii.gz"),
                                      "-o", str(tmp_path / "labels_out.nii.gz"), "--interpolation", "nearest"])
    assert result.exit_code == 0, result.output
    assert set(np.unique(read_image(tmp_path / "labels_out.nii.gz").array)) <= {0.0, 3.0}


@pytest.mark.parametrize("args, message", [
    (["--pet", "fhe1"], "pet"), (["--radius", "0"], "radius"), (["--step", "0"], "step"),
    (["--levels", "4x2", "--smoothing", "1"], "same number of levels"),
])
def test_cli_ants_bad_options(tmp_path, args, message):
    result = CliRunner().invoke(app, ["ants", str(DATA / "r64.png"), str(DATA / "r16.png"),
                                      "-o", str(tmp_path / "x_"), "--quiet", *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not list(tmp_path.iterdir())


def test_party2_refuses_bad_level_parameters():
    good = SynLevel(0, 2, 1.0, 2, 0.25, 1.7, 0.0).to_meta()
    assert SynLevel.from_meta(good).shrink == 2
    for key, value in (("radius", 40), ("step", -1.0), ("shrink", 0), ("sigma_total", float("nan"))):
        with pytest.raises(ProtocolError):
            SynLevel.from_meta({**good, key: value})


def test_convergence_stops_on_a_flat_cost():
    assert not converged([-0.1 - 0.01 * k for k in range(10)], 1e-6, 10)
    assert converged([-0.5] * 10, 1e-6, 10)
    assert not converged([-0.5] * 9, 1e-6, 10)
    assert not converged([-0.5] * 10, 0.0, 10)


def test_encoding_budget_of_the_protocol():
    """The first truncated value stays under 2^36 for the worst window of [0, 1] values."""
    from ppreg.secure.mpc.cc import TRUNCATION_BITS, CCScales

    for n in (9, 25, 27, 125, 343):
        scales = CCScales.for_window(n)
        worst = n * n / 4 * 2.0 ** (2 * scales.intensity)
        assert worst < 2.0**TRUNCATION_BITS
        assert encode(np.array([1.0]), scales.intensity)[0] == 2**scales.intensity


def test_config_file_matches_defaults():
    assert load_config(AntsConfig, Path(__file__).resolve().parents[1] / "configs" / "ants.yaml", {}) \
        == AntsConfig().validate()


def test_three_processes_run_ants_over_tls(tmp_path, slice_case):
    """party2 (ppreg serve) runs its SyN half in its own process; the dealer serves the CC
    correlations; the result equals the in-process run with the same fixed iterations."""
    from test_three_process import party1, start, stop  # noqa: PLC0415 - the shared process helpers

    from ppreg.transport.keys import make_keys

    fixed, moving, _, mask = slice_case
    certs = tmp_path / "certs"
    make_keys(certs)
    write_image(moving, tmp_path / "moving.nii.gz")
    write_image(fixed, tmp_path / "fixed.nii.gz")
    dealer, dealer_port = start(["dealer", "--listen", "127.0.0.1:0", "--certs", str(certs)], r"port (\d+)")
    party2, party2_port = start(["serve", str(tmp_path / "fixed.nii.gz"), "--listen", "127.0.0.1:0", "--certs",
                                 str(certs), "--dealer", f"127.0.0.1:{dealer_port}"], r"port (\d+)")
    options = ["--pet", "mpc", "--levels", "2x1", "--smoothing", "1x0", "--iterations", "6x3", "--convergence", "0",
               "--quiet"]
    try:
        remote = party1(["ants", str(tmp_path / "moving.nii.gz"), "--peer", f"127.0.0.1:{party2_port}",
                         "--dealer", f"127.0.0.1:{dealer_port}", "--certs", str(certs), "-o", str(tmp_path / "r_"),
                         *options])
    finally:
        stop(party2, dealer)
    assert remote.returncode == 0, remote.stderr
    local = party1(["ants", str(tmp_path / "moving.nii.gz"), str(tmp_path / "fixed.nii.gz"),
                    "-o", str(tmp_path / "l_"), *options])
    assert local.returncode == 0, local.stderr
    compare = party1(["compare", str(tmp_path / "r_warp.nii.gz"), str(tmp_path / "l_warp.nii.gz"),
                      "-r", str(tmp_path / "fixed.nii.gz")])
    assert json.loads(compare.stdout)["rmse_mm"] < 0.02, compare.stdout
