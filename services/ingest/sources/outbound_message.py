"""Salesforce Outbound Messages as SOAP: how a delivery is authenticated, the `notifications` envelope
and its acknowledgement.

Salesforce signs nothing, and the `OrganizationId` every message carries is no secret (it shows in
URLs and support cases). So the tenant's secret is `ORG_ID:TOKEN`: the endpoint URL configured in
Salesforce ends in `?token=TOKEN`, a random value `salesloop tenants set-secret` generates, compared in
constant time before the body is parsed; then the envelope's `OrganizationId` must be the tenant's org.
Optionally the sender's address must be in the tenant's allowed networks.

An org id has two forms: Setup shows 15 case-sensitive characters, Outbound Messages carry 18 (some
senders 15): the 15 and a checksum of their case. Either form is taken, in the secret and in messages,
and both are compared in the 18-character form; an 18-character id whose last three characters are
not the checksum of its first 15 names no org (a mistyped or altered id), so it matches none.
A secret set before tokens existed is the org id alone: its deliveries are refused unless the tenant
opted in to `accept_without_token` (docs/vendors/salesforce.md).

The XML is parsed with defusedxml and any DTD is refused outright: SOAP forbids them, and refusing the
declaration means no entity is ever expanded or fetched. Mapping the sObjects is `salesforce.py`'s.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .common import InboundRequest, PayloadError, SignatureError
from .kit import equal

TOKEN_PARAM = "token"
MIN_TOKEN_CHARS = 32
_TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-_")
_ORG_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_CHECKSUM_CHARS = string.ascii_uppercase + "012345"
_ORG_ID_FORMAT = "a Salesforce Organization ID is 15 or 18 letters and digits"
ACK_CONTENT_TYPE = "text/xml; charset=utf-8"
_SOAP = "{http://schemas.xmlsoap.org/soap/envelope/}"
_OM = "{http://soap.sforce.com/2005/09/outbound}"
_XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
ACK = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<soapenv:Body>"
    b'<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">'
    b"<Ack>true</Ack>"
    b"</notificationsResponse>"
    b"</soapenv:Body>"
    b"</soapenv:Envelope>"
)


@dataclass(frozen=True)
class Notification:
    id: str
    sobject: str
    fields: dict[str, str | None]


@dataclass(frozen=True)
class OutboundMessage:
    organization_id: str | None
    notifications: list[Notification]


def parse(body: bytes) -> OutboundMessage:
    try:
        root = SafeET.fromstring(body, forbid_dtd=True)
    except DefusedXmlException:
        raise PayloadError(None, "XML with a DTD or entity declarations is not accepted") from None
    except SafeET.ParseError as exc:
        raise PayloadError(None, f"not well-formed XML: {exc}") from None
    if root.tag != f"{_SOAP}Envelope":
        raise PayloadError("Envelope", "must be a SOAP 1.1 envelope")
    node = root.find(f"{_SOAP}Body/{_OM}notifications")
    if node is None:
        raise PayloadError("notifications", "must be an Outbound Message notifications element")
    notifications = []
    for i, item in enumerate(node.findall(f"{_OM}Notification")):
        notification_id = _text(item.find(f"{_OM}Id"))
        sobject = item.find(f"{_OM}sObject")
        if not notification_id:
            raise PayloadError("Notification.Id", "is required", i)
        if sobject is None:
            raise PayloadError("Notification.sObject", "is required", i)
        kind = (sobject.get(f"{_XSI}type") or "").rpartition(":")[2]
        fields = {_local(child.tag): _field(child) for child in sobject}
        notifications.append(Notification(notification_id, kind, fields))
    return OutboundMessage(_text(node.find(f"{_OM}OrganizationId")), notifications)


def _text(node: Element | None) -> str | None:
    return (node.text or "").strip() or None if node is not None else None


def _field(node: Element) -> str | None:
    if (node.get(f"{_XSI}nil") or "").lower() == "true":
        return None
    return node.text or ""


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


# ------------------------------------------------------------------------------------- authenticity


def authenticate(
    request: InboundRequest, secret: str, *, allowed_networks: Sequence[str], accept_without_token: bool
) -> None:
    """SignatureError unless the delivery comes from an allowed network (when any are set), carries
    the tenant's endpoint token (or none, with `accept_without_token`) and the tenant's org id."""
    if allowed_networks and not _ip_allowed(request.client_ip, allowed_networks):
        raise SignatureError("sender address is not in the allowed networks")
    expected, token = split_secret(secret)
    _check_token(request.url, token, accept_without_token)
    try:
        org = canonical_org_id(parse(request.body).organization_id or "")
        matches = equal(org, canonical_org_id(expected))
    except ValueError:
        matches = False
    if not matches:
        raise SignatureError("OrganizationId is not the tenant's Salesforce org")


def canonical_org_id(org: str) -> str:
    """The 18-character form of an org id given in either form; ValueError when it is neither, or when
    an 18-character id's last three characters are not the case checksum of its first 15.

    The checksum: for each 5 characters of the 15, the number whose bit i is set when character i is
    a capital A-Z, as a character of A-Z0-5."""
    if not _ORG_ID.fullmatch(org):
        raise ValueError(_ORG_ID_FORMAT)
    checksum = "".join(
        _CHECKSUM_CHARS[sum(1 << i for i, char in enumerate(org[start : start + 5]) if "A" <= char <= "Z")]
        for start in (0, 5, 10)
    )
    if len(org) == 18 and org[15:] != checksum:
        raise ValueError(
            f"{org[:15]}... is not a Salesforce Organization ID: its last three characters are not the"
            f" checksum of the first 15 ({checksum}); copy it again from Setup"
        )
    return org[:15] + checksum


def split_secret(secret: str) -> tuple[str, str | None]:
    """(org id, endpoint token) of a stored `ORG_ID:TOKEN`; a secret set before tokens has no token."""
    org, colon, token = secret.strip().partition(":")
    return org, token if colon else None


def check_secret(secret: str) -> None:
    org, token = split_secret(secret)
    if not _ORG_ID.fullmatch(org):
        raise ValueError("a Salesforce secret is the Organization ID (15 or 18 letters and digits)[:TOKEN]")
    canonical_org_id(org)
    if token is not None and (len(token) < MIN_TOKEN_CHARS or not set(token) <= _TOKEN_CHARS):
        raise ValueError(
            f"the endpoint token must be at least {MIN_TOKEN_CHARS} of A-Z a-z 0-9 - _;"
            " give the org id alone to have one generated"
        )


def url_secret(value: str) -> tuple[str, str]:
    """What `salesloop tenants set-secret` stores for `value` (`ORG_ID`, or `ORG_ID:TOKEN`, checked by
    `check_secret`): the org id in its 18-character form and a fresh token when none is given; and the
    query string of the endpoint URL to paste into Salesforce."""
    org, token = split_secret(value)
    token = token or secrets.token_urlsafe(32)
    return f"{canonical_org_id(org)}:{token}", urlencode({TOKEN_PARAM: token})


def _check_token(url: str, token: str | None, optional: bool) -> None:
    """The endpoint URL's token against the tenant's, in constant time; none matches a missing one."""
    mismatch = SignatureError("the endpoint URL's token does not match")
    try:
        sent = parse_qs(urlsplit(url).query, max_num_fields=20).get(TOKEN_PARAM)
    except ValueError:  # more fields than any endpoint URL has
        raise mismatch from None
    if sent is None and optional:
        return
    if sent is None:
        raise SignatureError(f"missing token: the endpoint URL must end in ?{TOKEN_PARAM}=")
    if token is None or len(sent) != 1 or not equal(sent[0], token):
        raise mismatch


def _ip_allowed(client_ip: str | None, networks: Sequence[str]) -> bool:
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(net, strict=False) for net in networks)


def decoy() -> str:
    """A secret no tenant has, in the format of theirs."""
    return f"{canonical_org_id('00D' + secrets.token_hex(6))}:{secrets.token_urlsafe(32)}"
