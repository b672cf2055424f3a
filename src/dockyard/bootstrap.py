"""Every start: the schema, builtin roles, the admin user, `library`, the keys.

Safe to run on every start: each step does nothing when already done. The
admin password comes from the settings or is generated, printed once, and
kept in `<data_dir>/admin-password` (mode 0600); it never reaches a log.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from dockyard.auth.keys import ensure_signing_key
from dockyard.auth.rbac import sync_builtin_roles
from dockyard.config import Settings
from dockyard.db.migrate import upgrade_database
from dockyard.projects import ProjectExists
from dockyard.replication.credentials import load_credential_box
from dockyard.services import Services

log = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"
DEFAULT_PROJECT = "library"
ADMIN_PASSWORD_FILE = "admin-password"


def prepare_data_dir(settings: Settings) -> str | None:
    """Create the data directory, the token key pair and the schema; return
    the schema's revision."""
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ensure_signing_key(settings.key_directory, settings.token.issuer)
    load_credential_box(settings.key_directory)
    return upgrade_database(settings.sqlalchemy_url)


async def create_initial_content(services: Services) -> str | None:
    """Create the admin user and the public `library` project if absent.

    Return the admin password when it was generated here (to print once).
    Replicas starting at once take turns (the "bootstrap" lock), so only one
    creates the admin, and only its password is kept.
    """
    async with services.db.exclusive("bootstrap"):
        return await _create_initial_content(services)


async def _create_initial_content(services: Services) -> str | None:
    settings = services.settings
    generated = None
    async with services.db.write() as conn:
        await sync_builtin_roles(conn)
    admin = await services.users.find_user(ADMIN_USERNAME)
    if admin is None:
        if settings.admin_password is not None:
            password = settings.admin_password.get_secret_value()
        else:
            password = generated = _generate_password()
            _write_secret(settings.data_dir / ADMIN_PASSWORD_FILE, password)
        admin_id = await services.users.create_user(
            ADMIN_USERNAME, password, sysadmin=True, enforce_policy=False
        )
        log.info("admin_created username=%s", ADMIN_USERNAME)
    else:
        admin_id = admin["id"]
        if settings.admin_password is not None:
            # Only the first start uses it; later ones must not look as if
            # they had changed the password.
            log.warning(
                "admin_password_ignored reason=%s",
                "admin exists; use `dockyard admin user passwd admin`",
            )
    try:
        await services.projects.create_project(
            DEFAULT_PROJECT, public=True, owner_id=admin_id
        )
        log.info("project_created project=%s public=true", DEFAULT_PROJECT)
    except ProjectExists:
        pass
    return generated


def _generate_password() -> str:
    # Meets the password policy whatever the random part holds.
    return "Dy1" + secrets.token_urlsafe(18)


def _write_secret(path: Path, value: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value + "\n")
