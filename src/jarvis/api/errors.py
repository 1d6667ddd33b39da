"""Every error leaves as `{"error": {"code", "message"}}` with its status; never a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from jarvis.errors import JarvisError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, **details: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message, **details}}
    return JSONResponse(body, status_code=status)


def describe_validation(errors: Sequence[Any]) -> str:
    """One readable line per problem: `body.temperature: Input should be less than or equal to 2`."""
    lines = []
    for error in errors[:10]:
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "body"
        lines.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(lines)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(JarvisError)
    async def jarvis_error(_request: Request, exc: JarvisError) -> JSONResponse:
        if exc.status_code >= 500:
            log.warning("%s: %s", exc.code, exc.message)
        return error_response(exc.status_code, exc.code, exc.message, **exc.details)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", describe_validation(exc.errors()))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "internal server error")
