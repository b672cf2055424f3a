"""The caller of a request, once authenticated."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """A user (or nobody: `ANONYMOUS`). Robot accounts join in a later issue."""

    user_id: int | None
    username: str
    sysadmin: bool = False

    @property
    def anonymous(self) -> bool:
        return self.user_id is None


ANONYMOUS = Principal(user_id=None, username="")
