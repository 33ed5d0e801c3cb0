"""The door of ``repic serve``: what every HTTP request passes before any route parses it.

``RequestGuard`` is plain ASGI middleware around the FastAPI app. In order, for each request:

- **Foreign origins** may not change state: a ``POST`` / ``PATCH`` / ``PUT`` / ``DELETE`` whose ``Origin``
  header names another site than the server itself, and not one of ``--cors-origin``, is refused (403)
  before it runs, so a page on another site cannot add or delete concepts through a visitor's browser
  (a multipart form post needs no CORS preflight). Requests without ``Origin`` (curl, SDKs) pass.
- **Bounded concurrency**: beyond ``max_pending`` requests in progress, a new one is answered 503 with
  ``Retry-After`` at once, before its body is read; ``/healthz`` stays answerable.
- **Bounded bodies**: a ``Content-Length`` above ``max_body_bytes`` is refused (413) unread; a body that
  streams past it (chunked) is cut off there and answered 413, so no body is held or spooled whole.
- **A log line per request**: client, method, path, status, seconds (logger ``repic.serve.access``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("repic.serve.access")
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UNLIMITED_PATHS = frozenset({"/healthz"})

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class _BodyTooLarge(Exception):
    pass


def json_error(status: int, message: str, kind: str, headers: Iterable[tuple[str, str]] = ()) -> tuple[dict, bytes]:
    """An error response in the API's JSON shape, as ASGI start message and body."""
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(name.encode(), value.encode()) for name, value in headers]
    return {"type": "http.response.start", "status": status, "headers": raw_headers}, body


def same_origin(origin: str, host: str | None) -> bool:
    """Whether ``origin`` (``http://127.0.0.1:8000``) is the server the request reached (its ``Host``)."""
    parts = urlsplit(origin)
    return bool(host) and parts.netloc.lower() == host.lower()


class RequestGuard:
    """ASGI middleware: origin check, concurrency bound, body bound, access log (see the module)."""

    def __init__(
        self, app: Callable, *, max_body_bytes: int, max_pending: int, allowed_origins: Iterable[str] = (),
        retry_after: Callable[[], int] = lambda: 1,
    ) -> None:
        self.app, self.max_body_bytes, self.max_pending = app, max_body_bytes, max_pending
        self.allowed_origins = {origin.rstrip("/").lower() for origin in allowed_origins}
        self.retry_after = retry_after
        self.pending = 0  # one event loop: no lock needed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), [0]

        async def logged_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self._guarded(scope, receive, logged_send)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info("%s %s %s %s %.3fs", client[0], scope["method"], scope["path"], status[0] or "-",
                     time.perf_counter() - started)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            start, body = refusal
            await send(start)
            await send({"type": "http.response.body", "body": body})
            return
        unlimited = scope["path"] in UNLIMITED_PATHS
        if not unlimited:
            self.pending += 1
        try:
            await self._bounded_body(scope, receive, send)
        finally:
            if not unlimited:
                self.pending -= 1

    def _refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[dict, bytes] | None:
        origin = headers.get("origin")
        if (scope["method"] in UNSAFE_METHODS and origin is not None and origin != "null"
                and not same_origin(origin, headers.get("host"))
                and origin.rstrip("/").lower() not in self.allowed_origins):
            return json_error(403, f"requests from the page origin {origin} may not change this server; start it "
                                   f"with --cors-origin {origin} to allow that site", "permission_error")
        if origin == "null" and scope["method"] in UNSAFE_METHODS:  # sandboxed frames and file:// pages
            return json_error(403, "requests from an opaque page origin ('null') may not change this server",
                              "permission_error")
        if scope["path"] not in UNLIMITED_PATHS and self.pending >= self.max_pending:
            wait = self.retry_after()
            return json_error(503, f"the server is busy ({self.pending} requests in progress); retry in {wait} s",
                              "overloaded_error", [("retry-after", str(wait))])
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return json_error(413, f"the request body is larger than the limit of {self.max_body_bytes:,} bytes; "
                                   "send less (or start the server with a larger --max-body-mb)", "request_too_large")
        return None

    async def _bounded_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        received, too_large, started = 0, [False], [False]

        async def counted_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    too_large[0] = True
                    raise _BodyTooLarge()
            return message

        async def checked_send(message: dict[str, Any]) -> None:
            if too_large[0]:  # the route turned the cut-off body into its own error: answer 413 instead
                return
            if message["type"] == "http.response.start":
                started[0] = True
            await send(message)

        try:
            await self.app(scope, counted_receive, checked_send)
        except _BodyTooLarge:
            pass
        if too_large[0] and not started[0]:
            start, body = json_error(413, f"the request body is larger than the limit of {self.max_body_bytes:,} "
                                          "bytes; send less (or start the server with a larger --max-body-mb)",
                                     "request_too_large")
            await send(start)
            await send({"type": "http.response.body", "body": body})
