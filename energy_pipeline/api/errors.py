"""One error shape for every failure: ``{"error": {"code", "message"}}``, never an HTML page or a bare 500.

FastAPI's own validation and routing errors are reshaped by the handlers installed here, so a client
(and the chart page) has a single way to show what went wrong. Messages pass through :func:`redact`,
which hides credentials that a driver might have put into an exception text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from energy_pipeline.orchestration import DagsterGraphQLError, DagsterUnavailableError
from energy_pipeline.storage.timeseries import StoreError

log = logging.getLogger(__name__)

_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 406: "not_acceptable",
               413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error"}


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    """What every non-2xx JSON response of the API looks like."""

    error: ErrorBody


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "Bad request: a parameter is malformed or out of range"},
    404: {"model": ErrorResponse, "description": "Unknown entity"},
    422: {"model": ErrorResponse, "description": "The request does not match the schema"},
    503: {"model": ErrorResponse, "description": "A store (named in the message) is unavailable"},
}


class ApiError(Exception):
    """An expected failure with its HTTP status, a stable machine code and a message for humans."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class StoreUnavailable(ApiError):
    """A store failed; 503 and the message names which one, so an operator knows where to look."""

    def __init__(self, store_label: str, exc: BaseException):
        super().__init__(503, "store_unavailable", f"{store_label} is unavailable: {exc}")
        self.store_label = store_label


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Hide ``user:password@`` in URLs and any known secret value."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return text


def error_json(status: int, code: str, message: str, secrets: tuple[str, ...] = (),
               **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": redact(message, secrets)}
    body.update(extra)
    return JSONResponse(status_code=status, content={"error": body})


def _validation_message(errors: list[dict[str, Any]]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def install_error_handlers(app: FastAPI, secrets: Callable[[], tuple[str, ...]]) -> None:
    """Reshape every error into ``{"error": {...}}``; ``secrets`` returns values to redact from messages."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_json(exc.status, exc.code, exc.message, secrets())

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Only location, message and type: the offending input may be a token and is never echoed.
        errors = [dict(e) for e in exc.errors()]
        details = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
                    "type": str(e.get("type", ""))} for e in errors]
        return error_json(422, "validation_error", _validation_message(errors), secrets(), details=details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        response = error_json(exc.status_code, code, str(exc.detail), secrets())
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(DagsterUnavailableError)
    async def _dagster_down(_: Request, exc: DagsterUnavailableError) -> JSONResponse:
        return error_json(503, "dagster_unavailable", str(exc), secrets())

    @app.exception_handler(DagsterGraphQLError)
    async def _dagster_error(_: Request, exc: DagsterGraphQLError) -> JSONResponse:
        return error_json(502, "dagster_error", f"Dagster refused the request: {exc}", secrets())

    @app.exception_handler(StoreError)
    async def _store(_: Request, exc: StoreError) -> JSONResponse:
        return error_json(503, "store_unavailable", f"a store is unavailable: {exc}", secrets())

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s: %s", request.method, request.url.path,
                  redact(f"{type(exc).__name__}: {exc}", secrets()))
        return error_json(500, "internal_error", "unexpected server error; see the API log")
