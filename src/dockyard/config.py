"""Settings: one typed object read from a YAML file and `DOCKYARD_*` variables.

Precedence, highest first: command-line options (applied by the CLI), the
environment, the YAML file, the defaults below. Nested sections are reached in
the environment with a double underscore: `DOCKYARD_TOKEN__SERVICE`; the most
used knobs also have flat names (`DOCKYARD_EXTERNAL_URL`, ...).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_STORAGE_SCHEMES = {"s3", "s3a", "gs", "az", "azure", "abfs", "abfss", "adl"}


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting and why."""


class TokenSettings(BaseModel):
    service: str = "dockyard"
    issuer: str = "dockyard-token-issuer"
    # Harbor's default token lifetime.
    expiration_seconds: int = Field(default=1800, ge=60, le=86400)
    refresh_expiration_seconds: int = Field(default=30 * 86400, ge=3600)


class JobSettings(BaseModel):
    # `dockyard serve` runs the job worker too; scaled deployments turn it
    # off on the HTTP replicas and run `dockyard worker` instead.
    embedded_worker: bool = True
    concurrency: int = Field(default=2, ge=1, le=64)
    # Cron expressions with seconds first, as Harbor writes them, by job name.
    schedules: dict[str, str] = {}

    @field_validator("schedules")
    @classmethod
    def _check_schedules(cls, value: dict[str, str]) -> dict[str, str]:
        from dockyard.jobs.schedules import check_cron

        for name, expression in value.items():
            check_cron(name, expression)
        return value


