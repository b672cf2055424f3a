"""Harbor's five project roles (ids and keys) and the registry actions."""

from __future__ import annotations

import enum


class Role(enum.IntEnum):
    PROJECT_ADMIN = 1
    DEVELOPER = 2
    GUEST = 3
    MAINTAINER = 4
    LIMITED_GUEST = 5

    @property
    def key(self) -> str:
        return _KEYS[self]

    @classmethod
    def from_key(cls, key: str) -> Role:
        """The role named by Harbor's key (`projectAdmin`, ...); ValueError if none."""
        for role, role_key in _KEYS.items():
            if role_key == key:
                return role
        raise ValueError(
            f"unknown role {key!r}; use one of {', '.join(_KEYS.values())}"
        )


_KEYS = {
    Role.PROJECT_ADMIN: "projectAdmin",
    Role.MAINTAINER: "maintainer",
    Role.DEVELOPER: "developer",
    Role.GUEST: "guest",
    Role.LIMITED_GUEST: "limitedGuest",
}

# Registry (token) actions.
PULL = "pull"
PUSH = "push"
DELETE = "delete"
