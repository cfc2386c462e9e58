"""Certificates for mutual TLS: one private CA and one certificate per party.

Layout of a certificates directory (``ppreg keys DIR``)::

    ca.pem  ca.key.pem                 the CA; ca.key.pem stays with whoever made the keys
    party1.pem  party1.key.pem         one pair per party; give each party its own pair
    party2.pem  party2.key.pem         plus ca.pem, never another party's key
    dealer.pem  dealer.key.pem

Keys are ECDSA P-256. A party certificate names the party three times so that any tool
can check it: subject CN, a SAN URI ``urn:ppreg:party:NAME`` and a SAN DNS name ``NAME``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ppreg.errors import InputError

PARTY_NAMES = ("party1", "party2", "dealer")
PARTY_URI_PREFIX = "urn:ppreg:party:"
CA_CERT = "ca.pem"
CA_KEY = "ca.key.pem"
# Party names become file names, certificate names and DNS labels: keep them plain.
PARTY_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# Tolerate small clock differences between the machine that makes the keys and the peers.
CLOCK_SKEW = dt.timedelta(minutes=5)


def cert_path(directory: Path | str, name: str) -> Path:
    """Return the certificate path of party ``name`` in a certificates directory."""
    return Path(directory) / f"{name}.pem"


def key_path(directory: Path | str, name: str) -> Path:
    """Return the private key path of party ``name`` in a certificates directory."""
    return Path(directory) / f"{name}.key.pem"


def make_keys(
    directory: Path | str,
    names: Iterable[str] = PARTY_NAMES,
    days: int = 825,
    hosts: Iterable[str] = ("127.0.0.1", "localhost"),
    *,
    overwrite: bool = False,
    not_valid_before: dt.datetime | None = None,
    not_valid_after: dt.datetime | None = None,
) -> list[Path]:
    """Write a CA and one certificate + private key per party.

    Parameters
    ----------
    directory : path
        Created if missing.
    names : iterable of str, default ("party1", "party2", "dealer")
        Party names: lowercase letters, digits and ``-``.
    days : int, default 825
        Validity of new certificates, in days from now.
    hosts : iterable of str, default ("127.0.0.1", "localhost")
        IP addresses and DNS names put in every party certificate's SAN, for tools
        that check host names (ppreg itself checks the party name).
    overwrite : bool, default False
        Replace existing files, including the CA. Without it an existing CA
        (``ca.pem`` + ``ca.key.pem``) is reused to sign the new parties, and an
        existing party file is an error.
    not_valid_before, not_valid_after : datetime, optional
        Override the validity window of the party certificates (not of the CA), e.g. to
        make an expired certificate in a test. Naive datetimes are taken as UTC.

    Returns
    -------
    list of Path
        Files written, CA first when it was made.

    Raises
    ------
    InputError
        Bad name, days or host; a file exists and ``overwrite`` is False; half a CA.
    """
    directory = Path(directory)
    names = _check_names(names)
    host_names = _san_hosts(hosts)
    if days <= 0:
        raise InputError(f"certificate validity must be at least one day, got {days}")
    now = dt.datetime.now(dt.timezone.utc)
    valid_from = _utc(not_valid_before) if not_valid_before else now - CLOCK_SKEW
    valid_until = _utc(not_valid_after) if not_valid_after else now + dt.timedelta(days=days)
    if valid_until <= valid_from:
        raise InputError("certificate would expire before it becomes valid")
    directory.mkdir(parents=True, exist_ok=True)
    party_files = [path for name in names for path in (cert_path(directory, name), key_path(directory, name))]
    _refuse_existing(party_files, overwrite)
    written, ca_cert, ca_key = _ensure_ca(directory, days, overwrite)
    for name in names:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _party_certificate(name, key, ca_cert, ca_key, host_names, valid_from, valid_until)
        written += _write_pair(directory, name, cert, key)
    return written


def _check_names(names: Iterable[str]) -> list[str]:
    names = list(names)
    if not names:
        raise InputError("no party names given")
    for name in names:
        if not isinstance(name, str) or not PARTY_NAME.fullmatch(name) or name == "ca":
            raise InputError(f"bad party name {name!r}: use lowercase letters, digits and '-' (not 'ca')")
    if len(set(names)) != len(names):
        raise InputError(f"party names repeat: {names}")
    return names


def _san_hosts(hosts: Iterable[str]) -> list[x509.GeneralName]:
    result: list[x509.GeneralName] = []
    for host in hosts:
        try:
            result.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host or ""):
                raise InputError(f"bad host {host!r}: give an IP address or a DNS name") from None
            result.append(x509.DNSName(host))
    return result


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.timezone.utc) if moment.tzinfo is None else moment


def _refuse_existing(paths: list[Path], overwrite: bool) -> None:
    existing = [str(path) for path in paths if path.exists()]
    if existing and not overwrite:
        raise InputError(f"refusing to overwrite {', '.join(existing)} (pass overwrite to replace)")


def _ensure_ca(directory: Path, days: int, overwrite: bool) -> tuple[list[Path], x509.Certificate, ec.EllipticCurvePrivateKey]:
    """Load the directory's CA, or make one; return files written, CA cert and key."""
    cert_file, key_file = directory / CA_CERT, directory / CA_KEY
    if not overwrite and cert_file.exists() and key_file.exists():
        return [], *_load_ca(cert_file, key_file)
    if not overwrite and (cert_file.exists() or key_file.exists()):
        raise InputError(f"{directory} holds only half a CA ({CA_CERT} / {CA_KEY}); remove it or pass overwrite")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _ca_certificate(key, days)
    _write_file(cert_file, cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write_file(key_file, _key_bytes(key), private=True)
    return [cert_file, key_file], cert, key


def _load_ca(cert_file: Path, key_file: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    try:
        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"cannot read the CA in {cert_file.parent}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InputError(f"{key_file} is not an ECDSA key")
    return cert, key


def _ca_certificate(key: ec.EllipticCurvePrivateKey, days: int) -> x509.Certificate:
    # A random suffix keeps two deployments' CAs apart even by name.
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"ppreg CA {secrets.token_hex(4)}")])
    now = dt.datetime.now(dt.timezone.utc)
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _party_certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    hosts: list[x509.GeneralName],
    valid_from: dt.datetime,
    valid_until: dt.datetime,
) -> x509.Certificate:
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )
    alt_names = [x509.UniformResourceIdentifier(PARTY_URI_PREFIX + name), x509.DNSName(name), *hosts]
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )


def _write_pair(directory: Path, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> list[Path]:
    cert_file, key_file = cert_path(directory, name), key_path(directory, name)
    _write_file(cert_file, cert.public_bytes(serialization.Encoding.PEM), private=False)
    _write_file(key_file, _key_bytes(key), private=True)
    return [cert_file, key_file]


def _key_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_file(path: Path, data: bytes, private: bool) -> None:
    """Write a fresh file; a private key is never readable by others, not even briefly."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
