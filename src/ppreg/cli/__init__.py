"""The ``ppreg`` command (thin Typer layer over :mod:`ppreg.api`)."""
