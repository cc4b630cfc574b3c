"""The review page: one static HTML file that shows a step 5 run (or preview) to the people who send it.

`render_review_page(records, summary, previous)` returns the page as text; the caller writes it
(atomically) to data/processed/review.html. The page is self-contained: no network request, no
external script, style or font, so it opens by double-click and works offline.

Member and event text comes from outside, so every value is HTML-escaped when the rows are written
on the server side; the page's own script only hides and shows rows (it never writes HTML). A
Content-Security-Policy allows only the page's own inline script and style, by their SHA-256 hashes,
so even a value that slipped past escaping could not run or load anything.
"""

import base64
import hashlib
import html
from collections import Counter
from datetime import tzinfo
from typing import Any, Iterable, Mapping, Optional

from pipeline.match_message.costs import segment_mix, sms_price_per_segment
from utils.dates import parse_iso_date
from utils.offline_engine import seats_left
from utils.people import format_day, format_time, is_number, weekday_name
from utils.sms import sms_encoding, sms_segments

# Rows are shown in this status order (input order within a status); unknown statuses come last.
STATUS_ORDER = ("needs_review", "failed", "no_event", "opted_out", "approved")
# Statuses that mean a message will go out (and take a seat in the event's invitations).
_SENDABLE = frozenset({"needs_review", "approved"})

