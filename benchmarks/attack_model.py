"""A reconstruction attack by party1 on party2's image, from what party1 sees in a run.

party1 records, per pyramid level, the public level request and sample indices, party2's
per-level summary and, per evaluation, its own features F (I(W), and ∇Ĩ for the B-spline)
and the revealed product R = Fᵀ·G (:class:`Eavesdropper`). Every revealed entry is linear
in party2's level image J (N voxels): R[k, j] = ⟨a_kj, J⟩ with a row a_kj that party1 can
compute from F and public geometry (:func:`ssd_rows`, :class:`BSplineRows`). Stacking all
evaluations of a level gives A·J = r, solved by regularised least squares with a smooth
Gaussian prior (:func:`reconstruct`). The quadratic per-level summaries (H = SᵀS, SᵀJ, ΣJ²)
are not used.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import linalg as sparse_linalg

from ppreg.core.bspline import ControlGrid
from ppreg.io.images import Grid
from ppreg.similarity.base import LevelRequest, sample_points
from ppreg.similarity.ssd_bspline import bspline_basis


@dataclass
class LevelView:
    """What party1 holds about one level: public geometry and its own records."""

    index: int
    request: LevelRequest
    grid: Grid
    sample_index: np.ndarray | None
    summary: dict
    features: list[np.ndarray] = field(default_factory=list)  # F per evaluation (N × m)
    products: list[np.ndarray] = field(default_factory=list)  # revealed R per evaluation (m × q)
    selections: list[np.ndarray] = field(default_factory=list)


class Eavesdropper:
    """Wraps a :class:`~ppreg.secure.session.FixedPartyProxy` and keeps what party1 sees.

    Nothing is added to what party1 receives: the wrapper only copies the arguments and
    results of ``start_level`` and ``product``.
    """

    def __init__(self, proxy):
        self.levels: list[LevelView] = []
        start_level, product = proxy.start_level, proxy.product

        def recording_start_level(index, request, sample_index):
            summary = start_level(index, request, sample_index)
            grid = proxy.level_grid(request.shrink)
            self.levels.append(LevelView(index, request, grid, sample_index, summary))
            return summary

        def recording_product(features, selection):
            result = product(features, selection)
            level = self.levels[-1]
            level.features.append(np.array(np.asarray(features), dtype=np.float64))
            level.products.append(np.array(result))
            level.selections.append(np.array(selection))
            return result

        proxy.start_level, proxy.product = recording_start_level, recording_product


def gradient_matrix(shape: tuple[int, ...], axis: int) -> sparse.csr_matrix:
    """``np.gradient(image, axis=axis)`` (unit spacing, first-order edges) as a sparse matrix
    on C-ordered flattened images of ``shape``."""
    n = shape[axis]
    rows, cols, vals = [], [], []
    for i in range(n):
        low, high = max(i - 1, 0), min(i + 1, n - 1)
        rows += [i, i]
        cols += [high, low]
        vals += [1.0 / (high - low), -1.0 / (high - low)]
    one_axis = sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))
    factors = [sparse.identity(m, format="csr") for m in shape]
    factors[axis] = one_axis
    matrix = factors[0]
    for factor in factors[1:]:
        matrix = sparse.kron(matrix, factor, format="csr")
    return matrix


def physical_gradient_matrices(grid: Grid) -> list[sparse.csr_matrix]:
    """∂/∂x_k (intensity per mm) as GradientImage computes it, one matrix per physical axis."""
    shape = grid.shape
    index_gradients = [gradient_matrix(shape, grid.dim - 1 - a) for a in range(grid.dim)]  # ITK axis a
    to_index = np.linalg.inv(grid.index_to_physical_matrix())
    return [sum(to_index[a, k] * index_gradients[a] for a in range(grid.dim)) for k in range(grid.dim)]


def ssd_rows(level: LevelView) -> tuple[np.ndarray, np.ndarray]:
    """The affine SSD equations of a level: A (E·(p+1) × N) and r, with A·J = r.

    R[0, j] = Σ_x F(x)·S_j(x) for j < p (S = s·∇J·X̃·∂W/∂θ, linear in J through the
    gradient) and Σ_x F(x)·J(x) for j = p.
    """
    grid, model = level.grid, level.request.model
    flat = np.arange(grid.n_voxels) if level.sample_index is None else level.sample_index
    coords = model.normalized_coordinates(sample_points(grid, level.sample_index))  # (N_s, d+1)
    jacobian = model.affine_jacobian(model.identity()).reshape(grid.dim, grid.dim + 1, -1)
    weights = [model.scale * coords @ jacobian[k] for k in range(grid.dim)]  # W_k, (N_s, p)
    gradients = physical_gradient_matrices(grid)
    select = sparse.csr_matrix((np.ones(len(flat)), (np.arange(len(flat)), flat)), shape=(len(flat), grid.n_voxels))
    rows, values = [], []
    for features, product in zip(level.features, level.products):
        f = features[:, 0]
        block = sum((select @ gradients[k]).T @ (f[:, None] * weights[k]) for k in range(grid.dim)).T  # (p, N)
        rows += [np.asarray(block), (select.T @ f)[None, :]]
        values.append(product[0])
    return np.vstack(rows), np.concatenate(values)


class BSplineRows(sparse_linalg.LinearOperator):
    """The B-spline equations of a level as a matrix-free operator J ↦ r.

    R[k, c] = Σ_x F_k(x)·β_c(x)·J(x) (k < d, every control point c) and
    R[d, P] = Σ_x I(W(x))·J(x): d·P + 1 equations per evaluation.
    """

    def __init__(self, level: LevelView):
        grid = level.grid
        control = ControlGrid.from_meta(level.request.params["control_grid"])
        columns, weights = bspline_basis(grid, control, level.sample_index)
        n_samples, self.n_control = len(columns), control.n_points
        rows = np.repeat(np.arange(n_samples), columns.shape[1])
        self.basis = sparse.csr_matrix((weights.ravel(), (rows, columns.ravel())), shape=(n_samples, self.n_control + 1))
        flat = np.arange(grid.n_voxels) if level.sample_index is None else level.sample_index
        self.select = sparse.csr_matrix((np.ones(n_samples), (np.arange(n_samples), flat)),
                                        shape=(n_samples, grid.n_voxels))
        self.dim = grid.dim
        self.features = np.hstack(level.features)  # (N_s, E·(d+1))
        evaluations = len(level.features)
        revealed = [np.concatenate([p[: self.dim, : self.n_control].ravel(), [p[self.dim, self.n_control]]])
                    for p in level.products]
        self.values = np.concatenate(revealed)
        super().__init__(np.float64, (evaluations * (self.dim * self.n_control + 1), grid.n_voxels))

    def _split(self, full: np.ndarray) -> np.ndarray:
        """(P+1) × E·(d+1) per-feature products → the revealed entries, evaluation by evaluation."""
        per_evaluation = full.T.reshape(-1, self.dim + 1, self.n_control + 1)
        gradient_part = per_evaluation[:, : self.dim, : self.n_control].reshape(len(per_evaluation), -1)
        return np.hstack([gradient_part, per_evaluation[:, self.dim, self.n_control][:, None]]).ravel()

    def _matvec(self, image: np.ndarray) -> np.ndarray:
        sampled = self.select @ np.ravel(image)
        return self._split(np.asarray(self.basis.T @ (self.features * sampled[:, None])))

    def _rmatvec(self, values: np.ndarray) -> np.ndarray:
        per_evaluation = np.ravel(values).reshape(-1, self.dim * self.n_control + 1)
        full = np.zeros((len(per_evaluation), self.dim + 1, self.n_control + 1))
        full[:, : self.dim, : self.n_control] = per_evaluation[:, :-1].reshape(-1, self.dim, self.n_control)
        full[:, self.dim, self.n_control] = per_evaluation[:, -1]
        spread = np.asarray(self.basis @ full.reshape(-1, self.n_control + 1).T)  # (N_s, E·(d+1))
        return self.select.T @ np.sum(self.features * spread, axis=1)

    def row_norms(self) -> np.ndarray:
        """‖a_kc‖ of every equation (to weigh them equally)."""
        squared = np.asarray(self.basis.power(2).T @ self.features**2)
        return np.sqrt(np.maximum(self._split(squared), 1e-300))


def level_equations(model: str, level: LevelView) -> tuple:
    """(A, r, row norms ‖a‖) of a level: a dense matrix for affine SSD ("affine"), the
    matrix-free :class:`BSplineRows` for "bspline"."""
    if model == "affine":
        equations, values = ssd_rows(level)
        return equations, values, np.linalg.norm(equations, axis=1)
    equations = BSplineRows(level)
    return equations, equations.values, equations.row_norms()


class _PriorOperator(sparse_linalg.LinearOperator):
    """x = [z, m] ↦ D·A·(blur(z) + offset·m): the equations under J = blur(z) + constant."""

    def __init__(self, equations, row_weights: np.ndarray, shape: tuple[int, ...], blur: float, offset: float):
        self.equations, self.row_weights, self.image_shape = equations, row_weights, shape
        self.blur, self.offset = blur, offset
        n = int(np.prod(shape))
        super().__init__(np.float64, (equations.shape[0], n + 1))

    def _smooth(self, values: np.ndarray) -> np.ndarray:
        image = np.reshape(values, self.image_shape)
        return ndimage.gaussian_filter(image, self.blur, mode="nearest").ravel() if self.blur > 0 else image.ravel()

    def image(self, unknowns: np.ndarray) -> np.ndarray:
        return (self._smooth(unknowns[:-1]) + self.offset * unknowns[-1]).reshape(self.image_shape)

    def _matvec(self, unknowns: np.ndarray) -> np.ndarray:
        return self.row_weights * (self.equations @ self.image(np.ravel(unknowns)).ravel())

    def _rmatvec(self, values: np.ndarray) -> np.ndarray:
        back = self.equations.T @ (self.row_weights * np.ravel(values))
        return np.concatenate([self._smooth(back), [self.offset * back.sum()]])

    def dense_rows(self) -> np.ndarray:
        """The operator as a dense matrix (M × N+1), for a dense ``equations``: each weighted
        equation blurred as an image, all at once (the same as M calls of rmatvec)."""
        weighted = self.row_weights[:, None] * self.equations
        stacked = weighted.reshape((len(weighted),) + self.image_shape)
        if self.blur > 0:
            stacked = ndimage.gaussian_filter(stacked, (0,) + (self.blur,) * len(self.image_shape), mode="nearest")
        return np.hstack([stacked.reshape(len(weighted), -1), self.offset * weighted.sum(axis=1)[:, None]])


def reconstruct(equations, values: np.ndarray, row_norms: np.ndarray, shape: tuple[int, ...], damping: float,
                blur: float = 1.0, iterations: int = 100) -> np.ndarray:
    """Regularised least squares for one damping: :func:`reconstruct_dampings` with ``(damping,)``."""
    return reconstruct_dampings(equations, values, row_norms, shape, (damping,), blur, iterations)[0]


def reconstruct_dampings(equations, values: np.ndarray, row_norms: np.ndarray, shape: tuple[int, ...],
                         dampings, blur: float = 1.0, iterations: int = 100) -> list[np.ndarray]:
    """Regularised least squares, J = blur(z) + c minimising Σ (a·J − r)²/‖a‖² + damping²·‖[z, c]‖²,
    for every damping in ``dampings`` from one factorisation.

    A Gaussian prior on z makes J a smooth random field (kernel: a Gaussian of ``blur``
    voxels); the constant c is nearly free (scaled by 100). A dense ``equations`` matrix
    (few rows: affine) is solved exactly through its M × M dual system, eigendecomposed once.
    An operator (B-spline) gets ``iterations`` Golub–Kahan steps (:func:`golub_kahan`), which
    do not depend on the damping; each damping then solves the small damped bidiagonal
    problem, which is LSQR's iterate after ``iterations`` steps (Paige & Saunders 1982, §4)
    at the cost of one LSQR run for all dampings. Returns one J (shape ``shape``) per damping.
    """
    weights = 1.0 / row_norms
    operator = _PriorOperator(equations, weights, shape, blur, offset=100.0)
    target = weights * values
    if isinstance(equations, np.ndarray):
        rows = operator.dense_rows()  # K = D·A·[blur, offset]
        eigenvalues, vectors = np.linalg.eigh(rows @ rows.T)
        eigenvalues, projected = np.maximum(eigenvalues, 0.0), vectors.T @ target
        return [operator.image(rows.T @ (vectors @ (projected / (eigenvalues + damping**2)))) for damping in dampings]
    basis, bidiagonal, norm_target = golub_kahan(operator, target, iterations)
    steps = bidiagonal.shape[1]
    rhs = np.zeros(bidiagonal.shape[0] + steps)
    rhs[0] = norm_target
    estimates = []
    for damping in dampings:
        coefficients = np.linalg.lstsq(np.vstack([bidiagonal, damping * np.eye(steps)]), rhs, rcond=None)[0]
        estimates.append(operator.image(basis.T @ coefficients))
    return estimates


def golub_kahan(operator, target: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``steps`` steps of Golub–Kahan bidiagonalisation of ``operator`` from ``target``, as in LSQR
    (no reorthogonalisation): V (k × n, orthonormal rows in exact arithmetic), the lower
    bidiagonal B (k+1 × k) with operator·Vᵀ = U·B, and ‖target‖. Stops early if the
    Krylov space is exhausted."""
    norm_target = float(np.linalg.norm(target))
    left = target / norm_target
    right = operator.rmatvec(left)
    alpha = float(np.linalg.norm(right))
    right /= alpha
    basis, alphas, betas = [], [], []
    for _ in range(steps):
        basis.append(right)
        alphas.append(alpha)
        left = operator.matvec(right) - alpha * left
        beta = float(np.linalg.norm(left))
        betas.append(beta)
        if beta <= 1e-14 * norm_target:
            break
        left /= beta
        right = operator.rmatvec(left) - beta * right
        alpha = float(np.linalg.norm(right))
        if alpha <= 1e-14 * norm_target:
            break
        right = right / alpha
    bidiagonal = np.zeros((len(basis) + 1, len(basis)))
    bidiagonal[np.arange(len(basis)), np.arange(len(basis))] = alphas
    bidiagonal[np.arange(1, len(basis) + 1), np.arange(len(basis))] = betas
    return np.array(basis), bidiagonal, norm_target


def scores(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict:
    """PSNR (dB, peak 1: J is normalised to [0, 1]) and Pearson correlation inside ``mask``."""
    guess, actual = estimate[mask], truth[mask]
    mse = float(np.mean((guess - actual) ** 2))
    correlation = float(np.corrcoef(guess, actual)[0, 1]) if np.std(guess) > 0 else 0.0
    return {"psnr_db": 10.0 * np.log10(1.0 / mse) if mse > 0 else float("inf"), "correlation": correlation}
