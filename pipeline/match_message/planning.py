"""Cost before spending: the plan of a run per stage (--dry-run), its estimated cost, and --max-cost.

The plan reads only the saved records and the current settings: it makes no call and writes nothing.
A member's stages are decided with the same `stage_cause` the run uses. A member with no saved
message, or whose saved event is gone, is counted under "to write" (its write and check calls are
certain). A member to re-match whose saved finished message still holds is written and checked again
only if the assignment changes their event: that cost is not certain, so it is shown apart, as "up
to" an extra amount, and --max-cost compares the certain part only. A member whose match holds keeps
the event of their saved record; one who got no event last time (every shortlisted event full) counts
as up to date.
"""

from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Optional

from pipeline.match_message.costs import (
    CallLogAverages, StageEstimate, estimate_stage, format_usd, segment_mix, sms_price_per_segment, total_estimate,
)
from pipeline.match_message.stages import COMPLETE_STATUSES, stage_cause, stage_entry
from utils.errors import PipelineError
from utils.rules import CAMPAIGN_NEWCOMER

#: The plan's rows, in the order they are printed.
PLAN_ROWS = ("to match", "to write", "to check", "upload only", "held", "up to date")
#: The match reasoning assumed when sizing a write prompt whose match is not made yet (2 sentences).
ESTIMATE_REASONING = "x" * 160


@dataclass
class RunPlan:
    """What a run would do: members per plan row, the causes per stage, and the calls per stage."""

    members: Counter = field(default_factory=Counter)  # plan row -> members
    causes: dict = field(default_factory=lambda: {stage: Counter() for stage in ("match", "write", "check")})
    # Per stage, the members whose event is known (user, event, choice) and how many are not known yet.
    known: dict = field(default_factory=lambda: {"write": [], "check": []})
    unknown: Counter = field(default_factory=Counter)
    # Re-matched members (user, saved event, saved choice) written and checked again only if their event changes.
    maybe: list = field(default_factory=list)
    messages: list = field(default_factory=list)  # saved messages (for the SMS estimate)


@dataclass
class RunEstimate:
    """The Claude estimate of a plan: the certain calls per stage (total last), and what may come on top."""

    stages: list  # StageEstimate per stage, then their total
    possible: Optional[StageEstimate] = None  # the re-matched members' write and check, if their event changes

    @property
    def certain(self) -> StageEstimate:
        """The total of the calls the run makes for sure (what --max-cost compares)."""
        return self.stages[-1]


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
        saved = None if record is None else _saved_choice(record, events_by_id)
        keeps_message = bool(cause) and saved is not None and record.get("status") in COMPLETE_STATUSES
        if saved is None or (cause and not keeps_message):
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
        if keeps_message and not write_cause and not check_cause:
            # The assignment keeps a saved event that is still shortlisted and free: most likely no new message.
            plan.maybe.append((user, event, choice))
            plan.messages.append(message)
            continue
        if not write_cause and not check_cause:
            plan.messages.append(message)
            if upload and not record.get("uploaded") and record.get("status") in COMPLETE_STATUSES:
                plan.members["upload only"] += 1
            else:
                plan.members["up to date"] += 1
    return plan


def estimate_plan(plan: RunPlan, prompt_chars: dict, cached_chars: int, model: str,
                  averages: CallLogAverages) -> RunEstimate:
    """The Claude estimate of a plan: the certain calls per stage with their total, and the possible extra.

    Args:
        plan: From `plan_run`.
        prompt_chars: Stage -> average characters of one filled prompt ("match", "write", "check").
        cached_chars: Characters of the cached matching system block.
        model: The model id, for the price.
        averages: From `call_log_averages` (chars per token, output tokens per stage).

    Returns:
        The estimate; `possible` is None when no re-matched member may be rewritten.
    """
    def stage_estimate(stage: str, calls: int) -> StageEstimate:
        return estimate_stage(stage, calls, prompt_chars=prompt_chars.get(stage, 0), model=model,
                              cached_chars=cached_chars if stage == "match" else 0,
                              output_tokens=averages.output_tokens.get(stage), chars_per_token=averages.chars_per_token)

    calls = {"match": plan.members["to match"], "write": len(plan.known["write"]) + plan.unknown["write"],
             "check": len(plan.known["check"]) + plan.unknown["check"]}
    stages = [stage_estimate(stage, calls[stage]) for stage in ("match", "write", "check")]
    possible = None
    if plan.maybe:
        possible = total_estimate(stage_estimate(stage, len(plan.maybe)) for stage in ("write", "check"))
    return RunEstimate(stages + [total_estimate(stages)], possible)


class _PromptSized(Exception):
    """Raised by the sizing `ask`: the prompt was measured, no call is made."""


def _prompt_chars(build: Callable[[Callable[..., dict]], Any]) -> int:
    """The characters one request builder sends (its prompt), measured without calling Claude."""
    sizes = []

    def measure(purpose, prompt, *, system=None, **_settings):
        sizes.append(len(prompt))
        raise _PromptSized()

    try:
        build(measure)
    except _PromptSized:
        pass
    return sizes[0] if sizes else 0


