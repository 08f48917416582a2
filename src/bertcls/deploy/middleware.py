"""ASGI middleware of ``bertcls serve``: request metrics and the request-body size limit."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from bertcls.deploy.service_metrics import ServiceMetrics, endpoint_label, method_label


class RequestGuard:
    """Counts and times every request for /metrics, and answers 413 to bodies larger than any valid
    request before they are read into memory."""

    def __init__(self, app: Any, metrics: ServiceMetrics, routes: Callable[[], Iterable[Any]], max_body: int):
        self.app = app
        self.metrics = metrics
        self.routes = routes
        self.max_body = max_body

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_status(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        # Label values from fixed sets only: made-up paths and methods must not grow the metrics.
        endpoint = endpoint_label(scope, self.routes())
        method = method_label(scope.get("method", ""))
        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_body:
                await send_json(send_status, 413, {"detail": self._too_big()})
            else:
                await self.app(scope, self._bounded(receive) if length is None else receive, send_status)
        finally:
            self.metrics.observe_request(endpoint, method, status["code"], time.perf_counter() - start)

    def _too_big(self) -> str:
        return f"request body over {self.max_body} bytes; send fewer or shorter texts"

    def _bounded(self, receive: Callable) -> Callable:
        """A body without Content-Length (chunked): stop reading past the limit."""
        seen = {"n": 0}

        async def wrapped() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                seen["n"] += len(message.get("body", b""))
                if seen["n"] > self.max_body:
                    # FastAPI lets HTTPExceptions from reading the body through (other errors become 400).
                    from fastapi import HTTPException

                    raise HTTPException(413, detail=self._too_big())
            return message

        return wrapped


async def send_json(send: Callable, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
