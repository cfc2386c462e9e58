"""CKKS engines (TenSEAL): fhe1 (paper v1, DotProduct) and fhe2 (paper v2, element-wise).

party2 owns the secret key; party1 computes on party2's encrypted operand with its own
plaintext features and gets the result back through a masked, noise-flooded decryption.
See docs/fhe.md.
"""

from ppreg.secure.fhe.fhe1 import FHE1Client, FHE1Server
from ppreg.secure.fhe.fhe2 import FHE2Client, FHE2Server
from ppreg.secure.fhe.params import CKKSParameters

__all__ = ["CKKSParameters", "FHE1Client", "FHE1Server", "FHE2Client", "FHE2Server"]
