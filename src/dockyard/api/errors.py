"""Harbor's error body and the exceptions that produce it.

    {"errors": [{"code": "NOT_FOUND", "message": "project 7 not found"}]}

Handlers raise an `ApiError` subclass; one handler renders every one. The
table below is the only place a code meets its status.
"""

from __future__ import annotations

import logging
from typing import ClassVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)

STATUS_CODES: dict[str, int] = {
    "BAD_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "CONFLICT": 409,
    "PRECONDITION": 412,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "TOO_MANY_REQUESTS": 429,
    "INTERNAL_SERVER_ERROR": 500,
}


class ApiError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    code = "BAD_REQUEST"


class Unauthorized(ApiError):
    code = "UNAUTHORIZED"


class Forbidden(ApiError):
    code = "FORBIDDEN"


class NotFound(ApiError):
    code = "NOT_FOUND"


class Conflict(ApiError):
    code = "CONFLICT"


class PreconditionFailed(ApiError):
    code = "PRECONDITION"


class TooManyRequests(ApiError):
    code = "TOO_MANY_REQUESTS"


def error_body(code: str, message: str) -> dict[str, list[dict[str, str]]]:
    return {"errors": [{"code": code, "message": message}]}


async def handle_api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {}
    if isinstance(exc, Unauthorized):
        headers["www-authenticate"] = 'Basic realm="dockyard"'
    return JSONResponse(
        error_body(exc.code, exc.message),
        status_code=STATUS_CODES[exc.code],
        headers=headers,
    )


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error['loc'][1:]) or 'body'}: {error['msg']}"
        for error in exc.errors()
    )
    return JSONResponse(
        error_body("BAD_REQUEST", problems or "invalid request"), status_code=400
    )


async def handle_query_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(error_body("BAD_REQUEST", str(exc)), status_code=400)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("api_request_failed path=%r", request.url.path, exc_info=exc)
    body = error_body("INTERNAL_SERVER_ERROR", "internal server error")
    return JSONResponse(body, status_code=500)


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(
        exc.status_code, "BAD_REQUEST"
    )
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code)
