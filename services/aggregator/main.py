"""`salesloop aggregator`: the consumer loop plus its health and metrics endpoint, until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket

from services.aggregator import retention
from services.aggregator.consumer import Aggregator
from services.aggregator.health import EmbeddedServer, health_app
from services.core.observability import setup_logging
from services.core.settings import Settings

log = logging.getLogger("services.aggregator.consumer")

SHUTDOWN_GRACE_S = 30.0  # the batch in flight (and its retries) plus leaving the group


async def serve(settings: Settings, host: str, metrics_port: int) -> int:
    """Run until SIGTERM/SIGINT; returns the exit code."""
    aggregator = Aggregator(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, aggregator.stop)

    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, metrics_port), family=family)
    except OSError as exc:
        log.error("cannot serve metrics", extra={"host": host, "port": metrics_port, "error": repr(exc)})
        return 1
    server = EmbeddedServer(health_app(aggregator.ready), host, metrics_port, settings)
    http = asyncio.create_task(server.serve(sockets=[sock]))

    work = asyncio.create_task(aggregator.run())
    # Transcript retention (SPEC 5.7) runs beside the consumer: a pass an hour (retention.py).
    erasing = asyncio.create_task(retention.run(settings))
    # The archive's monthly partitions: made ahead, dropped past their retention (archive_partitions.py).
    partitioning = asyncio.create_task(retention.keep_archive(settings))
    stopping = asyncio.create_task(aggregator.wait_stopping())
    await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if not work.done():
        log.info("stopping: finishing the batch in flight")
        try:
            await asyncio.wait_for(work, SHUTDOWN_GRACE_S)
        except TimeoutError:
            log.error("shutdown took too long; the uncommitted batch is rolled back")
            code = 1
    stopping.cancel()
    for task in (erasing, partitioning):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if work.done() and not work.cancelled() and (error := work.exception()) is not None:
        log.error("aggregator failed", exc_info=error)
        code = 1
    server.should_exit = True
    await http
    return code


def main(settings: Settings, host: str, metrics_port: int) -> None:
    import uvloop

    setup_logging(settings.log_level)
    code = uvloop.run(serve(settings, host, metrics_port))
    if code:
        raise SystemExit(code)
