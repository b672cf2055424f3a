"""Registry credentials encrypted at rest.

Secrets of registry endpoints are stored as Fernet tokens (AES-128-CBC with
HMAC-SHA256) under a key kept in `registry-credentials.key` (mode 0600) in the
keys directory (setting `keys_dir`, default `<data_dir>/keys`), beside the
token-signing key. A database dump alone therefore
reveals no password; the key file and the database together do.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

KEY_FILE = "registry-credentials.key"


class CredentialUnreadable(Exception):
    """A stored secret does not decrypt with this data directory's key."""


class CredentialBox:
    """Encrypts and decrypts registry secrets with one key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        """The secret; `CredentialUnreadable` if it was sealed with another key."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode()
        except (InvalidToken, UnicodeError) as exc:
            raise CredentialUnreadable("stored credential cannot be decrypted") from exc


def load_credential_box(directory: Path) -> CredentialBox:
    """The box for the key in `directory`, creating the key on first use.

    Several processes may start at once: the key is written to a private
    temporary file and linked into place, so exactly one key ever wins."""
    key_file = directory / KEY_FILE
    if not key_file.exists():
        _create_key(directory, key_file)
    return CredentialBox(key_file.read_bytes().strip())


def _create_key(directory: Path, key_file: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = directory / f".{KEY_FILE}.{secrets.token_hex(8)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(Fernet.generate_key())
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, key_file)
        except FileExistsError:
            pass  # another process made it first: use theirs
    finally:
        temporary.unlink(missing_ok=True)
