"""The ASGI application: `/v2`, `/service/token`, and the middleware around them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dockyard import logging as dockyard_logging
from dockyard import metrics
from dockyard.api.app import API_PREFIX, create_api
from dockyard.api.routes import sessions as session_routes
from dockyard.auth import routes as token_routes
from dockyard.config import Settings
from dockyard.jobs.runtime import job_loops, stop_tasks
from dockyard.registry import routes as registry_routes
from dockyard.registry.errors import ERROR_CODES, RegistryError
from dockyard.registry.routes.mirror import MirrorRouting
from dockyard.server import SETTINGS_ENV
from dockyard.services import build_services

log = logging.getLogger("dockyard.access")


def create_app(settings: Settings) -> Starlette:
    """Build the application for `settings`; services start with the lifespan."""

    api = create_api()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        services = build_services(settings)
        app.state.services = services
        api.state.services = services
        tasks = [
            asyncio.create_task(services.audit.run_flusher()),
            asyncio.create_task(services.pulls.run_flusher()),
            *(
                asyncio.create_task(loop)
                for loop in job_loops(services, settings.jobs.embedded_worker)
            ),
        ]
        if settings.metrics.enabled:
            sampler = metrics.sample_pool_forever(
                services.metrics, services.db.pool_stats
            )
            tasks.append(asyncio.create_task(sampler))
        try:
            yield
        finally:
            await stop_tasks(tasks)
            await services.close()

    app = Starlette(
        routes=[
            *_metrics_routes(settings),
            *registry_routes.ROUTES,
            *token_routes.ROUTES,
            *session_routes.ROUTES,
            Mount(API_PREFIX, api),
        ],
        exception_handlers={
            RegistryError: registry_routes.handle_registry_error,
            token_routes.TokenRequestError: token_routes.handle_token_error,
            HTTPException: _handle_http_exception,
            ClientDisconnect: _handle_client_disconnect,
            Exception: _handle_unexpected,
        },
        lifespan=lifespan,
    )
    app.add_middleware(MirrorRouting)
    app.add_middleware(RequestLogMiddleware)
    if settings.metrics.enabled:
        app.add_middleware(
            metrics.MetricsMiddleware,
            get_metrics=lambda: (
                getattr(app.state, "services", None) and app.state.services.metrics
            ),
        )
    return app


def _metrics_routes(settings: Settings) -> list[Route]:
    """`/metrics` on the main listener, unless metrics are off or have a
    listener of their own (then the path is unknown here)."""
    if not settings.metrics.enabled or settings.metrics.listen is not None:
        return []

    async def serve_metrics(request: Request) -> Response:
        body, content_type = await asyncio.to_thread(metrics.exposition)
        return Response(body, media_type=content_type)

    return [Route(settings.metrics.path, serve_metrics, methods=["GET"])]


def app_from_environment() -> Starlette:
    """Factory for worker processes: settings were validated by `dockyard serve`
    and handed over in the environment (without secrets)."""
    settings = Settings.model_validate(json.loads(os.environ[SETTINGS_ENV]))
    dockyard_logging.configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)


async def _handle_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "UNSUPPORTED"}.get(exc.status_code, "UNSUPPORTED")
    body = {"errors": [{"code": code, "message": ERROR_CODES[code][1]}]}
    return JSONResponse(body, status_code=exc.status_code)


async def _handle_client_disconnect(request: Request, exc: Exception) -> Response:
    # Nobody is left to answer; whatever the handler was writing was rolled back.
    log.warning("client_disconnected path=%s", logged_path(request.scope))
    return Response(status_code=400)


async def _handle_unexpected(request: Request, exc: Exception) -> Response:
    log.error("request_failed path=%s", logged_path(request.scope), exc_info=exc)
    body = {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
    return JSONResponse(body, status_code=500)


def logged_path(scope: Scope) -> str:
    """The path as the client sent it, still percent-encoded: decoded, it could
    hold line breaks that forge log lines. The query string is left out (it
    can carry credentials)."""
    raw = scope.get("raw_path") or scope["path"].encode()
    return raw.split(b"?", 1)[0].decode("latin-1").encode("unicode_escape").decode()


_REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def _request_id(scope: Scope) -> str:
    """The caller's `X-Request-Id` when it is a sane token, else a new one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id" and _REQUEST_ID_RE.fullmatch(value):
            return value.decode()
    return secrets.token_hex(8)


class RequestLogMiddleware:
    """One INFO line per request; binds the request id; marks `/v2` answers
    with `Docker-Distribution-API-Version`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope)
        token = dockyard_logging.request_id.set(rid)
        is_registry = scope["path"].startswith("/v2")
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", rid.encode()))
                if is_registry:
                    headers.append(
                        (b"docker-distribution-api-version", b"registry/2.0")
                    )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info(
                "request method=%s path=%s status=%d duration_ms=%.1f",
                scope["method"],
                logged_path(scope),
                status,
                (time.perf_counter() - started) * 1000,
            )
            dockyard_logging.request_id.reset(token)
