"""How every HTTP service is served: the uvicorn options they share, and the bounds on a request head
that uvicorn leaves out.

uvicorn bounds neither the size of a request head (llhttp takes headers of any size) nor the time it
may take to arrive: its keep-alive timeout runs only between requests, and any byte received cancels
it. So one client could hold any number of connections by sending nothing, or a header a byte at a
time, and grow a process by hundreds of megabytes with megabyte headers. `BoundedHttpTools` is
uvicorn's httptools protocol with both bounds; `limit_concurrency` answers 503 once a process holds
`max_connections` connections or requests. Bodies are bounded by the apps (`services.core.http`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from services.core.http import error_body
from services.core.settings import Settings

# Idle keep-alive connections are closed after this (load balancers keep theirs open for less).
KEEP_ALIVE_S = 30
# How long a refused connection is still read (and what arrives dropped) so that the client, still
# sending, reads the refusal instead of a connection reset.
LINGER_S = 2.0


def serve(app: FastAPI, host: str, port: int, settings: Settings, *, graceful_s: int = 10) -> None:
    """Run with uvloop and the bounded httptools protocol; SIGTERM drains in-flight requests for up to
    `graceful_s`.

    X-Forwarded-For and X-Forwarded-Proto are believed only from the trusted proxies (addresses or CIDR
    networks, SALESLOOP_TRUSTED_PROXIES); uvicorn's own default would believe any local peer.
    """
    trusted_proxies = settings.trusted_proxy_list()
    uvicorn.run(
        app,
        host=host,
        port=port,
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or [],
        loop="uvloop",
        timeout_graceful_shutdown=graceful_s,
        **uvicorn_options(settings),
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The options of every service's uvicorn (`uvicorn.run` and `uvicorn.Config` take the same)."""
    return {
        "http": bounded_protocol(settings),
        "ws": "none",
        "limit_concurrency": settings.max_connections,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "server_header": False,
        "access_log": False,
        "log_config": None,
    }


def bounded_protocol(settings: Settings) -> type[BoundedHttpTools]:
    class Bounded(BoundedHttpTools):
        LIMITS = settings

    return Bounded


class BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a request head bounded in size and in time.

    A head (request line and headers) must be whole within `header_timeout_s` of the connection
    opening or of the head's first byte; otherwise the connection is closed, with a 408 if part of a
    head came. Idle connections between requests are closed by uvicorn's keep-alive timeout. A head
    over `max_header_bytes` is answered 431. A response sent before its request's body was all
    received (a refusal: no key, too large, too slow) ends the connection (`_linger`). The common
    case, a head in one read, costs a length check.
    """

    LIMITS: Settings  # max_header_bytes, header_timeout_s

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._in_head = False  # from the first byte of a request to the end of its headers
        self._read_bytes = 0  # the latest read
        self._head_first = 0  # the read the head began in: the head's share of it and perhaps more
        self._head_more = 0  # the reads after it, while the head was incomplete: all head
        self._dropping = False
        self._answered_unread = False  # a response started before its request's body was all received
        self._deadline: asyncio.TimerHandle | None = None
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._dropping:
            return  # the connection is ending: read and dropped
        self._read_bytes = len(data)
        if self._in_head:
            self._head_more += len(data)
        super().data_received(data)
        if self._in_head and not self._dropping:
            # Still incomplete (the parser keeps what came of a header until the header ends):
            # refused once the reads after the first are over the bound, so never wrongly.
            if self._head_more > self.LIMITS.max_header_bytes:
                self._refuse(431, "request_header_fields_too_large", self._too_large())
            elif self._deadline is None:
                self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_first = self._read_bytes
        self._head_more = 0

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._disarm()
        # At least the head's size: only a head that came in large reads needs counting.
        limit = self.LIMITS.max_header_bytes
        if self._head_first + self._head_more > limit and self._head_size() > limit:
            app, self.app = self.app, _head_too_large(self._too_large())
            try:
                self._start_cycle()
            finally:
                self.app = app
            return
        self._start_cycle()

    def _start_cycle(self) -> None:
        earlier = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not earlier:
            self._close_if_answered_unread(self.cycle)

    def _close_if_answered_unread(self, cycle: Any) -> None:
        """A response that starts before its request's body was all received says `connection: close`,
        since the connection ends after it (`_linger`): a client that read no such header would send
        its next request into a closed connection. uvicorn closes at once on that header, which could
        lose the answer to a reset, so `_linger` closes instead."""
        send = cycle.send

        async def send_closing(message: Any) -> None:
            if message["type"] != "http.response.start" or not cycle.more_body:
                await send(message)
                return
            self._answered_unread = True
            await send({**message, "headers": [*message.get("headers", []), (b"connection", b"close")]})
            cycle.keep_alive = True

        cycle.send = send_closing

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if (self.cycle.more_body or self._answered_unread) and not self.transport.is_closing():
            self._linger()  # answered before the request's body was all sent (refused unread)

    def _head_size(self) -> int:
        return len(self.url) + sum(len(name) + len(value) for name, value in self.headers)

    def _too_large(self) -> str:
        return f"the request line and headers must be at most {self.LIMITS.max_header_bytes} bytes"

    def _arm(self) -> None:
        self._deadline = self.loop.call_later(self.LIMITS.header_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _timed_out(self) -> None:
        self._deadline = None
        if self._in_head:
            seconds = f"{self.LIMITS.header_timeout_s:g}"
            self._refuse(408, "request_timeout", f"the request head was not received within {seconds} s")
        elif not self.transport.is_closing():
            self.transport.close()

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer `status` to an incomplete head, and end the connection."""
        if self.cycle is not None and not self.cycle.response_complete:
            self._dropping = True
            self._disarm()
            self.cycle.keep_alive = False  # the response to an earlier request is on its way: then close
        elif not self.transport.is_closing():
            self.transport.write(_response(status, code, message))
            self._linger()

    def _linger(self) -> None:
        """End the connection once the answer is sent, without losing it to a client still sending: a
        socket closed with data unread resets the connection, and the client may see the reset before
        the answer. So: no more responses (FIN after this one), what arrives is read and dropped, and
        the connection is closed when the client closes it, or after LINGER_S."""
        self._dropping = True
        self._disarm()
        self._unset_keepalive_if_required()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._deadline = self.loop.call_later(LINGER_S, self.transport.close)


def _response(status: int, code: str, message: str) -> bytes:
    body = orjson.dumps(error_body(code, message))
    head = b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)
    return STATUS_LINE[status] + head + body


def _head_too_large(message: str) -> Any:
    """An ASGI app answering 431, for a too large head that arrived whole: uvicorn's own request cycle
    answers it, and the connection goes on as after any answer."""
    body = orjson.dumps(error_body("request_header_fields_too_large", message))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 431, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app
