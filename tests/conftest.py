"""Shared fixtures: bundled images, known-transform cases and cached registrations.

A known-transform case is a moving image M made from a bundled image by ``warp_with`` so
that M(T(x)) = image(x): registering M to the fixed image must give back T. Every
registration is cached for the whole session by its :class:`RunSpec`, so the recovery
tests (test_registration.py) and the engine oracle (test_engines.py) share the clear
runs. The accuracy of every registration run in a session is printed in the terminal
summary (``.venv/bin/python -m pytest tests/test_registration.py tests/test_engines.py``).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from ppreg.api import AffineOutcome, run_affine, transform_difference
from ppreg.config import AffineConfig, load_config
from ppreg.io.images import Image, read_image
from ppreg.io.transforms import linear_to_sitk
from ppreg.secure.runtime import in_process_session
from ppreg.synthetic import known_affine, remap_intensity, warp_with

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"

ROTATION_DEGREES = 8.0
SCALING = 0.05
MNI_TRANSLATION_MM = (4.0, -3.0, 2.0)
SLICE_TRANSLATION_PX = (5.0, -4.0)
PD_ROTATION_DEGREES, PD_TRANSLATION_PX, PD_SCALING = 6.0, (3.0, -2.0), 0.03
REMAP_SEED = 0
# An oblique direction-cosine matrix (a rotation about an uneven axis) for geometry tests.
OBLIQUE_DIRECTION = np.asarray(sitk.VersorTransform((0.2, 0.3, 0.4), 0.5).GetMatrix()).reshape(3, 3)


@functools.lru_cache(maxsize=None)
def bundled_image(name: str) -> Image:
    """A file of data/ read once per session; callers must not modify its array."""
    return read_image(DATA_DIR / name)


def bundled_mask(name: str) -> np.ndarray:
    """A bundled mask as a boolean array (fixed-grid numpy shape)."""
    return bundled_image(name).array > 0


@dataclass(frozen=True)
class KnownCase:
    """A moving/fixed pair whose true transform is known.

    Attributes
    ----------
    moving, fixed : Image
    truth : (matrix (d, d), translation (d,) mm, center (d,) mm)
        T(x) = c + A(x − c) + t, mapping fixed-space points to moving space.
    mask : ndarray of bool, shape fixed.grid.shape
        Where the displacement error is measured (the brain).
    transform : {"rigid", "affine"}
        The model the truth belongs to, and the one registrations fit.
    """

    name: str
    moving: Image
    fixed: Image
    truth: tuple[np.ndarray, np.ndarray, np.ndarray]
    mask: np.ndarray
    transform: str

    def truth_transform(self) -> sitk.Transform:
        return linear_to_sitk(*self.truth, rigid=self.transform == "rigid")


def _mni_case(name: str, scaling: float, fixed_from_t1) -> KnownCase:
    t1 = bundled_image("mni_t1_2mm.nii.gz")
    truth = known_affine(3, ROTATION_DEGREES, MNI_TRANSLATION_MM, scaling, t1.grid.center())
    return KnownCase(name, warp_with(t1, *truth), fixed_from_t1(t1), truth, bundled_mask("mni_mask_2mm.nii.gz"),
                     "affine" if scaling else "rigid")


def _slice_case(name: str, scaling: float) -> KnownCase:
    r16 = bundled_image("r16.png")
    truth = known_affine(2, ROTATION_DEGREES, SLICE_TRANSLATION_PX, scaling, r16.grid.center())
    return KnownCase(name, warp_with(r16, *truth), r16, truth, bundled_mask("r16_mask.png"),
                     "affine" if scaling else "rigid")


def _t1_pd_case() -> KnownCase:
    """PD moving (warped by a known transform) against the aligned T1 slice: multimodal."""
    t1, pd = bundled_image("brain_t1_slice.png"), bundled_image("brain_pd_slice.png")
    truth = known_affine(2, PD_ROTATION_DEGREES, PD_TRANSLATION_PX, PD_SCALING, t1.grid.center())
    return KnownCase("t1pd", warp_with(pd, *truth), t1, truth, bundled_mask("brain_t1_slice_mask.png"), "affine")


CASES = {
    "mni": lambda: _mni_case("mni", SCALING, lambda t1: t1),
    "mni_rigid": lambda: _mni_case("mni_rigid", 0.0, lambda t1: t1),
    "mni_remapped": lambda: _mni_case(
        "mni_remapped", SCALING, lambda t1: remap_intensity(t1, np.random.default_rng(REMAP_SEED))),
    "mni_gm": lambda: _mni_case("mni_gm", SCALING, lambda t1: bundled_image("mni_gm_2mm.nii.gz")),
    "r16": lambda: _slice_case("r16", SCALING),
    "r16_rigid": lambda: _slice_case("r16_rigid", 0.0),
    "t1pd": _t1_pd_case,
}


@functools.lru_cache(maxsize=None)
def known_case(name: str) -> KnownCase:
    """The known-transform case ``name`` (one of :data:`CASES`), built once per session."""
    return CASES[name]()


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one in-process registration of a known case."""

    case: str
    pet: str = "clear"
    metric: str = "ssd"
    sampling: str = "all"
    sampling_fraction: float = 0.1
    levels: str = "4x2x1"
    smoothing: str = "2x1x0"
    iterations: str = "50x30x10"
    bins: int = 32
    seed: int = 0

    def config(self) -> AffineConfig:
        settings = {key: value for key, value in asdict(self).items() if key != "case"}
        return load_config(AffineConfig, None, {**settings, "transform": known_case(self.case).transform})

    def on(self, pet: str) -> "RunSpec":
        """The same run through another privacy engine."""
        return replace(self, pet=pet)

    def label(self) -> str:
        fraction = "" if self.sampling == "all" else f"{self.sampling_fraction:g}"
        return (f"{self.case}/{self.pet}/{self.metric}/{self.sampling}{fraction}/"
                f"f{self.levels}-s{self.smoothing}-i{self.iterations}/b{self.bins}")


