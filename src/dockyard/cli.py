"""The `dockyard` command: serve, migrate, and admin operations.

A thin layer over the same services the server uses. Exit codes: 0 success,
1 an operation was refused (the message says why), 2 bad configuration or usage.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from sqlalchemy import select

from dockyard import fsck_report
from dockyard.auth.passwords import PasswordTooWeak
from dockyard.auth.roles import Role
from dockyard.auth.users import UserError
from dockyard.bootstrap import create_initial_content, prepare_data_dir
from dockyard.config import (
    ConfigError,
    Settings,
    load_settings,
    unknown_environment_names,
)
from dockyard.db.schema import projects, users
from dockyard.jobs.builtin import unknown_schedules
from dockyard.jobs.runtime import run_worker
from dockyard.logging import configure_logging
from dockyard.projects import ProjectError
from dockyard.server import SETTINGS_ENV, refuse_taken_address
from dockyard.services import Services, build_services

log = logging.getLogger(__name__)

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Dockyard registry.")
admin_app = typer.Typer(no_args_is_help=True, help="Manage users, projects, members.")
user_app = typer.Typer(no_args_is_help=True, help="Local user accounts.")
project_app = typer.Typer(no_args_is_help=True, help="Projects.")
member_app = typer.Typer(no_args_is_help=True, help="Project members.")
app.add_typer(admin_app, name="admin")
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(project_app, name="project")
admin_app.add_typer(member_app, name="member")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file.", envvar="DOCKYARD_CONFIG"),
]
DataDirOption = Annotated[
    Path | None, typer.Option("--data-dir", help="Data directory.")
]

T = TypeVar("T")

_OPERATION_ERRORS = (UserError, ProjectError, PasswordTooWeak, ValueError)
_LISTEN_HINT = "; choose another address with --listen HOST:PORT (or DOCKYARD_LISTEN)"


def main() -> None:
    app()


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    listen: Annotated[
        str | None, typer.Option("--listen", help="HOST:PORT to listen on.")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="Worker processes.")
    ] = None,
) -> None:
    """Run the registry on the configured (or embedded default) stores."""
    settings = _settings(config, data_dir=data_dir, listen=listen, workers=workers)
    configure_logging(settings.log_level, settings.log_format)
    _warn_unknown_names(settings)
    # Before anything is created: a first start on a busy port makes nothing.
    refuse_taken_address(settings.listen, settings.host, settings.port, _LISTEN_HINT)
    prepare_data_dir(settings)
    generated = asyncio.run(_with_services(settings, create_initial_content))
    if generated:
        # Printed once, on the terminal only; also kept in the 0600 file.
        print(
            f"Generated admin password (kept in {settings.data_dir}/admin-password): "
            f"{generated}"
        )
        sys.stdout.flush()
    _log_settings(settings)
    _run_server(settings)


def _run_server(settings: Settings) -> None:
    """Become the serving process (see `dockyard.server`)."""
    environment = dict(os.environ)
    environment[SETTINGS_ENV] = settings.model_dump_json(exclude={"admin_password"})
    # The admin password was only needed for the first start.
    environment.pop("DOCKYARD_ADMIN_PASSWORD", None)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "dockyard.server"], environment)


# Never logged: secrets, and URLs or options that may hold them.
_SECRET_SETTINGS = {"admin_password", "database_url", "redis_url", "storage_options"}

# What `dockyard worker` reads: the stores, where its keys are (registry
# credentials are encrypted with them), the jobs and what they apply. Listen
# addresses, HTTP workers, metrics, tokens, shutdown and proxy settings are the
# server's alone.
_WORKER_SETTINGS = {
    "data_dir",
    "keys_dir",
    "log_level",
    "log_format",
    "redis_prefix",
    "jobs",
    "s3_endpoint_url",
    "s3_region",
    "storage_url",
    "max_manifest_bytes",
    "upload_expiry_seconds",
}


def _log_settings(settings: Settings, worker: bool = False) -> None:
    """One line with the settings in effect (the worker's alone for `worker`);
    no secrets."""
    if worker:
        shown = settings.model_dump(mode="json", include=_WORKER_SETTINGS)
        del shown["jobs"]["embedded_worker"]  # a server's switch
    else:
        shown = settings.model_dump(mode="json", exclude=_SECRET_SETTINGS)
    shown["database"] = (
        "postgresql" if not settings.sqlalchemy_url.startswith("sqlite") else "sqlite"
    )
    # The URL may hold a password: only whether Redis is used.
    shown["redis"] = settings.redis_url is not None
    log.info("starting settings=%s", json.dumps(shown, sort_keys=True))


@app.command()
def worker(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Run background jobs (and the scheduler) only, for scaled deployments."""
    settings = _settings(config, data_dir=data_dir)
    configure_logging(settings.log_level, settings.log_format)
    _warn_unknown_names(settings)
    prepare_data_dir(settings)
    _log_settings(settings, worker=True)
    asyncio.run(run_worker(settings))


def _warn_unknown_names(settings: Settings) -> None:
    for name in unknown_environment_names():
        log.warning("unknown_setting variable=%s (misspelt? it is ignored)", name)
    for name in unknown_schedules(settings):
        log.warning("unknown_schedule name=%s (misspelt? it is ignored)", name)


@app.command()
def migrate(config: ConfigOption = None, data_dir: DataDirOption = None) -> None:
    """Bring the database schema up to date (`dockyard serve` does it too).
    Safe while other servers run or start: one migrates, the others wait."""
    settings = _settings(config, data_dir=data_dir)
    configure_logging(settings.log_level)
    revision = prepare_data_dir(settings)
    typer.echo(f"database is up to date (revision {revision})")


@app.command()
def fsck(
    config: ConfigOption = None,
    data_dir: DataDirOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON.")
    ] = False,
) -> None:
    """Verify every stored blob against its digest and that storage and
    metadata agree. Exit code 1 when a problem is found. Read-only."""
    settings = _settings(config, data_dir=data_dir)
    configure_logging("warning")
    # No prepare_data_dir: fsck neither migrates nor creates anything.
    _require_data_dir(settings)
    report = asyncio.run(_with_services(settings, fsck_report.run_with_progress))
    if as_json:
        typer.echo(json.dumps(report.as_json(), indent=2))
    else:
        fsck_report.print_report(report)
    if not report.ok:
        raise typer.Exit(1)


