"""The token-signing key pair and its self-signed certificate.

Created once in `<data_dir>/keys/` (the key file 0600). The certificate is what
a stock distribution registry is given as `rootcertbundle` to trust Dockyard's
tokens; the key id in each token's header is derived from the public key the
way libtrust (used by that registry) derives it.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

_CERT_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class SigningKey:
    private_key: rsa.RSAPrivateKey
    certificate: x509.Certificate
    key_id: str

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self.private_key.public_key()


def libtrust_key_id(public_key: rsa.RSAPublicKey) -> str:
    """The key id a distribution registry computes for `public_key`.

    SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32 without
    padding, in twelve groups of four characters joined by colons.
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def ensure_signing_key(directory: Path, common_name: str) -> None:
    """Create the key pair and certificate in `directory` unless they exist."""
    key_file = directory / "token.key"
    if not key_file.exists():
        _create_key_files(directory, key_file, directory / "token.crt", common_name)


def load_signing_key(directory: Path) -> SigningKey:
    """The key pair `ensure_signing_key` made in `directory`."""
    key_file = directory / "token.key"
    # Dockyard generated this key and only its owner can read the file, so the
    # costly RSA consistency checks (hundreds of ms for 4096 bits) are skipped.
    private_key = serialization.load_pem_private_key(
        key_file.read_bytes(), None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ValueError(f"{key_file} does not hold an RSA private key")
    certificate = x509.load_pem_x509_certificate((directory / "token.crt").read_bytes())
    return SigningKey(
        private_key, certificate, libtrust_key_id(private_key.public_key())
    )


def _create_key_files(
    directory: Path, key_file: Path, cert_file: Path, common_name: str
) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private(key_file, pem)
    certificate = _self_signed_certificate(private_key, common_name)
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def _self_signed_certificate(
    private_key: rsa.RSAPrivateKey, common_name: str
) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _CERT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private_key, hashes.SHA256())
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to a new file that only the owner can read."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


def derived_secret(key: SigningKey, purpose: str) -> bytes:
    """A secret for `purpose` (e.g. keying a shared cache) that every replica
    with the same key computes alike, and nobody can without the key."""
    der = key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return hashlib.sha256(purpose.encode() + b"\0" + der).digest()
