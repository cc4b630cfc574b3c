"""pipeline.match_message.review_page, without a browser: escaping, CSP, order, counts, before/after.

The same page in a real browser is tested in tests/test_review_page_browser.py.
"""

import base64
import hashlib
import html
import json
import re
from zoneinfo import ZoneInfo

from pipeline.match_message.review_page import event_facts, render_review_page
from tests.review_page_samples import (
    HOSTILE_EVENT_NAME, HOSTILE_IMG, HOSTILE_SCRIPT, SUMMARY, previous_records, sample_page, sample_records,
)
from utils.paths import PROJ_ROOT


def _rows(page: str) -> list[str]:
    return re.findall(r'<tr class="msg".*?</tr>', page, re.DOTALL)


def test_one_row_per_record_needs_review_first_then_input_order():
    rows = _rows(sample_page())
    records = sample_records()
    assert len(rows) == len(records)
    statuses = [re.search(r'data-status="([^"]*)"', row).group(1) for row in rows]
    assert statuses == ["needs_review"] * 3 + ["failed", "no_event"] + ["approved"] * 3
    members = [re.search(r'<span class="small-text">(u\d)</span>', row).group(1) for row in rows]
    assert members == ["u2", "u4", "u8", "u5", "u6", "u1", "u3", "u7"]


def test_hostile_text_is_escaped_and_the_only_script_is_the_page_own():
    page = sample_page()
    assert HOSTILE_SCRIPT not in page
    assert HOSTILE_IMG not in page
    assert html.escape(HOSTILE_EVENT_NAME, quote=True) in page
    assert page.count("<script") == 1
    assert "<img" not in page


def test_attribute_values_cannot_be_broken_out_of():
    record = dict(sample_records()[0], campaign='x" onmouseover="alert(1)', status="approved' autofocus")
    page = render_review_page([record], {})
    assert 'onmouseover="alert(1)"' not in page
    assert 'data-campaign="x&quot; onmouseover=&quot;alert(1)"' in page


def test_the_page_loads_nothing_from_anywhere():
    page = sample_page()
    tags = re.findall(r"<[A-Za-z][^>]*>", page)
    assert [tag for tag in tags if re.search(r"\s(?:src|href|action|srcset|poster|data)\s*=", tag)] == []
    assert "<link" not in page and "@import" not in page and "url(" not in page


def test_csp_allows_exactly_the_inline_script_and_style_by_hash():
    page = sample_page()
    policy = html.unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page).group(1))
    script = re.search(r"<script>(.*?)</script>", page, re.DOTALL).group(1)
    style = re.search(r"<style>(.*?)</style>", page, re.DOTALL).group(1)

    def digest(text):
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert f"script-src 'sha256-{digest(script)}';" in policy
    assert f"style-src 'sha256-{digest(style)}';" in policy
    assert policy.startswith("default-src 'none';")
    assert "unsafe-inline" not in policy


def test_before_after_only_where_the_message_changed():
    rows = {re.search(r'<span class="small-text">(u\d)</span>', row).group(1): row for row in _rows(sample_page())}
    changed = sorted(user for user, row in rows.items() if 'data-changed="1"' in row)
    assert changed == ["u1", "u8"]  # u3 is the same, u7 is new (no previous record)
    assert "Gus! Brunch?" in rows["u8"] and "Gus, brunch Sunday 11 AM?" in rows["u8"]
    assert "before" not in rows["u3"]


def test_no_previous_run_means_nothing_is_marked_changed():
    page = render_review_page(sample_records(), SUMMARY)
    assert 'data-changed="1"' not in page


