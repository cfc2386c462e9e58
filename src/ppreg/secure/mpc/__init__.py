"""Two-party additive secret sharing over Z_2^64 (semi-honest, dealer-assisted).

Pure-numpy primitives; the protocols and their wiring to a Channel are built on top.

- :mod:`~ppreg.secure.mpc.ring`: Z_2^64 arithmetic and exact BLAS-backed matrix products.
- :mod:`~ppreg.secure.mpc.prg`: AES-256-CTR mask streams expanded from 32-byte seeds.
- :mod:`~ppreg.secure.mpc.fixed`: fixed-point encoding, error bounds, overflow budget,
  probabilistic truncation.
- :mod:`~ppreg.secure.mpc.sharing`: additive shares of ring elements and of reals.
- :mod:`~ppreg.secure.mpc.beaver`: the generic Beaver matrix product (baseline).

See docs/mpc.md for formats and bounds.
"""

from ppreg.secure.mpc.beaver import (
    MatmulTripleShare,
    beaver_bytes_per_party,
    beaver_finish,
    beaver_open_round,
    dealer_matmul_triple,
)
from ppreg.secure.mpc.fixed import (
    check_product_budget,
    decode,
    decode_product,
    encode,
    product_error_bound,
    truncate_share,
    truncate_shares,
    truncation_failure_probability,
)
from ppreg.secure.mpc.prg import MaskStream, derive_seed, new_seed
from ppreg.secure.mpc.ring import (
    RING_DTYPE,
    ring_add,
    ring_matmul,
    ring_mul,
    ring_neg,
    ring_sub,
    ring_sum,
    ring_transpose_matmul,
)
from ppreg.secure.mpc.sharing import reconstruct, reconstruct_float, share, share_float

__all__ = [
    "RING_DTYPE",
    "MaskStream",
    "MatmulTripleShare",
    "beaver_bytes_per_party",
    "beaver_finish",
    "beaver_open_round",
    "check_product_budget",
    "dealer_matmul_triple",
    "decode",
    "decode_product",
    "derive_seed",
    "encode",
    "new_seed",
    "product_error_bound",
    "reconstruct",
    "reconstruct_float",
    "ring_add",
    "ring_matmul",
    "ring_mul",
    "ring_neg",
    "ring_sub",
    "ring_sum",
    "ring_transpose_matmul",
    "share",
    "share_float",
    "truncate_share",
    "truncate_shares",
    "truncation_failure_probability",
]
