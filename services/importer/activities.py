"""Salesforce Task and Event exports: Data Loader field names or a report's labels ("Activity ID",
"Assigned", "Call Type", "Call Result", "Due Date", "Start", "End").

As the Outbound Message adapter maps them, with its ids (`salesforce:{record id}:{fact}`):
- a completed Task (IsClosed, else Status "Completed") -> `call.completed` when TaskSubtype or Type
  is Call or it has a CallType (direction from CallType, outcome from the Call Result, duration from
  CallDurationInSeconds), `email.sent` when it is an Email / List Email, `meeting.held` when its Type
  is Meeting; at CompletedDateTime, else its Due Date (ActivityDate), else CreatedDate. Open tasks
  and other types are skipped with the reason.
- an Event -> `meeting.booked` at CreatedDate, and `meeting.held` at StartDateTime once it has ended.
WhoId (a lead or contact) is the contact; WhatId the deal when it is an opportunity (006...), the
account when it is an account (001...).
"""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache
from typing import Any

from services.core.crm_values import call_outcome, salesforce_long_id
from services.core.events import EventType, Source
from services.importer.model import Column, Context, Draft, Kind, Row, Skip, draft
from services.importer.salesforce import owner_of, record_id

_ACTIVITY = (
    Column("id", ("Id", "Activity ID", "Task ID", "Event ID"), required=True),
    Column("owner_id", ("OwnerId", "Assigned To ID", "Owner ID")),
    Column("owner", ("Assigned", "Assigned To", "Owner Name", "Owner")),
    Column("who", ("WhoId", "Name ID", "Contact/Lead ID", "Who ID")),
    Column("what", ("WhatId", "Related To ID", "What ID")),
    Column("account", ("AccountId", "Account ID")),
    Column("created", ("CreatedDate", "Created Date")),
)
TASK_COLUMNS = (
    *_ACTIVITY,
    Column("status", ("Status",)),
    Column("closed", ("IsClosed", "Closed")),
    Column("type", ("Type", "Task Type")),
    Column("subtype", ("TaskSubtype", "Task Subtype")),
    Column("call_type", ("CallType", "Call Type")),
    Column("duration", ("CallDurationInSeconds", "Call Duration", "Call Duration (seconds)")),
    Column("result", ("CallDisposition", "Call Result")),
    Column("completed", ("CompletedDateTime", "Completed Date Time", "Completed Date")),
    Column("due", ("ActivityDate", "Due Date", "Date")),
)
_DIRECTIONS = {"inbound": "inbound", "outbound": "outbound"}
# An export's calls name a handful of results again and again.
_outcome = lru_cache(maxsize=1024)(call_outcome)

EVENT_COLUMNS = (
    *_ACTIVITY,
    Column("start", ("StartDateTime", "Start", "Start Date Time")),
    Column("end", ("EndDateTime", "End", "End Date Time")),
    Column("minutes", ("DurationInMinutes", "Duration")),
)


def map_task(row: Row, ctx: Context) -> list[Draft]:
    task = record_id(row, "id")
    closed = row.flag("closed")
    status = row.get("status")
    if closed is False or (closed is None and (status or "Completed").lower() != "completed"):
        raise Skip(row.column("status"), f"is {status or 'open'!r}: only completed tasks are activities")
    subtype, kind = (row.get("subtype") or "").lower(), (row.get("type") or "").lower()
    at, key = _task_time(row)
    rep, links = owner_of(row, ctx), _links(row)
    columns = row.columns(("occurred_at", key))
    call_type = row.get("call_type")
    if subtype == "call" or kind == "call" or call_type is not None:
        direction = _DIRECTIONS.get((call_type or "").lower())
        result = row.get("result")
        return [
            draft(Source.SALESFORCE, f"salesforce:{task}:call.completed", EventType.CALL_COMPLETED, at, rep,
                  columns=row.columns(("occurred_at", key), ("duration_s", "duration")), direction=direction,
                  outcome=_outcome(result), duration_s=row.seconds("duration"),
                  attributes={"call_disposition": result} if result else None, **links)
        ]  # fmt: skip
    if subtype in ("email", "listemail") or kind in ("email", "list email"):
        return [
            draft(Source.SALESFORCE, f"salesforce:{task}:email.sent", EventType.EMAIL_SENT, at, rep,
                  columns=columns, direction="outbound", **links)
        ]  # fmt: skip
    if kind == "meeting":
        return [
            draft(Source.SALESFORCE, f"salesforce:{task}:meeting.held", EventType.MEETING_HELD, at, rep,
                  columns=columns, **links)
        ]  # fmt: skip
    what = row.get("subtype") or row.get("type")
    raise Skip(row.column("type"), f"is {what or 'empty'!r}: not a call, an email or a meeting")


def map_event(row: Row, ctx: Context) -> list[Draft]:
    meeting = record_id(row, "id")
    minutes = row.seconds("minutes")
    duration_s = minutes * 60 if minutes is not None else None
    rep, links = owner_of(row, ctx), _links(row)
    start, booked = row.time("start"), row.time("created")
    if booked is None and start is None:
        raise Skip(row.column("created"), "is empty, and so is the meeting's start")
    out = []
    if booked is not None:
        out.append(
            draft(Source.SALESFORCE, f"salesforce:{meeting}:meeting.booked", EventType.MEETING_BOOKED, booked,
                  rep, columns=row.columns(("occurred_at", "created")), duration_s=duration_s, **links)
        )  # fmt: skip
    if start is not None:
        end = row.time("end") or start + timedelta(seconds=duration_s or 0)
        if end <= ctx.now:
            out.append(
                draft(Source.SALESFORCE, f"salesforce:{meeting}:meeting.held", EventType.MEETING_HELD, start,
                      rep, columns=row.columns(("occurred_at", "start")), duration_s=duration_s, **links)
            )  # fmt: skip
    return out


def _task_time(row: Row) -> tuple[Any, str]:
    for key in ("completed", "due", "created"):
        at = row.time(key)
        if at is not None:
            return at, key
    raise Skip(row.column("completed"), "is empty, and so are the Due Date and Created Date")


def _links(row: Row) -> dict[str, Any]:
    who, what, account = row.get("who"), row.get("what") or "", row.get("account")
    return {
        "contact_id": salesforce_long_id(who) if who else None,
        "deal_id": salesforce_long_id(what) if what[:3] == "006" else None,
        "account_id": salesforce_long_id(account or what) if account or what[:3] == "001" else None,
    }


TASKS = Kind(
    "salesforce-tasks",
    "Salesforce Task export",
    TASK_COLUMNS,
    map_task,
    marks=("subtype", "call_type", "duration", "result", "completed", "due"),
    one_of=("completed", "due", "created"),
)
EVENTS = Kind(
    "salesforce-events",
    "Salesforce Event export",
    EVENT_COLUMNS,
    map_event,
    marks=("start", "minutes", "end"),
    one_of=("created", "start"),
)
