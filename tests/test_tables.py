"""Tables as a user reads them: datetime columns to the second, blanks not NaN, text left-aligned, short checksums, sentences for empty tables."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pandas as pd
from conftest import ADD_VENUE, EVENTS

from migmagic import display


def test_timestamp_reads_both_formats_as_naive_utc() -> None:
    assert display.timestamp("2026-12-01 14:22:51.821686+0000") == datetime(2026, 12, 1, 14, 22, 51, 821686)
    assert display.timestamp("2026-12-01 15:22:51.5+0100") == datetime(2026, 12, 1, 14, 22, 51, 500000)
    assert display.timestamp("2026-12-01 14:13:09") == datetime(2026, 12, 1, 14, 13, 9)
    assert display.timestamp(datetime(2026, 1, 2, 3, 4, 5)) == datetime(2026, 1, 2, 3, 4, 5)
    assert display.timestamp(None) is None and display.timestamp("") is None


def test_history_dates_are_datetime_columns_shown_to_the_second(migrator: Any) -> None:
    migrator.revision("create events table", EVENTS)
    migrator.upgrade("head")
    migrator.revision("add venue", ADD_VENUE)
    h = migrator.history()
    assert pd.api.types.is_datetime64_any_dtype(h["created"]) and pd.api.types.is_datetime64_any_dtype(h["applied"])
    assert h["created"].dt.tz is None and h["applied"].dt.tz is None
    plain, rich = repr(h), h._repr_html_()
    stamps = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\S*", plain)
    assert len(stamps) == 3 and all(len(s) == 19 for s in stamps), plain  # 2 created, 1 applied; no fractions, no +0000
    assert len(re.findall(r">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d<", rich)) == 3, rich
    for text in (plain, h.to_string(), rich):
        assert "NaN" not in text and "NaT" not in text and "None" not in text


def test_nothing_applied_history_still_has_datetime_columns(migrator: Any) -> None:
    migrator.revision("create events table", EVENTS)
    h = migrator.history()
    assert pd.api.types.is_datetime64_any_dtype(h["applied"])
    assert "NaT" not in h.to_string()


def test_missing_values_are_blank_in_to_string_too() -> None:
    t = display.table([{"a": "x", "b": None, "n": 1.5}, {"a": None, "b": "y", "n": None}], ["a", "b", "n"])
    for text in (t.to_string(), repr(t), t._repr_html_()):
        assert "NaN" not in text and "None" not in text and "nan" not in text, text


def test_text_columns_are_left_aligned() -> None:
    t = display.table([{"message": "a", "seconds": 1.25}, {"message": "a longer one", "seconds": 10.5}], ["message", "seconds"])
    lines = repr(t).splitlines()
    assert lines[0].startswith("message")
    assert lines[1].startswith("a ") and lines[2].startswith("a longer one")
    rich = t._repr_html_()
    assert "<th style='text-align:left'>message</th>" in rich
    assert "<td style='text-align:left'>a longer one</td>" in rich
    assert "<td style='text-align:right'>10.5</td>" in rich
    assert "<script" not in rich


def test_log_shows_short_checksums_and_keeps_the_full_value(migrator: Any) -> None:
    migrator.revision("create events table", EVENTS)
    migrator.upgrade("head")
    log = migrator.log()
    full = log["checksum"].iloc[0]
    assert re.fullmatch(r"[0-9a-f]{64}", full)
    for text in (repr(log), log.to_string(), log._repr_html_()):
        assert full not in text and full[:12] in text


def test_an_empty_table_shows_a_sentence() -> None:
    t = display.table([], ["revision", "message"], "No revisions yet.")
    assert repr(t) == "No revisions yet." == t.to_string()
    assert t._repr_html_() == "<p><em>No revisions yet.</em></p>"
    assert "(no rows)" not in repr(display.table([], ["a"]))
    assert repr(t.copy()) == "No revisions yet."  # the sentence survives pandas operations


def test_empty_sections_of_a_table_schema_say_so(migrator: Any) -> None:
    migrator.revision("create events table", EVENTS)
    migrator.upgrade("head")
    text = repr(migrator.schema("events"))
    assert "No foreign keys." in text and "(no rows)" not in text
    assert repr(migrator.history(None).iloc[0:0]) == "No revisions yet."
