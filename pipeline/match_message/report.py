"""Step 5's end-of-run report: the statistics table, invitations per event, and sample messages."""

from collections import Counter
from typing import Any, Optional

from pipeline.match_message.asking import CAMPAIGNS, SHORTLIST_SIZE
from pipeline.match_message.costs import cache_savings_usd, sms_price_per_segment
from pipeline.match_message.phases import RunOutcome
from pipeline.match_message.team_loop import hold_counts
from pipeline.match_message.stages import COMPLETE_STATUSES, STAGES
from pipeline.match_message.texts import ONE_SEGMENT_CHARS
from pipeline.match_message.upload import Uploader
from utils.offline_engine import seats_left
from utils.sms import rule_of



def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "n/a"


def _hold_counts(held: dict) -> dict[str, int]:
    """Held members per kind of reason (a reason given as plain text counts as "other")."""
    counts = hold_counts({user_id: reason for user_id, reason in held.items() if hasattr(reason, "kind")})
    others = sum(1 for reason in held.values() if not hasattr(reason, "kind"))
    return {**counts, **({"other": others} if others else {})}


def report_rows(counts: dict, outcome: RunOutcome, generator, uploader: Optional[Uploader],
                wall_seconds: float) -> list[tuple[str, Any]]:
    """The end-of-run statistics table.

    Args:
        counts: "loaded", "unusable" (members skipped on input).
        outcome: What the phases did.
        generator: The run's generator (for its calls per stage and usage rows).
        uploader: The uploader, or None when not uploading.
        wall_seconds: The run's duration.

    Returns:
        (label, value) rows.
    """
    selected = [outcome.records.get(user["id"]) for user in outcome.selected]
    selected = [record for record in selected if record is not None]
    made = [record for record in selected if record.get("status") in COMPLETE_STATUSES]
    changed = set(outcome.changed)
    new = [record for record in made if record["user_id"] in changed]
    assigned = [choice for choice in outcome.assignment.values() if choice is not None]
    no_event = [user_id for user_id, choice in outcome.assignment.items() if choice is None]
    rows: list[tuple[str, Any]] = [
        ("members in enriched_users.json", counts["loaded"]),
        *counts.get("repairs", []),
        ("skipped: not an object, no id or no summary", counts["unusable"]),
        ("selected (--user-id, --limit)", len(outcome.selected)),
        ("held by the team", len(outcome.held)),
        *[(f"  held: {kind.replace('_', ' ')}", number) for kind, number in _hold_counts(outcome.held).items()],
        ("opted out (no message)", len(outcome.opted_out)),
        ("kept: made by Claude (offline run)", len(outcome.kept_claude)),
    ]
    calls = generator.calls_by_stage()
    for stage in STAGES:
        causes = outcome.causes[stage]
        rows.append((f"{stage}: members run", sum(causes.values())))
        rows += [(f"  {stage} cause: {cause}", number) for cause, number in sorted(causes.items())]
        if calls is not None:
            rows.append((f"  {stage}: Claude calls", calls[stage]))
    rows += [
        ("assigned an event", len(assigned)),
        ("no event (whole shortlist full)", len(no_event)),
        ("assigned their first choice", sum(1 for choice in assigned if choice["rank"] == 1)),
        ("share assigned their first choice", _share(sum(1 for c in assigned if c["rank"] == 1), len(assigned))),
        ("finished this run", len(new)),
        ("skipped: up to date", outcome.up_to_date),
        ("uploaded only (generated before)", outcome.upload_only),
        ("failed", sum(1 for record in selected if record.get("status") == "failed")),
    ]
    campaigns = Counter(record["campaign"] for record in made)
    rows += [(f"  campaign: {name}", campaigns[name]) for name in CAMPAIGNS]
    approved = sum(1 for record in made if record["status"] == "approved")
    rows += [
        ("approved", approved),
        ("needs review", len(made) - approved),
        ("approval rate", _share(approved, len(made))),
        ("passed the compliance gate", sum(1 for record in made if not record.get("compliance_issues"))),
    ]
    if calls is not None:
        rows.append(("quality check approved (Claude)",
                     sum(1 for record in made if record.get("approved_by_quality_check") is True)))
    if uploader is not None:
        rows += [("uploaded to Airtable", uploader.uploaded), ("upload failures", uploader.failed)]
    rows += generator.report_rows()
    if calls is not None:
        saved = cache_savings_usd(generator.ask.usage, generator.model)
        rows.append(("cache saved (USD, next to the cost above)", "n/a" if saved is None else f"{saved:.4f}"))
    rows += sms_rows(made, getattr(generator, "chars_under", None))
    # Messages per failed rule (a message with two spam findings counts once under "spam").
    by_rule = Counter(rule for record in made for rule in {rule_of(f) for f in record.get("compliance_issues", [])})
    rows += [(f"  compliance failures: {rule}", number) for rule, number in sorted(by_rule.items())]
    rows.append(("wall time (s)", f"{wall_seconds:.1f}"))
    return rows