def _average(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def prompt_sizes(plan: RunPlan, users: list[dict], events: list[dict], generator) -> dict[str, float]:
    """Average characters per call of each stage of the plan, from the Claude generator's request builders."""
    requests, chars = generator.requests, generator.chars_under
    to_match = users if plan.members["to match"] else []
    unknown_choice = {"campaign": CAMPAIGN_NEWCOMER, "reasoning": ESTIMATE_REASONING}
    pairs = list(plan.known["write"]) + list(plan.maybe)
    # A member whose event the assignment decides: sized against the catalog's events in turn.
    pairs += [(user, events[index % len(events)], unknown_choice)
              for index, user in enumerate(users[:plan.unknown["write"]])]
    checks = plan.known["check"] + pairs[len(plan.known["write"]):]
    message = "x" * (chars - 1)
    return {
        "match": _average([_prompt_chars(partial(requests.match, user, events, catalog_system=None))
                           for user in to_match[:200]]),
        "write": _average([_prompt_chars(lambda ask, u=u, e=e, c=c: requests.write(
            u, e, c, ask, generator.today, sms_chars_under=chars)) for u, e, c in pairs[:200]]),
        "check": _average([_prompt_chars(lambda ask, u=u, e=e, c=c: requests.check(
            message, u, e, c["campaign"], ask, sms_chars_under=chars)) for u, e, c in checks[:200]]),
    }


def estimate_run(selected: list[dict], store_get: Callable[[str], Optional[dict]], generator, events: list[dict],
                 averages: CallLogAverages, *, fresh: bool, upload: bool,
                 held: Optional[dict] = None) -> tuple[RunPlan, Optional[RunEstimate]]:
    """The plan of a run and, with the Claude generator, its estimate (None offline); no call, no write.

    Args:
        selected: The members the run would work on.
        store_get: user id -> saved record (or None).
        generator: The run's generator.
        events: The catalog.
        averages: From `call_log_averages`.
        fresh, upload, held: As for `plan_run`.

    Returns:
        (plan, estimate).
    """
    plan = plan_run(selected, store_get, generator, events, fresh=fresh, upload=upload, held=held)
    if generator.name != "claude":
        return plan, None
    catalog_chars = len(generator.system[0]["text"])
    return plan, estimate_plan(plan, prompt_sizes(plan, selected, events, generator), catalog_chars,
                               generator.model, averages)


def plan_lines(plan: RunPlan, estimate: Optional[RunEstimate], sms_chars: int, model: str,
               averages: CallLogAverages) -> list[str]:
    """The dry run's printout: members per plan row with causes, tokens and USD per stage, SMS cost.

    Args:
        estimate: From `estimate_plan`, or None offline.
    """
    lines = ["Plan (dry run: no call made, nothing written):"]
    stage_of_row = {"to match": "match", "to write": "write", "to check": "check"}
    for row in PLAN_ROWS:
        causes = plan.causes.get(stage_of_row.get(row, ""), {})
        why = ", ".join(f"{cause}: {number}" for cause, number in sorted(causes.items()))
        lines.append(f"  {row}: {plan.members[row]}" + (f" ({why})" if why else ""))
    if plan.maybe:
        lines.append(f"  may be rewritten: up to {len(plan.maybe)} (re-matched members whose saved message holds: "
                     "written and checked again only if the assignment changes their event)")
    source = f"averages from {averages.path.name}" if averages.path else "no call log yet: default averages"
    lines.append(f"Estimated Claude use ({model}; {source}):" if estimate else "Claude: none (offline)")
    for stage in estimate.stages if estimate else ():
        lines.append(f"  {stage.stage}: {stage.calls} calls, input {stage.input_tokens}, cache write "
                     f"{stage.cache_write_tokens}, cache read {stage.cache_read_tokens}, output "
                     f"{stage.output_tokens} tokens, {format_usd(stage.usd)}")
    if estimate and estimate.possible:
        lines.append(f"  and up to {estimate.possible.calls} more calls, {format_usd(estimate.possible.usd)}, if every "
                     f"re-matched member gets a new event (--max-cost compares the total above, without these)")
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


def check_max_cost(estimate: Optional[RunEstimate], max_cost: Optional[float]) -> None:
    """Refuse to start when the certain part of the estimated Claude cost is above --max-cost.

    The possible extra (re-matched members rewritten only if their event changes) is left out: the
    actual spend stops the run cleanly at --max-cost should it come.

    Raises:
        PipelineError: The certain estimate is above the limit.
    """
    certain = estimate.certain if estimate else None
    if max_cost is None or certain is None or certain.usd is None or certain.usd <= max_cost:
        return
    extra = (f" (and up to {format_usd(estimate.possible.usd)} more if re-matched members get new events)"
             if estimate.possible else "")
    raise PipelineError(f"the estimated Claude cost ${certain.usd:.4f}{extra} is above --max-cost "
                        f"${max_cost:.4f}; nothing was started: raise --max-cost, or run fewer members (--limit, "
                        "--user-id), and see the plan with --dry-run")
