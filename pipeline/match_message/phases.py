"""The run of step 5: match every member, assign events under the caps, then write and check.

Each phase saves a member's result to the MessageStore (journal, fsynced) the moment it is known, so a
kill -9 anywhere loses at most the calls in flight and a re-run resumes in the phase where it stopped.
"""

import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

from pipeline.match_message.assignment import STANDING_ROW_EVENT, assign_events, invitation_caps, prior_invitations
from pipeline.match_message.generators import GENERATION_ERRORS
from pipeline.match_message.stages import (
    CAUSE_STALE_DAY, COMPLETE_STATUSES, is_day_bound, record_fingerprint, stage_cause, stage_entry, with_stage,
)
from pipeline.match_message.texts import text_of
from pipeline.match_message.upload import Uploader
from utils.ai_prompt import ClaudeUnreachableError
from utils.message_store import MessageStore
from utils.progress import ProgressLine

#: Bookkeeping fields that change without the message changing; a regenerated record keeps them, so
#: the team loop still knows the member's row and the text last uploaded to it.
_UPLOAD_FIELDS = ("airtable_id", "uploaded", "upload_error", "uploaded_message_sha256")
#: The status of a member on the opt-out list: no message, and no invitation counted.
OPTED_OUT = "opted_out"
#: Fields of an earlier outcome that a new finished record drops.
_STALE_FIELDS = ("error", "failed_stage", "regeneration_error", STANDING_ROW_EVENT)


@dataclass
class RunOptions:
    """How a run goes: concurrency, --fresh, upload, the cap, today, and the team-loop seams."""

    workers: int
    fresh: bool
    upload: bool
    invites_per_seat: float
    today: str  # the run's local date, "YYYY-MM-DD": stored as `written_on`, never fingerprinted
    #: user id -> why the team holds that member's row. Held members are
    #: excluded from every stage and never uploaded or overwritten.
    held: Mapping[str, str] = field(default_factory=dict)
    #: held rows per event id, counted against the caps first.
    held_invites: Mapping[str, int] = field(default_factory=dict)
    #: --preview: a member keeps the event of their saved finished record (the saved run's assignment).
    keep_saved_events: bool = False
    #: user id -> the kind of opt-out they match ("phone" or "email"): never messaged.
    opted_out: Mapping[str, str] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """What the run did, for the report and the exit code."""

    selected: list[dict]
    records: dict[str, dict] = field(default_factory=dict)  # user id -> record after the run (selected only)
    causes: dict[str, Counter] = field(default_factory=lambda: {s: Counter() for s in ("match", "write", "check")})
    assignment: dict[str, Optional[dict]] = field(default_factory=dict)
    caps: dict[str, Optional[int]] = field(default_factory=dict)
    prior: dict[str, int] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)  # user id -> why the team holds the row
    opted_out: dict[str, str] = field(default_factory=dict)  # user id -> the opt-out kind matched
    #: Set when Claude could not be reached: the run stopped, members not started were left as they were.
    stopped: Optional[BaseException] = None
    kept_claude: list[str] = field(default_factory=list)
    up_to_date: int = 0
    upload_only: int = 0
    changed: list[str] = field(default_factory=list)  # members whose finished record is new this run
    failed: list[str] = field(default_factory=list)


def run_concurrently(items: list, work: Callable[[Any], None], workers: int) -> None:
    """Run `work` on every item on a bounded pool; Ctrl-C drops items not started, in-flight ones finish."""
    if not items:
        return
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="step5")
    try:
        for future in as_completed([pool.submit(work, item) for item in items]):
            future.result()
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


