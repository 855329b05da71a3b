"""How each stored row of an erased contact is rewritten (pure; the SQL is queries.py's).

The contact id becomes its pseudonym and ids that embed it as a `:`-separated part get the pseudonym
in that part (services/core/privacy.py), so the rows still join each other and the events archived
under the new ids.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.core.privacy import erase_contact, erase_update, replace_part

# Positions in the CRM fold's `crm_entities` JSON (services/aggregator/folds/crm.py, `history_json`
# and `Attributed.row`): a change [property, update_id, occurred_at, value, rep_id]; an event
# [event_id, type, occurred_at, received_at, source, rep_id, contact_id, channel, amount, stage].
CHANGE_PROPERTY, CHANGE_UPDATE_ID, CHANGE_VALUE = 0, 1, 3
EVENT_ID, EVENT_CONTACT_ID = 0, 6


class Rewrite:
    """The rewriting rules for one contact id and its pseudonym."""

    def __init__(self, contact_id: str, alias: str) -> None:
        self.contact_id = contact_id
        self.alias = alias

    def id(self, value: str) -> str:
        """An id that may embed the contact id (an event id, an update id)."""
        return replace_part(value, self.contact_id, self.alias)

    def contact(self, value: str | None) -> str | None:
        """A column holding a contact id."""
        return self.alias if value == self.contact_id else value

    def entity_id(self, entity: str, entity_id: str) -> str:
        """A CRM record's id: the contact's own record gets the pseudonym."""
        return self.alias if entity == "contact" and entity_id == self.contact_id else entity_id

    def event(self, payload: str) -> dict[str, Any]:
        data: dict[str, Any] = orjson.loads(payload)
        erase_contact(data, self.contact_id, self.alias)
        return data

    def update(self, row: dict[str, Any]) -> dict[str, Any]:
        data = dict(row)
        erase_update(data, self.contact_id, self.alias)
        return data

    def history(self, text: str) -> str:
        changes = orjson.loads(text)
        for c in changes:
            c[CHANGE_UPDATE_ID] = self.id(c[CHANGE_UPDATE_ID])
            if c[CHANGE_PROPERTY] == "contact":
                c[CHANGE_VALUE] = self.contact(c[CHANGE_VALUE])
        return orjson.dumps(changes).decode()

    def entity_events(self, text: str) -> str:
        events = orjson.loads(text)
        for e in events:
            e[EVENT_ID] = self.id(e[EVENT_ID])
            e[EVENT_CONTACT_ID] = self.contact(e[EVENT_CONTACT_ID])
        return orjson.dumps(events).decode()
