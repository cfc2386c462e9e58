"""ppreg: privacy-preserving image registration.

Library entry points live in :mod:`ppreg.api`; the command-line tool in :mod:`ppreg.cli`.
"""

__version__ = "0.1.0.dev0"
