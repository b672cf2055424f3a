"""Password hashing with Argon2id (memory-hard), via argon2-cffi."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8


class PasswordTooWeak(ValueError):
    """The password breaks the policy; the message says how."""


def check_password_policy(password: str) -> None:
    """Harbor's rule: 8 to 128 characters, with upper and lower case and a digit."""
    if not MIN_PASSWORD_LENGTH <= len(password) <= 128:
        raise PasswordTooWeak("the password must be 8 to 128 characters long")
    if not (
        any(c.isupper() for c in password)
        and any(c.islower() for c in password)
        and any(c.isdigit() for c in password)
    ):
        raise PasswordTooWeak(
            "the password needs an upper case letter, a lower case letter and a digit"
        )


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
