"""The backtest of the matcher: would it have picked the event a member went to, a week before?

A case is a member and a past public, not-canceled event they attended. At `t = start - lead` the
matcher sees the member's profile at `t` and the catalog at `t` (every public, not-canceled event
starting in (t, t + 30 days]), both built by steps 3 and 4's own functions with `now = t`, and with
the member left out of every candidate. Its shortlist is scored with HitRate@1, HitRate@3 and MRR,
beside a random and a popularity baseline on the same cases. docs/backtest.md explains the rules
to users. `run_backtest` is the entry point; the ranker is injected, so the offline scorer and
Claude's match phase are measured the same way.
"""

import argparse
import bisect
import json
import random
from collections import Counter
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Optional

from pipeline.step2_event_selection import filter_active_events, filter_future_events, filter_public_events
from pipeline.step3_user_profile_enrich import Lookups, enrich_user, index_past_events
from pipeline.step4_event_enrich import enrich_event
from utils.dates import parse_iso_date
from utils.jsonio import save_json_atomic, split_objects
from utils.offline_engine import (
    OFFLINE_ENGINE_VERSION, choose_campaign, confidence_from_score, rank_events, user_campaign,
)
from utils.people import as_id, full_name, index_users_by_email, index_users_by_id, normalize_email_text

DEFAULT_WINDOW_DAYS = 365
DEFAULT_LEAD_DAYS = 7
#: The catalog at t spans (t, t + CATALOG_DAYS]: step 2's rule has no end, but a member is asked about
#: the coming month, and an open end would put a year of events in early cases' catalogs.
CATALOG_DAYS = 30
SHORTLIST_SIZE = 3
DEFAULT_SEED = 16
BACKTEST_FILE = "backtest.json"
PREVIOUS_BACKTEST_FILE = "backtest.prev.json"

# Why a case was skipped (counted in the result's `skipped_by_reason`).
SKIP_SMALL_CATALOG = "catalog has only 1 event"
SKIP_NOT_MEMBER_YET = "member signed up after t"
SKIP_NO_PROFILE_USER = "attendee matches no user"

#: The metrics of a result, in the order the table prints them.
METRICS = ("hit_at_1", "hit_at_3", "mrr")

#: rank(member_profile, catalog, now) -> choices, best first; each choice names its event by
#: `event_index` (position in `catalog`) or `event_id`, and carries a `campaign`. `now` is the case's
#: moment t: a matcher must date its "today" there (Claude's prompt states today's date), or every
#: candidate would look past.
Ranker = Callable[[dict, list[dict], datetime], list[dict]]


class Case(NamedTuple):
    """One member and one event they attended, before anything is built for it."""

    event_index: int   # position of the attended event in the usable raw events
    email: str         # the member's normalised email


class CaseResult(NamedTuple):
    """What the scoring needs from one ranked case."""

    rank: Optional[int]        # 1-based position of the attended event in the shortlist, or None
    catalog_size: int
    popularity_rank: int       # 1-based position of the attended event when sorted by participants
    campaign: str              # the campaign of the ranker's first choice (the member's, if none)


# --- Metric arithmetic ---------------------------------------------------------------------------------

def reciprocal_rank(rank: Optional[int], cutoff: int = SHORTLIST_SIZE) -> float:
    """1 / rank when the attended event is in the first `cutoff` choices, else 0."""
    return 1.0 / rank if rank is not None and rank <= cutoff else 0.0


def random_expectation(catalog_size: int, cutoff: int = SHORTLIST_SIZE) -> dict[str, float]:
    """The expected metrics of a shortlist drawn at random from a catalog of `catalog_size` events.

    Args:
        catalog_size: How many candidates the case had (1 or more).
        cutoff: The shortlist length.

    Returns:
        {"hit_at_1": 1/n, "hit_at_3": min(3, n)/n, "mrr": (1/n) * sum of 1/k for k = 1..min(3, n)}.
    """
    n = catalog_size
    top = min(cutoff, n)
    return {"hit_at_1": 1.0 / n, "hit_at_3": top / n, "mrr": sum(1.0 / k for k in range(1, top + 1)) / n}