@admin_app.callback()
def admin(
    ctx: typer.Context, config: ConfigOption = None, data_dir: DataDirOption = None
) -> None:
    """Operate directly on the data directory's database."""
    ctx.obj = _settings(config, data_dir=data_dir)
    configure_logging("warning")


def _require_data_dir(settings: Settings) -> None:
    """Exit unless a server has prepared the data directory: creating one
    here would make changes that no server ever sees."""
    if (
        settings.database_url is None
        and not (settings.data_dir / "dockyard.db").exists()
    ):
        typer.echo(
            f"error: no Dockyard data directory at {settings.data_dir}; pass "
            "--data-dir (or DOCKYARD_DATA_DIR) of a server that has started once",
            err=True,
        )
        raise typer.Exit(2)


def _run(ctx: typer.Context, operation: Callable[[Services], Awaitable[T]]) -> T:
    settings: Settings = ctx.obj
    _require_data_dir(settings)
    prepare_data_dir(settings)
    try:
        return asyncio.run(_with_services(settings, operation))
    except _OPERATION_ERRORS as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


async def _with_services(
    settings: Settings, operation: Callable[[Services], Awaitable[T]]
) -> T:
    services = build_services(settings)
    try:
        return await operation(services)
    finally:
        await services.close()


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
    is_admin: Annotated[
        bool, typer.Option("--admin", help="Make a system admin.")
    ] = False,
    email: Annotated[str | None, typer.Option("--email")] = None,
) -> None:
    """Create a local user."""
    password = _read_password(password_stdin)
    _run(
        ctx,
        lambda s: s.users.create_user(name, password, sysadmin=is_admin, email=email),
    )
    typer.echo(f"user {name} created")


@user_app.command("passwd")
def user_passwd(
    ctx: typer.Context,
    name: str,
    password_stdin: Annotated[bool, typer.Option("--password-stdin")] = False,
) -> None:
    """Set a user's password."""
    password = _read_password(password_stdin)
    _run(ctx, lambda s: s.users.set_password(name, password))
    typer.echo(f"password of {name} changed")


@user_app.command("set-admin")
def user_set_admin(ctx: typer.Context, name: str) -> None:
    """Make a user a system admin."""
    _run(ctx, lambda s: s.users.set_sysadmin(name, True))
    typer.echo(f"{name} is a system admin")


@user_app.command("unset-admin")
def user_unset_admin(ctx: typer.Context, name: str) -> None:
    """Take the system admin flag from a user."""
    _run(ctx, lambda s: s.users.set_sysadmin(name, False))
    typer.echo(f"{name} is no longer a system admin")


@user_app.command("list")
def user_list(ctx: typer.Context) -> None:
    """List users: name, admin flag, email."""
    query = select(users).order_by(users.c.username)
    rows, _ = _run(ctx, lambda s: s.users.list_users(query, 0, 1_000_000))
    for row in rows:
        flag = "admin" if row["sysadmin"] else "-"
        typer.echo(f"{row['username']}\t{flag}\t{row['email'] or ''}")


@project_app.command("list")
def project_list(ctx: typer.Context) -> None:
    """List projects: name, visibility, repository count."""
    query = select(projects).order_by(projects.c.name)
    rows = _run(ctx, lambda s: s.projects.project_details(query))
    for row in rows:
        visibility = "public" if row["public"] else "private"
        typer.echo(f"{row['name']}\t{visibility}\t{row['repo_count']}")


@project_app.command("create")
def project_create(
    ctx: typer.Context,
    name: str,
    private: Annotated[
        bool, typer.Option("--private", help="Only members may pull.")
    ] = False,
) -> None:
    """Create a project (public unless --private)."""
    _run(ctx, lambda s: s.projects.create_project(name, public=not private))
    typer.echo(f"project {name} created ({'private' if private else 'public'})")


@member_app.command("add")
def member_add(ctx: typer.Context, project: str, user: str, role: str) -> None:
    """Give USER ROLE in PROJECT.

    ROLE: projectAdmin, maintainer, developer, guest or limitedGuest.
    """
    try:
        parsed = Role.from_key(role)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    _run(ctx, lambda s: s.projects.add_member(project, user, parsed))
    typer.echo(f"{user} is {role} of {project}")
