"""fhe packing: several feature columns per result ciphertext, and the sparse (B-spline) layout."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ppreg.core.bspline import ControlGrid
from ppreg.core.transforms import AffineModel
from ppreg.io.images import Grid, Image
from ppreg.secure.base import LevelContext
from ppreg.secure.fhe import FHE1Client, FHE1Server, FHE2Client, FHE2Server
from ppreg.secure.fhe.layouts import plan_planes
from ppreg.secure.fhe.sparse import ClassBlock, SparseLayout
from ppreg.similarity.base import DenseOperand, LevelRequest
from ppreg.similarity.ssd_bspline import bspline_fixed_operand, bspline_selection
from ppreg.transport.channel import local_pair

ONE_CIPHERTEXT_BYTES = 2 * 8192 * 8 + 1024  # c1 (L = 2 residue polynomials of N words) plus framing


def run_level(client, server, operand, context: LevelContext, requests):
    """Serve one level with ``server`` in a thread; returns party1's results and bytes sent per request."""
    party1, party2 = local_pair("party1", "party2", timeout=120)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.start_level(party2, context.index, operand, None)
            while (message := party2.recv()).kind != "bye":
                server.serve_product(party2, message)
        except Exception as error:  # noqa: BLE001 - reported to the test
            errors.append(error)
            party2.send_error(str(error))
        finally:
            server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client.start_level(party1, context)
    results, sent = [], []
    for features, selection in requests:
        before = party1.stats.bytes_sent
        results.append(client.product(party1, features, selection))
        sent.append(party1.stats.bytes_sent - before)
    party1.send("bye")
    thread.join(timeout=60)
    client.close()
    assert not errors, errors
    return results, sent


def dense_context(shape, metric="points", dim=3) -> LevelContext:
    model = AffineModel(kind="rigid", dim=dim, center=np.zeros(dim), scale=1.0)
    return LevelContext(0, LevelRequest(metric=metric, shrink=1, sigma=0.0, model=model), None, None, shape)


@pytest.mark.parametrize(("client_type", "server_type"), [(FHE1Client, FHE1Server), (FHE2Client, FHE2Server)],
                         ids=["fhe1", "fhe2"])
def test_all_feature_columns_travel_in_one_ciphertext(client_type, server_type):
    """A point-set product (m = d = 3 features × q = 3 columns): one c1 for all nine entries."""
    rng = np.random.default_rng(11)
    operand = rng.uniform(-1.0, 1.0, (3001, 3)) * 64.0
    features = rng.uniform(-1.0, 1.0, (3001, 3))
    selection = np.ones((3, 3), dtype=bool)
    selection[1, 2] = False
    (result,), (sent,) = run_level(client_type(), server_type(), DenseOperand(dense=operand, feature_columns=3),
                                   dense_context(operand.shape), [(features, selection)])
    reference = features.T @ operand
    assert result[1, 2] == 0.0
    assert np.max(np.abs(result - np.where(selection, reference, 0.0))) < 1e-4 * np.max(np.abs(reference))
    assert sent < ONE_CIPHERTEXT_BYTES


def test_planes_spread_selected_features_over_real_and_imaginary_parts():
    selection = np.zeros((4, 6), dtype=bool)
    selection[:3, :5] = True  # three features on five columns, one on the last
    selection[3, 5] = True
    planes = plan_planes(selection, np.arange(6), replicas=1, imaginary=True)
    assert len(planes) == 2
    assert planes[0].real[0].tolist() == [0, 0, 0, 0, 0, 3] and planes[0].imag[0].tolist() == [1] * 5 + [-1]
    assert planes[1].real[0].tolist() == [2] * 5 + [-1] and np.all(planes[1].imag == -1)
    assert len(plan_planes(selection, np.arange(6), replicas=2, imaginary=True)) == 1
    assert len(plan_planes(selection, np.arange(6), replicas=3, imaginary=False)) == 1
    assert plan_planes(np.zeros((2, 3), dtype=bool), np.arange(3), 1, True) == []


def test_sparse_layout_puts_each_entry_once_in_its_column_class():
    rng = np.random.default_rng(3)
    rows, n_columns = 2000, 301
    pattern = np.hstack([np.sort(rng.choice(n_columns - 1, (rows, 4)), axis=1), np.full((rows, 1), n_columns - 1)])
    layout = SparseLayout(pattern, n_columns, 4096)
    assert layout.dense_columns.tolist() == [n_columns - 1]  # present in every row: dense part
    (block,) = layout.blocks
    assert isinstance(block, ClassBlock) and block.period == 512
    placed = block.entries[block.entries >= 0]
    assert np.array_equal(np.sort(placed), np.flatnonzero(pattern.ravel() != n_columns - 1))
    ciphertext, slot = np.nonzero(block.entries >= 0)
    columns = pattern.ravel()[block.entries[ciphertext, slot]]
    assert np.array_equal(block.column_index[slot % block.period], columns)
    assert layout.n_ciphertexts == block.n_ciphertexts + 1


def bspline_case(size, mesh, samples, seed):
    """A smooth random fixed image on ``size`` voxels, its B-spline operand and level context."""
    rng = np.random.default_rng(seed)
    dim = len(size)
    grid = Grid(size=tuple(size), spacing=np.ones(dim), origin=np.zeros(dim), direction=np.eye(dim))
    image = Image(array=rng.uniform(0.0, 1.0, grid.shape), grid=grid)
    control = ControlGrid.covering(grid, [mesh] * dim)
    sample_index = np.sort(rng.choice(grid.n_voxels, samples, replace=False)) if samples else None
    operand = bspline_fixed_operand(image, control, sample_index)
    model = AffineModel("affine", dim, grid.center(), 1.0)
    request = LevelRequest("bspline", 1, 0.0, model, params={"control_grid": control.to_meta()})
    context = LevelContext(0, request, grid, sample_index, operand.shape)
    features = np.hstack([rng.uniform(-2.0, 2.0, (operand.shape[0], dim)), rng.uniform(0.0, 1.0, (operand.shape[0], 1))])
    return operand, context, features, bspline_selection(dim, control.n_points)


@pytest.mark.parametrize(("size", "mesh", "samples"), [((48, 40), 9, 600), ((22, 22, 22), 14, 1500)],
                         ids=["2d-urs", "3d-two-blocks"])
def test_bspline_operand_products_match_clear(size, mesh, samples):
    operand, context, features, selection = bspline_case(size, mesh, samples, seed=len(size))
    client = FHE2Client()
    results, sent = run_level(client, FHE2Server(), operand, context, [(features, selection)] * 2)
    parts = client._layout.parts
    reference = np.where(selection, operand.left_product(features), 0.0)
    for result in results:
        assert np.all(result[~selection] == 0.0)
        assert np.max(np.abs(result[:-1] - reference[:-1])) < 1e-3  # flooding std ≈ 1.3e-4 here
        assert abs(result[-1, -1] / reference[-1, -1] - 1.0) < 1e-5  # Σ I·J, dense part: std ≈ 3e-4
    planes = (len(size) + 1) // 2  # d features per control point, two per plane
    assert sent[0] < ((len(parts) - 1) * planes + 1) * ONE_CIPHERTEXT_BYTES
    assert len(parts) == (3 if len(size) == 3 else 2)  # 4913 control points: two class blocks, and J
