"""Record owners -> reps. An export names a record's owner by id (Data Loader's `OwnerId`, HubSpot's
`hubspot_owner_id`) or by name (HubSpot's "Deal owner", a Salesforce report's "Opportunity Owner").

- an owner listed in the `--rep-map` file (CSV `owner,rep_id`; owner compared ignoring case) is that
  rep: the event carries `rep_id`;
- else an id becomes the event's `rep_alias` (`hubspot_owner_id` / `salesforce_user_id`), which the
  aggregator resolves like a webhook's; an alias no rep has yet counts as unassigned until it is added
  and `salesloop rebuild` runs;
- else (a name not in the map) the event has no rep.
Owners that are no rep now are listed in the summary with the rows that name them.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from services.core import limits
from services.core.events import AliasKind, RepAlias

_IDENTITY = limits.identity(limits.MAX_ALIAS_LEN)
_Rep = tuple[str | None, RepAlias | None]  # (rep_id, rep_alias)


class RepMapError(ValueError):
    pass


@dataclass
class Owners:
    rep_map: Mapping[str, str] = field(default_factory=dict)  # casefolded owner -> rep id
    aliases: Mapping[tuple[str, str], str] = field(default_factory=dict)  # (kind, value) -> rep id
    unresolved: Counter[str] = field(default_factory=Counter)  # owner as written -> rows
    resolved: Counter[str] = field(default_factory=Counter)  # "rep map" / "alias" -> rows
    _alias_cache: dict[tuple[str, str], RepAlias | None] = field(default_factory=dict)
    # (owner, kind, is_id) -> what `resolve` returns for it, and the count its rows add to
    _resolved: dict[tuple[str, str, bool], tuple[_Rep, Counter[str], str]] = field(default_factory=dict)

    def resolve(self, owner: str | None, kind: AliasKind, is_id: bool) -> _Rep:
        """(rep_id, rep_alias) for an owner value; is_id says the value is the vendor's owner id.
        An export names its few owners again and again: each is worked out once."""
        if owner is None:
            return None, None
        key = (owner, kind, is_id)
        hit = self._resolved.get(key)
        if hit is None:
            hit = self._resolved[key] = self._resolve(owner, kind, is_id)
        rep, counter, name = hit
        counter[name] += 1
        return rep

    def _resolve(self, owner: str, kind: AliasKind, is_id: bool) -> tuple[_Rep, Counter[str], str]:
        rep_id = self.rep_map.get(owner.casefold())
        if rep_id is not None:
            return (rep_id, None), self.resolved, "rep map"
        if not is_id:
            return (None, None), self.unresolved, owner
        alias = self._alias(kind, owner)
        if alias is None or (kind, alias.value) not in self.aliases:
            return (None, alias), self.unresolved, owner
        return (None, alias), self.resolved, "alias"

    def _alias(self, kind: AliasKind, value: str) -> RepAlias | None:
        key = (kind, value)
        if key not in self._alias_cache:
            try:
                self._alias_cache[key] = RepAlias(kind=kind, value=_IDENTITY(value))
            except limits.Invalid:
                self._alias_cache[key] = None  # no rep's alias can match it
        return self._alias_cache[key]


def read_rep_map(path: Path) -> dict[str, str]:
    """`owner,rep_id` lines (a header row `owner,rep_id` is allowed); RepMapError names the line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RepMapError(f"{path}: cannot be read as UTF-8 text: {exc}") from None
    out: dict[str, str] = {}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and [c.casefold() for c in cells[:2]] == ["owner", "rep_id"]):
            continue
        if len(cells) != 2 or not all(cells):
            raise RepMapError(f"{path}, line {number}: expected two columns, owner,rep_id")
        try:
            out[cells[0].casefold()] = limits.rep_id(cells[1])
        except limits.Invalid as exc:
            raise RepMapError(f"{path}, line {number}: rep_id {cells[1]!r} {exc.reason}") from None
    return out
