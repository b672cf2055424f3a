"""The `/api/v2.0` application: routers, error handlers, OpenAPI document."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException

from dockyard import __version__
from dockyard.api import errors
from dockyard.api.deps import refuse_changes_when_read_only
from dockyard.api.domain_errors import domain_error_handlers
from dockyard.api.query import QueryError
from dockyard.api.routes import (
    allowlists,
    artifacts,
    audit,
    configurations,
    grants,
    labels,
    metadata,
    projects,
    quotas,
    registries,
    replication,
    repositories,
    robots,
    statistics,
    system,
    usergroups,
    users,
)
from dockyard.api.routes.sessions import CsrfHeader
from dockyard.db.database import UnstorableValue

API_PREFIX = "/api/v2.0"


def create_api() -> FastAPI:
    """The API app, mounted at `API_PREFIX`; its `state.services` is set by the
    main app's lifespan. The OpenAPI document is served at `/api/v2.0/openapi.json`."""
    api = FastAPI(
        title="Dockyard API",
        version=__version__,
        description="Harbor API v2.0 compatible management API",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(refuse_changes_when_read_only)],
        exception_handlers={
            **domain_error_handlers(),
            errors.ApiError: errors.handle_api_error,
            RequestValidationError: errors.handle_validation_error,
            HTTPException: errors.handle_http_exception,
            QueryError: errors.handle_query_error,
            UnstorableValue: errors.handle_query_error,
            Exception: errors.handle_unexpected,
        },
    )
    for module in (
        system,
        users,
        projects,
        repositories,
        artifacts,
        audit,
        configurations,
        grants,
        usergroups,
        robots,
        labels,
        quotas,
        allowlists,
        metadata,
        statistics,
        registries,
        replication,
    ):
        api.include_router(module.router)
    api.add_middleware(CsrfHeader)
    api.openapi = lambda: _openapi_with_basic_auth(api)  # type: ignore[method-assign]
    return api


def _openapi_with_basic_auth(api: FastAPI) -> dict[str, Any]:
    """The generated document, saying how to authenticate: HTTP Basic, or
    nothing for what anonymous callers may see."""
    if api.openapi_schema is None:
        schema = get_openapi(
            title=api.title,
            version=api.version,
            description=api.description,
            routes=api.routes,
        )
        schema.setdefault("components", {})["securitySchemes"] = {
            "basicAuth": {"type": "http", "scheme": "basic"}
        }
        schema["security"] = [{"basicAuth": []}, {}]
        api.openapi_schema = schema
    return api.openapi_schema
