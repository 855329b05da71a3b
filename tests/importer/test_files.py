"""Export files as CRMs and spreadsheets write them: encodings, delimiters, locales' dates and amounts,
and the files that are refused before anything is sent."""

from __future__ import annotations

import codecs
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.importer.csvfile import FileRefused, read_csv
from services.importer.owners import RepMapError, read_rep_map
from services.importer.values import Unreadable, parse_amount, parse_date, parse_flag, parse_time
from tests.importer.support import bodies, map_files, skips

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("text", "day_first", "want"),
    [
        ("2026-03-05T14:22:00.000Z", False, datetime(2026, 3, 5, 14, 22, tzinfo=UTC)),  # Data Loader
        ("2026-03-05T14:22:00.000+0000", False, datetime(2026, 3, 5, 14, 22, tzinfo=UTC)),
        ("2026-03-05T09:22:00-05:00", False, datetime(2026, 3, 5, 14, 22, tzinfo=UTC)),
        ("2026-03-05 14:22", False, datetime(2026, 3, 5, 13, 22, tzinfo=UTC)),  # HubSpot, account's zone
        ("2026-03-05", False, datetime(2026, 3, 5, 11, 0, tzinfo=UTC)),  # a date: noon there
        ("3/5/2026, 2:22 PM", False, datetime(2026, 3, 5, 13, 22, tzinfo=UTC)),  # a US report
        ("3/5/2026 2:22 pm", False, datetime(2026, 3, 5, 13, 22, tzinfo=UTC)),
        ("12/31/2026 12:05 AM", False, datetime(2026, 12, 30, 23, 5, tzinfo=UTC)),
        ("05/03/2026 14:22", True, datetime(2026, 3, 5, 13, 22, tzinfo=UTC)),  # a UK report
        ("25/03/2026", False, datetime(2026, 3, 25, 11, 0, tzinfo=UTC)),  # only one reading
        ("05.03.2026 14:22", False, datetime(2026, 3, 5, 13, 22, tzinfo=UTC)),  # a German report
        ("1772720520000", False, datetime(2026, 3, 5, 14, 22, tzinfo=UTC)),  # Unix milliseconds
    ],
)
def test_times_in_the_forms_the_exports_write(text: str, day_first: bool, want: datetime) -> None:
    assert parse_time(text, BERLIN, day_first=day_first) == want


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "31/31/2026", "13:00", "2026/03/05"])
def test_unreadable_times_say_what_they_got(text: str) -> None:
    with pytest.raises(Unreadable, match="is not a date or time"):
        parse_time(text, BERLIN)


def test_a_date_is_its_calendar_day_in_the_zone() -> None:
    assert parse_date("2026-03-31", BERLIN) == date(2026, 3, 31)
    assert parse_date("2026-03-31T23:30:00Z", BERLIN) == date(2026, 4, 1)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("12500", "12500"),
        ("12500.5", "12500.5"),
        ("12,500.50", "12500.50"),
        ("12.500,50", "12500.50"),  # a comma for decimals
        ("12 500,50", "12500.50"),
        ("1.250.000", "1250000"),
        ("12,5", "12.5"),
        ("$12,500", "12500"),
        ("USD 12,500.00", "12500.00"),
        ("€ 9.000", "9000"),
        ("1'250'000.00", "1250000.00"),  # Swiss
    ],
)
def test_amounts_in_every_locale(text: str, want: str) -> None:
    assert parse_amount(text) == Decimal(want)


@pytest.mark.parametrize("text", ["-5", "twelve", "1e400x", "NaN"])
def test_unreadable_amounts(text: str) -> None:
    with pytest.raises(Unreadable):
        parse_amount(text)


def test_checkboxes() -> None:
    assert [parse_flag(v) for v in ("true", "1", "TRUE", "x", "false", "0", "")[:-1]] == [
        True, True, True, True, False, False
    ]  # fmt: skip
    with pytest.raises(Unreadable):
        parse_flag("maybe")


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_semicolons_and_decimal_commas_as_excel_saves_them_in_europe(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "deals.csv",
        "Record ID;Deal Name;Deal Stage;Amount;Close Date;Create Date;Deal owner\r\n"
        '7101;"Müller; Söhne";Closed Won;12.500,50;30.09.2026;08.09.2026 10:30;Dana Whitfield\r\n'.encode(),
    )
    got = bodies(map_files("hubspot", path)["deals.csv"])
    won = got["hubspot:deal:7101:deal.won"]
    assert (won["amount"], won["occurred_at"]) == ("12500.50", "2026-09-30T12:00:00+00:00")


