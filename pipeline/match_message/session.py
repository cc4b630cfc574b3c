"""One run of step 5 after its inputs are loaded: --dry-run, --preview, or the live run, each to an exit code.

The step script loads the inputs, builds the generator from its prompts and hands a `Session` here;
`dry_run`, `preview` and `live_run` are the three ways the run can go. Exit codes: 0 done, 1 members
left unfinished, 3 stopped at --max-cost (every finished member kept).
"""

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from pipeline.match_message.asking import BudgetReached
from pipeline.match_message.costs import cache_savings_usd, call_log_averages, format_usd
from pipeline.match_message.phases import Phases, RunOptions, RunOutcome
from pipeline.match_message.planning import check_max_cost, estimate_run, plan_lines
from pipeline.match_message.preview import MemoryStore, comparison_lines, sample_members
from pipeline.match_message.report import (
    invitation_rows, invitation_totals, over_cap_events, report_rows, sample_messages,
)
from pipeline.match_message.review_page import event_facts, render_review_page
from pipeline.match_message.team_loop import hold_log_lines
from pipeline.match_message.team_rows import (
    TeamRows, check_airtable, opted_out_members, read_team_rows, unfinished_line, unfinished_members,
)
from pipeline.match_message.upload import Uploader
from utils.airtable_crud import PreflightReport
from utils.contacts import load_opt_outs
from utils.errors import PipelineError
from utils.jsonio import load_json_list, save_json_atomic, split_objects, write_text_atomic
from utils.log import log_stats_table
from utils.message_store import MessageStore
from utils.paths import OPT_OUTS_FILE, PREVIEW_MESSAGES_FILE, PROCESSED_MESSAGES_FILE, REVIEW_PAGE_FILE, \
    processed_path, raw_path

#: The exit code of a run stopped at --max-cost: finished members are kept, a re-run continues.
EXIT_MAX_COST = 3


@dataclass
class Session:
    """What every way of running step 5 shares: the flags, the run's logger and paths, the catalog, the generator."""

    args: Any                          # the parsed command line
    run: Any                           # from `start_step`: logger, data_dir, log_dir, now, zone
    events: list[dict]                 # the usable enriched events (the catalog)
    generator: Any                     # ClaudeGenerator or OfflineGenerator
    base_fields: Callable[[dict], dict]  # user -> the member's part of a record (`base_record`)
    started: float = 0.0               # time.monotonic() when the step started (for the report's wall time)

    @property
    def upload(self) -> bool:
        """Whether the run uploads to Airtable."""
        return not (self.args.no_upload or self.args.offline)

    @property
    def today(self) -> str:
        """The run's local date, "YYYY-MM-DD"."""
        return self.run.now.astimezone(self.run.zone).date().isoformat()

    def estimate(self, selected: list[dict], store_get, *, upload: bool, held: Optional[dict] = None):
        """The plan and the Claude estimate of a run over `selected` (see `planning.estimate_run`)."""
        return estimate_run(selected, store_get, self.generator, self.events, call_log_averages(self.run.log_dir),
                            fresh=self.args.fresh, upload=upload, held=held)


def saved_records(data_dir: Path) -> dict[str, dict]:
    """The saved records by user id, read only (no lock, no journal): for --dry-run and --preview."""
    path = processed_path(data_dir, PROCESSED_MESSAGES_FILE)
    if not path.exists():
        return {}
    records, _ = split_objects(load_json_list(path, what="processed messages"))
    return {record["user_id"]: record for record in records if isinstance(record.get("user_id"), str)}


def write_review(session: Session, records: list[dict], previous: Optional[list[dict]], title: str,
                 outcome: Optional[RunOutcome] = None) -> None:
    """Write data/processed/review.html (atomically) for the records of this run or preview.

    Args:
        outcome: The run's outcome, when the phases finished: its caps and the run's invitation totals
            per event (earlier ones included) go on the page; without it the page counts `records`.
    """
    generator, run = session.generator, session.run
    usage = generator.ask.usage if generator.name == "claude" else None
    summary = {
        "title": title, "generated_at": run.now.astimezone(run.zone).strftime("%Y-%m-%d %H:%M %Z"),
        "model": generator.model, "generator": generator.name,
        "claude_cost_usd": usage.cost_usd(generator.model) if usage else 0.0,
        "cache_savings_usd": cache_savings_usd(usage, generator.model) if usage else 0.0,
        "events": event_facts(session.events, run.zone, outcome.caps if outcome else None,
                              invitation_totals(outcome) if outcome else None),
    }
    path = processed_path(run.data_dir, REVIEW_PAGE_FILE)
    write_text_atomic(path, render_review_page(records, summary, previous))
    run.logger.info("wrote %s", path)