def test_summary_counts_costs_and_segment_mix():
    page = sample_page()
    summary = re.search(r'<section id="summary">.*?</section>', page, re.DOTALL).group(0)
    cards = dict(re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", summary))
    assert cards["members"] == "8"
    assert (cards["needs_review"], cards["approved"], cards["failed"], cards["no_event"]) == ("3", "3", "1", "1")
    assert cards["Claude cost"] == "$0.0421"
    assert cards["cache saved"] == "$0.0183"
    # Six messages: five GSM-7 of one segment, u4's UCS-2 (emoji) of 161 chars = 3 x 67-char parts.
    assert cards["SMS cost (8 segments x $0.0083)"] == "$0.07"  # 8 x 0.0083 = 0.0664
    mix = dict(re.findall(r"<tr><td>([^<]*)</td><td class=\"num\">(\d+)</td></tr>", summary))
    assert mix == {"1 segment": "5", "2 segments": "0", "3+ segments": "1", "GSM-7": "5", "UCS-2": "1"}


def test_invitations_per_event_against_free_seats_and_cap():
    page = sample_page()
    table = re.search(r'<table class="small" id="events-table">.*?</table>', page, re.DOTALL).group(0)
    cells = re.findall(r'<td class="num( over)?">([^<]*)</td><td class="num">([^<]*)</td><td class="num">([^<]*)</td>',
                       table)
    # Sendable (approved or needs_review) invitations: supper u1, u4; tacos u2, u7 (cap 1: over); brunch u3, u8.
    assert cells == [("", "2", "5", "15"), (" over", "2", "1", "1"), ("", "2", "8", "24")]


def test_missing_fields_and_odd_entries_are_tolerated():
    page = render_review_page([{}, "not a record", None, {"status": "no_event", "user_id": "u9"}], {})
    assert len(_rows(page)) == 2
    assert 'data-status="unknown"' in page
    assert "n/a" in page  # no cost given
    assert render_review_page([], {}).count('<tr class="msg"') == 0


def test_filter_options_list_statuses_campaigns_and_events():
    page = sample_page()
    status = re.search(r'<select id="filter-status">(.*?)</select>', page).group(1)
    assert re.findall(r'value="([^"]*)"', status) == ["", "needs_review", "failed", "no_event", "approved"]
    campaign = re.search(r'<select id="filter-campaign">(.*?)</select>', page).group(1)
    assert re.findall(r'value="([^"]*)"', campaign) == ["", "Fill the Table", "Return to Table", "Seat The Newcomer"]
    event = re.search(r'<select id="filter-event">(.*?)</select>', page).group(1)
    assert sorted(re.findall(r'value="([^"]*)"', event)) == ["", "ev-brunch", "ev-supper", "ev-tacos"]


def test_event_facts_from_enriched_events():
    events = json.loads((PROJ_ROOT / "tests" / "fixtures" / "enriched_events.json").read_text(encoding="utf-8"))
    facts = event_facts(events + [{"name": "no id"}], ZoneInfo("America/New_York"), caps={"q-supper": 15})
    assert len(facts) == len(events)
    supper = facts[0]
    # startDate 2026-11-28T02:30Z is Friday 9:30 PM in New York; 10 seats, 5 taken.
    assert supper == {"event_id": "q-supper", "name": "Friday Supper Club",
                      "when": "Friday, November 27, 2026, 9:30 PM EST", "free_seats": 5, "cap": 15}
    assert all(fact["cap"] is None for fact in facts[1:])


def test_event_facts_free_seats_are_the_caps_seats_and_missing_dates_are_tolerated():
    # The page shows the seats the cap is computed from (`seats_left`: participant_count, never negative,
    # a float capacity is a number), not a second count of its own.
    facts = event_facts([{"id": 7, "maxParticipants": 6, "participants": ["a", "b"], "participant_count": 5},
                         {"id": 8, "maxParticipants": 4, "participant_count": 6},
                         {"id": 9, "maxParticipants": 8.0, "participant_count": 2}], ZoneInfo("UTC"))
    assert [fact["free_seats"] for fact in facts] == [1, 0, 6]
    assert facts[0] == {"event_id": "7", "name": "", "when": "", "free_seats": 1, "cap": None}


def test_the_events_table_shows_the_runs_invitations_not_only_the_records_on_the_page():
    # A preview of one member: the saved run has 14 more invitations to the same event.
    facts = event_facts([{"id": "ev", "name": "Supper", "maxParticipants": 10, "participant_count": 5}],
                        ZoneInfo("UTC"), caps={"ev": 15}, invites={"ev": 15})
    record = {"user_id": "u1", "status": "approved", "event_id": "ev", "event_name": "Supper", "message": "Hi"}
    page = render_review_page([record], {"events": facts})
    table = re.search(r'<table class="small" id="events-table">(.*?)</table>', page, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', table) == ["15", "5", "15"]
