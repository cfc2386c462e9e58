"""Typer options shared by the image registration commands (affine, bspline, ants).

One definition per option keeps the help texts and types of the three commands equal;
a command declares only what is its own (e.g. ``--bins``, ``--radius``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ppreg.cli.common import Pet, Sampling

MovingImage = Annotated[Path, typer.Argument(help="Moving image (party1's), NIfTI/PNG/MHA.")]
FixedImage = Annotated[Optional[Path], typer.Argument(help="Fixed image (party2's) for in-process runs; "
                                                           "omit with --peer.")]
OutputPrefix = Annotated[str, typer.Option("-o", "--output", help="Output prefix, like ANTs -o.")]
SamplingOption = Annotated[Optional[Sampling], typer.Option(help="Voxel sampling: all, urs (uniform), gms (gradient).")]
SamplingFraction = Annotated[Optional[float], typer.Option(help="Share of voxels for urs/gms, (0, 1].")]
Levels = Annotated[Optional[str], typer.Option(help="Shrink factors, coarse to fine, e.g. 4x2x1.")]
Smoothing = Annotated[Optional[str], typer.Option(help="Gaussian sigmas in voxels, e.g. 2x1x0.")]
Convergence = Annotated[Optional[float], typer.Option(help="Stop a level when updates move < this (voxels).")]
RevealNoise = Annotated[Optional[float], typer.Option(help="σ of Gaussian noise party2 adds to every revealed "
                                                           "joint term (docs/privacy.md); 0 = exact.")]
ConfigFile = Annotated[Optional[Path], typer.Option(help="YAML config; command-line options win.")]
ReferenceTransform = Annotated[Optional[Path], typer.Option(help="Known transform: report displacement "
                                                                 "RMSE/max in mm.")]
ReferenceMask = Annotated[Optional[Path], typer.Option(help="Fixed-space mask for the reference accuracy "
                                                            "(needs --reference-transform).")]
Peer = Annotated[Optional[str], typer.Option(help="party2 (ppreg serve) at HOST:PORT instead of FIXED.")]
Dealer = Annotated[Optional[str], typer.Option(help="Dealer (ppreg dealer) at HOST:PORT, for --pet mpc.")]
Certs = Annotated[Optional[Path], typer.Option(help="Certificates directory made by ppreg keys.")]
QualityControl = Annotated[bool, typer.Option("--qc", help="Also write PREFIXqc.png: checkerboard, edge overlay "
                                                           "and convergence plot (docs/cli.md).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, no summary.")]


PetOption = Annotated[Optional[Pet], typer.Option(help="Privacy engine.")]
PetClearOrMpc = Annotated[Optional[Pet], typer.Option(help="Privacy engine: clear or mpc.")]
AffineIterations = Annotated[Optional[str], typer.Option(help="Iterations per level, e.g. 100x50x25.")]
BSplineIterations = Annotated[Optional[str], typer.Option(help="Iterations per level, e.g. 50x30x20.")]
AntsIterations = Annotated[Optional[str], typer.Option(help="Iterations per level, e.g. 40x20x10.")]
AffineInitial = Annotated[Optional[Path], typer.Option(help="Initial linear ITK transform.")]
BSplineInitial = Annotated[Optional[Path], typer.Option(help="Initial linear ITK transform (e.g. from ppreg "
                                                             "affine); output is a composite.")]
AntsInitial = Annotated[Optional[Path], typer.Option(help="Initial linear ITK transform (e.g. from ppreg "
                                                          "affine), applied to party1's side.")]
