"""Every failure answers as JSON, ``{"error": code, "detail": message}``, never as a traceback."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("digitread.serve")

HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    """A request the service refuses: an HTTP status, a short machine-readable code and a sentence for people."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


def error_response(status: int, code: str, detail: str, **extra) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status)


def _validation_summary(exc: RequestValidationError) -> list[dict]:
    # The offending input is left out on purpose: it may be megabytes of base64.
    return [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")} for e in exc.errors()]


def install_error_handlers(app: FastAPI, on_error) -> None:
    """JSON errors for refused requests, validation failures, unknown routes and anything unexpected.

    ``on_error(code)`` is told of each one (the error counter in /metrics)."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        on_error(exc.code)
        return error_response(exc.status, exc.code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        on_error("invalid_request")
        errors = _validation_summary(exc)
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors[:5]) or "invalid request"
        return error_response(422, "invalid_request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        on_error(code)
        response = error_response(exc.status_code, code, str(exc.detail))
        response.headers.update(exc.headers or {})  # e.g. Allow on a 405
        return response

    @app.exception_handler(ClientDisconnect)
    async def client_went_away(request: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client hung up before its body arrived: nothing failed here, and no one is left to answer.
        log.info("client disconnected during %s %s", request.method, request.url.path)
        on_error("client_disconnected")
        return error_response(400, "client_disconnected", "the client disconnected before its request arrived")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback for the operator; the client gets one sentence.
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        on_error("internal_error")
        return error_response(500, "internal_error", "the server failed to handle this request; it has been logged")
