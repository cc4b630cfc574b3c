"""Hand-built step 5 records for the review page tests (and a sample page to look at)."""

from pipeline.match_message.review_page import render_review_page

HOSTILE_SCRIPT = "<script>window.__pwned = 1</script>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned = 2">'
HOSTILE_EVENT_NAME = f"Taco Night {HOSTILE_SCRIPT} {HOSTILE_IMG}"

EVENTS = [
    {"event_id": "ev-supper", "name": "Friday Supper Club", "when": "Friday, November 27, 2026, 9:30 PM EST",
     "free_seats": 5, "cap": 15},
    {"event_id": "ev-tacos", "name": HOSTILE_EVENT_NAME, "when": "Saturday, November 28, 2026, 7:00 PM EST",
     "free_seats": 1, "cap": 1},
    {"event_id": "ev-brunch", "name": "Sunday Brunch & Books", "when": "Sunday, November 29, 2026, 11:00 AM EST",
     "free_seats": 8, "cap": 24},
]


def _record(user_id, name, status, campaign, event_index, message, **extra):
    event = EVENTS[event_index]
    record = {
        "user_id": user_id, "user_name": name, "user_email": f"{user_id}@example.com",
        "campaign": campaign, "event_id": event["event_id"], "event_name": event["name"],
        "message": message, "status": status, "confidence_percentage": 80,
        "compliance_issues": [], "quality_check_response": {"quality_score": 85, "approved": True, "issues": []},
    }
    record.update(extra)
    return record


def sample_records() -> list[dict]:
    """Eight records: 3 needs_review, 3 approved, 1 failed, 1 no_event; one hostile event name."""
    link = "https://cucu.li/bookings/"
    return [
        _record("u1", "Maya Chen", "approved", "Seat The Newcomer", 0,
                f"Hi Maya! Jazz fan + tacos? Friday Supper Club at Casa Mezcal, 9:30 PM, 5 seats left. {link}ev-supper"),
        _record("u2", "Ben Ode", "needs_review", "Fill the Table", 1,
                f"Ben, one seat left at Taco Night Saturday 7 PM. Grab it! {link}ev-tacos",
                compliance_issues=["spam: spam-trigger phrase 'act now'; carrier filters block these"],
                review_reasons=["the quality check did not approve it"],
                quality_check_response={"quality_score": 55, "approved": False, "issues": ["Too pushy"]}),
        _record("u3", "Cara Díaz", "approved", "Return to Table", 2,
                f"Cara, we've missed you! Sunday Brunch & Books, 11 AM, bring your latest read. {link}ev-brunch"),
        _record("u4", "Jo Quinn", "needs_review", "Seat The Newcomer", 0,
                f"Hey Jo 🌮 your first supper: Friday 9:30 PM at Casa Mezcal, a communal table of designers "
                f"and chefs who can't wait to meet you. {link}ev-supper",
                compliance_issues=["segments: 2 SMS segments (UCS-2), the limit is 1"]),
        _record("u5", "Dan Host", "failed", "", 0, "", event_id="", event_name="", quality_check_response=None,
                error="Claude answered with something that is not JSON"),
        _record("u6", "Eve Stone", "no_event", "", 0, "", event_id="", event_name="", quality_check_response=None,
                review_reasons=["every event on the shortlist is full"]),
        _record("u7", "Finn Park", "approved", "Fill the Table", 1,
                f"Finn, Taco Night Saturday 7 PM has 1 seat left for a salsa lover. {link}ev-tacos"),
        _record("u8", "Gus Lee", "needs_review", "Return to Table", 2, f"Gus, brunch Sunday 11 AM? {link}ev-brunch",
                review_reasons=["first time this member gets a Claude message"]),
    ]


def previous_records() -> list[dict]:
    """The run before: u1's and u8's messages were different, u3's the same, u7 absent."""
    records = {record["user_id"]: dict(record) for record in sample_records()}
    records["u1"]["message"] = "Hi Maya, Friday Supper Club at Casa Mezcal. https://cucu.li/bookings/ev-supper"
    records["u8"]["message"] = "Gus! Brunch? https://cucu.li/bookings/ev-brunch"
    del records["u7"]
    return list(records.values())


SUMMARY = {"title": "Step 5 review", "generated_at": "2026-11-25 12:00 EST", "model": "claude-sonnet-5-5",
           "generator": "claude", "claude_cost_usd": 0.0421, "cache_savings_usd": 0.0183,
           "sms_price_per_segment": 0.0083, "events": EVENTS}


def sample_page() -> str:
    """The sample page, with a before/after view."""
    return render_review_page(sample_records(), SUMMARY, previous_records())


if __name__ == "__main__":
    import sys

    sys.stdout.write(sample_page())