_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header,section{padding:12px 24px}
header{background:#1d2330;color:#fff}
h1{font-size:20px;margin:0 0 4px}
h2{font-size:16px;margin:8px 0}
.meta{margin:0;color:#c9cfdb}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:0}
.card{background:#fff;border:1px solid #dfe3ea;border-radius:6px;padding:8px 14px;min-width:130px}
.card dt{font-size:12px;color:#5b6475}
.card dd{margin:0;font-size:18px;font-weight:600}
table{border-collapse:collapse;background:#fff;width:100%}
th,td{border-bottom:1px solid #e3e6ec;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4;font-size:12px;position:sticky;top:0}
table.small{width:auto}
.controls{display:flex;flex-wrap:wrap;gap:12px;align-items:center;margin:8px 0}
.controls input[type=search]{min-width:260px;padding:4px 6px}
.controls select{max-width:260px}
.badge{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;font-weight:600;background:#e3e6ec}
.s-needs_review{background:#ffe2b3;color:#7a4b00}
.s-approved{background:#d3f2d9;color:#1d6b2f}
.s-failed{background:#ffd6d6;color:#8a1c1c}
.s-no_event{background:#e0e4ff;color:#2d3a8c}
.changed{background:#dff3ff;color:#0b5483}
.sms{white-space:pre-wrap;max-width:460px;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px}
.before{color:#8a1c1c;text-decoration:line-through}
.label{font-size:11px;color:#5b6475;text-transform:uppercase}
.small-text{font-size:12px;color:#5b6475}
ul.reasons{margin:0;padding-left:16px;max-width:360px}
.over{color:#8a1c1c;font-weight:600}
.num{text-align:right}
"""

_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.msg"));
  var status = document.getElementById("filter-status");
  var campaign = document.getElementById("filter-campaign");
  var eventFilter = document.getElementById("filter-event");
  var changed = document.getElementById("filter-changed");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  function apply() {
    var query = search.value.trim().toLowerCase();
    var count = 0;
    rows.forEach(function (row) {
      var visible = (!status.value || row.dataset.status === status.value)
        && (!campaign.value || row.dataset.campaign === campaign.value)
        && (!eventFilter.value || row.dataset.event === eventFilter.value)
        && (!changed.checked || row.dataset.changed === "1")
        && (!query || row.textContent.toLowerCase().indexOf(query) !== -1);
      row.hidden = !visible;
      if (visible) { count += 1; }
    });
    shown.textContent = count + " of " + rows.length + " messages shown";
  }
  [status, campaign, eventFilter, changed].forEach(function (control) {
    control.addEventListener("change", apply);
  });
  search.addEventListener("input", apply);
  apply();
})();
"""


def _hash(text: str) -> str:
    """The CSP source for an inline element's exact text."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src {_hash(_SCRIPT)}; style-src {_hash(_STYLE)}; "
    "base-uri 'none'; form-action 'none'"
)


def _esc(value: Any) -> str:
    """A value as escaped HTML text ("" for None)."""
    return html.escape("" if value is None else str(value), quote=True)


def _stored_text(value: Any) -> str:
    """A record value as plain text: strings as they are, numbers as text, anything else "" .

    Not `texts.text_of`, which cleans text and drops numbers: the page shows what the record holds.
    """
    if isinstance(value, str):
        return value
    if is_number(value):
        return str(value)
    return ""


def _usd(value: Any, digits: int = 4) -> str:
    """A dollar amount, or "n/a"."""
    if is_number(value):
        return f"${value:,.{digits}f}"
    return "n/a"


def event_facts(events: Iterable[dict], zone: tzinfo, caps: Optional[Mapping[str, int]] = None,
                invites: Optional[Mapping[str, int]] = None) -> list[dict]:
    """The event details the page shows, from enriched events.

    Args:
        events: Enriched events (`id`, `name`, `startDate`, `maxParticipants`, `participant_count`).
        zone: The zone in which days and times are shown.
        caps: Invitation cap per event id, when the run has one.
        invites: The run's invitations per event id, earlier runs and held rows included; without it
            the page counts the invitations among the records it shows.

    Returns:
        One dict per event with `event_id`, `name`, `when` ("Friday, November 27, 2026, 9:30 PM EST"
        or ""), `free_seats` (`seats_left`: None when unknown), `cap` (None when none) and, with
        `invites`, `invites`.
    """
    facts = []
    for event in events:
        if not isinstance(event, dict) or event.get("id") is None:
            continue
        start = parse_iso_date(event.get("startDate"))
        when = f"{weekday_name(start, zone)}, {format_day(start, zone)}, {format_time(start, zone)}" if start else ""
        fact = {"event_id": str(event["id"]), "name": _stored_text(event.get("name")), "when": when,
                "free_seats": seats_left(event), "cap": (caps or {}).get(str(event["id"]))}
        if invites is not None:
            fact["invites"] = invites.get(event["id"], 0)
        facts.append(fact)
    return facts


def _status_rank(status: str) -> int:
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else len(STATUS_ORDER)


def _reasons(record: dict) -> list[tuple[str, str]]:
    """Why a person should look at the record: (source, reason) pairs."""
    found: list[tuple[str, str]] = []
    for source, key in (("review", "review_reasons"), ("gate", "compliance_issues")):
        values = record.get(key)
        if isinstance(values, list):
            found += [(source, _stored_text(value)) for value in values if _stored_text(value)]
    # Step 5's review_reasons repeat each gate failure as "compliance: <failure>": show it once, as the gate's.
    gate = {f"compliance: {reason}" for source, reason in found if source == "gate"}
    found = [(source, reason) for source, reason in found if not (source == "review" and reason in gate)]
    quality = record.get("quality_check_response")
    if isinstance(quality, dict) and isinstance(quality.get("issues"), list):
        found += [("quality check", _stored_text(issue)) for issue in quality["issues"] if _stored_text(issue)]
    for key in ("error", "rewrite_error", "upload_error"):
        if _stored_text(record.get(key)):
            found.append((key.replace("_", " "), _stored_text(record[key])))
    return found


def _size(message: str) -> str:
    """Characters, segments and encoding of a message."""
    if not message:
        return ""
    segments = sms_segments(message)
    return (f"{len(message)} chars<br>{segments} segment{'s' if segments != 1 else ''}<br>"
            f"{_esc(sms_encoding(message))}")


def _previous_messages(previous: Optional[Iterable[dict]]) -> dict[str, str]:
    """The previous message of each member id."""
    messages = {}
    for record in previous or ():
        if isinstance(record, dict) and _stored_text(record.get("user_id")):
            messages[_stored_text(record["user_id"])] = _stored_text(record.get("message"))
    return messages


def _row(record: dict, before: Optional[str], when: str) -> str:
    """One message row."""
    status = _stored_text(record.get("status")) or "unknown"
    message = _stored_text(record.get("message"))
    changed = before is not None and before != message
    quality = record.get("quality_check_response")
    score = _stored_text(quality.get("quality_score")) if isinstance(quality, dict) else ""
    confidence = _stored_text(record.get("confidence_percentage"))
    reasons = "".join(f'<li><span class="label">{_esc(source)}</span> {_esc(reason)}</li>'
                      for source, reason in _reasons(record))
    message_html = f'<div class="sms">{_esc(message)}</div>'
    if changed:
        message_html = (f'<div class="label">before</div><div class="sms before">{_esc(before)}</div>'
                        f'<div class="label">after</div>{message_html}')
    return (
        f'<tr class="msg" data-status="{_esc(status)}" data-campaign="{_esc(_stored_text(record.get("campaign")))}" '
        f'data-event="{_esc(_stored_text(record.get("event_id")))}" data-changed="{1 if changed else 0}">'
        f'<td><span class="badge s-{_esc(status)}">{_esc(status)}</span>'
        + ('<br><span class="badge changed">changed</span>' if changed else "") + "</td>"
        f'<td>{_esc(_stored_text(record.get("user_name")))}<br>'
        f'<span class="small-text">{_esc(_stored_text(record.get("user_id")))}'
        "</span></td>"
        f'<td>{_esc(_stored_text(record.get("campaign")))}</td>'
        f'<td>{_esc(_stored_text(record.get("event_name")))}<br><span class="small-text">{_esc(when)}</span></td>'
        f"<td>{message_html}</td>"
        f'<td class="small-text">{_size(message)}</td>'
        f'<td><ul class="reasons">{reasons}</ul></td>'
        f'<td class="small-text">{"quality " + _esc(score) + "<br>" if score else ""}'
        f'{"confidence " + _esc(confidence) + "%" if confidence else ""}</td>'
        "</tr>"
    )


def _options(values: Iterable[tuple[str, str]]) -> str:
    """`<option>`s for a filter: "all" then each (value, label)."""
    return '<option value="">all</option>' + "".join(
        f'<option value="{_esc(value)}">{_esc(label)}</option>' for value, label in values
    )


def _summary_section(records: list[dict], summary: Mapping[str, Any]) -> str:
    """The run's summary: members by status, costs, segment mix."""
    statuses = Counter(_stored_text(record.get("status")) or "unknown" for record in records)
    mix = segment_mix(_stored_text(record.get("message")) for record in records)
    price = summary.get("sms_price_per_segment")
    price = price if isinstance(price, (int, float)) else sms_price_per_segment()
    cards = [
        ("members", len(records)),
        *((status, statuses[status]) for status in sorted(statuses, key=lambda s: (_status_rank(s), s))),
        ("Claude cost", _usd(summary.get("claude_cost_usd"))),
        ("cache saved", _usd(summary.get("cache_savings_usd"))),
        (f"SMS cost ({mix.segments} segments x {_usd(price)})", _usd(mix.cost_usd(price), 2)),
    ]
    card_html = "".join(f'<div class="card"><dt>{_esc(label)}</dt><dd>{_esc(value)}</dd></div>'
                        for label, value in cards)
    segment_rows = "".join(f"<tr><td>{_esc(label)}</td><td class=\"num\">{count}</td></tr>"
                           for label, count in (("1 segment", mix.by_segments["1"]),
                                                ("2 segments", mix.by_segments["2"]),
                                                ("3+ segments", mix.by_segments["3+"]),
                                                *mix.by_encoding.items()))
    return (f'<section id="summary"><h2>Summary</h2><dl class="cards">{card_html}</dl>'
            f'<h2>Segment mix</h2><table class="small" id="segment-mix"><tr><th>messages</th><th>count</th></tr>'
            f"{segment_rows}</table></section>")


def _events_section(records: list[dict], facts: list[dict]) -> str:
    """Invitations per event against free seats and the cap."""
    invites = Counter(_stored_text(record.get("event_id")) for record in records
                      if record.get("status") in _SENDABLE and _stored_text(record.get("event_id")))
    known = {fact["event_id"]: fact for fact in facts}
    names = {_stored_text(record.get("event_id")): _stored_text(record.get("event_name")) for record in records}
    rows = []
    for event_id in list(known) + sorted(set(invites) - set(known)):
        fact = known.get(event_id, {})
        # The run's own count (earlier invitations included) when it gave one; else what this page shows.
        count, cap = fact.get("invites", invites[event_id]), fact.get("cap")
        over = isinstance(cap, int) and cap > 0 and count > cap
        rows.append(
            f"<tr><td>{_esc(fact.get('name') or names.get(event_id, ''))}<br>"
            f'<span class="small-text">{_esc(event_id)}</span></td><td>{_esc(fact.get("when", ""))}</td>'
            f'<td class="num{" over" if over else ""}">{count}</td>'
            f'<td class="num">{_esc(_stored_text(fact.get("free_seats")))}</td>'
            f'<td class="num">{_esc(_stored_text(cap))}</td></tr>'
        )
    return ('<section id="events"><h2>Invitations per event</h2><table class="small" id="events-table">'
            "<tr><th>event</th><th>when</th><th>invitations</th><th>free seats</th><th>cap</th></tr>"
            + "".join(rows) + "</table></section>")


def render_review_page(records: Iterable[Any], summary: Mapping[str, Any],
                       previous: Optional[Iterable[dict]] = None) -> str:
    """The review page of one run or preview, as a self-contained HTML document.

    Args:
        records: The message records (as in processed_messages.json); entries that are not dicts are
            left out, missing fields are shown empty.
        summary: What the page says about the run; every key is optional: `title` (default "Step 5
            review"), `generated_at`, `model`, `generator`, `claude_cost_usd`, `cache_savings_usd`,
            `sms_price_per_segment` (default `sms_price_per_segment()`), `events` (a list from
            `event_facts`).
        previous: The records of the previous run or preview; a member whose message differs gets a
            before/after view and the "changed" mark.

    Returns:
        The HTML text.
    """
    records = [record for record in records if isinstance(record, dict)]
    facts = [fact for fact in summary.get("events") or () if isinstance(fact, dict) and fact.get("event_id")]
    when_by_event = {str(fact["event_id"]): _stored_text(fact.get("when")) for fact in facts}
    before_by_user = _previous_messages(previous)
    ordered = sorted(enumerate(records), key=lambda pair: (_status_rank(_stored_text(pair[1].get("status"))), pair[0]))
    rows = "".join(
        _row(record, before_by_user.get(_stored_text(record.get("user_id"))) if previous is not None else None,
             when_by_event.get(_stored_text(record.get("event_id")), ""))
        for _, record in ordered
    )
    statuses = sorted({_stored_text(r.get("status")) or "unknown" for r in records}, key=lambda s: (_status_rank(s), s))
    campaigns = sorted({_stored_text(r.get("campaign")) for r in records} - {""})
    events = sorted({(event_id, _stored_text(r.get("event_name")) or event_id)
                     for r in records if (event_id := _stored_text(r.get("event_id")))},
                    key=lambda pair: (pair[1], pair[0]))
    title = _stored_text(summary.get("title")) or "Step 5 review"
    meta = " · ".join(f"{label} {_stored_text(summary.get(key))}" for label, key in
                      (("run", "generated_at"), ("model", "model"), ("generator", "generator"))
                      if _stored_text(summary.get(key)))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{_STYLE}</style></head><body>"
        f'<header><h1>{_esc(title)}</h1><p class="meta">{_esc(meta)}</p></header>'
        + _summary_section(records, summary)
        + _events_section(records, facts)
        + '<section id="messages"><h2>Messages</h2><div class="controls">'
        f'<label>Status <select id="filter-status">{_options((s, s) for s in statuses)}</select></label>'
        f'<label>Campaign <select id="filter-campaign">{_options((c, c) for c in campaigns)}</select></label>'
        f'<label>Event <select id="filter-event">{_options(events)}</select></label>'
        '<label><input type="checkbox" id="filter-changed"> changed only</label>'
        '<input type="search" id="search" placeholder="Search member, event, message, reasons">'
        '<span id="shown"></span></div>'
        '<table id="messages-table"><thead><tr><th>status</th><th>member</th><th>campaign</th><th>event</th>'
        "<th>message</th><th>size</th><th>reasons</th><th>score</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
        f"<script>{_SCRIPT}</script></body></html>\n"
    )