def _claude_cost_line(generator) -> str:
    cost = generator.ask.usage.cost_usd(generator.model) if generator.name == "claude" else 0.0
    return format_usd(cost)


def team_rows_after_preflight(session: Session, selected: list[dict], saved: Mapping[str, Mapping],
                              preflight: PreflightReport) -> TeamRows:
    """The team's rows of the selected members and who is held (`read_team_rows` with the run's flags)."""
    return read_team_rows([user["id"] for user in selected], saved, send_status_exists=preflight.send_status_exists,
                          recreate_deleted=session.args.recreate_deleted, logger=session.run.logger)


# --- --dry-run -----------------------------------------------------------------------------------

def dry_run(session: Session, selected: list[dict]) -> int:
    """--dry-run: print the plan per stage and the estimated Claude and SMS cost; nothing is called or written.

    A run that would upload reads the team's rows first (the same pre-flight and reads as the real run,
    no write), so the plan's "held" is what the real run will hold.
    """
    saved = saved_records(session.run.data_dir)
    held = {}
    if session.upload:
        preflight = check_airtable(session.run.logger)
        held = team_rows_after_preflight(session, selected, saved, preflight).held
    plan, estimates = session.estimate(selected, saved.get, upload=session.upload, held=held)
    averages = call_log_averages(session.run.log_dir)
    for line in plan_lines(plan, estimates, session.generator.chars_under, session.generator.model, averages):
        session.run.logger.info(line)
    if estimates:
        check_max_cost(estimates, session.args.max_cost)
    return 0


# --- --preview -----------------------------------------------------------------------------------

def preview(session: Session, users: list[dict], prompts_fingerprint: str) -> int:
    """--preview N: the current prompts on N sampled members (or --user-id/--email); only its own files change.

    Args:
        users: The selected members.
        prompts_fingerprint: A hash of the prompts: the sample changes only when they change.

    Returns:
        0, or 3 when --max-cost stopped the preview (what finished is still shown and written).
    """
    args, run, generator = session.args, session.run, session.generator
    saved = saved_records(run.data_dir)
    chosen = users if args.user_id or args.email else sample_members(users, saved, args.preview, prompts_fingerprint)
    store = MemoryStore(saved.values())
    if generator.name == "claude" and args.max_cost is not None:
        check_max_cost(session.estimate(chosen, store.get, upload=False)[1], args.max_cost)
    options = RunOptions(workers=args.workers, fresh=args.fresh, upload=False, invites_per_seat=args.invites_per_seat,
                         today=session.today, keep_saved_events=True)
    run.logger.info("preview: %d members (generator %s, model %s); processed_messages.json and Airtable are "
                    "left as they are", len(chosen), generator.name, generator.model)
    outcome, stopped = None, None
    try:
        outcome = Phases(generator, session.events, store, options, session.base_fields, run.logger, None).run(chosen)
    except BudgetReached as exc:
        stopped = exc
    # After a stop, the members finished before it are in the memory store like the others.
    after = {user["id"]: store.get(user["id"]) for user in chosen}
    records = [after[user["id"]] for user in chosen if after[user["id"]] is not None]
    for user in chosen:
        for line in comparison_lines(user, saved.get(user["id"]), after[user["id"]]):
            run.logger.info(line)
    save_json_atomic(processed_path(run.data_dir, PREVIEW_MESSAGES_FILE), records)
    run.logger.info("wrote %s", processed_path(run.data_dir, PREVIEW_MESSAGES_FILE))
    write_review(session, records, [saved[u["id"]] for u in chosen if u["id"] in saved],
                 "Step 5 preview" + (" (stopped at --max-cost)" if stopped else ""), outcome)
    run.logger.info("preview cost: %s", _claude_cost_line(generator))
    if stopped is not None:
        run.logger.error("stopped: %s; the preview shows the members finished before the stop", stopped)
        return EXIT_MAX_COST
    return 0


# --- the live run --------------------------------------------------------------------------------

