"""Before step 5 pays for anything: check Airtable, read the team's rows, hold their members, drop opt-outs.

And after the run: what is unfinished, for the exit code and the run's last line.
"""

import logging
from dataclasses import dataclass, field
from typing import Mapping, Optional

from pipeline.match_message.stages import COMPLETE_STATUSES
from pipeline.match_message.team_loop import HoldReason, held_members, prior_invites_by_event
from utils import airtable_crud
from utils.airtable_fields import mapped_columns
from utils.contacts import OptOuts, normalize_email_address, normalize_phone

#: Statuses a selected member may end a run with that need nothing more from a re-run.
FINISHED_STATUSES = (*COMPLETE_STATUSES, "no_event", "opted_out")


@dataclass
class TeamRows:
    """What the team's rows mean for this run.

    Attributes:
        held: `{user_id: HoldReason}` for the members whose row is in the team's hands.
        held_invites: `{event_id: count}` of the held members' invitations, counted against the caps.
        send_status_exists: Whether the table has the team's "Send Status" column.
    """

    held: dict[str, HoldReason] = field(default_factory=dict)
    held_invites: dict[str, int] = field(default_factory=dict)
    send_status_exists: bool = False


def check_airtable(logger: logging.Logger) -> airtable_crud.PreflightReport:
    """The pre-flight: token, base, table and every column step 5 writes, before the first Claude call.

    Args:
        logger: Where the report's warnings go (e.g. no "Send Status" column).

    Returns:
        The pre-flight report.

    Raises:
        AirtableError: Something is wrong; the message names every missing column at once.
    """
    report = airtable_crud.preflight_check(mapped_columns())
    for warning in report.warnings:
        logger.warning("Airtable: %s", warning)
    return report


def read_team_rows(user_ids: list[str], saved_records: Mapping[str, Mapping], *, send_status_exists: bool,
                   recreate_deleted: bool, logger: logging.Logger) -> TeamRows:
    """Read the members' current rows and decide who is held.

    Args:
        user_ids: The members this run may touch.
        saved_records: `{user_id: record}` from processed_messages.json.
        send_status_exists: From the pre-flight report.
        recreate_deleted: `--recreate-deleted`: rows the team deleted are uploaded again.
        logger: Where the reads' warnings go.

    Returns:
        The held members and their invitations per event.
    """
    rows = airtable_crud.fetch_member_rows(user_ids, include_send_status=send_status_exists, logger=logger)
    held = held_members(saved_records, rows, user_ids=user_ids, recreate_deleted=recreate_deleted)
    # Only the held members' invitations: the others' are counted by the assign phase from their records.
    invites = prior_invites_by_event(saved_records, rows, held, regenerating=set(saved_records))
    return TeamRows(held, invites, send_status_exists)


def opted_out_members(users: list[dict], phone_lookup: Mapping[str, str], opt_outs: OptOuts) -> dict[str, str]:
    """The members on the opt-out list, by their raw-user phone (looked up by email) and their email.

    Args:
        users: The selected members (enriched records).
        phone_lookup: Normalised email -> phone, from the raw users.
        opt_outs: From `utils.contacts.load_opt_outs`.

    Returns:
        `{user_id: "phone" | "email"}`, the kind of opt-out each matched.
    """
    matched = {}
    for user in users:
        email = normalize_email_address(user.get("email"))
        phone = normalize_phone(user.get("phone") or phone_lookup.get(email or "", ""))
        kind = opt_outs.match_contact(phone, email)
        if kind is not None:
            matched[user["id"]] = kind
    return matched


def unfinished_members(selected: list[dict], records: Mapping[str, Mapping], held: Mapping[str, object],
                       kept: list[str], *, upload: bool) -> dict[str, list[str]]:
    """Who a re-run still has to finish: members without a finished record, and finished ones not uploaded.

    Args:
        selected: The run's selected members.
        records: `{user_id: record}` after the run.
        held: The held members (finished: the team has them).
        kept: Members an offline run left to Claude's earlier record (finished).
        upload: Whether the run uploads.

    Returns:
        `{"no record": [...], "not uploaded": [...]}`, user ids in run order (empty lists when all is done).
    """
    no_record, not_uploaded = [], []
    for user in selected:
        user_id = user["id"]
        if user_id in held or user_id in kept:
            continue
        record = records.get(user_id) or {}
        status = record.get("status")
        if status not in FINISHED_STATUSES:
            no_record.append(user_id)
        elif upload and (record.get("upload_error") or (status in COMPLETE_STATUSES and not record.get("uploaded"))):
            not_uploaded.append(user_id)
    return {"no record": no_record, "not uploaded": not_uploaded}


def unfinished_line(unfinished: Mapping[str, list[str]], stopped: Optional[BaseException] = None) -> Optional[str]:
    """The run's last line when something is unfinished, or None when everything is done."""
    parts = [f"{len(ids)} member{'s' if len(ids) != 1 else ''} {what}" for what, ids in unfinished.items() if ids]
    if not parts and stopped is None:
        return None
    cause = f"the run stopped: {stopped}. " if stopped is not None else ""
    done = "; ".join(parts) or "members not started"
    return (f"{cause}Unfinished: {done}. Re-run step 5 to finish them: finished work is kept, so nothing is "
            f"paid for again")
