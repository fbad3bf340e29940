"""One error shape for everything: ``{status, code, message}`` with CAMARA codes.

Domain errors (``ApiError``), request validation, unknown routes and anything unexpected all
end here. Unexpected exceptions are logged with their traceback server-side and answered with
a bare 500 body: no stack trace, exception text or internal detail reaches a partner.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from services.api.exceptions import ApiError, OAuthError

log = logging.getLogger("fraudradar.api")

_HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "UNPROCESSABLE_ENTITY",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class ErrorInfo(BaseModel):
    """The CAMARA error body."""

    status: int = Field(description="HTTP response status code")
    code: str = Field(description="A stable code such as INVALID_ARGUMENT or PERMISSION_DENIED")
    message: str = Field(description="A human-readable description")


class OAuthErrorInfo(ErrorInfo):
    """Token endpoint errors also carry the RFC 6749 fields for OAuth client libraries."""

    error: str
    error_description: str


def _doc(description: str) -> dict[str, Any]:
    return {"model": ErrorInfo, "description": description}


ERRORS_COMMON: dict[int | str, dict[str, Any]] = {
    400: _doc("Invalid argument"),
    401: _doc("Missing, invalid or expired token"),
    403: _doc(
        "The token lacks the scope, or was issued for a purpose this operation does not serve "
        "(x-purposes), or the partner may not use this operation on this subject"
    ),
    413: _doc("Request body too large"),
    429: _doc(
        "TOO_MANY_REQUESTS (request rate, open streams) or QUOTA_EXCEEDED (daily quota, hourly "
        "lookup budget, daily report/contest caps); always with Retry-After"
    ),
    500: _doc("Internal error (never with detail)"),
    503: _doc("Not caught up with the risk topics yet"),
}
ERRORS_WITH_404: dict[int | str, dict[str, Any]] = {
    **ERRORS_COMMON,
    404: _doc("No such resource of yours"),
    409: _doc("Conflicts with the current state (limit reached, already decided)"),
}


def error_response(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    extra: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"status": status, "code": code, "message": message}
    if extra:
        body.update(extra)
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body", "query", "header"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "Invalid argument: " + "; ".join(parts) if parts else "Invalid argument."


def _methods_for(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        extra = None
        if isinstance(exc, OAuthError):
            extra = {"error": exc.oauth_error, "error_description": exc.message}
        return error_response(exc.status, exc.code, exc.message, exc.headers, extra)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        # CAMARA answers schema violations with 400 INVALID_ARGUMENT, not FastAPI's 422.
        return error_response(400, "INVALID_ARGUMENT", _validation_message(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "INTERNAL" if exc.status_code >= 500 else "INVALID_ARGUMENT")
        message = str(exc.detail) if exc.status_code < 500 else "Internal error."
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path served by two
            # routes (GET and DELETE of one object) must list both.
            headers["Allow"] = ", ".join(_methods_for(request))
        return error_response(exc.status_code, code, message, headers)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "INTERNAL", "Internal error.")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