def _check_host_port(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("must be HOST:PORT, e.g. 127.0.0.1:5000")
    if int(port) > 65535:
        raise ValueError(f"port must be 0 to 65535, not {port}")
    return value


class MetricsSettings(BaseModel):
    """Prometheus metrics. Off by default, as in Harbor. With `listen` they are
    served only there (an address the monitoring network reaches, not the
    public one); without it, at `path` on the main listener."""

    enabled: bool = False
    path: str = "/metrics"
    listen: str | None = None
    # Per-process sample files; default <data_dir>/metrics. Must not be shared
    # between hosts or pods (files are named by process id).
    directory: Path | None = None

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        return None if value is None else _check_host_port(value)

    @field_validator("path")
    @classmethod
    def _check_path(cls, value: str) -> str:
        if not value.startswith("/") or value.startswith(("/v2", "/api/")):
            raise ValueError("must start with / and not be under /v2 or /api/")
        return value


class Settings(BaseSettings):
    """Every setting Dockyard reads. Validated once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="DOCKYARD_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Path("dockyard-data")
    # The token-signing key pair (token.key, token.crt); replicas must share
    # it, e.g. from one mounted secret. Created here when absent.
    keys_dir: Path | None = None
    listen: str = "127.0.0.1:5000"
    external_url: str | None = None
    admin_password: SecretStr | None = None
    database_url: str | None = None
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    # On SIGTERM, requests in flight get this long to finish before the
    # workers are stopped hard (uploads then keep only whole, ordered bytes).
    shutdown_timeout_seconds: int = Field(default=30, ge=1, le=3600)
    metrics: MetricsSettings = MetricsSettings()
    # Build absolute URLs from X-Forwarded-* only behind a proxy we trust.
    trust_forwarded_headers: bool = False
    max_manifest_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    # How long a proxy-cache project waits for its upstream (to connect, and
    # between two reads) before it serves what it has cached.
    proxy_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    # Uploads untouched this long are discarded (clients never came back).
    upload_expiry_seconds: int = Field(default=24 * 3600, ge=60)
    token: TokenSettings = TokenSettings()
    # Shared state of many replicas (locks, throttles, caches, the job queue);
    # without it all of that stays in-process.
    redis_url: str | None = None
    redis_prefix: str = Field(default="dockyard:", min_length=1, max_length=64)
    jobs: JobSettings = JobSettings()
    # Blob storage. The storage_url validator sees the fields above it.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    # Passed to obstore's store configuration as they are (GCS, Azure, S3 keys).
    storage_options: dict[str, str] = {}
    # None keeps blobs in <data_dir>/storage.
    storage_url: str | None = None
    # Blob GETs answered with a 307 to a short-lived signed storage URL.
    storage_redirect: bool = False

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        return _check_host_port(value)

    @field_validator("log_level")
    @classmethod
    def _check_log_level(cls, value: str) -> str:
        if value.lower() not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        return value.lower()

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return normalise_database_url(value)

    @field_validator("external_url")
    @classmethod
    def _check_external_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("external_url must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss", "unix") or not (
            parts.netloc or parts.path
        ):
            raise ValueError(
                "redis_url must be redis://[user:password@]host:port/db, "
                "rediss://... for TLS, or unix:///path"
            )
        return value

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme == "file":
            if not parts.path.startswith("/"):
                raise ValueError("a file storage URL needs an absolute path")
            return value
        if parts.scheme not in _STORAGE_SCHEMES or not parts.netloc:
            raise ValueError(
                "storage_url must be file:///PATH, s3://BUCKET[/PREFIX], "
                "gs://BUCKET[/PREFIX] or az://CONTAINER[/PREFIX]"
            )
        # Building the store checks the options without reaching the network.
        from dockyard.storage.base import StorageError
        from dockyard.storage.objectstore import open_object_storage

        try:
            open_object_storage(
                value,
                endpoint_url=info.data.get("s3_endpoint_url"),
                region=info.data.get("s3_region"),
                options=info.data.get("storage_options"),
            )
        except StorageError as exc:
            raise ValueError(str(exc)) from exc
        return value

    @field_validator("s3_endpoint_url")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("s3_endpoint_url must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _absolute_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if self.keys_dir is not None:
            self.keys_dir = self.keys_dir.expanduser().resolve()
        return self

    @property
    def key_directory(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def base_url(self) -> str:
        """The URL clients use to reach Dockyard, without a trailing slash."""
        return self.external_url or f"http://{self.listen}"

    @property
    def metrics_directory(self) -> Path:
        return self.metrics.directory or self.data_dir / "metrics"

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'dockyard.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), the environment and `overrides`; validate.

    Raise `ConfigError` with a readable message when anything is wrong.
    """
    file_values = _read_yaml(config_file or _config_file_from_env())
    env_names = {name for name in os.environ if name.startswith("DOCKYARD_")}
    # The environment outranks the file: drop file keys the environment sets.
    for key in list(file_values):
        if f"DOCKYARD_{key.upper()}" in env_names:
            del file_values[key]
    values = {**file_values, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc


def unknown_environment_names() -> list[str]:
    """`DOCKYARD_*` variables that name no setting (likely misspelt)."""
    known = {f"DOCKYARD_{name.upper()}" for name in Settings.model_fields}
    known |= {"DOCKYARD_CONFIG", "DOCKYARD_INTERNAL_SETTINGS"}
    return sorted(
        name
        for name in os.environ
        if name.startswith("DOCKYARD_") and name.split("__", 1)[0] not in known
    )


_POSTGRESQL_SCHEMES = ("postgresql", "postgres", "postgresql+asyncpg")
_SQLITE_SCHEMES = ("sqlite", "sqlite+aiosqlite")


def normalise_database_url(url: str) -> str:
    """`url` in the dialect Dockyard drives: PostgreSQL through asyncpg
    (`postgresql://`, `postgres://` and `postgresql+asyncpg://` are accepted),
    or SQLite (`sqlite:///PATH`). Raise `ValueError` for anything else."""
    scheme, sep, rest = url.partition("://")
    if not sep or not rest:
        raise ValueError("database_url must be a URL, e.g. postgresql://host/dockyard")
    if scheme in _POSTGRESQL_SCHEMES:
        if not urlsplit(url).hostname and "host=" not in rest:
            raise ValueError("database_url must name the PostgreSQL host")
        return f"postgresql+asyncpg://{rest}"
    if scheme in _SQLITE_SCHEMES:
        return f"sqlite://{rest}"
    raise ValueError(
        f"database_url scheme {scheme!r} is not supported; use postgresql:// "
        "(or sqlite:///PATH)"
    )


def _describe(error: ValidationError) -> str:
    """One line per problem: the setting, its environment name, what is wrong."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"]) or "settings"
        variable = "DOCKYARD_" + "__".join(str(p).upper() for p in problem["loc"])
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"{path} ({variable}): {message}")
    return "; ".join(lines)


def _config_file_from_env() -> Path | None:
    value = os.environ.get("DOCKYARD_CONFIG")
    return Path(value) if value else None


def _read_yaml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of settings")
    return loaded
