"""Salesforce Outbound Messages as SOAP: the `notifications` envelope and its acknowledgement.

The XML is parsed with defusedxml and any DTD is refused outright: SOAP forbids them, and refusing the
declaration means no entity is ever expanded or fetched. Mapping the sObjects is `salesforce.py`'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from .common import PayloadError

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
