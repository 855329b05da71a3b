"""Logging (JSON lines) and the Prometheus pieces every service shares."""

from __future__ import annotations

import logging
import re
import sys
import time
from datetime import UTC, datetime
from typing import TypeVar

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNTRACKED_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})

_RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


# What a log line must not carry of the data it is about. A database error's text holds the values of
# its statement (SQLAlchemy's "[parameters: ...]") and PostgreSQL's DETAIL the row in question, which
# for a rep are its name, e-mail address and phone number: the error and its statement are kept, the
# values not. E-mail addresses and phone numbers are masked wherever else they appear.
_REDACTIONS = (
    (re.compile(r"\[parameters: [^\n]*"), "[parameters: redacted]"),
    (re.compile(r"^(\s*DETAIL:\s+)[^\n]*", re.MULTILINE), r"\1redacted"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<email>"),
    (re.compile(r"\+\d[\d ().-]{5,20}\d"), "<phone>"),
)


def redact(text: str) -> str:
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields (tenant, event_id, ...) are kept as keys. Text is
    redacted (`redact`): no log line carries a statement's values, e-mail addresses or phone numbers."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update({k: v for k, v in record.__dict__.items() if k not in _RESERVED})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        for key, value in out.items():
            if isinstance(value, str) and key != "ts":
                out[key] = redact(value)
        return orjson.dumps(out, default=str).decode()


def setup_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


M = TypeVar("M", bound=MetricWrapperBase)
_children: dict[tuple[int, tuple[str, ...]], MetricWrapperBase] = {}


def child(metric: M, *labels: str) -> M:
    """`metric.labels(*labels)`, remembered: label look-ups take a lock and showed up on hot paths.

    Only for label values from small fixed sets (the cache is never pruned).
    """
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found  # type: ignore[return-value]


class RequestMetrics:
    """Request count and latency by route template (bounded), method and status."""

    def __init__(self, service: str) -> None:
        self.requests = Counter(
            f"salesloop_{service}_requests_total", "HTTP requests", ["route", "method", "status"]
        )
        self.latency = Histogram(
            f"salesloop_{service}_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
        )


class RequestMetricsMiddleware:
    """Records `RequestMetrics` as plain ASGI middleware.

    The `call_next` (BaseHTTPMiddleware) form runs every request through a task group and memory
    streams; on the ingest hot path that cost about a third of the CPU.
    """

    def __init__(self, app: ASGIApp, request_metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = request_metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACKED_PATHS:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            child(self.metrics.latency, template, method).observe(time.perf_counter() - start)
            child(self.metrics.requests, template, method, str(status)).inc()