class Phases:
    """One run's three phases over the selected members."""

    def __init__(self, generator, events: list[dict], store: MessageStore, options: RunOptions,
                 base_fields: Callable[[dict], dict], logger: logging.Logger, uploader: Optional[Uploader]):
        self.generator = generator
        self.events = events
        self.events_by_id = {event["id"]: event for event in events}
        self.store = store
        self.options = options
        self.base_fields = base_fields
        self.logger = logger
        self.uploader = uploader
        self._outcome_lock = threading.Lock()  # workers count causes and outcomes concurrently

    def _count(self, outcome: RunOutcome, stage: str, cause: str) -> None:
        with self._outcome_lock:
            outcome.causes[stage][cause] += 1

    def _note(self, names: list, user_id: str) -> None:
        with self._outcome_lock:
            names.append(user_id)

    # --- shared --------------------------------------------------------------------------------------

    def _fail(self, user: dict, record: dict, stage: str, entry: dict, exc: BaseException, known: dict) -> None:
        """Save a stage failure: keep the last finished record if there is one, else a failed record.

        An unreachable Claude is not the member's failure: it is raised again, which stops the run
        (members not started are not tried) and leaves the member's record as it was.
        """
        if isinstance(exc, ClaudeUnreachableError):
            raise exc
        if isinstance(exc, GENERATION_ERRORS):
            error = str(exc)
        else:
            logging.getLogger(self.logger.name).debug("member %s: unexpected error", user["id"], exc_info=True)
            error = f"unexpected {type(exc).__name__}: {exc}"
        record = with_stage(record, stage, {**entry, "error": error})
        if record.get("status") in COMPLETE_STATUSES:
            # The last good message (and its Airtable row) stays; the stage error makes the next run retry.
            saved = {**record, "regeneration_error": error}
        else:
            saved = {**record, **known, "status": "failed", "failed_stage": stage, "error": error}
        self.store.put(saved)
        self.logger.warning("member %s failed in %s: %s", user["id"], stage, error)

    def _record_of(self, user: dict) -> dict:
        return self.store.get(user["id"]) or {**self.base_fields(user), "status": "pending", "airtable_id": None,
                                              "uploaded": False}

    # --- phase 1: match ------------------------------------------------------------------------------

    def match(self, users: list[dict], outcome: RunOutcome) -> None:
        """Phase 1: shortlist every member whose saved shortlist does not hold any more."""
        settings = self.generator.settings["match"]
        todo = []
        for user in users:
            cause = stage_cause(self.store.get(user["id"]), "match", settings, self.generator.match_inputs(user),
                                fresh=self.options.fresh)
            if cause:
                self._count(outcome, "match", cause)
                todo.append(user)
        progress = ProgressLine(len(todo))

        def work(user: dict) -> None:
            record = self._record_of(user)
            entry = {"settings": settings, "inputs": self.generator.match_inputs(user)}
            try:
                shortlist = self.generator.shortlist(user)
            except Exception as exc:  # noqa: BLE001 - a bug or an odd record costs one member, not the run
                self._fail(user, record, "match", entry, exc, {})
                self._note(outcome.failed, user["id"])
                progress.advance(failed=True)
                return
            self.store.put(with_stage({**record, **self.base_fields(user)}, "match", {**entry, "shortlist": shortlist}))
            progress.advance()

        if todo:
            self.logger.info("match: %d members to shortlist", len(todo))
        run_concurrently(todo, work, self.options.workers)

    # --- phase 2: assign -----------------------------------------------------------------------------

    def assign(self, users: list[dict], outcome: RunOutcome) -> None:
        """Phase 2: one event per member within the caps; earlier invitations count first."""
        shortlists = {}
        for user in users:
            entry = stage_entry(self.store.get(user["id"]), "match")
            if entry and not entry.get("error") and entry.get("shortlist"):
                # Events dropped from the catalog since the shortlist was made cannot be assigned.
                choices = [c for c in entry["shortlist"] if c.get("event_id") in self.events_by_id]
                shortlists[user["id"]] = choices
        others = [record for user_id, record in self.store.snapshot().items()
                  if user_id not in shortlists and user_id not in self.options.held
                  and record.get("status") in (*COMPLETE_STATUSES, "no_event")]
        outcome.prior = prior_invitations(others, self.options.held_invites)
        outcome.caps = invitation_caps(self.events, self.options.invites_per_seat)
        uploaded = {user_id: record.get("event_id") for user_id in shortlists
                    for record in [self.store.get(user_id)]
                    if record and (record.get("uploaded") or self.options.keep_saved_events)
                    and record.get("status") in COMPLETE_STATUSES}
        outcome.assignment = assign_events(shortlists, outcome.caps, outcome.prior, keep=uploaded)

    # --- phase 3: write and check --------------------------------------------------------------------

    def write_and_check(self, users: list[dict], outcome: RunOutcome) -> None:
        """Phase 3: for each assigned member, write and check what is not up to date; save and upload."""
        assigned = [user for user in users if outcome.assignment.get(user["id"]) is not None]
        for user in users:
            if user["id"] in outcome.assignment and outcome.assignment[user["id"]] is None:
                self._save_no_event(user)
        progress = ProgressLine(len(assigned))

        def work(user: dict) -> None:
            kind = self._write_and_check_one(user, outcome.assignment[user["id"]], outcome)
            progress.advance(failed=kind == "failed")

        run_concurrently(assigned, work, self.options.workers)

    def _save_no_event(self, user: dict) -> None:
        """Save `no_event`: the member, their shortlist (kept for a later run with more seats), no message."""
        record = self._record_of(user)
        if record.get("status") == "no_event":
            return
        standing = {}
        if record.get("uploaded") and record.get("status") in COMPLETE_STATUSES:
            self.logger.warning("member %s had an uploaded invitation for event %s and now gets no event; its "
                                "Airtable row is left as it is and still counts against that event's cap",
                                user["id"], record.get("event_id"))
            # The row still invites the member: later runs count it (docs/5-match-message.md, "No event").
            standing = {STANDING_ROW_EVENT: record.get("event_id")}
        kept = {key: record[key] for key in ("stages", "airtable_id", "uploaded", "uploaded_message_sha256")
                if key in record}
        self.store.put({**self.base_fields(user), **kept, **standing, "status": "no_event"})

    def _save_opted_out(self, user: dict, kind: str) -> None:
        """Save `opted_out`: no message; a row the pipeline uploaded gets Status opted_out and no text."""
        record = self._record_of(user)
        if record.get("status") == OPTED_OUT and not record.get("upload_error"):
            return
        kept = {key: record[key] for key in ("stages", "airtable_id", "uploaded_message_sha256") if key in record}
        saved = {**self.base_fields(user), **kept, "status": OPTED_OUT, "message": "",
                 "review_reasons": [f"on the opt-out list (matched by {kind}): never message this member"],
                 "uploaded": False}
        self.store.put(saved)
        had_row = bool(record.get("airtable_id") or record.get("uploaded"))
        if had_row and self.uploader is not None:
            self.uploader.submit(saved)

    def _write_and_check_one(self, user: dict, choice: dict, outcome: RunOutcome) -> str:
        generator, fresh = self.generator, self.options.fresh
        event = self.events_by_id[choice["event_id"]]
        record = self._record_of(user)
        known = {**_event_fields(event), **_choice_fields(choice)}
        # Write.
        entry = {"settings": generator.settings["write"], "inputs": generator.write_inputs(user, event, choice)}
        cause = stage_cause(record, "write", entry["settings"], entry["inputs"], fresh=fresh)
        saved_write = stage_entry(record, "write")
        if cause is None and saved_write.get("written_on") != self.options.today and (
                is_day_bound(saved_write["draft"]["message"]) or is_day_bound(record.get("message"))):
            cause = CAUSE_STALE_DAY
        if cause:
            self._count(outcome, "write", cause)
            try:
                draft = generator.write(user, event, choice)
            except Exception as exc:  # noqa: BLE001 - a bug or an odd record costs one member, not the run
                self._fail(user, record, "write", entry, exc, known)
                self._note(outcome.failed, user["id"])
                return "failed"
            record = with_stage(record, "write", {**entry, "draft": draft, "written_on": self.options.today})
            self.store.put(record)
        write = stage_entry(record, "write")
        draft = write["draft"]
        known.update({"message": draft["message"], "message_reasoning": draft["reasoning"],
                      "written_on": write["written_on"]})
        # Check.
        entry = {"settings": generator.settings["check"],
                 "inputs": generator.check_inputs(user, event, choice, draft["message"])}
        cause = stage_cause(record, "check", entry["settings"], entry["inputs"], fresh=fresh)
        if cause:
            self._count(outcome, "check", cause)
            try:
                result = generator.check(user, event, choice, draft)
            except Exception as exc:  # noqa: BLE001 - a bug or an odd record costs one member, not the run
                self._fail(user, record, "check", entry, exc, known)
                self._note(outcome.failed, user["id"])
                return "failed"
            record = with_stage(record, "check", {**entry, "result": result})
        final = self._finished(user, record, known)
        if _content(final) != _content(record):
            final = {**final, "uploaded": False}
            final.pop("upload_error", None)
            self.store.put(final)
            self._note(outcome.changed, user["id"])
            kind = "changed"
        else:
            kind = "up_to_date"
            with self._outcome_lock:
                if self.uploader is not None and not final.get("uploaded"):
                    outcome.upload_only += 1
                    kind = "upload_only"
                else:
                    outcome.up_to_date += 1
        if self.uploader is not None and kind != "up_to_date":
            self.uploader.submit(final)
        return kind

    def _finished(self, user: dict, record: dict, known: dict) -> dict:
        """The finished record: member, event, match, the kept message and its check, from the stages."""
        result = stage_entry(record, "check")["result"]
        final = {key: value for key, value in record.items() if key not in _STALE_FIELDS and key != "rewrite_error"}
        final.update({**self.base_fields(user), **known, **result})
        final["fingerprint"] = record_fingerprint(final)
        return final

    # --- the whole run -------------------------------------------------------------------------------

    def run(self, selected: list[dict]) -> RunOutcome:
        """Run the three phases over the selected members.

        Returns:
            The outcome, with every selected member's record as saved after the run.
        """
        outcome = RunOutcome(selected=selected)
        active = []
        for user in selected:
            saved = self.store.get(user["id"])
            if user["id"] in self.options.held:
                outcome.held[user["id"]] = self.options.held[user["id"]]
                if user["id"] in self.options.opted_out:
                    self.logger.warning("member %s is on the opt-out list, but their Airtable row is in the "
                                        "team's hands (%s): make sure it is not sent", user["id"],
                                        self.options.held[user["id"]])
            elif user["id"] in self.options.opted_out:
                outcome.opted_out[user["id"]] = self.options.opted_out[user["id"]]
                self._save_opted_out(user, self.options.opted_out[user["id"]])
            elif (self.generator.name == "offline" and not self.options.fresh and saved is not None
                  and saved.get("generator") == "claude" and saved.get("status") in COMPLETE_STATUSES):
                outcome.kept_claude.append(user["id"])  # an offline run never replaces Claude's paid work
            else:
                active.append(user)
        try:
            self.match(active, outcome)
            self.assign(active, outcome)
            self.write_and_check(active, outcome)
        except ClaudeUnreachableError as exc:
            outcome.stopped = exc
        for user in selected:
            record = self.store.get(user["id"])
            if record is not None:
                outcome.records[user["id"]] = record
        return outcome


def _content(record: dict) -> dict:
    return {key: value for key, value in record.items() if key not in _UPLOAD_FIELDS}


def _event_fields(event: dict) -> dict:
    """The event's part of the record."""
    return {"event_id": event["id"], "event_name": text_of(event.get("name")), "event_summary": event["summary"]}


def _choice_fields(choice: dict) -> dict:
    """The assigned choice's part of the record."""
    return {"campaign": choice["campaign"], "match_reasoning": choice["reasoning"],
            "confidence_percentage": round(choice["confidence"]), "shortlist_rank": choice["rank"]}
