from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from starlette.datastructures import Headers

from services.core.events import Channel, Source
from services.ingest.sources import (
    BY_SOURCE,
    VENDORS,
    aircall,
    hubspot,
    option_sets,
    salesforce,
    sendgrid,
    stripe,
    twilio,
)
from services.ingest.sources.common import MappingContext, PayloadError, SignatureError
from services.ingest.sources.kit import (
    channel_for,
    check_signed_time,
    check_timestamp,
    equal,
    fingerprint,
    from_epoch,
    header,
    make_event,
    public_url,
)
from tests.ingest.sources.support import CTX, NOW


@pytest.mark.parametrize(
    ("kwargs", "url"),
    [
        ({"scheme": "https", "host": "hooks.example.com", "port": 443}, "https://hooks.example.com/w/t?a=1"),
        ({"scheme": "http", "host": "127.0.0.1", "port": 8001}, "http://127.0.0.1:8001/w/t?a=1"),
        ({"scheme": "http", "host": "127.0.0.1:8001", "port": 8001}, "http://127.0.0.1:8001/w/t?a=1"),
        ({"scheme": "http", "host": "[::1]", "port": 8001}, "http://[::1]:8001/w/t?a=1"),
        # Behind a proxy the request says http://10.0.0.5:8001, the vendor called the public URL.
        (
            {"scheme": "http", "host": "10.0.0.5", "port": 8001, "base_url": "https://hooks.example.com/"},
            "https://hooks.example.com/w/t?a=1",
        ),
        (
            {"scheme": "http", "host": "10.0.0.5", "port": 8001, "base_url": "https://example.com/salesloop"},
            "https://example.com/salesloop/w/t?a=1",
        ),
    ],
)
def test_public_url(kwargs: dict[str, object], url: str) -> None:
    assert public_url(path="/w/t", query="a=1", **kwargs) == url  # type: ignore[arg-type]


def test_public_url_without_query() -> None:
    assert public_url(scheme="https", host="h.example", path="/x") == "https://h.example/x"


def test_header_lookup_ignores_case_on_plain_dicts_and_starlette_headers() -> None:
    plain = {"x-twilio-signature": "abc"}
    assert header(plain, "X-Twilio-Signature") == "abc"
    assert header(Headers({"X-Twilio-Signature": "abc"}), "x-twilio-signature") == "abc"
    assert header(plain, "X-Other") is None


def test_equal_is_exact_and_handles_non_ascii() -> None:
    assert equal("tökén", "tökén")
    assert not equal("tökén", "token")
    assert not equal(b"abc", "abcd")


def test_timestamp_tolerance_both_ways() -> None:
    check_timestamp(NOW - timedelta(minutes=5), NOW)
    check_timestamp(NOW + timedelta(minutes=5), NOW)
    with pytest.raises(SignatureError, match="older"):
        check_timestamp(NOW - timedelta(minutes=5, microseconds=1), NOW)
    with pytest.raises(SignatureError, match="future"):
        check_timestamp(NOW + timedelta(minutes=5, microseconds=1), NOW)


def test_signed_times_are_unix_timestamps_within_the_tolerance() -> None:
    seconds = str(int(NOW.timestamp()))
    assert check_signed_time(f" {seconds} ", "T", NOW, unit="s") == seconds
    assert check_signed_time(seconds + "000", "T", NOW, unit="ms") == seconds + "000"
    with pytest.raises(SignatureError, match="missing T header"):
        check_signed_time(None, "T", NOW, unit="s")
    with pytest.raises(SignatureError, match="T is not a Unix timestamp in seconds"):
        check_signed_time("soon", "T", NOW, unit="s")
    # Beyond any datetime: refused like a bad signature (401), not as a malformed payload (422).
    for value, unit in (("9" * 16, "ms"), ("9" * 12, "s"), ("9" * 13, "s")):
        with pytest.raises(SignatureError, match="T is not a"):
            check_signed_time(value, "T", NOW, unit=unit)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="in the future"):
        check_signed_time("99999999999", "T", NOW, unit="s")