def sms_rows(made: list[dict], chars_under: Optional[int]) -> list[tuple[str, Any]]:
    """The segment mix of the finished messages and the SMS cost at this run's budget (from their real segments).

    At the seed's budget, one more row estimates the same members at --max-segments 1 as 1 segment each:
    those messages are not written, so their real segments are unknown (a name outside GSM-7 may cost more).
    """
    price = sms_price_per_segment()
    segments = Counter(record["sms_segments"] for record in made if "sms_segments" in record)
    rows: list[tuple[str, Any]] = [(f"  SMS of {count} segment{'s' if count > 1 else ''}", segments[count])
                                   for count in sorted(segments)]
    total = sum(count * number for count, number in segments.items())
    one_segment = chars_under is not None and chars_under <= ONE_SEGMENT_CHARS + 1
    budget = "1 segment (--max-segments 1)" if one_segment else "under 180 characters"
    rows += [("SMS budget of this run", budget), ("estimated SMS cost (USD)", f"{total * price:.2f}")]
    if not one_segment:
        rows.append(("  estimate: the same members at --max-segments 1, 1 segment each (USD)",
                     f"{sum(segments.values()) * price:.2f}"))
    return rows


def invitation_rows(outcome: RunOutcome, events: list[dict]) -> list[str]:
    """Invitations per event: invites (earlier + this run), free seats, cap, and the shortlist ranks used.

    Returns:
        Text lines of an aligned table, one per event with an invitation or a cap, and a header.
    """
    by_event: dict[str, Counter] = {}
    for choice in outcome.assignment.values():
        if choice is not None:
            by_event.setdefault(choice["event_id"], Counter())[choice["rank"]] += 1
    header = ["event", "invites", "earlier", "free seats", "cap"] + [f"rank {r}" for r in range(1, SHORTLIST_SIZE + 1)]
    table = []
    for event in events:
        ranks = by_event.get(event["id"], Counter())
        earlier = outcome.prior.get(event["id"], 0)
        invites = earlier + sum(ranks.values())
        if not invites:
            continue
        cap = outcome.caps.get(event["id"])
        free = seats_left(event)
        name = f"{str(event.get('name') or '')[:32]} ({event['id']})"
        table.append([name, str(invites), str(earlier), "?" if free is None else str(free),
                      "none" if cap is None else str(cap)] + [str(ranks[r]) for r in range(1, SHORTLIST_SIZE + 1)])
    widths = [max(len(row[i]) for row in [header] + table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row))
             for row in [header] + table]
    return lines


def assigned_invitations(outcome: RunOutcome) -> Counter:
    """Invitations per event id that this run's assignment gave (earlier ones not included)."""
    return Counter(choice["event_id"] for choice in outcome.assignment.values() if choice is not None)


def invitation_totals(outcome: RunOutcome) -> Counter:
    """Invitations per event id after the run: the earlier ones (saved and held) plus this run's assignment."""
    totals = Counter(outcome.prior)
    totals.update(assigned_invitations(outcome))
    return totals


def over_cap_events(outcome: RunOutcome) -> list[str]:
    """Event ids to which this run gave more invitations than the room its cap left: always empty unless a bug.

    Earlier invitations alone may exceed a cap that shrank since (seats were booked): that is normal,
    and this run then adds none there. Only invitations beyond `max(0, cap - earlier)` are flagged.
    """
    return [event_id for event_id, count in assigned_invitations(outcome).items() if outcome.caps.get(event_id) is not None
            and count > max(0, outcome.caps[event_id] - outcome.prior.get(event_id, 0))]


def sample_messages(records: list[dict], count: int = 3) -> list[str]:
    """A few finished messages to show on the console."""
    made = [record for record in records if record.get("status") in COMPLETE_STATUSES]
    return [f"{record['user_name']} -> {record['event_name']} [{record['campaign']}]: {record['message']}"
            for record in made[:count]]