def popularity_order(catalog: list[dict]) -> list[int]:
    """Catalog indexes, most participants first; ties keep catalog order (the soonest first there)."""
    return sorted(range(len(catalog)), key=lambda i: (-_participant_count(catalog[i]), i))


def _participant_count(event: dict) -> int:
    count = event.get("participant_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def shortlist_rank(choices: list[dict], catalog: list[dict], target: int) -> Optional[int]:
    """The 1-based position of catalog[target] among the choices (by index or id), or None."""
    target_id = catalog[target].get("id")
    for position, choice in enumerate(choices[:SHORTLIST_SIZE], start=1):
        index = choice.get("event_index")
        if isinstance(index, int) and not isinstance(index, bool):
            if index == target:
                return position
        elif target_id is not None and choice.get("event_id") == target_id:
            return position
    return None


def summarize(results: Iterable[CaseResult]) -> dict[str, Any]:
    """HitRate@1, HitRate@3 and MRR of the ranker and both baselines over the given cases.

    Args:
        results: The ranked cases.

    Returns:
        {"cases", "hit_at_1", "hit_at_3", "mrr", "random_hit_at_1", "random_hit_at_3", "random_mrr",
        "popularity_hit_at_1", "popularity_hit_at_3", "popularity_mrr"}; every rate is 0.0 with no cases.
    """
    results = list(results)
    n = len(results)
    totals = Counter()
    for result in results:
        totals["hit_at_1"] += result.rank == 1
        totals["hit_at_3"] += result.rank is not None and result.rank <= SHORTLIST_SIZE
        totals["mrr"] += reciprocal_rank(result.rank)
        for metric, value in random_expectation(result.catalog_size).items():
            totals[f"random_{metric}"] += value
        totals["popularity_hit_at_1"] += result.popularity_rank == 1
        totals["popularity_hit_at_3"] += result.popularity_rank <= SHORTLIST_SIZE
        totals["popularity_mrr"] += reciprocal_rank(result.popularity_rank)
    names = [prefix + metric for prefix in ("", "random_", "popularity_") for metric in METRICS]
    return {"cases": n, **{name: round(totals[name] / n, 4) if n else 0.0 for name in names}}


# --- Cases, catalogs and profiles at t -------------------------------------------------------------------

class _History(NamedTuple):
    events: list[dict]              # usable raw events: objects with a start date
    starts: list[datetime]
    users_by_id: dict[str, dict]
    users_by_email: dict[str, dict]
    names_by_email: dict[str, str]
    past_by_email: dict             # step 3's index of the events before `now`, newest first
    offerable: list[int]            # public, not-canceled events (step 2's filters), by start
    offerable_starts: list[datetime]


def _prepare(raw_users: list, raw_events: list, now: datetime) -> _History:
    users, _ = split_objects(raw_users)
    events, _ = split_objects(raw_events)
    usable, starts = [], []
    for event in events:
        start = parse_iso_date(event.get("startDate"))
        if start is not None:
            usable.append(event)
            starts.append(start)
    users_by_email = index_users_by_email(users)
    users_by_id = index_users_by_id(users)
    names = {email: name for email, user in users_by_email.items() if (name := full_name(user)) is not None}
    past_by_email, _ = index_past_events(usable, users_by_id, now)
    position = {id(event): index for index, event in enumerate(usable)}
    public, _ = filter_public_events(usable)
    active, _ = filter_active_events(public)
    offerable = sorted((position[id(event)] for event in active), key=lambda index: (starts[index], index))
    return _History(usable, starts, users_by_id, users_by_email, names, past_by_email, offerable,
                    [starts[index] for index in offerable])


def _attendees(event: dict) -> list[str]:
    participants = event.get("participants")
    if not isinstance(participants, list):
        return []
    return list(dict.fromkeys(email for email in map(normalize_email_text, participants) if email is not None))


def catalog_at(events: list[dict], t: datetime, days: int = CATALOG_DAYS) -> list[int]:
    """Indexes of the events a matcher could offer at `t`: step 2's date, public and canceled filters at `t`.

    Capacity is ignored: participant lists are final, so a table that filled up later was open at `t`.

    Args:
        events: Raw events (objects).
        t: The case's moment.
        days: The catalog spans (t, t + days].

    Returns:
        Indexes into `events`, soonest first (ties in list order).
    """
    end = t + timedelta(days=days)
    tagged = [dict(event, _backtest_index=i) for i, event in enumerate(events)]
    kept, _ = filter_future_events(tagged, t)
    kept, _ = filter_public_events(kept)
    kept, _ = filter_active_events(kept)
    chosen = [(parse_iso_date(event["startDate"]), event["_backtest_index"]) for event in kept]
    return [index for start, index in sorted(chosen) if start <= end]


def build_cases(raw_events: list, now: datetime, window_days: int = DEFAULT_WINDOW_DAYS) -> list[tuple[dict, str]]:
    """Every (attended event, attendee email) pair: a public, not-canceled event started in [now - window, now).

    Args:
        raw_events: The events export.
        now: The run's reference time.
        window_days: How far back an attended event may have started.

    Returns:
        (raw event, normalised email) pairs, oldest event first, emails in participant order.
    """
    history = _prepare([], raw_events, now)
    return [(history.events[case.event_index], case.email) for case in _cases(history, now, window_days)]


def _cases(history: _History, now: datetime, window_days: int) -> list[Case]:
    since = now - timedelta(days=window_days)
    # history.offerable is already sorted by (start, index) and holds only step 2's public, not-canceled events.
    return [Case(index, email) for index in history.offerable if since <= history.starts[index] < now
            for email in _attendees(history.events[index])]


def without_member(event: dict, email: str, hosted_by_member: bool = False) -> dict:
    """A copy of a raw event whose participants and invitations no longer list `email` (any spelling).

    A host is at their own table, so an event the member hosts loses its host too (`hosted_by_member`).
    """
    copy = dict(event)
    if hosted_by_member:
        copy.pop("ownerId", None)
    for field in ("participants", "invitedParticipants"):
        value = event.get(field)
        if isinstance(value, list):
            copy[field] = [entry for entry in value if normalize_email_text(entry) != email]
    return copy


def member_profile_at(user: dict, email: str, past_by_email: dict, names_by_email: dict[str, str],
                      t: datetime, zone: tzinfo) -> dict:
    """Step 3's profile of the member at `t`: history before `t` only, and no invitations (not dated).

    Args:
        user: The raw user.
        email: Their normalised email.
        past_by_email: `index_past_events(events, users_by_id, now)`'s first value for any `now` >= t;
            events from `t` on are dropped here, which gives what step 3 indexes with `now = t`.
        names_by_email: Full names by normalised email (for friends).
        t: The case's moment.
        zone: The zone dates are written in.

    Returns:
        The enriched user record, as step 3 writes it with `--now t`.
    """
    history = [item for item in past_by_email.get(email, ()) if item.start < t]
    return enrich_user(user, email, Lookups({email: history}, names_by_email, {}), t, zone)


def event_profile_at(event: dict, start: datetime, history: "_History", t: datetime, zone: tzinfo) -> dict:
    """Step 4's profile of a raw event at `t` (pass it through `without_member` first)."""
    record, _ = enrich_event(event, start, history.users_by_id, history.users_by_email, t, zone)
    return record


class _Group:
    """The cases of one attended event: they share `t`, the catalog and the member-free profiles."""

    def __init__(self, history: _History, target: int, lead_days: int, zone: tzinfo):
        self.t = history.starts[target] - timedelta(days=lead_days)
        # Only the offerable events starting in (t, t + CATALOG_DAYS] can qualify: catalog_at checks them.
        low = bisect.bisect_right(history.offerable_starts, self.t)
        high = bisect.bisect_right(history.offerable_starts, self.t + timedelta(days=CATALOG_DAYS))
        nearby = history.offerable[low:high]
        self.indexes = [nearby[i] for i in catalog_at([history.events[index] for index in nearby], self.t)]
        self.target_position = self.indexes.index(target)
        self._history = history
        self._zone = zone
        self._shared: dict[int, dict] = {}   # position -> profile without any member removed

    def catalog_for(self, email: str, user: dict) -> list[dict]:
        """The catalog the member sees: shared profiles, except events that name them, rebuilt without them."""
        catalog = []
        for position, index in enumerate(self.indexes):
            event = self._history.events[index]
            start = self._history.starts[index]
            hosted = self._history.users_by_id.get(as_id(event.get("ownerId")) or "") is user
            if hosted or email in _attendees(event) or _invited(event, email):
                catalog.append(event_profile_at(without_member(event, email, hosted), start, self._history,
                                                self.t, self._zone))
                continue
            shared = self._shared.get(position)
            if shared is None:
                shared = self._shared[position] = event_profile_at(event, start, self._history, self.t, self._zone)
            catalog.append(shared)
        return catalog


def _invited(event: dict, email: str) -> bool:
    invited = event.get("invitedParticipants")
    return isinstance(invited, list) and any(normalize_email_text(entry) == email for entry in invited)


def sample_cases(cases: list, limit: Optional[int], seed: int) -> list:
    """`limit` cases drawn with `random.Random(seed)`, in their original order; all of them without a limit."""
    if limit is None or limit >= len(cases):
        return list(cases)
    picked = sorted(random.Random(seed).sample(range(len(cases)), max(limit, 0)))
    return [cases[i] for i in picked]


# --- The command line ------------------------------------------------------------------------------------

def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 day, got {value}")
    return value


def _lead_days(text: str) -> int:
    """--lead-days: 1 to CATALOG_DAYS; a longer lead puts the attended event outside its own catalog."""
    value = _positive_int(text)
    if value > CATALOG_DAYS:
        raise argparse.ArgumentTypeError(f"expected at most {CATALOG_DAYS} days (the catalog spans the "
                                         f"{CATALOG_DAYS} days after t, and must hold the attended event), "
                                         f"got {value}")
    return value


#: Flags of the live run that mean nothing to a backtest: (argparse dest, flag). Given with
#: `--backtest`, they refuse the run, so nobody believes a backtest previewed, uploaded or selected.
REFUSED_WITH_BACKTEST = (
    ("preview", "--preview"), ("email", "--email"), ("user_id", "--user-id"), ("fresh", "--fresh"),
    ("recreate_deleted", "--recreate-deleted"), ("max_segments", "--max-segments"),
)
#: Where `add_backtest_arguments` keeps those flags' defaults, to tell a given flag from a default.
LIVE_RUN_DEFAULTS = "live_run_defaults"


def add_backtest_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--backtest` and its own flags to step 5's parser.

    `--dry-run` and `--max-cost` are the live run's own flags (step 5 defines them); the backtest reads them too.

    Args:
        parser: Step 5's parser, which already has `--limit`, `--model`, `--dry-run` and `--max-cost`.
    """
    parser.add_argument("--backtest", action="store_true",
                        help="measure the matching phase on past attendance (data/raw) instead of a run; "
                             "writes data/processed/backtest.json (see docs/backtest.md)")
    parser.add_argument("--window-days", type=_positive_int, default=DEFAULT_WINDOW_DAYS, metavar="DAYS",
                        help=f"--backtest: cases are events started this many days before --now "
                             f"(default {DEFAULT_WINDOW_DAYS})")
    parser.add_argument("--lead-days", type=_lead_days, default=DEFAULT_LEAD_DAYS, metavar="DAYS",
                        help=f"--backtest: the matcher is asked this many days before each event "
                             f"(default {DEFAULT_LEAD_DAYS}, at most {CATALOG_DAYS}: the catalog's span)")
    parser.set_defaults(**{LIVE_RUN_DEFAULTS: {dest: parser.get_default(dest) for dest, _ in REFUSED_WITH_BACKTEST}})


# --- The run ---------------------------------------------------------------------------------------------

def run_backtest(raw_users: list, raw_events: list, now: datetime, ranker: Ranker, *,
                 limit: Optional[int] = None, window_days: int = DEFAULT_WINDOW_DAYS,
                 lead_days: int = DEFAULT_LEAD_DAYS, seed: int = DEFAULT_SEED,
                 zone: tzinfo = timezone.utc) -> dict[str, Any]:
    """Rank every sampled case with `ranker` and score the shortlists against both baselines.

    Args:
        raw_users: The users export (list of objects; others are ignored).
        raw_events: The events export.
        now: The run's reference time; attended events started in [now - window_days, now).
        ranker: rank(member_profile, catalog, t) -> choices, best first (see `Ranker`). Its optional
            attributes `generator`, `model` and `cost_usd` (read after the run) go into the result.
        limit: At most this many cases, sampled deterministically from the eligible ones.
        window_days: How far back a case's event may be.
        lead_days: t = event start - lead_days; 1 to CATALOG_DAYS, so the attended event is in its catalog.
        seed: Seed of the sampling.
        zone: Zone the profiles' dates are written in.

    Raises:
        ValueError: `lead_days` is outside 1 to CATALOG_DAYS.

    Returns:
        {"cases", "skipped", "skipped_by_reason", "hit_at_1", "hit_at_3", "mrr", "random_*",
        "popularity_*", "by_campaign": {campaign: the same metrics}, "generator", "model", "cost_usd",
        "now", "window_days", "lead_days", "limit", "seed", "eligible_cases", "mean_catalog_size"}.
    """
    if not 1 <= lead_days <= CATALOG_DAYS:
        raise ValueError(f"lead_days must be 1 to {CATALOG_DAYS} (the catalog's span), got {lead_days}")
    history = _prepare(raw_users, raw_events, now)
    skipped: Counter = Counter()
    groups: dict[int, _Group] = {}
    eligible: list[Case] = []
    for case in _cases(history, now, window_days):
        group = groups.get(case.event_index)
        if group is None:
            group = groups[case.event_index] = _Group(history, case.event_index, lead_days, zone)
        user = history.users_by_email.get(case.email)
        if user is None:
            skipped[SKIP_NO_PROFILE_USER] += 1
        elif len(group.indexes) < 2:
            skipped[SKIP_SMALL_CATALOG] += 1
        elif (joined := parse_iso_date(user.get("createdAt"))) is not None and joined > group.t:
            skipped[SKIP_NOT_MEMBER_YET] += 1
        else:
            eligible.append(case)

    results: list[CaseResult] = []
    for case in sample_cases(eligible, limit, seed):
        group = groups[case.event_index]
        user = history.users_by_email[case.email]
        profile = member_profile_at(user, case.email, history.past_by_email, history.names_by_email, group.t, zone)
        catalog = group.catalog_for(case.email, user)
        choices = list(ranker(profile, catalog, group.t) or [])
        rank = shortlist_rank(choices, catalog, group.target_position)
        popular = popularity_order(catalog).index(group.target_position) + 1
        campaign = choices[0].get("campaign") if choices and choices[0].get("campaign") else user_campaign(profile)
        results.append(CaseResult(rank, len(catalog), popular, campaign))

    by_campaign: dict[str, list[CaseResult]] = {}
    for result in results:
        by_campaign.setdefault(result.campaign, []).append(result)
    summary = summarize(results)
    return {
        **summary,
        "skipped": sum(skipped.values()),
        "skipped_by_reason": dict(sorted(skipped.items())),
        "eligible_cases": len(eligible),
        "mean_catalog_size": round(sum(r.catalog_size for r in results) / len(results), 2) if results else 0.0,
        "by_campaign": {name: summarize(items) for name, items in sorted(by_campaign.items())},
        "generator": getattr(ranker, "generator", "custom"),
        "model": getattr(ranker, "model", None),
        "cost_usd": round(float(getattr(ranker, "cost_usd", 0.0) or 0.0), 6),
        "now": now.isoformat(),
        "window_days": window_days,
        "lead_days": lead_days,
        "limit": limit,
        "seed": seed,
    }


class OfflineRanker:
    """The offline engine as a backtest ranker: the top 3 catalog events by `score_event`."""

    generator = "offline"
    model = OFFLINE_ENGINE_VERSION
    cost_usd = 0.0

    def __call__(self, member_profile: dict, catalog: list[dict], now: datetime) -> list[dict]:
        """Up to 3 choices, best first: {event_index, event_id, campaign, confidence}."""
        ranked = rank_events(member_profile, catalog, now, bookable_only=False)[:SHORTLIST_SIZE]
        return [{"event_index": index, "event_id": catalog[index].get("id"),
                 "campaign": choose_campaign(member_profile, catalog[index])[0],
                 "confidence": confidence_from_score(score)} for index, score, _ in ranked]


# --- Saving and showing ----------------------------------------------------------------------------------

def save_backtest(result: dict, out_dir: Path) -> Path:
    """Write `backtest.json` in `out_dir`, first keeping the one there as `backtest.prev.json`.

    Args:
        result: What `run_backtest` returned.
        out_dir: Usually data/processed.

    Returns:
        The path written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    current = out_dir / BACKTEST_FILE
    if current.exists():
        current.replace(out_dir / PREVIOUS_BACKTEST_FILE)
    save_json_atomic(current, result)
    return current


def load_previous_backtest(out_dir: Path) -> Optional[dict]:
    """The result in `backtest.json` (to compare the next run with), or None when there is none."""
    path = Path(out_dir) / BACKTEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # an unreadable previous run only loses the comparison
    return data if isinstance(data, dict) else None


def _percent(value: Optional[float]) -> str:
    return f"{100 * value:5.1f}%" if isinstance(value, (int, float)) else "    -"


def _change(value: Optional[float], before: Optional[float]) -> str:
    if not isinstance(value, (int, float)) or not isinstance(before, (int, float)):
        return ""
    return f"{100 * (value - before):+5.1f} pts"


def format_backtest_table(result: dict, previous: Optional[dict] = None) -> str:
    """The run as a text table: each metric beside both baselines, the change since `previous`, per campaign.

    Args:
        result: What `run_backtest` returned.
        previous: The previous run's result (from `backtest.json`), or None.

    Returns:
        Lines ready to print, e.g. "HitRate@1   41.0%   20.3%   24.1%   +3.0 pts".
    """
    label = {"hit_at_1": "HitRate@1", "hit_at_3": "HitRate@3", "mrr": "MRR"}
    head = (f"Backtest: {result.get('cases', 0)} cases ({result.get('skipped', 0)} skipped), "
            f"{result.get('generator')} {result.get('model') or ''}".rstrip()
            + f", cost ${result.get('cost_usd', 0.0):.4f}")
    lines = [head, f"{'':<22}{'ranker':>8}{'random':>8}{'popular':>9}  change vs previous"]

    def rows(prefix: str, current: dict, before: Optional[dict]) -> None:
        for metric in METRICS:
            lines.append(f"{prefix + label[metric]:<22}{_percent(current.get(metric)):>8}"
                         f"{_percent(current.get('random_' + metric)):>8}"
                         f"{_percent(current.get('popularity_' + metric)):>9}  "
                         f"{_change(current.get(metric), (before or {}).get(metric))}".rstrip())

    rows("", result, previous)
    before_campaigns = (previous or {}).get("by_campaign") or {}
    for campaign, metrics in (result.get("by_campaign") or {}).items():
        lines.append(f"{campaign} ({metrics.get('cases', 0)} cases)")
        rows("  ", metrics, before_campaigns.get(campaign))
    if previous is None:
        lines.append("(no previous run to compare with)")
    return "\n".join(lines)
