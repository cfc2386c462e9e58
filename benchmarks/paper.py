"""The paper's published figures, in one place: every benchmark that compares with the paper imports them here.

Taiello, Antonelli, Grangetto, Lorenzi et al., "Privacy Preserving Image Registration",
Medical Image Analysis 2024 (the text is in /work/shared/seed/). Its efficiency columns
are averages across iterations, per party: time in seconds and communication in MB.
A figure the paper leaves blank ("-") is None; its "0.0" stays 0.0 (below its rounding).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PaperRow:
    """One row of one of the paper's efficiency tables.

    Attributes
    ----------
    table : str
        "Table 2", "Table 3", "Table 4", "Table 5" or "Table A1".
    model, metric : str
        ppreg's names: model "affine", "bspline", "ants" or "pointcloud"; metric "SSD", "MI" or "CC".
    sampling : str
        "all", "URS" or "GMS".
    engine : str
        ppreg's engine name: "clear", "mpc", "fhe1" (the paper's PPIR(FHE)-v1) or "fhe2" (v2).
    label : str
        The row as the paper prints it.
    data : str
        The paper's images for this row.
    iterations : float or None
        Mean number of iterations.
    seconds_party1, seconds_party2 : float or None
        Time per iteration per party, in s.
    mb_party1, mb_party2 : float or None
        Communication per iteration per party, in MB.
    displacement_rmse_mm : float or None
        Against the paper's clear run.
    """

    table: str
    model: str
    metric: str
    sampling: str
    engine: str
    label: str
    data: str
    iterations: float | None
    seconds_party1: float | None
    seconds_party2: float | None
    mb_party1: float | None
    mb_party2: float | None
    displacement_rmse_mm: float | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        """(model, metric, sampling, engine): how benchmarks look a row up."""
        return (self.model, self.metric, self.sampling, self.engine)

    def per_party(self) -> dict:
        """{"party1_s", "party2_s", "party1_MB", "party2_MB"} (the shape bspline.json stores)."""
        return {"party1_s": self.seconds_party1, "party2_s": self.seconds_party2,
                "party1_MB": self.mb_party1, "party2_MB": self.mb_party2}


_PET_2D = "2D whole-body PET MIP, 1260×1090"
_BRAIN_2D = "2D brain MRI grey-matter slice, 121×121"
_MI_3D = "3D brain MRI 180×256×256 / PET 160×160×96"
_ABDOMEN_3D = "3D abdomen MR/CT, 192×160×192"
_POINTS = "2D corpus callosum points, n = 193"


def _table2(sampling: str, engine: str, label: str, iterations, s1, s2, mb1, mb2, rmse=None) -> PaperRow:
    return PaperRow("Table 2", "affine", "SSD", sampling, engine, label, _PET_2D, iterations, s1, s2, mb1, mb2, rmse)


def _table3(sampling: str, engine: str, label: str, iterations, s1, s2, mb1, mb2, rmse=None) -> PaperRow:
    data = _BRAIN_2D if sampling == "all" else _PET_2D
    return PaperRow("Table 3", "bspline", "SSD", sampling, engine, label, data, iterations, s1, s2, mb1, mb2, rmse)


ROWS: tuple[PaperRow, ...] = (
    # Table 2: affine SSD, whole-body PET (r1, r5, r10, r20).
    _table2("all", "clear", "Clear", 118, 0.0, 0.0, None, None),
    _table2("all", "mpc", "PPIR(MPC)", 114.8, 0.13, 0.13, 1.54, 1.54, 0.13),
    _table2("URS", "clear", "Clear + URS", 61, 0.0, 0.0, None, None),
    _table2("URS", "mpc", "PPIR(MPC) + URS", 60.4, 0.02, 0.02, 0.20, 0.20, 1.75),
    _table2("URS", "fhe1", "PPIR(FHE)-v1 (D = 128) + URS", 61.80, 2.55, 0.02, 0.06, 0.01, 13.47),
    _table2("URS", "fhe2", "PPIR(FHE)-v2 (D = 128) + URS", 61.60, 0.01, 0.02, 0.72, 0.88, 13.93),
    _table2("GMS", "clear", "Clear + GMS", 63, 0.0, 0.0, None, None),
    _table2("GMS", "mpc", "PPIR(MPC) + GMS", 59.80, 0.02, 0.02, 0.20, 0.20, 0.93),
    _table2("GMS", "fhe1", "PPIR(FHE)-v1 (D = 128) + GMS", 60.40, 2.51, 0.02, 0.06, 0.01, 0.59),
    _table2("GMS", "fhe2", "PPIR(FHE)-v2 (D = 128) + GMS", 57.03, 0.02, 0.02, 0.73, 0.93, 0.50),
    # Table 3: cubic B-spline SSD; brain slices without sampling, whole-body PET with URS/GMS.
    _table3("all", "clear", "CLEAR", 413, 0.0, 0.0, None, None),
    _table3("all", "mpc", "PPIR-MPC", 345.70, 0.63, 0.63, 21.47, 28.98, 7.31),
    _table3("all", "fhe1", "PPIR(FHE)-v1 (D = 121)", 224.7, 3.41, 0.00, 0.06, 0.01, 9.50),
    _table3("all", "fhe2", "PPIR(FHE)-v2 (D = 256)", 379.2, 0.98, 0.43, 40.45, 3.56, 11.02),
    _table3("URS", "clear", "Clear + URS", 101, 0.0, 0.0, None, None),
    _table3("URS", "mpc", "PPIR(MPC) + URS", 79.3, 0.41, 0.41, 8.00, 8.00, 5.59),
    _table3("URS", "fhe1", "PPIR(FHE)-v1 (D = 128) + URS", 105.40, 12.23, 0.0, 0.06, 0.01, 7.63),
    _table3("URS", "fhe2", "PPIR(FHE)-v2 (D = 128) + URS", 105.20, 0.62, 0.26, 24.74, 3.37, 8.74),
    _table3("GMS", "clear", "Clear + GMS", 103.00, 0.0, 0.0, None, None),
    _table3("GMS", "mpc", "PPIR(MPC) + GMS", 80.20, 0.41, 0.41, 8.00, 8.00, 6.17),
    _table3("GMS", "fhe1", "PPIR(FHE)-v1 (D = 128) + GMS", 105.70, 11.95, 0.0, 0.06, 0.01, 5.60),
    _table3("GMS", "fhe2", "PPIR(FHE)-v2 (D = 128) + GMS", 106.32, 0.62, 0.26, 24.91, 3.35, 9.11),
    # Table 4: affine MI, 3D brain MRI/PET (r5, r10; 10 % of the voxels).
    PaperRow("Table 4", "affine", "MI", "URS", "clear", "Clear", _MI_3D, 213, 0.0, 0.0, None, None),
    PaperRow("Table 4", "affine", "MI", "URS", "mpc", "PPIR(MPC)", _MI_3D, 264, 1.02, 1.02, 15.00, 15.00, 0.41),
    # Table 5: ANTs SyN with local CC (window 5³), abdomen MR/CT (r3, r2, r1); forward and backward agree.
    PaperRow("Table 5", "ants", "CC", "all", "clear", "Clear", _ABDOMEN_3D, 26, None, None, None, None),
    PaperRow("Table 5", "ants", "CC", "all", "mpc", "PPIR(MPC)", _ABDOMEN_3D, 26, 24.00, 24.00, 152.25, 152.25, 0.22),
    # Table A1: rigid point clouds (closed form, one "iteration"); the paper's FHE is v1.
    PaperRow("Table A1", "pointcloud", "SSD", "all", "mpc", "PPIR(MPC)", _POINTS, None, 0.02, 0.02, 0.03, 0.03, 1.11),
    PaperRow("Table A1", "pointcloud", "SSD", "all", "fhe1", "PPIR(FHE)", _POINTS, None, 1.10, 0.18, 1.42, 35.93, 1.26),
)

SYN_DICE = {"clear": 0.68, "mpc": 0.67}
"""Table 5, final forward Dice (abdomen organs)."""
SYN_SIZE = (192, 160, 192)
"""Table 1, abdomen MR/CT grid (voxels)."""
POINTCLOUD_POINTS = 193
"""Table 1, corpus callosum point set."""


def paper_row(model: str, metric: str, sampling: str, engine: str) -> PaperRow:
    """The row for (model, metric, sampling, engine); KeyError if the paper has none."""
    for row in ROWS:
        if row.key == (model, metric, sampling, engine):
            return row
    raise KeyError(f"the paper has no row for {model} {metric} {sampling} {engine}")