@dataclass(frozen=True)
class RunResult:
    """A finished registration and its error against the known truth (mm, inside the mask)."""

    spec: RunSpec
    outcome: AffineOutcome
    transform: sitk.Transform
    error: dict


def register(spec: RunSpec) -> RunResult:
    """Run ``spec`` in process (party2 and dealer in threads, counted channels)."""
    case = known_case(spec.case)
    with in_process_session(case.fixed, spec.pet) as proxy:
        outcome = run_affine(case.moving, proxy, spec.config())
    transform = outcome.sitk_transform()
    error = transform_difference(transform, case.truth_transform(), case.fixed.grid, case.mask)
    return RunResult(spec, outcome, transform, error)


class Registrations:
    """Session cache of registrations, keyed by :class:`RunSpec`."""

    def __init__(self) -> None:
        self.results: dict[RunSpec, RunResult] = {}

    def __call__(self, spec: RunSpec) -> RunResult:
        if spec not in self.results:
            self.results[spec] = register(spec)
        return self.results[spec]


_SESSION_REGISTRATIONS = Registrations()


@pytest.fixture(scope="session")
def registrations() -> Registrations:
    return _SESSION_REGISTRATIONS


def pytest_terminal_summary(terminalreporter) -> None:
    """List the accuracy of every registration this session ran (the figures for issues 3/4)."""
    results = _SESSION_REGISTRATIONS.results
    if not results:
        return
    terminalreporter.section("ppreg registrations (error vs the known transform, inside the mask)")
    for spec, result in results.items():
        iterations = result.outcome.result.levels
        count = sum(len(level.iterations) for level in iterations)
        terminalreporter.write_line(
            f"{spec.label():64s} rmse {result.error['rmse_mm']:.4f}  max {result.error['max_mm']:.4f}  "
            f"iterations {count:3d}  wall {result.outcome.wall_seconds:6.1f} s")