def live_run(session: Session, users: list[dict], selected: list[dict], phones: dict[str, str],
             counts: dict) -> int:
    """The run itself: pre-flight, the three phases, save, upload, report, review page; the exit code.

    Args:
        users: Every usable member (the saved file keeps their order).
        selected: The members this run works on.
        phones: The phone lookup (for the opt-out re-check).
        counts: The input counts for the report (from `load_inputs`).
    """
    args, run, generator = session.args, session.run, session.generator
    # Before the first Claude call: a wrong token, base, table or a missing column costs nothing.
    preflight = check_airtable(run.logger) if session.upload else None
    # Checked again here, so that an opt-out added after step 1 still stops the message.
    opted_out = opted_out_members(selected, phones, load_opt_outs(raw_path(run.data_dir, OPT_OUTS_FILE)))
    store = MessageStore(processed_path(run.data_dir, PROCESSED_MESSAGES_FILE), order=[u["id"] for u in users])
    if store.recovered:
        run.logger.info("recovered %d records from the journal of an interrupted run", store.recovered)
    previous = list(store.snapshot().values())
    try:
        team = TeamRows()
        if preflight is not None:
            team = team_rows_after_preflight(session, selected, store.snapshot(), preflight)
        if args.max_cost is not None and generator.name == "claude":
            check_max_cost(session.estimate(selected, store.get, upload=session.upload, held=team.held)[1],
                           args.max_cost)
    except BaseException:
        store.close()
        raise
    run.logger.info("%d members selected (generator %s, model %s)", len(selected), generator.name, generator.model)
    options = RunOptions(workers=args.workers, fresh=args.fresh, upload=session.upload,
                         invites_per_seat=args.invites_per_seat, today=session.today, held=team.held,
                         held_invites=team.held_invites, opted_out=opted_out)
    uploader = Uploader(store, run.logger) if session.upload else None
    stopped = None
    try:
        outcome = Phases(generator, session.events, store, options, session.base_fields, run.logger,
                         uploader).run(selected)
    except BudgetReached as exc:
        stopped = exc
    finally:
        try:
            if uploader is not None:
                uploader.close()
        finally:
            store.close()
    if stopped is not None:
        write_review(session, list(saved_records(run.data_dir).values()), previous,
                     "Step 5 review (stopped at --max-cost)")
        run.logger.error("stopped: %s; every finished member is saved in %s, re-run (with a higher --max-cost) "
                         "to continue", stopped, processed_path(run.data_dir, PROCESSED_MESSAGES_FILE))
        return EXIT_MAX_COST
    outcome.records = {user["id"]: store.get(user["id"]) for user in selected if store.get(user["id"]) is not None}
    log_report(session, counts, outcome, uploader, time.monotonic() - session.started)
    write_review(session, [outcome.records[u["id"]] for u in selected if u["id"] in outcome.records], previous,
                 "Step 5 review", outcome)
    if over_cap_events(outcome):
        raise PipelineError(f"events over their invitation cap: {', '.join(over_cap_events(outcome))} (a bug)")
    unfinished = unfinished_members(selected, outcome.records, outcome.held, outcome.kept_claude, upload=session.upload)
    last_line = unfinished_line(unfinished, outcome.stopped)
    if last_line is None:
        return 0
    if outcome.stopped is not None:
        raise PipelineError(last_line)
    run.logger.error("%s", last_line)
    return 1


def log_report(session: Session, counts: dict, outcome: RunOutcome, uploader: Optional[Uploader],
               seconds: float) -> None:
    """The statistics table, invitations per event, members with no event, and sample messages."""
    run, generator = session.run, session.generator
    log_stats_table(run.logger, "Step 5: match and message", report_rows(counts, outcome, generator, uploader, seconds))
    for line in ["Invitations per event:"] + invitation_rows(outcome, session.events):
        run.logger.info(line)
    no_event = [user_id for user_id, choice in outcome.assignment.items() if choice is None]
    if no_event:
        more = f" and {len(no_event) - 20} more (all in {run.log_path})" if len(no_event) > 20 else ""
        run.logger.info("no event (every shortlisted event is full): %s%s", ", ".join(no_event[:20]), more)
        run.logger.debug("no event, all: %s", ", ".join(no_event))
    for line in hold_log_lines(outcome.held):
        run.logger.info("%s", line)
    for user_id, kind in outcome.opted_out.items():
        run.logger.info("opted out (matched by %s), no message: %s", kind, user_id)
    for line in sample_messages([outcome.records[u["id"]] for u in outcome.selected if u["id"] in outcome.records]):
        run.logger.info("sample: %s", line)
    run.logger.info("wrote %s", processed_path(run.data_dir, PROCESSED_MESSAGES_FILE))
