"""Sending the demo through the real endpoints: the roster, scorecards and spend to the API, the
events to the ingest routes, with bounded concurrency and the retries a well-behaved sender makes.

A request the ingest refuses for being over the tenant's rate limit (429) or because the broker did
not acknowledge (503) is sent again after `Retry-After`, and every sender waits with it: the load
then runs at the rate the ingest admits. A vendor route that does not verify its first requests
(401) is retried briefly, because the ingest caches tenant secrets for a few seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx

from devstack.demo.billing import settings_body
from devstack.demo.model import Organisation, Rep
from devstack.demo.pipeline import stages_body
from devstack.demo.simulate import Via
from devstack.demo.vendors import VENDORS, Credentials, Payload, sign

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
MAX_ATTEMPTS = 8
UNVERIFIED_RETRIES = 3
MAX_ERRORS_KEPT = 5


class DemoError(Exception):
    """Something the person loading the demo can act on (bad key, unreachable service)."""


@dataclass
class Tally:
    requests: int = 0
    events: int = 0
    accepted: int = 0
    ignored: int = 0
    rejected: int = 0


@dataclass
class Summary:
    events: int = 0
    seconds: float = 0.0
    by_via: dict[Via, Tally] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return sum(t.accepted for t in self.by_via.values())

    @property
    def ignored(self) -> int:
        return sum(t.ignored for t in self.by_via.values())

    @property
    def rejected(self) -> int:
        return sum(t.rejected for t in self.by_via.values())


async def vendor_routes(client: httpx.AsyncClient, ingest_url: str) -> frozenset[Via]:
    """The vendor routes this ingest serves, from its OpenAPI document (none if it cannot be read)."""
    try:
        response = await client.get(f"{ingest_url}/openapi.json")
        paths = response.json().get("paths", {}) if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return frozenset()
    return frozenset(v for v in VENDORS if any(p.startswith(f"/webhooks/{v}/") for p in paths))


async def register(client: httpx.AsyncClient, api_url: str, api_key: str, org: Organisation) -> list[str]:
    """Reps with their aliases, hiring scorecards, channel spend and the pipeline's stages; returns
    notes on what was skipped.

    Reps come first and must all succeed: vendor events find their rep through these aliases.
    """
    headers = {"Authorization": f"Bearer {api_key}"}
    notes: list[str] = []

    async def put(path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            return await client.put(f"{api_url}{path}", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise DemoError(f"cannot reach the API at {api_url}: {exc!r}") from exc

    async def rep(r: Rep) -> None:
        body = {
            "name": r.name,
            "team": r.team,
            "hired_at": r.hired_at.isoformat(),
            "quota_monthly": r.quota_monthly,
            "monthly_cost": r.monthly_cost,
            "aliases": {
                "phone": r.phone,
                "email": r.email,
                "hubspot_owner_id": r.hubspot_owner_id,
                "aircall_user_id": r.aircall_user_id,
            },
        }
        _require((await put(f"/v1/reps/{quote(r.rep_id, safe='')}", body)), "PUT /v1/reps")

    await _bounded(8, [rep(r) for r in org.reps])

    async def optional(label: str, calls: list[tuple[str, dict[str, Any]]]) -> None:
        for i, (path, body) in enumerate(calls):
            response = await put(path, body)
            if response.status_code == 404 and i == 0:
                notes.append(f"{label}: this API does not serve {path.rsplit('/', 1)[0]}/...; skipped")
                return
            _require(response, f"PUT {path}")

    # The wave has sold nothing yet: its scorecards would only add reps with no outcome to correlate.
    scored = [r for r in org.reps if r.cohort != "wave"]
    await optional(
        "scorecards",
        [(f"/v1/hiring/scorecards/{quote(r.rep_id, safe='')}", {"traits": r.traits}) for r in scored],
    )
    spend = [
        ("/v1/demand/spend", {"channel": channel, "month": month, "amount": amount})
        for (channel, month), amount in sorted(org.spend.items())
    ]
    await optional("channel spend", spend)
    await optional("pipeline stages", [("/v1/pipeline/stages", stages_body())])
    # The gross margin only adds LTV and payback: a key that may not set it loads everything else.
    response = await put("/v1/economics/settings", settings_body())
    if response.status_code in (403, 404):
        notes.append(f"economics settings not set ({response.status_code}): {error_message(response)}")
    else:
        _require(response, "PUT /v1/economics/settings")
    return notes


def _require(response: httpx.Response, what: str) -> None:
    if response.status_code < 300:
        return
    message = error_message(response)
    if response.status_code in (401, 403):
        raise DemoError(f"{what}: the API key was refused ({response.status_code}): {message}")
    raise DemoError(f"{what} answered {response.status_code}: {message}")


def error_message(response: httpx.Response) -> str:
    """The message of a salesloop JSON error, with the details it does not already say."""
    try:
        error = response.json()["error"]
        message = str(error["message"])
        extra = [d for d in error.get("details") or [] if str(d.get("reason")) not in message]
    except (ValueError, KeyError, TypeError, AttributeError):
        return response.text[:200] or response.reason_phrase
    details = "; ".join(f"{d.get('field')}: {d.get('reason')}" for d in extra[:3])
    return message + (f" ({details})" if details else "")


async def _bounded(limit: int, jobs: Iterable[Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(limit)

    async def run(job: Awaitable[None]) -> None:
        async with gate:
            await job

    await asyncio.gather(*(run(j) for j in jobs))


class Sender:
    """Sends payloads to the ingest with `concurrency` requests in flight."""

    def __init__(
        self,
        ingest_url: str,
        creds: Credentials,
        *,
        sign_base_url: str | None = None,
        concurrency: int = 16,
        on_done: Callable[[int], None] = lambda _: None,
    ) -> None:
        self.ingest_url = ingest_url.rstrip("/")
        self.sign_base_url = (sign_base_url or ingest_url).rstrip("/")
        self.creds = creds
        self.concurrency = concurrency
        self.on_done = on_done
        self.summary = Summary()
        self._resume_at = 0.0  # monotonic time before which nobody sends (after a 429 or 503)

    async def send_all(self, payloads: list[Payload]) -> Summary:
        started = time.monotonic()
        queue: asyncio.Queue[Payload] = asyncio.Queue()
        for p in payloads:
            queue.put_nowait(p)
            self.summary.events += p.events

        async def worker() -> None:
            # A client (and connection) per worker: httpx's pool bookkeeping grows with the number
            # of connections it manages and would cost more than the requests themselves.
            async with httpx.AsyncClient(timeout=TIMEOUT, limits=httpx.Limits(max_connections=1)) as client:
                while not queue.empty():
                    payload = queue.get_nowait()
                    await self._send(client, payload)
                    self.on_done(payload.events)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self.concurrency):
                    group.create_task(worker())
        except* DemoError as failed:
            # The first worker to fail cancelled the others; its reason is the one to tell.
            raise failed.exceptions[0] from None
        self.summary.seconds = time.monotonic() - started
        return self.summary

    async def _send(self, client: httpx.AsyncClient, payload: Payload) -> None:
        tally = self.summary.by_via.setdefault(payload.via, Tally())
        tally.requests += 1
        tally.events += payload.events
        unverified = 0
        for attempt in range(MAX_ATTEMPTS):
            await self._wait_turn()
            try:
                response = await client.post(
                    self.ingest_url + payload.path,
                    content=payload.body,
                    headers=sign(payload, self.sign_base_url + payload.path, self.creds, datetime.now(UTC)),
                )
            except httpx.TransportError:
                await asyncio.sleep(min(0.25 * 2**attempt, 5.0))
                continue
            status = response.status_code
            if status in (429, 503):
                self._pause(_retry_after(response))
                continue
            if status == 401 and payload.via != "api" and unverified < UNVERIFIED_RETRIES:
                unverified += 1
                await asyncio.sleep(2.0)
                continue
            if status < 300:
                body = response.json()
                tally.accepted += int(body.get("accepted", 0))
                tally.ignored += int(body.get("ignored", 0))
                return
            if status in (401, 403):
                # Every other request would be refused alike: stop the load and say why.
                raise DemoError(
                    f"{payload.path} refused the credentials ({status}): {error_message(response)}"
                )
            self._reject(tally, payload, f"{payload.via} {status}: {error_message(response)}")
            return
        self._reject(tally, payload, f"{payload.via}: gave up after {MAX_ATTEMPTS} attempts")

    def _reject(self, tally: Tally, payload: Payload, message: str) -> None:
        tally.rejected += payload.events
        if len(self.summary.errors) < MAX_ERRORS_KEPT:
            self.summary.errors.append(message)

    def _pause(self, seconds: float) -> None:
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    async def _wait_turn(self) -> None:
        # A later 429 may push the resume time further while this worker sleeps: check again.
        for _ in range(MAX_ATTEMPTS):
            delay = self._resume_at - time.monotonic()
            if delay <= 0:
                return
            await asyncio.sleep(delay)


def _retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "1")), 0.05), 30.0)
    except ValueError:
        return 1.0
