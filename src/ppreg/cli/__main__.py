"""``python -m ppreg.cli`` runs the ``ppreg`` command."""

from ppreg.cli.app import main

main()
