"""The caller of a request, once authenticated."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """A user, a robot account, or nobody (`ANONYMOUS`).

    A user has `user_id`; a robot has `robot_id` and its full name
    (`robot$...`) as `username`; neither is set for an anonymous caller.
    """

    user_id: int | None
    username: str
    sysadmin: bool = False
    robot_id: int | None = None

    @property
    def anonymous(self) -> bool:
        return self.user_id is None and self.robot_id is None

    @property
    def robot(self) -> bool:
        return self.robot_id is not None


ANONYMOUS = Principal(user_id=None, username="")
