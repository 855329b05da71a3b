"""What a client without a key can make a service spend: memory, connections, time.

Against real ingest and api processes, started here with timeouts short enough to wait for, and the
aggregator's health server as its process serves it; memory as the process's RSS.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import httpx
import orjson
import psutil
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.embedded import ServiceProcess, free_port
from services.aggregator.health import EmbeddedServer, health_app
from services.core.auth import Directory
from services.core.settings import DEV_SECRET_KEY
from services.core.tenancy import TtlCache
from tests.conftest import Stack
from tests.factories import TenantCtx, TenantFactory

HEADER_TIMEOUT_S = 2.0
BODY_READ_TIMEOUT_S = 3.0
MAX_CONNECTIONS = 300
MB = 2**20
JSON_BODY = ("Content-Type: application/json", "Content-Length: 2", "Connection: close")


@dataclass
class Served:
    ingest: ServiceProcess
    api: ServiceProcess
    ingest_port: int
    api_port: int

    def rss_mb(self, process: ServiceProcess) -> float:
        assert process.proc is not None
        return psutil.Process(process.proc.pid).memory_info().rss / MB


@pytest.fixture(scope="module")
def served(stack: Stack) -> Iterator[Served]:
    """ingest and api with timeouts short enough to wait for."""
    env = {
        **stack.env,
        "SALESLOOP_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S),
        "SALESLOOP_BODY_READ_TIMEOUT_S": str(BODY_READ_TIMEOUT_S),
        "SALESLOOP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "SALESLOOP_LOG_LEVEL": "WARNING",
    }
    ports = {name: free_port() for name in ("ingest", "api")}
    processes = {
        name: ServiceProcess(
            f"{name}-http",
            [name, "--port", str(port)],
            env,
            f"http://127.0.0.1:{port}/healthz",
            stack.root / f"{name}-http-{port}.log",
        )
        for name, port in ports.items()
    }
    for process in processes.values():
        process.start(wait=False)
    try:
        for process in processes.values():
            process.wait_healthy()
        yield Served(processes["ingest"], processes["api"], ports["ingest"], ports["api"])
    finally:
        for process in processes.values():
            process.stop()


@pytest.fixture(scope="module")
async def tenant(tenants: TenantFactory) -> TenantCtx:
    return await tenants.create(prefix="http")


async def _open(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def _head(request_line: str, *headers: str) -> bytes:
    lines = [f"{request_line} HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


async def _last_answer(reader: asyncio.StreamReader, timeout_s: float) -> tuple[int, bytes]:
    """The status and body of the response after which the server closes the connection."""
    raw = await asyncio.wait_for(reader.read(), timeout_s)
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


async def _answer(reader: asyncio.StreamReader, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """The status and body of the next response, the connection open or not."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout_s)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return int(head.split()[1]), await asyncio.wait_for(reader.readexactly(length), timeout_s)


async def _healthy(url: str) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/healthz", timeout=1.0)).status_code == 200


