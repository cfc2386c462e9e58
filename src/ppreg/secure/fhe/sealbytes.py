"""SEAL objects to and from bytes, and raw polynomial access.

TenSEAL's ``sealapi`` saves and loads SEAL objects only through file paths and reads
polynomial words one at a time. This module hides both: objects go through a private
scratch directory (in RAM under /dev/shm when available), and ciphertexts or plaintexts
with chosen polynomial words are built by writing SEAL's own uncompressed serialisation
format (a 16-byte SEALHeader, the members, and a DynArray of 64-bit words), which SEAL
then validates on load. That is how party1 adds a uniformly random polynomial and how
party2 reads coefficients of a decryption (see :mod:`ppreg.secure.fhe.reveal`).

Every failure to load what a peer sent becomes a :class:`~ppreg.errors.ProtocolError`.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from itertools import count

import numpy as np
import tenseal.sealapi as sealapi

from ppreg.errors import ProtocolError

SEAL_ERRORS = (ValueError, RuntimeError, IndexError, TypeError, OSError)
_HEADER = struct.Struct("<HBBBBHQ")  # magic, header size, version major, minor, compression, reserved, size
_CIPHERTEXT_FIELDS = struct.Struct("<4QBQQQdQ")  # parms_id, ntt flag, size, N, primes, scale, correction
_PLAINTEXT_FIELDS = struct.Struct("<4QQd")  # parms_id, word count, scale


def _scratch_root() -> str | None:
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def _header(body_size: int) -> bytes:
    """An uncompressed SEALHeader for a body of ``body_size`` bytes (SEAL's own version)."""
    default = sealapi.Serialization.SEALHeader()
    total = default.header_size + body_size
    return _HEADER.pack(default.magic, default.header_size, default.version_major, default.version_minor, 0, 0, total)


def _words(values: np.ndarray) -> bytes:
    """A serialised DynArray of 64-bit words."""
    body = struct.pack("<Q", values.size) + np.ascontiguousarray(values, dtype="<u8").tobytes()
    return _header(len(body)) + body


class SealIO:
    """Byte and polynomial access to SEAL objects of one SEAL context.

    Parameters
    ----------
    seal_context : SEALContext
        The context every loaded or built object must be valid for.
    """

    def __init__(self, seal_context) -> None:
        self.context = seal_context
        self._dir = tempfile.mkdtemp(prefix="ppreg-fhe-", dir=_scratch_root())
        self._names = count()

    def _path(self) -> str:
        return os.path.join(self._dir, f"o{next(self._names)}")

    def dumps(self, obj) -> bytes:
        """Bytes of anything with a SEAL ``save(path)`` (ciphertexts, keys, serializables)."""
        path = self._path()
        try:
            obj.save(path)
            with open(path, "rb") as handle:
                return handle.read()
        finally:
            _unlink(path)

    def _load(self, target, blob: bytes, what: str, with_context: bool = True):
        path = self._path()
        try:
            with open(path, "wb") as handle:
                handle.write(blob)
            if with_context:
                target.load(self.context, path)
            else:
                target.load(path)
        except SEAL_ERRORS as error:
            raise ProtocolError(f"malformed {what}: {error}") from None
        finally:
            _unlink(path)
        return target

    def load_ciphertext(self, blob: bytes, what: str = "ciphertext"):
        """A ciphertext from bytes; :class:`ProtocolError` if SEAL rejects them."""
        return self._load(sealapi.Ciphertext(), blob, what)

    def load_galois_keys(self, blob: bytes):
        return self._load(sealapi.GaloisKeys(), blob, "Galois keys")

    def build_ciphertext(self, polys: np.ndarray, parms_id, ntt_form: bool, scale: float):
        """A ciphertext whose polynomials are exactly ``polys``.

        Parameters
        ----------
        polys : ndarray of uint64, shape (2, L, N)
            Residues of (c0, c1) modulo each of the L primes of ``parms_id``.
        parms_id : list of 4 int
        ntt_form : bool
            Whether ``polys`` are in SEAL's NTT representation.
        scale : float
        """
        size, primes, degree = polys.shape
        fields = _CIPHERTEXT_FIELDS.pack(*parms_id, int(ntt_form), size, degree, primes, float(scale), 1)
        body = fields + _words(polys.ravel())
        return self._load(sealapi.Ciphertext(), _header(len(body)) + body, "built ciphertext")

    def build_plaintext(self, words: np.ndarray, parms_id, scale: float):
        """An NTT-form CKKS plaintext holding ``words`` (uint64, shape (L·N,))."""
        body = _PLAINTEXT_FIELDS.pack(*parms_id, words.size, float(scale)) + _words(words)
        return self._load(sealapi.Plaintext(), _header(len(body)) + body, "built plaintext")

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def plaintext_words(plain) -> np.ndarray:
    """All 64-bit words of a plaintext, shape (coeff_count,)."""
    n = plain.coeff_count()
    return np.fromiter(map(plain.__getitem__, range(n)), dtype=np.uint64, count=n)


def ciphertext_range(ciphertext, start: int, stop: int) -> np.ndarray:
    """Words ``start:stop`` of a ciphertext's data (index = (poly·L + prime)·N + coefficient)."""
    return np.fromiter(map(ciphertext.__getitem__, range(start, stop)), dtype=np.uint64, count=stop - start)


def ciphertext_words(ciphertext, indices: np.ndarray) -> np.ndarray:
    """Selected words of a ciphertext's data (see :func:`ciphertext_range`)."""
    return np.fromiter((ciphertext[int(i)] for i in indices), dtype=np.uint64, count=len(indices))


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
