"""Benchmarks that anyone can rerun: ``python -m benchmarks run [--quick] [--only NAME]``.

Each benchmark is a module of this package with ``run(quick: bool) -> dict``; the
harness (:mod:`benchmarks.harness`) writes its result to ``benchmarks/results/NAME.json``
and regenerates ``benchmarks/RESULTS.md`` from every results file present.
docs/benchmarks.md explains what each one measures and how to read the tables.
"""

BENCHMARKS = ("clear_vs_simpleitk", "mpc_affine", "pointcloud", "attack", "fhe_affine", "bspline", "syn", "scaling",
              "memory")
