"""Cost before spending: the plan of a run per stage (--dry-run), its estimated cost, and --max-cost.

The plan reads only the saved records and the current settings: it makes no call and writes nothing.
A member's stages are decided with the same `stage_cause` the run uses. A member whose saved
shortlist no longer holds is counted under "to match" and, since its event is not known yet, under
"to write" (its write and check calls are estimated too); so is a member with no saved message. A
member whose match holds keeps the event of their saved record; one who got no event last time
(every shortlisted event full) counts as up to date.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

from pipeline.match_message.costs import (
    CallLogAverages, StageEstimate, estimate_stage, segment_mix, sms_price_per_segment, total_estimate,
)
from pipeline.match_message.stages import COMPLETE_STATUSES, stage_cause, stage_entry
from utils.errors import PipelineError

#: The plan's rows, in the order they are printed.
PLAN_ROWS = ("to match", "to write", "to check", "upload only", "held", "up to date")


@dataclass
class RunPlan:
    """What a run would do: members per plan row, the causes per stage, and the calls per stage."""

    members: Counter = field(default_factory=Counter)  # plan row -> members
    causes: dict = field(default_factory=lambda: {stage: Counter() for stage in ("match", "write", "check")})
    # Per stage, the members whose event is known (user, event, choice) and how many are not known yet.
    known: dict = field(default_factory=lambda: {"write": [], "check": []})
    unknown: Counter = field(default_factory=Counter)
    messages: list = field(default_factory=list)  # saved messages (for the SMS estimate)


def _saved_choice(record: dict, events_by_id: dict) -> Optional[tuple[dict, dict]]:
    """The event and shortlist choice of a saved finished record, when both still exist."""
    event = events_by_id.get(record.get("event_id"))
    entry = stage_entry(record, "match") or {}
    choice = next((c for c in entry.get("shortlist") or () if c.get("event_id") == record.get("event_id")), None)
    return (event, choice) if event is not None and choice is not None else None


def plan_run(users: list[dict], store_get: Callable[[str], Optional[dict]], generator, events: list[dict], *,
             fresh: bool = False, upload: bool = True, held: Optional[dict] = None) -> RunPlan:
    """The plan of a run over `users` with `generator`'s current settings (no call, no write).

    Args:
        users: The selected members.
        store_get: user id -> saved record (or None).
        generator: The run's generator (its `settings` and `*_inputs`).
        events: The catalog.
        fresh: --fresh was given.
        upload: The run would upload.
        held: user id -> why the team holds the row (left alone).

    Returns:
        The plan.
    """
    plan = RunPlan()
    events_by_id = {event["id"]: event for event in events}
    settings = generator.settings
    for user in users:
        record = store_get(user["id"])
        if user["id"] in (held or {}):
            plan.members["held"] += 1
            continue
        cause = stage_cause(record, "match", settings["match"], generator.match_inputs(user), fresh=fresh)
        if cause:
            plan.members["to match"] += 1
            plan.causes["match"][cause] += 1
        if not cause and record is not None and record.get("status") == "no_event":
            # Their shortlist holds and its events were full: the assignment most likely gives none again.
            plan.members["up to date"] += 1
            continue
        saved = None if cause or record is None else _saved_choice(record, events_by_id)
        if saved is None:
            # The event is decided by the assignment: count the member under write and check too.
            for stage in ("write", "check"):
                plan.unknown[stage] += 1
            plan.causes["write"]["event decided by the assignment" if cause else "no saved event"] += 1
            plan.members["to write"] += 1
            continue
        event, choice = saved
        write_cause = stage_cause(record, "write", settings["write"], generator.write_inputs(user, event, choice),
                                  fresh=fresh)
        message = record.get("message") or ""
        check_cause = write_cause or stage_cause(
            record, "check", settings["check"],
            generator.check_inputs(user, event, choice, (stage_entry(record, "write") or {}).get("draft", {})
                                   .get("message", message)), fresh=fresh)
        if write_cause:
            plan.members["to write"] += 1
            plan.causes["write"][write_cause] += 1
            plan.known["write"].append((user, event, choice))
        if check_cause:
            plan.known["check"].append((user, event, choice))
            if not write_cause:  # a member to write is checked too: the row counts the check-only ones
                plan.members["to check"] += 1
                plan.causes["check"][check_cause] += 1
        if not write_cause and not check_cause:
            plan.messages.append(message)
            if upload and not record.get("uploaded") and record.get("status") in COMPLETE_STATUSES:
                plan.members["upload only"] += 1
            else:
                plan.members["up to date"] += 1
    return plan


def estimate_plan(plan: RunPlan, prompt_chars: dict, cached_chars: int, model: str,
                  averages: CallLogAverages) -> list[StageEstimate]:
    """The Claude estimate per stage of a plan, plus the total (last).

    Args:
        plan: From `plan_run`.
        prompt_chars: Stage -> average characters of one filled prompt ("match", "write", "check").
        cached_chars: Characters of the cached matching system block.
        model: The model id, for the price.
        averages: From `call_log_averages` (chars per token, output tokens per stage).

    Returns:
        One estimate per stage, then the total.
    """
    calls = {"match": plan.members["to match"], "write": len(plan.known["write"]) + plan.unknown["write"],
             "check": len(plan.known["check"]) + plan.unknown["check"]}
    stages = [
        estimate_stage(stage, calls[stage], prompt_chars=prompt_chars.get(stage, 0), model=model,
                       cached_chars=cached_chars if stage == "match" else 0,
                       output_tokens=averages.output_tokens.get(stage), chars_per_token=averages.chars_per_token)
        for stage in ("match", "write", "check")
    ]
    return stages + [total_estimate(stages)]


def plan_lines(plan: RunPlan, estimates: list[StageEstimate], sms_chars: int, model: str,
               averages: CallLogAverages) -> list[str]:
    """The dry run's printout: members per plan row with causes, tokens and USD per stage, SMS cost."""
    lines = ["Plan (dry run: no call made, nothing written):"]
    stage_of_row = {"to match": "match", "to write": "write", "to check": "check"}
    for row in PLAN_ROWS:
        causes = plan.causes.get(stage_of_row.get(row, ""), {})
        why = ", ".join(f"{cause}: {number}" for cause, number in sorted(causes.items()))
        lines.append(f"  {row}: {plan.members[row]}" + (f" ({why})" if why else ""))
    source = f"averages from {averages.path.name}" if averages.path else "no call log yet: default averages"
    lines.append(f"Estimated Claude use ({model}; {source}):" if estimates else "Claude: none (offline)")
    for estimate in estimates:
        usd = "n/a (no price)" if estimate.usd is None else f"${estimate.usd:.4f}"
        lines.append(f"  {estimate.stage}: {estimate.calls} calls, input {estimate.input_tokens}, cache write "
                     f"{estimate.cache_write_tokens}, cache read {estimate.cache_read_tokens}, output "
                     f"{estimate.output_tokens} tokens, {usd}")
    price = sms_price_per_segment()
    saved = segment_mix(plan.messages)
    # A message still to write is counted at the budget's segments: 1 under --max-segments 1, else 2.
    new_messages = plan.members["to write"] + plan.members["to check"]
    per_new = 1 if sms_chars <= 161 else 2
    segments = saved.segments + new_messages * per_new
    lines.append(f"Estimated SMS cost: {segments} segments x ${price} = ${segments * price:.2f} "
                 f"({saved.messages} saved messages as they are, {new_messages} new at {per_new} segment"
                 f"{'s' if per_new > 1 else ''} each)")
    return lines


def check_max_cost(estimate: StageEstimate, max_cost: Optional[float]) -> None:
    """Refuse to start when the estimated Claude cost is above --max-cost.

    Raises:
        PipelineError: The estimate is above the limit.
    """
    if max_cost is None or estimate.usd is None or estimate.usd <= max_cost:
        return
    raise PipelineError(f"the estimated Claude cost ${estimate.usd:.4f} is above --max-cost ${max_cost:.4f}; "
                        "nothing was started: raise --max-cost, or run fewer members (--limit, --user-id), "
                        "and see the plan with --dry-run")