def test_utf16_tab_separated_as_excel_saves_unicode_text(tmp_path: Path) -> None:
    text = (
        "Record ID\tCreate Date\tOriginal Source\tContact owner\r\n"
        "51399\t2026-09-01 09:00\tOrganic Search\tÅsa\r\n"
    )
    path = _write(tmp_path, "contacts.txt", codecs.BOM_UTF16_LE + text.encode("utf-16-le"))
    export = read_csv(path)
    assert (export.delimiter, export.encoding) == ("\t", "utf-16")
    assert "hubspot:contact:51399:lead.created" in bodies(map_files("hubspot", path)["contacts.txt"])


def test_a_windows_1252_report_is_refused_unless_its_encoding_is_given(tmp_path: Path) -> None:
    text = (
        '"Opportunity ID","Stage","Created Date","Opportunity Owner"\n'
        '"0065e00000GqA1f","Prospecting","9/1/2026","Zoë Ångström"\n'
    )
    path = _write(tmp_path, "report.csv", text.encode("cp1252"))
    with pytest.raises(FileRefused) as refused:
        read_csv(path)
    assert "is not utf-8 text (byte 0xeb on line 2)" in refused.value.reason
    assert "--encoding" in refused.value.reason
    assert read_csv(path, "cp1252").rows[0][3] == "Zoë Ångström"


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (b"", "is empty"),
        (codecs.BOM_UTF8 + b"\r\n \r\n", "is empty"),
        (b"PK\x03\x04\x14\x00\x06\x00", "is an Excel workbook (.xlsx), not CSV"),
        (b"Record ID,Create Date\x00\n", "contains NUL characters"),
        (b",,,\n1,2,3\n", "has no header row"),
    ],
)
def test_files_that_are_no_csv_export_are_refused(tmp_path: Path, data: bytes, says: str) -> None:
    path = _write(tmp_path, "export.csv", data)
    with pytest.raises(FileRefused) as refused:
        read_csv(path)
    assert says in refused.value.reason
    assert str(path) in str(refused.value)


def test_a_header_without_records_imports_nothing(tmp_path: Path) -> None:
    path = _write(tmp_path, "deals.csv", b"Record ID,Deal Stage,Create Date\n")
    assert map_files("hubspot", path)["deals.csv"] == []


def test_a_row_with_an_unreadable_cell_is_skipped_naming_row_and_column(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "deals.csv",
        b"Record ID,Deal Stage,Create Date,Amount,Close Date\n"
        b"7201,Closed Won,2026-09-01,5000,2026-09-20\n"
        b"7202,Closed Won,2026-09-01,five thousand,2026-09-20\n"
        b"\n"
        b"7203,Closed Won,2026-09-01,5000,\n"
        b"7204,Closed Won,sometime,5000,2026-09-20\n",
    )
    rows = map_files("hubspot", path)["deals.csv"]
    skipped = {n: (s.column, s.reason) for n, s in skips(rows).items()}
    assert skipped == {
        3: ("Amount", "'five thousand' is not an amount"),
        5: ("Close Date", "is empty, and a deal.won deal needs the date it closed"),
        6: ("Create Date", "'sometime' is not a date or time this import reads"),
    }
    assert sorted(bodies(rows)) == ["hubspot:deal:7201:deal.created", "hubspot:deal:7201:deal.won"]


def test_the_rep_map_is_owner_then_rep_id(tmp_path: Path) -> None:
    path = _write(tmp_path, "map.csv", b"owner,rep_id\nDana Whitfield,r-dana\n\n0055e000003QwEtAAK,r-sam\n")
    assert read_rep_map(path) == {"dana whitfield": "r-dana", "0055e000003qwetaak": "r-sam"}
    bad = _write(tmp_path, "bad.csv", b"Dana Whitfield\n")
    with pytest.raises(RepMapError, match="line 1: expected two columns"):
        read_rep_map(bad)
    slash = _write(tmp_path, "slash.csv", b"Dana,r/dana\n")
    with pytest.raises(RepMapError, match="line 1: rep_id 'r/dana'"):
        read_rep_map(slash)


@pytest.mark.parametrize(
    ("data", "says"),
    [
        (
            b"Record ID,Deal Stage,Create Date\n7301,Closed Won,2026-09-01\n7302,Closed, Won,2026-09-02\n",
            "row 3 has a value in column 4 ('2026-09-02') but the header names 3 columns: a comma inside",
        ),
        (
            b'Record ID,Deal Stage,Create Date\n7301,"Closed Won,2026-09-01\n7302,Closed Won,2026-09-02\n',
            "is not valid CSV at row 2 (line 3): unexpected end of data",
        ),
        (
            b'Record ID,Deal Stage,Create Date\n7301,"Closed" Won,2026-09-01\n',
            "is not valid CSV at row 2 (line 2)",
        ),
    ],
)
def test_a_malformed_csv_is_refused_naming_its_row_and_column(tmp_path: Path, data: bytes, says: str) -> None:
    path = _write(tmp_path, "deals.csv", data)
    with pytest.raises(FileRefused) as refused:
        read_csv(path)
    assert says in refused.value.reason