def test_fingerprint_is_deterministic_and_order_insensitive_for_keys() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert len(fingerprint("x")) == 40


def test_from_epoch() -> None:
    assert from_epoch(1783440000123, unit="ms", field="t") == datetime(
        2026, 7, 7, 16, 0, 0, 123000, tzinfo=UTC
    )
    assert from_epoch("1783440000", unit="s", field="t") == datetime(2026, 7, 7, 16, 0, tzinfo=UTC)
    for bad in ("soon", True, float("nan"), 10**30, [1]):
        with pytest.raises(PayloadError, match="Unix timestamp") as caught:
            from_epoch(bad, unit="s", field="t", index=3)
        assert (caught.value.field, caught.value.index) == ("t", 3)


def test_make_event_validates_like_the_canonical_endpoint() -> None:
    made = make_event(CTX, event_id="x:1", type="email.sent", occurred_at=NOW, rep_id=None)
    assert (made.event.rep_id, made.rep_alias) == (None, None)
    with pytest.raises(PayloadError, match="24 hours") as caught:
        make_event(
            CTX,
            index=2,
            names={"occurred_at": "ts"},
            event_id="x",
            type="call.completed",
            occurred_at=NOW + timedelta(days=2),
        )
    assert (caught.value.field, caught.value.index) == ("ts", 2)
    assert caught.value.detail() == {"field": "ts", "reason": caught.value.reason, "index": 2}
    with pytest.raises(PayloadError, match="NUL"):
        make_event(CTX, event_id="x", type="email.sent", occurred_at=NOW, attributes={"k": "a\x00"})
    with pytest.raises(PayloadError, match="currency"):
        make_event(CTX, event_id="x", type="deal.won", occurred_at=NOW, amount=1, currency="EUR")


def test_channel_for() -> None:
    table = {"web": Channel.DIRECT}
    assert channel_for(None, table, {}) is None
    assert channel_for(" Web ", table, {}) is Channel.DIRECT
    assert channel_for("Organic Social", table, {}) is Channel.ORGANIC_SOCIAL
    assert channel_for("Carrier pigeon", table, {}) is Channel.OTHER
    assert channel_for("web", table, {"WEB": Channel.CONTENT}) is Channel.CONTENT


def test_context_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        MappingContext(currency="USD", received_at=datetime(2026, 7, 7))  # noqa: DTZ001


def test_every_source_but_the_api_has_an_adapter() -> None:
    assert set(BY_SOURCE) == set(Source) - {Source.API}
    assert len(VENDORS) == len(BY_SOURCE)
    assert BY_SOURCE[Source.HUBSPOT] is hubspot.VENDOR
    assert BY_SOURCE[Source.SALESFORCE] is salesforce.VENDOR
    assert BY_SOURCE[Source.TWILIO] is twilio.VENDOR
    assert BY_SOURCE[Source.AIRCALL] is aircall.VENDOR
    assert BY_SOURCE[Source.SENDGRID] is sendgrid.VENDOR
    assert BY_SOURCE[Source.STRIPE] is stripe.VENDOR


def test_each_vendor_is_served_on_its_own_path_with_its_own_answer() -> None:
    assert [vendor.path for vendor in VENDORS] == [f"/webhooks/{v.source.value}/{{tenant}}" for v in VENDORS]
    assert {v.source: v.answer.status_code for v in VENDORS if v.answer.status_code != 202} == {
        Source.SALESFORCE: 200
    }
    # Only HubSpot leaves rep, amount and channel to CRM entity state.
    assert {v.source for v in VENDORS if v.attribution == "crm_entity"} == {Source.HUBSPOT}
    assert set(option_sets()) == {"hubspot", "salesforce"}


def test_decoys_are_in_the_format_of_the_vendor_secrets() -> None:
    for vendor in VENDORS:
        decoy = vendor.decoy()
        assert decoy != vendor.decoy()
        if vendor.check_secret is not None:
            vendor.check_secret(decoy)  # a decoy must be usable, or it would be refused differently
    assert salesforce.VENDOR.decoy().startswith("00D")