async def _send_tokens(port: int, request_line: str, size: int, count: int) -> dict[int, int]:
    """`count` requests, each with a different random bearer token of `size` characters."""
    statuses: dict[int, int] = {}

    async def send(n: int) -> None:
        for _ in range(n):
            token = secrets.token_urlsafe(size * 3 // 4)
            reader, writer = await _open(port)
            try:
                writer.write(_head(request_line, f"Authorization: Bearer {token}", *JSON_BODY) + b"{}")
                status, _ = await _last_answer(reader, 5.0)
            finally:
                writer.close()
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(send(count // 4) for _ in range(4)))
    return statuses


@pytest.mark.parametrize("service", ["ingest", "api"])
async def test_distinct_long_bearer_tokens_leave_the_memory_flat(
    served: Served, tenant: TenantCtx, service: str
) -> None:
    """Refused without a look-up or a cache entry: tokens of a key's length are all a key can be, and
    a request head over the header bound (16 KiB) is refused before the app sees it."""
    process, port = (
        (served.ingest, served.ingest_port) if service == "ingest" else (served.api, served.api_port)
    )
    request_line = f"POST /v1/events/{tenant.slug}" if service == "ingest" else "GET /v1/reps"
    await _send_tokens(port, request_line, 100_000, 20)  # the allocator's arenas, once
    before = served.rss_mb(process)
    short = await _send_tokens(port, request_line, 8_000, 900)
    long = await _send_tokens(port, request_line, 100_000, 900)
    grown = served.rss_mb(process) - before
    assert grown < 50, f"{service} grew by {grown:.0f} MB"
    assert short == {401: 900}
    assert long == {431: 900}


async def test_a_request_head_over_16_kib_is_answered_431(served: Served) -> None:
    """A head that came whole is answered by the app's request cycle (the connection goes on); one
    that keeps coming is answered once 16 KiB more came after its first read, the rest never kept."""
    reader, writer = await _open(served.api_port)
    try:
        writer.write(_head("GET /healthz", f"X-Padding: {'a' * 64 * 1024}"))
        status, body = await _answer(reader)
        assert status == 431
        assert orjson.loads(body)["error"]["code"] == "request_header_fields_too_large"
    finally:
        writer.close()
    reader, writer = await _open(served.api_port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ")
        answer = asyncio.ensure_future(_answer(reader))
        sent = 0
        while not answer.done() and sent < MB:
            writer.write(b"a" * 1024)  # a header that never ends
            sent += 1024
            await asyncio.wait([answer], timeout=0.01)  # one read per piece, mostly
        status, body = await answer
    finally:
        writer.close()
    assert status == 431
    assert sent < 64 * 1024, f"answered after {sent} bytes"
    await _healthy(f"http://127.0.0.1:{served.api_port}")


async def test_implausible_tokens_are_refused_without_a_lookup_or_a_cache_entry(engine: AsyncEngine) -> None:
    directory = Directory(engine, DEV_SECRET_KEY, ttl_s=60)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(900):
            # The shape of a key (prefix and id), but 8 KiB long.
            assert await directory.key(f"sl_{secrets.token_hex(6)}_{secrets.token_urlsafe(6000)}") is None
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < MB / 4, f"{grown / MB:.1f} MB kept"


def test_a_full_cache_evicts_its_oldest_entries_not_all_of_them() -> None:
    cache: TtlCache[str, int] = TtlCache(60, max_items=3)
    for i, key in enumerate("abcd"):
        cache.put(key, i)
    assert [cache.get(key) for key in "abcd"] == [(False, None), (True, 1), (True, 2), (True, 3)]
    cache.put("b", 10)  # written again: the newest
    cache.put("e", 4)
    assert [cache.get(key)[0] for key in "bcde"] == [True, False, True, True]


async def test_a_24_mb_put_without_a_key_is_refused_before_its_body_is_read(served: Served) -> None:
    url = f"http://127.0.0.1:{served.api_port}"
    before = served.rss_mb(served.api)
    reader, writer = await _open(served.api_port)
    try:
        size = 24 * MB
        writer.write(_head("PUT /v1/reps/x", "Content-Type: application/json", f"Content-Length: {size}"))
        # Answered before a byte of the body was sent.
        status, body = await _answer(reader)
        assert status == 401, body
        chunk = b"x" * MB
        for _ in range(24):  # the body anyway: read and dropped, while others are served
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break  # or the connection closed: either way, nothing is kept
            await _healthy(url)
    finally:
        writer.close()
    grown = served.rss_mb(served.api) - before
    assert grown < 50, f"api grew by {grown:.0f} MB"


async def test_a_24_mb_body_with_a_key_is_cut_off_at_the_size_bound(
    served: Served, tenant: TenantCtx
) -> None:
    before = served.rss_mb(served.api)
    auth = f"Authorization: Bearer {tenant.api_key}"
    # Declared: refused before reading.
    reader, writer = await _open(served.api_port)
    try:
        writer.write(
            _head("PUT /v1/reps/x", auth, "Content-Type: application/json", f"Content-Length: {24 * MB}")
        )
        status, body = await _answer(reader)
        assert status == 413, body
    finally:
        writer.close()
    # Undeclared (chunked): refused once the bound is passed.
    reader, writer = await _open(served.api_port)
    try:
        writer.write(
            _head("PUT /v1/reps/x", auth, "Content-Type: application/json", "Transfer-Encoding: chunked")
        )
        answer = asyncio.ensure_future(_answer(reader, timeout_s=10))
        chunk = b"%x\r\n%s\r\n" % (MB, b"x" * MB)
        for _ in range(24):
            if answer.done():
                break
            writer.write(chunk)
            try:
                await writer.drain()
            except ConnectionError:
                break
        status, body = await answer
        assert status == 413, body
        assert orjson.loads(body)["error"]["code"] == "payload_too_large"
    finally:
        writer.close()
    grown = served.rss_mb(served.api) - before
    assert grown < 50, f"api grew by {grown:.0f} MB"


async def _trickle(port: int, head: bytes, every_s: float) -> tuple[int, bytes, float]:
    """Send `head`, then a byte of the body every `every_s` until answered: (status, body, seconds)."""
    reader, writer = await _open(port)
    started = time.monotonic()
    try:
        writer.write(head)
        answer = asyncio.ensure_future(_answer(reader, timeout_s=BODY_READ_TIMEOUT_S + 3 * every_s))
        while not answer.done():
            writer.write(b" ")
            await asyncio.wait([answer], timeout=every_s)
        status, body = await answer
        return status, body, time.monotonic() - started
    finally:
        writer.close()


async def test_a_body_trickled_a_byte_every_2_s_is_answered_408(served: Served, tenant: TenantCtx) -> None:
    json = "Content-Type: application/json"
    ingest = _head(
        f"POST /v1/events/{tenant.slug}",
        f"Authorization: Bearer {tenant.ingest_key}",
        json,
        "Content-Length: 1000",
    )
    api = _head("PUT /v1/reps/x", f"Authorization: Bearer {tenant.api_key}", json, "Content-Length: 1000")
    answers = await asyncio.gather(
        _trickle(served.ingest_port, ingest, 2.0), _trickle(served.api_port, api, 2.0)
    )
    for status, body, seconds in answers:
        assert status == 408, body
        assert orjson.loads(body)["error"]["code"] == "request_timeout"
        assert seconds < BODY_READ_TIMEOUT_S + 1


async def _closed_by_server(reader: asyncio.StreamReader, deadline: float) -> bool:
    """Whether the server closes the connection before `deadline` (whatever it answers first)."""
    try:
        while await asyncio.wait_for(reader.read(65536), max(deadline - time.monotonic(), 0.01)):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def _hold(port: int, partial: bytes) -> Callable[[float], Awaitable[bool]]:
    reader, writer = await _open(port)
    if partial:
        writer.write(partial)

    async def closed(deadline: float) -> bool:
        try:
            return await _closed_by_server(reader, deadline)
        finally:
            writer.close()

    return closed


@pytest.fixture
async def aggregator_port(stack: Stack) -> AsyncIterator[int]:
    """The aggregator's health and metrics server as `salesloop aggregator` serves it, in this process
    (a second aggregator process would join the session's consumer group)."""

    async def ready() -> bool:
        return True

    port = free_port()
    settings = stack.settings(header_timeout_s=HEADER_TIMEOUT_S)
    server = EmbeddedServer(health_app(ready), "127.0.0.1", port, settings)
    serving = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 10
    while not server.started and not serving.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert server.started
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


async def test_connections_that_never_complete_a_request_are_closed(
    served: Served, aggregator_port: int
) -> None:
    partial = b"POST /v1/events/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"
    ports = (served.ingest_port, served.api_port, aggregator_port)
    held = [await _hold(port, data) for port in ports for data in (b"", partial) for _ in range(50)]
    deadline = time.monotonic() + HEADER_TIMEOUT_S + 2
    closed = await asyncio.gather(*(check(deadline) for check in held))
    assert all(closed), f"{closed.count(False)} of {len(closed)} connections still open"
    for port in ports:
        await _healthy(f"http://127.0.0.1:{port}")


async def test_a_partial_request_head_is_answered_408_when_cut_off(served: Served) -> None:
    reader, writer = await _open(served.api_port)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        status, body = await _last_answer(reader, HEADER_TIMEOUT_S + 2)
    finally:
        writer.close()
    assert status == 408
    assert orjson.loads(body)["error"]["code"] == "request_timeout"


async def test_beyond_max_connections_requests_are_answered_503(served: Served) -> None:
    idle = [await _open(served.api_port) for _ in range(MAX_CONNECTIONS)]
    try:
        async with httpx.AsyncClient() as client:
            r = await client.get(f"http://127.0.0.1:{served.api_port}/healthz", timeout=2.0)
        assert r.status_code == 503
    finally:
        for _, writer in idle:
            writer.close()
    deadline = time.monotonic() + 5
    while True:
        async with httpx.AsyncClient() as client:
            status = (
                await client.get(f"http://127.0.0.1:{served.api_port}/healthz", timeout=2.0)
            ).status_code
        if status == 200 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert status == 200


async def test_a_trailing_slash_answers_404_not_a_redirect(served: Served, tenant: TenantCtx) -> None:
    auth = {"Authorization": f"Bearer {tenant.api_key}", "Host": "evil.example"}
    async with httpx.AsyncClient() as client:
        answers = [
            await client.get(f"http://127.0.0.1:{served.api_port}/v1/reps/", headers=auth),
            await client.get(
                f"http://127.0.0.1:{served.ingest_port}/healthz/", headers={"Host": "evil.example"}
            ),
        ]
    for r in answers:
        assert r.status_code == 404, (r.status_code, r.headers.get("location"))
        assert "location" not in r.headers
        assert r.json()["error"]["code"] == "not_found"
