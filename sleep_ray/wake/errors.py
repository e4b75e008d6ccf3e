"""Every error the wake endpoint returns, in OpenAI's shape, and the request-size limit that runs before parsing.

    {"error": {"message": "...", "type": "invalid_request_error", "param": "messages.0.content", "code": null},
     "weight_version": 3}

`ApiError` is what handlers raise (and what a serving replica raises across the Ray boundary: it pickles);
`install(app)` turns it, FastAPI's validation errors, unknown routes and anything unexpected into that body.
`BodyLimit` is an ASGI middleware that refuses a body over `serve.max_body_bytes` with a 413, from its
Content-Length or (a chunked body) once that many bytes have arrived, before any of it is parsed or tokenized.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sleep_ray.wake.shared_store import StoreUnavailableError

log = logging.getLogger(__name__)

TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}


class ApiError(Exception):
    """An error the client should see: HTTP status, message, the offending parameter (dotted path) and a code."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(status, message, param, code)
        self.status, self.message, self.param, self.code = status, message, param, code

    def __str__(self) -> str:
        return self.message


def body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error object for `status`."""
    kind = TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def param_of(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """A pydantic error location as a dotted parameter name, without FastAPI's leading "body"/"query"."""
    parts = [str(x) for x in loc if x not in ("body", "query", "path")]
    return ".".join(parts) or None


def install(app: FastAPI, version: Callable[[], int | None]) -> None:
    """Make every error `app` returns an OpenAI error body carrying `version()` (the weights that would have
    answered), also in the `X-Weight-Version` header."""

    def respond(status: int, message: str, param: str | None = None, code: str | None = None, **headers: str):
        v = version()
        out = {**body(status, message, param, code), "weight_version": v}
        extra = {"X-Weight-Version": str(v)} if v is not None else {}
        return JSONResponse(out, status_code=status, headers={**extra, **headers})

    @app.exception_handler(ApiError)
    async def _api(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        return respond(exc.status, exc.message, exc.param, exc.code, **headers)

    @app.exception_handler(StoreUnavailableError)
    async def _store(_: Request, exc: StoreUnavailableError) -> JSONResponse:
        return respond(503, str(exc), code="store_unavailable")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return respond(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = param_of(first.get("loc", ()))
        msg = first.get("msg", "invalid request")
        if first.get("type") == "extra_forbidden":
            msg = f"unrecognized request argument supplied: {where}"
        elif first.get("type") == "json_invalid":
            msg, where = "the body is not valid JSON", None
        return respond(400, f"{where}: {msg}" if where else msg, where)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")  # the client gets no internals
        return respond(500, f"internal error ({type(exc).__name__})")


class BodyLimit:
    """ASGI middleware: a request body over `limit()` bytes gets 413 before the application reads it."""

    def __init__(self, app: ASGIApp, limit: Callable[[], int]) -> None:
        self.app, self.limit_of = app, limit

    @property
    def limit(self) -> int:
        return self.limit_of()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                await self._refuse(send)
            else:
                await self.app(scope, receive, send)  # the server stops reading at the declared length
            return
        chunks, seen, more = [], 0, True  # no usable length (chunked): read it here, bounded, then replay it
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            seen += len(chunks[-1])
            more = bool(message.get("more_body", False))
            if seen > self.limit:
                await self._refuse(send)
                return
        replay: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send: Send) -> None:
        msg = f"request body over serve.max_body_bytes ({self.limit} bytes)"
        payload = json.dumps(body(413, msg, None, "request_too_large")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": payload})
