"""System configuration that admins change at run time (Harbor's `/configurations`).

Each key has a type, a default and a validation rule; values live in the
`configurations` table and are read through the database's read cache, so
checking one (read-only mode on every write, say) costs a dictionary lookup
until somebody changes something.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select

from dockyard.audit import DISABLED_TYPES_KEY, parse_event_types, record_change
from dockyard.db.database import Database
from dockyard.db.schema import MAX_INTEGER, configurations

READ_ONLY_MESSAGE = "the registry is in read-only mode: no changes are allowed"


class ConfigurationError(ValueError):
    """A key is unknown or a value is invalid; the message says which."""


@dataclass(frozen=True, slots=True)
class ConfigKey:
    type: type
    default: Any
    check: Callable[[Any], bool] = lambda value: True
    rule: str = ""


KEYS: dict[str, ConfigKey] = {
    "auth_mode": ConfigKey(
        str, "db_auth", lambda v: v == "db_auth", "only db_auth so far"
    ),
    "project_creation_restriction": ConfigKey(
        str,
        "everyone",
        lambda v: v in ("everyone", "adminonly"),
        "everyone or adminonly",
    ),
    "self_registration": ConfigKey(bool, False),
    "read_only": ConfigKey(bool, False),
    "banner_message": ConfigKey(
        str, "", lambda v: len(v) <= 4096, "at most 4096 chars"
    ),
    # Minutes; the default comes from the `token.expiration_seconds` setting.
    "token_expiration": ConfigKey(
        int, None, lambda v: 1 <= v <= 1440, "1 to 1440 minutes"
    ),
    "pull_audit_log_disable": ConfigKey(bool, False),
    # Bytes a new project may store unless its creator (an admin) says otherwise.
    "storage_per_project": ConfigKey(
        int,
        -1,
        lambda v: v == -1 or 0 < v <= MAX_INTEGER,
        "-1 (no limit) or a positive size",
    ),
    # Days a robot's secret lives when its creator names no duration.
    "robot_token_duration": ConfigKey(
        int, 30, lambda v: 1 <= v <= 2**31 - 1, "a positive number of days"
    ),
    # Robots are told from users by this prefix of their names.
    "robot_name_prefix": ConfigKey(
        str,
        "robot$",
        lambda v: 0 < len(v) <= 32 and v.isprintable() and not set(v) & set(':/ "'),
        "1-32 characters without ':', '/', '\"' or spaces",
    ),
    # Event types (`/auditlog-exts/events`) not to record, comma-separated.
    DISABLED_TYPES_KEY: ConfigKey(
        str,
        "",
        lambda v: len(v) <= 4096 and _event_types_valid(v),
        "comma-separated event types such as pull_artifact,create_tag",
    ),
    # Minutes a portal session lives without being used (Harbor's default).
    "session_timeout": ConfigKey(
        int, 60, lambda v: 1 <= v <= 525_600, "1 to 525600 minutes (a year)"
    ),
}


def _event_types_valid(value: str) -> bool:
    try:
        parse_event_types(value)
    except ValueError:
        return False
    return True


class ConfigurationService:
    def __init__(self, db: Database, token_expiration_seconds: int) -> None:
        self.db = db
        self.defaults = {key: spec.default for key, spec in KEYS.items()}
        self.defaults["token_expiration"] = max(token_expiration_seconds // 60, 1)

    async def all(self) -> dict[str, Any]:
        """Every key with its current value (stored, else default)."""

        async def load() -> dict[str, Any]:
            async with self.db.read() as conn:
                rows = (await conn.execute(select(configurations))).all()
            stored = {row.key: json.loads(row.value) for row in rows}
            return {
                key: stored.get(key, default) for key, default in self.defaults.items()
            }

        return await self.db.cache.get_or_load(("configurations",), load)

    async def get(self, key: str) -> Any:
        return (await self.all())[key]

    async def update(self, changes: dict[str, Any], actor: str) -> None:
        """Validate every change, then store them together; nothing on error."""
        for key, value in changes.items():
            _validate(key, value)
        now = datetime.now(UTC)
        async with self.db.write() as conn:
            for key, value in changes.items():
                await conn.execute(
                    delete(configurations).where(configurations.c.key == key)
                )
                await conn.execute(
                    insert(configurations).values(
                        key=key, value=json.dumps(value), updated_at=now
                    )
                )
            await record_change(
                conn, actor, "configuration", "update", ",".join(sorted(changes))
            )


def _validate(key: str, value: Any) -> None:
    spec = KEYS.get(key)
    if spec is None:
        raise ConfigurationError(f"unknown configuration key {key!r}")
    if type(value) is not spec.type:
        raise ConfigurationError(f"{key} must be of type {spec.type.__name__}")
    if not spec.check(value):
        raise ConfigurationError(f"invalid value for {key}: {spec.rule}")
