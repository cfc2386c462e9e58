"""Cryptographic pseudo-random masks: AES-256-CTR keystreams keyed by 32-byte seeds.

Masks hide secrets, so they must be unpredictable to anyone without the seed. numpy's
generators (PCG64, Mersenne Twister, ...) are statistical generators: their state can be
recovered from a few outputs, after which every later mask is known. AES-256 in counter
mode is a standard pseudo-random function; a 32-byte seed can also be sent instead of a
whole mask tensor, and the receiver expands it to exactly the same mask.

Streams are separated by a label: the AES key is the seed and the initial 128-bit counter
block is the first 16 bytes of SHA-256 of the label (with a domain prefix). Different
labels therefore start at independent, uniformly spread points of the 2^128 counter
space; two streams of L blocks overlap with probability below 2 L / 2^128 per pair.
For independent keys (not just independent positions) use :func:`derive_seed`.

Throughput on the development machine (AES-NI, 2 cores, 256 MiB per call):
5.0-6.2 GB/s of uint64 masks into a reused buffer and 0.3-4.5 GB/s into freshly
allocated memory, where the VM's page faults dominate; pass ``out=`` to reuse a buffer
when that matters. Rerun with
``python -c "from ppreg.secure.mpc.prg import benchmark_throughput as b; b()"``.
"""

from __future__ import annotations

import hashlib
import secrets
import sys

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ppreg.secure.mpc.ring import RING_DTYPE

SEED_BYTES = 32
_NONCE_DOMAIN = b"ppreg.mpc.prg.stream\x00"
_DERIVE_DOMAIN = b"ppreg.mpc.prg.derive"
# Keystream is produced in chunks so the all-zero plaintext buffer stays small.
_CHUNK_BYTES = 1 << 20
# cryptography's update_into needs this much slack after the output of each call.
_AES_BLOCK_SLACK = 15
# CTR keystream = AES of the counter blocks XOR plaintext: encrypting zeros yields it.
# One immutable buffer serves every stream (allocating it per stream cost ~25 µs).
_ZEROS = memoryview(bytes(_CHUNK_BYTES))


def new_seed() -> bytes:
    """Return a fresh 32-byte seed from the operating system's CSPRNG."""
    return secrets.token_bytes(SEED_BYTES)


def derive_seed(seed: bytes, label: str) -> bytes:
    """Derive an independent 32-byte sub-seed from ``seed`` for the purpose ``label``.

    HKDF-SHA256 (RFC 5869) with the label as ``info``: sub-seeds for different labels
    are independent keys, and none reveals ``seed`` or its siblings.

    Parameters
    ----------
    seed : bytes, length 32
    label : str
        What the sub-seed is for, e.g. ``"level-2/triple-0"``.

    Returns
    -------
    bytes, length 32
    """
    _check_seed(seed)
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=SEED_BYTES,
        salt=_DERIVE_DOMAIN,
        info=label.encode("utf-8"),
    )
    return hkdf.derive(seed)


class MaskStream:
    """Deterministic stream of uniform ring elements from AES-256-CTR.

    The same ``(seed, label)`` always yields the same sequence; successive calls
    continue the keystream and never repeat it, so two calls never return the same mask.

    Parameters
    ----------
    seed : bytes, length 32
        AES-256 key. Keep it secret; share it only with the party meant to expand it.
    label : str
        Names the stream; it fixes the initial counter block (see the module docstring).
    """

    def __init__(self, seed: bytes, label: str):
        _check_seed(seed)
        self.label = label
        nonce = hashlib.sha256(_NONCE_DOMAIN + label.encode("utf-8")).digest()[:16]
        self._encryptor = Cipher(algorithms.AES(seed), modes.CTR(nonce)).encryptor()
        self.bytes_produced = 0

    def uint64(self, shape, out: np.ndarray | None = None) -> np.ndarray:
        """Next uniform elements of Z_2^64.

        Parameters
        ----------
        shape : int or tuple of int
        out : ndarray, dtype uint64, C-contiguous, optional
            Buffer to fill instead of allocating one; must have ``shape``.

        Returns
        -------
        ndarray, shape ``shape``, dtype uint64
        """
        shape = np.broadcast_shapes(shape)
        if out is None:
            out = np.empty(shape, dtype=RING_DTYPE)
        elif out.shape != shape or out.dtype != RING_DTYPE or not out.flags.c_contiguous:
            raise ValueError(f"out must be a C-contiguous uint64 array of shape {shape}")
        self._keystream_into(out.reshape(-1).view(np.uint8))
        if sys.byteorder != "little":
            # The keystream is read as little-endian words on every platform so that a
            # seed expands to the same masks everywhere.
            out.byteswap(inplace=True)
        return out

    def _keystream_into(self, target: np.ndarray) -> None:
        """Write the next ``target.size`` keystream bytes into the uint8 array."""
        total = target.size
        for start in range(0, total, _CHUNK_BYTES):
            length = min(_CHUNK_BYTES, total - start)
            plaintext = _ZEROS[:length]
            if start + length + _AES_BLOCK_SLACK <= total:
                self._encryptor.update_into(
                    plaintext, target[start : start + length + _AES_BLOCK_SLACK]
                )
            else:
                tail = self._encryptor.update(plaintext)
                target[start : start + length] = np.frombuffer(tail, dtype=np.uint8)
        self.bytes_produced += total


def _check_seed(seed: bytes) -> None:
    if not isinstance(seed, (bytes, bytearray)) or len(seed) != SEED_BYTES:
        raise ValueError(f"a mask seed must be {SEED_BYTES} bytes")


def benchmark_throughput(megabytes: int = 256) -> None:
    """Print mask throughput into fresh and into reused memory."""
    import time

    stream = MaskStream(new_seed(), "benchmark")
    count = (megabytes << 20) // 8
    start = time.perf_counter()
    buffer = stream.uint64(count)
    fresh = time.perf_counter() - start
    start = time.perf_counter()
    stream.uint64(count, out=buffer)
    reused = time.perf_counter() - start
    gigabytes = count * 8 / 1e9
    print(
        f"AES-256-CTR masks: {gigabytes / fresh:.2f} GB/s into fresh memory, "
        f"{gigabytes / reused:.2f} GB/s into a reused buffer ({megabytes} MiB)"
    )

