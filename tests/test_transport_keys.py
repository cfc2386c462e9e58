"""Key generation for mutual TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ppreg.errors import InputError
from ppreg.transport.keys import PARTY_NAMES, make_keys

pytestmark = pytest.mark.timeout(60)


def load_cert(path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_writes_ca_and_one_pair_per_party(tmp_path):
    written = make_keys(tmp_path)
    expected = ["ca.pem", "ca.key.pem"] + [f"{name}{suffix}" for name in PARTY_NAMES for suffix in (".pem", ".key.pem")]
    assert [path.name for path in written] == expected
    assert all(path.parent == tmp_path for path in written)


def test_private_keys_are_owner_only(tmp_path):
    make_keys(tmp_path)
    for key_file in tmp_path.glob("*.key.pem"):
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, key_file.name


def test_party_certificate_contents(tmp_path):
    make_keys(tmp_path, hosts=("127.0.0.1", "localhost", "node7.example"))
    ca = load_cert(tmp_path / "ca.pem")
    cert = load_cert(tmp_path / "party2.pem")
    cert.verify_directly_issued_by(ca)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "party2"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:ppreg:party:party2"]
    assert set(san.get_values_for_type(x509.DNSName)) == {"party2", "localhost", "node7.example"}
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    key = load_pem_private_key((tmp_path / "party2.key.pem").read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key().public_numbers() == cert.public_key().public_numbers()


def test_validity_days(tmp_path):
    make_keys(tmp_path, names=("party1",), days=10)
    cert = load_cert(tmp_path / "party1.pem")
    lifetime = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(days=9) < lifetime <= dt.timedelta(days=10)


def test_refuses_to_overwrite_and_keeps_files(tmp_path):
    make_keys(tmp_path)
    before = (tmp_path / "party1.pem").read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite"):
        make_keys(tmp_path)
    assert (tmp_path / "party1.pem").read_bytes() == before


def test_overwrite_replaces_everything_including_the_ca(tmp_path):
    make_keys(tmp_path)
    old_ca = (tmp_path / "ca.pem").read_bytes()
    written = make_keys(tmp_path, overwrite=True)
    assert len(written) == 2 + 2 * len(PARTY_NAMES)
    assert (tmp_path / "ca.pem").read_bytes() != old_ca
    load_cert(tmp_path / "dealer.pem").verify_directly_issued_by(load_cert(tmp_path / "ca.pem"))


def test_existing_ca_signs_new_parties(tmp_path):
    make_keys(tmp_path, names=("party1",))
    written = make_keys(tmp_path, names=("party2",))
    assert [path.name for path in written] == ["party2.pem", "party2.key.pem"]
    load_cert(tmp_path / "party2.pem").verify_directly_issued_by(load_cert(tmp_path / "ca.pem"))


def test_validity_overrides_make_an_expired_certificate(tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    make_keys(tmp_path, names=("party1",), not_valid_before=now - dt.timedelta(days=2), not_valid_after=now - dt.timedelta(days=1))
    assert load_cert(tmp_path / "party1.pem").not_valid_after_utc < now
    assert load_cert(tmp_path / "ca.pem").not_valid_after_utc > now


@pytest.mark.parametrize(
    "kwargs",
    [
        {"names": ("Party1",)},
        {"names": ("../evil",)},
        {"names": ("ca",)},
        {"names": ()},
        {"names": ("party1", "party1")},
        {"hosts": ("bad host!",)},
        {"days": 0},
    ],
    ids=["upper", "path", "ca", "none", "repeat", "host", "days"],
)
def test_bad_arguments_raise_input_error(tmp_path, kwargs):
    with pytest.raises(InputError):
        make_keys(tmp_path, **kwargs)
    assert not any(tmp_path.iterdir())


def test_half_a_ca_is_an_input_error(tmp_path):
    make_keys(tmp_path, names=("party1",))
    (tmp_path / "ca.key.pem").unlink()
    with pytest.raises(InputError, match="half a CA"):
        make_keys(tmp_path, names=("party2",))
