"""Project roles with Harbor's ids and keys, and the registry actions each grants."""

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

PULL = "pull"
PUSH = "push"
DELETE = "delete"
ALL = "*"

ROLE_ACTIONS: dict[Role, frozenset[str]] = {
    Role.PROJECT_ADMIN: frozenset({PULL, PUSH, DELETE, ALL}),
    Role.MAINTAINER: frozenset({PULL, PUSH, DELETE}),
    Role.DEVELOPER: frozenset({PULL, PUSH}),
    Role.GUEST: frozenset({PULL}),
    Role.LIMITED_GUEST: frozenset({PULL}),
}

ADMIN_ACTIONS = frozenset({PULL, PUSH, DELETE, ALL})
