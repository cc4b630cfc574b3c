"""Step 5's offline engine: explainable rule-based matching and template messages, with no network.

Used by `step5_match_message.py --offline` for demos, dry runs and first contact. Every number that
decides a match is a named constant below, and every match's reasoning lists the parts of its score.
docs/offline-engine.md explains the rules to growth and ops users; keep the two in step.

Campaign precedence (the spec's three rules overlap, so the first that applies wins; the Claude
matching prompt should state the same order; docs/offline-engine.md explains it):

1. "Return to Table": the member has been to at least one event, and the last was 31+ days ago (or
   they have not come in 60 days). A lapsed member who came once or twice is not a newcomer: the
   message that fits is "we've missed you", with the event they came to.
2. "Seat The Newcomer": 2 events or fewer (none yet, or 1-2 recent ones).
3. "Fill the Table": everyone else, the active regulars (3+ events, the last within 30 days), whom we
   ask to help fill tables; their scoring favours tables flagged `has_low_occupancy`. The spec's "any
   user matched to a low-occupancy event" therefore applies to regulars only: a lapsed member is asked
   back, not asked for a favour, and a newcomer is welcomed.

The campaign depends on the member alone, so one campaign scores all of a member's events.
"""

import hashlib
import re
import unicodedata
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import NamedTuple, Optional

from utils.dates import parse_iso_date
from utils.people import MONTH_NAMES, WEEKDAY_NAMES, is_number, text_list
from utils.rules import (
    CAMPAIGN_FILL_TABLE, CAMPAIGN_NEWCOMER, CAMPAIGN_RETURN, NEWCOMER_MAX_EVENTS, RETURN_MIN_DAYS, is_newcomer,
    is_return_candidate,
)
from utils.sms import CAPS_ALLOWLIST, GSM7, check_message, normalize_gsm, sms_encoding, sms_segments

#: Recorded as the record's `model`, and part of its fingerprint: bump it when the rules change.
OFFLINE_ENGINE_VERSION = "offline-rules-v2"

# --- Score weights (docs/offline-engine.md has the same table) ------------------------------------

INTEREST_CATEGORY_POINTS = 2.0   # per member interest matching an event category or feature
INTEREST_CROWD_POINTS = 0.5      # per other member interest shared by the people already going ...
INTEREST_CROWD_MAX_POINTS = 1.0  # ... up to this, so the crowd never outweighs one direct interest match
# Per dietary restriction the event clashes with: one clash cancels three matching interests,
# because sending someone with a shellfish allergy to an oyster night is worse than a dull match.
DIETARY_CONFLICT_PENALTY = -6.0
HOME_NEIGHBORHOOD_POINTS = 2.0
WORK_NEIGHBORHOOD_POINTS = 1.5
OCCUPANCY_FIT_POINTS = 1.5       # the event's fill level is what the member's campaign prefers
FRIEND_POINTS = 2.0              # per friend of theirs (step 3's `friends`) among the guests ...
FRIEND_MAX_POINTS = 4.0          # ... up to this: people come back with the people they came with
POPULARITY_POINTS = 0.2          # per guest already going ...
POPULARITY_MAX_POINTS = 3.0      # ... up to this (15 guests): a table people choose is a safer bet
SOON_MAX_POINTS = 1.0            # an event starting now scores 1, falling linearly to 0 at SOON_HORIZON_DAYS
SOON_HORIZON_DAYS = 30
#: The score at which confidence reaches its cap; a strong match (two interests, home, fit, a friend) ~11.
CONFIDENT_SCORE = 10.0
#: Confidence is never shown as certain (nor as zero): rules are a rough guide.
MIN_CONFIDENCE, MAX_CONFIDENCE = 5, 95

#: Preferred fill ratio (participants / capacity), inclusive, for the campaigns that want a good crowd;
#: Fill the Table prefers events flagged `has_low_occupancy` instead.
PREFERRED_FILL = {CAMPAIGN_NEWCOMER: (0.5, 0.8), CAMPAIGN_RETURN: (0.5, 1.0)}

# --- Dietary rules ------------------------------------------------------------------------------------

_MEAT = ("meat", "steak", "steakhouse", "bbq", "barbecue", "burger", "burgers", "chicken", "pork", "bacon",
         "ham", "prosciutto", "chorizo", "carnitas", "lamb", "beef", "brisket")
_FISH = ("fish", "sushi", "sashimi", "omakase", "ceviche", "tuna", "salmon", "seafood")
_SHELLFISH = ("shellfish", "oyster", "oysters", "shrimp", "prawn", "prawns", "lobster", "crab", "clam",
              "clams", "mussels", "seafood")
_DAIRY = ("cheese", "dairy", "fondue", "ice cream", "gelato")
_EGG = ("egg", "eggs", "omelette", "omelet", "frittata", "quiche", "brunch")
_GLUTEN = ("pasta", "pizza", "bread", "bagel", "bagels", "dumpling", "dumplings", "bakery", "beer", "noodle",
           "noodles", "ramen")
_TREE_NUTS = ("nut", "nuts", "almond", "almonds", "pecan", "pecans", "walnut", "walnuts", "cashew", "cashews",
              "pistachio", "pistachios", "hazelnut", "hazelnuts", "praline")
_PEANUTS = ("peanut", "peanuts", "satay")
_PORK = ("pork", "bacon", "ham", "prosciutto", "chorizo", "carnitas")
_ALCOHOL = ("wine", "beer", "cocktail", "cocktails", "sake", "whiskey", "mezcal", "pisco", "spritz")
_SOY = ("soy", "tofu", "edamame", "miso")


class DietRule(NamedTuple):
    """One kind of dietary restriction and the event words that clash with it."""

    triggers: tuple[str, ...]  # words that identify it in a member's restriction ("tree nuts" -> "nuts")
    clashes: tuple[str, ...]  # whole words/phrases in the event's name, description, categories, features
    accommodated_by: tuple[str, ...] = ()  # event features (lower case) that cancel the clash


#: Matched on whole words, so "nut" is not found in "5 minutes" and "ham" not in "champagne";
#: "<word>-free" phrases ("dairy-free options") are ignored, and an event listing an accommodating
#: feature ("Vegan options") is no conflict for that restriction.
DIETARY_RULES = (
    DietRule(("vegan",), _MEAT + _FISH + _SHELLFISH + _DAIRY + _EGG, ("vegan options",)),
    DietRule(("vegetarian", "veggie"), _MEAT + _FISH + _SHELLFISH, ("vegetarian options", "vegan options")),
    DietRule(("pescatarian", "pescetarian"), _MEAT, ("vegetarian options", "vegan options")),
    DietRule(("gluten", "celiac", "coeliac", "wheat"), _GLUTEN, ("gluten-free options",)),
    DietRule(("dairy", "lactose", "milk"), _DAIRY, ("vegan options",)),
    DietRule(("egg", "eggs"), _EGG, ("vegan options",)),
    DietRule(("nut", "nuts"), _TREE_NUTS),
    DietRule(("peanut", "peanuts"), _PEANUTS),
    DietRule(("shellfish", "crustacean", "crustaceans"), _SHELLFISH),
    DietRule(("fish",), _FISH),
    DietRule(("pork",), _PORK),
    DietRule(("kosher",), _PORK + _SHELLFISH),
    DietRule(("halal",), _PORK + _ALCOHOL),
    DietRule(("soy", "soya"), _SOY),
)

# --- Messages -------------------------------------------------------------------------------------------

#: The most characters an SMS may have, link included: the seed's rule is "fewer than 180" (issue 11).
MAX_SMS_CHARS = 179
#: Seats are scarce (and said so: "only 3 seats left") at or below this many free seats ...
FEW_SEATS = 5
#: ... and only when at least this share of the table is taken ("8 seats left" of 8 is no scarcity).
SCARCE_MIN_FILL = 0.5
#: Social proof ("6 people are going.") only when it helps: at least this many going ...
PROOF_MIN_GOING = 3
#: ... or the table at least this full (with 2 or more going: never "1 person is going").
PROOF_MIN_FILL = 0.5
#: A personal hook's interest or past event name is left out when longer than this.
MAX_HOOK_TEXT_CHARS = 28
#: A shortened event name keeps at least this many characters (with the "..."), else it is left out.
MIN_EVENT_NAME_CHARS = 12
#: Who the message greets when the member has no first name.
NO_NAME_GREETING = "there"

#: Message templates per campaign. Newcomers may have been to 2 events, so none says "your first".
#: The member-specific rotation decides which is tried first.
#: Every template starts "Hi/Hey {first}" (so "Hi there" works without a name) and ends with a call to
#: action and a colon, before which step 5 appends the booking link. The optional parts are filled
#: with "" when they do not apply (and are dropped, in this order, when a message runs long):
#: {where} " in <neighborhood>"; {proof} " 6 people are going." (see `social_proof`); {hook} one
#: true personal line and {since} " since <their last event>" (see `personal_hook`; at most one of the
#: two is filled). {seats} is ": only 3 seats left" when seats are scarce.
#: No template promises a seat ("your seat awaits"): invitations can outnumber free seats.
#: They are short on purpose: the booking link takes 61 of the 180 characters.
TEMPLATES = {
    CAMPAIGN_NEWCOMER: (
        "Hi {first}! Come meet new people at {event}, {when}{where}.{hook}{proof} Join us:",
        "Hey {first}, new faces welcome at {event}, {when}{where}.{hook}{proof} Save a seat:",
        "Hi {first}! Meet the table at {event}, {when}{where}.{hook}{proof} Join us:",
    ),
    CAMPAIGN_FILL_TABLE: (
        "Hi {first}! {event} {when}{where}{seats}.{hook}{proof} Grab a seat:",
        "Hey {first}! Join us at {event}, {when}{where}{seats}.{hook}{proof} Join in:",
        "Hi {first}! Don't miss {event} {when}{where}{seats}.{hook}{proof} Take a seat:",
    ),
    CAMPAIGN_RETURN: (
        "Hey {first}, we've missed you{since}! {event} is {when}{where}.{hook}{proof} Come back:",
        "Hi {first}, been a while{since}! Join us at {event}, {when}{where}.{hook}{proof} Save a seat:",
        "Hi {first}, we miss you{since}! Reunion time: {event}, {when}{where}.{hook}{proof} Come back:",
    ),
}

#: The last resort per campaign, without the event's name: used when no template fits 180 characters
#: even with the name shortened, or when the name itself breaks a rule (a link, "BYOB", "!!!" ...).
FALLBACK_TEMPLATES = {
    CAMPAIGN_NEWCOMER: "Hi {first}! Come meet new people at our table {when}{where}.{proof} Join us:",
    CAMPAIGN_FILL_TABLE: "Hi {first}! Join our table {when}{where}{seats}.{proof} Grab a seat:",
    CAMPAIGN_RETURN: "Hey {first}, we've missed you! Join our table {when}{where}.{proof} Come back:",
}

_WEEKDAYS = tuple(name[:3] for name in WEEKDAY_NAMES)
_MONTHS = tuple(name[:3] for name in MONTH_NAMES)
# The same idea of a "word" as the spam rule of utils.sms, so what we calm down is what it checks.
_LETTERS_RE = re.compile(r"[^\W\d_]+")
_WORD_RE = re.compile(r"[a-z0-9]+")
_FREE_OF_RE = re.compile(r"\b[a-z]+[\s-]free\b")
# Words a shortened name must not end on ("Supper in..." reads as a mistake).
_DANGLING_WORDS = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "the", "to", "with",
                             "vol", "vol.", "&", "+", "-", "x"})
_TRAILING_PUNCTUATION = " ,;:-&+/("


# --- Campaigns ----------------------------------------------------------------------------------------

def _event_count(user: dict) -> int:
    count = user.get("event_count")
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def user_campaign(user: dict) -> str:
    """The member's campaign, by the precedence in the module docstring.

    Args:
        user: An enriched user (`event_count`, `days_since_last_event`, `hasnt_attended_in_60_days`).

    Returns:
        "Return to Table" (1+ events, the last 31+ days ago or none in 60 days), else "Seat The
        Newcomer" (2 events or fewer; a missing count counts as 0), else "Fill the Table".
    """
    count = _event_count(user)
    if count > 0 and is_return_candidate(user.get("days_since_last_event"), user.get("hasnt_attended_in_60_days")):
        return CAMPAIGN_RETURN
    if is_newcomer(count):
        return CAMPAIGN_NEWCOMER
    return CAMPAIGN_FILL_TABLE


def choose_campaign(user: dict, event: dict) -> tuple[str, str]:
    """The match's campaign by the precedence in the module docstring, and why, in words.

    Args:
        user: An enriched user.
        event: The event chosen for them (the precedence no longer depends on it; kept for callers).

    Returns:
        (campaign, reason), e.g. ("Return to Table", "128 days since their last event").
    """
    campaign = user_campaign(user)
    count = _event_count(user)
    if campaign == CAMPAIGN_RETURN:
        days = user.get("days_since_last_event")
        if isinstance(days, int) and days >= RETURN_MIN_DAYS:
            return campaign, f"{days} days since their last event"
        return campaign, "no event in the last 60 days"
    if campaign == CAMPAIGN_NEWCOMER:
        return campaign, f"{_plural(count, 'past event')}, a newcomer ({NEWCOMER_MAX_EVENTS} or fewer)"
    if event.get("has_low_occupancy") is True:
        return campaign, "an active regular, and the event has low occupancy"
    return campaign, "an active regular, asked to help fill a table"


# --- Scoring --------------------------------------------------------------------------------------------

def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


@lru_cache(maxsize=65536)
def _words(text: str) -> frozenset[str]:
    # Single letters are dropped so that "Chef's" is just "chef".
    return frozenset(_singular(word) for word in _WORD_RE.findall(text.lower()) if len(word) > 1)


def same_interest(interest: str, tag: str) -> bool:
    """Whether an interest and an event tag name the same thing: one's words contain the other's.

    "wine" and "wine tasting" match, "art" and "Arts" match (a final "s" is ignored), "cocktails"
    and "Cocktail pairing" match; "art" and "party" do not (whole words), nor "wine tasting" and
    "Wine pairing" (neither contains the other).
    """
    mine, theirs = _words(interest), _words(tag)
    return bool(mine) and bool(theirs) and (mine <= theirs or theirs <= mine)


def _capacity_and_count(event: dict) -> Optional[tuple[float, float]]:
    """(maxParticipants, participant_count), or None when either is no number or the capacity is not positive."""
    capacity = event.get("maxParticipants")
    count = event.get("participant_count")
    if not is_number(capacity) or capacity <= 0 or not is_number(count):
        return None
    return capacity, count


def fill_ratio(event: dict) -> Optional[float]:
    """participant_count / maxParticipants, or None when either is unknown or the capacity is not positive."""
    known = _capacity_and_count(event)
    return None if known is None else known[1] / known[0]


def seats_left(event: dict) -> Optional[int]:
    """Whole seats still free (never negative), or None when the capacity or count is unknown."""
    known = _capacity_and_count(event)
    return None if known is None else max(int(known[0]) - int(known[1]), 0)



def dietary_conflicts(user: dict, event: dict) -> list[tuple[str, str]]:
    """The member's restrictions that the event clashes with, each with the first clashing word.

    Args:
        user: An enriched user (`dietary_restrictions`).
        event: An enriched event (`name`, `description`, `categories`, `features`).

    Returns:
        (restriction, word) pairs, e.g. [("shellfish", "oyster")], one per clashing restriction.
    """
    features = [feature.lower() for feature in text_list(event.get("features"))]
    food = " ".join([str(event.get("name") or ""), str(event.get("description") or "")]
                    + text_list(event.get("categories")) + features).lower()
    # "Dairy-free options" or "gluten free" says what the food is *not*.
    food = _FREE_OF_RE.sub(" ", food)
    found = []
    for restriction in text_list(user.get("dietary_restrictions")):
        words = set(_WORD_RE.findall(restriction.lower()))
        for rule in DIETARY_RULES:
            if not words.intersection(rule.triggers) or any(f in features for f in rule.accommodated_by):
                continue
            clash = next((word for word in rule.clashes if re.search(rf"\b{re.escape(word)}\b", food)), None)
            if clash is not None:
                found.append((restriction, clash))
                break
    return found


def _days_phrase(days_away: float) -> str:
    whole = int(days_away)
    if whole == 0:
        return "starts within a day"
    return f"starts in {_plural(whole, 'day')}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _name_before_bracket(entry: str) -> str:
    # "Maya Chen (3)" and "Maya Chen (Product Designer)" both name Maya Chen.
    return entry.split(" (", 1)[0].strip().lower()


def _friends_going(user: dict, event: dict) -> list[str]:
    """The member's friends (step 3's "First Last (shared events)") among the event's guest names."""
    guests = {_name_before_bracket(name) for name in text_list(event.get("participant_names"))}
    return [name.split(" (", 1)[0] for name in text_list(user.get("friends")) if _name_before_bracket(name) in guests]


def score_event(user: dict, event: dict, campaign: str, now: datetime) -> tuple[float, list[str]]:
    """Score one event for one member.

    Each part is rounded to 0.1 before it is added, so the parts in the reasoning add up to the score.

    Args:
        user: An enriched user.
        event: An enriched event.
        campaign: The member's campaign (`user_campaign`), for the occupancy preference.
        now: The run's reference time.

    Returns:
        The score and its parts in words, e.g. ["interests jazz +3.0", "starts in 9 days +0.7"].
    """
    parts: list[tuple[float, str]] = []
    interests = text_list(user.get("interests"))
    tags = text_list(event.get("categories")) + text_list(event.get("features"))
    crowd = text_list(event.get("common_interests"))
    matched = [i for i in interests if any(same_interest(i, tag) for tag in tags)]
    if matched:
        parts.append((INTEREST_CATEGORY_POINTS * len(matched), f"interests {', '.join(matched)}"))
    shared = [i for i in interests if i not in matched and any(same_interest(i, other) for other in crowd)]
    if shared:
        points = min(INTEREST_CROWD_POINTS * len(shared), INTEREST_CROWD_MAX_POINTS)
        parts.append((points, f"guests share {', '.join(shared)}"))
    for restriction, word in dietary_conflicts(user, event):
        parts.append((DIETARY_CONFLICT_PENALTY, f"dietary conflict ({restriction} vs {word})"))
    neighborhood = str(event.get("neighborhood") or "").strip()
    if neighborhood and neighborhood.lower() == str(user.get("homeNeighborhood") or "").strip().lower():
        parts.append((HOME_NEIGHBORHOOD_POINTS, f"in their home neighborhood {neighborhood}"))
    elif neighborhood and neighborhood.lower() == str(user.get("workNeighborhood") or "").strip().lower():
        parts.append((WORK_NEIGHBORHOOD_POINTS, f"in their work neighborhood {neighborhood}"))
    if campaign == CAMPAIGN_FILL_TABLE:
        if event.get("has_low_occupancy") is True:
            parts.append((OCCUPANCY_FIT_POINTS, "low occupancy, needs filling"))
    else:
        ratio = fill_ratio(event)
        low, high = PREFERRED_FILL[campaign]
        if ratio is not None and low <= ratio <= high:
            parts.append((OCCUPANCY_FIT_POINTS, f"{ratio:.0%} full, a good crowd for {campaign}"))
    friends = _friends_going(user, event)
    if friends:
        parts.append((min(FRIEND_POINTS * len(friends), FRIEND_MAX_POINTS), f"friends going: {', '.join(friends)}"))
    going = event.get("participant_count")
    if is_number(going) and going > 0:
        parts.append((round(min(POPULARITY_POINTS * going, POPULARITY_MAX_POINTS), 1),
                      f"{_plural(int(going), 'guest')} going"))
    start = parse_iso_date(event.get("startDate"))
    if start is not None and start > now:
        days_away = (start - now).total_seconds() / 86400
        soon = round(SOON_MAX_POINTS * max(0.0, 1 - days_away / SOON_HORIZON_DAYS), 1)
        if soon > 0:
            parts.append((soon, _days_phrase(days_away)))
    score = round(sum(points for points, _ in parts), 1)
    return score, [f"{label} {points:+.1f}" for points, label in parts]


def confidence_from_score(score: float) -> int:
    """The match confidence: 10 points per score point, kept within [MIN_CONFIDENCE, MAX_CONFIDENCE]."""
    return max(MIN_CONFIDENCE, min(MAX_CONFIDENCE, round(100 * score / CONFIDENT_SCORE)))


def rank_events(user: dict, events: list[dict], now: datetime, *,
                bookable_only: bool = True) -> list[tuple[int, float, list[str]]]:
    """Every candidate event for a member, best first, with its score and the score's parts.

    Ties go to the event that starts sooner, then to the earlier one in `events`, so the order depends
    only on the inputs. Events are scored with `user_campaign`'s occupancy preference.

    Args:
        user: An enriched user.
        events: The enriched events (the catalog).
        now: The run's reference time.
        bookable_only: Leave out events that have started or are full (unless every event is); the
            backtest turns this off, because its participant lists are final.

    Returns:
        (index in `events`, score, parts) tuples, best first.
    """
    candidates = range(len(events))
    if bookable_only:
        candidates = [index for index in candidates if is_bookable(events[index], now)] or candidates
    scoring_campaign = user_campaign(user)
    ranked = []
    for index in candidates:
        event = events[index]
        score, parts = score_event(user, event, scoring_campaign, now)
        start = parse_iso_date(event.get("startDate"))
        ranked.append(((-score, start.timestamp() if start else float("inf"), index), index, score, parts))
    ranked.sort(key=lambda item: item[0])
    return [(index, score, parts) for _, index, score, parts in ranked]


def is_bookable(event: dict, now: datetime) -> bool:
    """False when the event has started by `now` or has no seat left; unknown facts count as bookable."""
    start = parse_iso_date(event.get("startDate"))
    if start is not None and start <= now:
        return False
    left = seats_left(event)
    return left is None or left > 0


def offline_match(user: dict, events: list[dict], now: datetime) -> dict:
    """Pick the best-scoring event for a member, explain the score and choose the campaign.

    Events that have started or are full are skipped (unless every event is). Ties go to the event
    that starts sooner, then to the earlier one in `events`, so the result depends only on the inputs.
    Events are scored with `user_campaign`'s occupancy preference; the campaign returned is
    `choose_campaign`'s (the precedence in the module docstring).

    Args:
        user: An enriched user.
        events: The enriched events (the catalog); at least one.
        now: The run's reference time.

    Returns:
        {event_index, campaign, reasoning, confidence}, as the Claude matcher returns, e.g.
        reasoning "Rule-based score 6.2 = interests jazz +3.0; ... Campaign Fill the Table: ...".

    Raises:
        ValueError: `events` is empty.
    """
    if not events:
        raise ValueError("offline_match needs at least one event")
    return offline_shortlist(user, events, now, k=1)[0]


def offline_shortlist(user: dict, events: list[dict], now: datetime, k: int = 3) -> list[dict]:
    """The member's top `k` events by `score_event`, best first, each shaped like `offline_match`'s answer.

    Same candidates, scoring and tie-break as `offline_match`, so the first choice is its event.

    Args:
        user: An enriched user.
        events: The enriched events (the catalog); at least one.
        now: The run's reference time.
        k: How many choices at most.

    Returns:
        Up to `k` dicts {event_index, campaign, reasoning, confidence}, distinct events, best first.

    Raises:
        ValueError: `events` is empty.
    """
    if not events:
        raise ValueError("offline_shortlist needs at least one event")
    choices = []
    for index, score, parts in rank_events(user, events, now)[:k]:
        campaign, why = choose_campaign(user, events[index])
        explanation = "; ".join(parts) if parts else "no strong signal, the soonest bookable event"
        choices.append({
            "event_index": index,
            "campaign": campaign,
            "reasoning": f"Rule-based score {score:.1f} = {explanation}. Campaign {campaign}: {why}.",
            "confidence": confidence_from_score(score),
        })
    return choices


# --- Message parts ----------------------------------------------------------------------------------------

def _clock(local: datetime) -> str:
    hour = local.hour % 12 or 12
    minutes = f":{local.minute:02d}" if local.minute else ""
    return f"{hour}{minutes}{'am' if local.hour < 12 else 'pm'}"


def describe_when(event: dict, now: datetime, zone: tzinfo) -> str:
    """When the event starts, as a person in `zone` would say it.

    English whatever the machine's locale. Days are counted in `zone`, so an event at 01:00 UTC on a
    Saturday is "Fri ... 8pm" in New York.

    Args:
        event: An event with `startDate`.
        now: The run's reference time.
        zone: The run's time zone (--timezone).

    Returns:
        "tonight at 7pm" (same day, from 5pm), "today at 1pm", "tomorrow at 7:30pm", "Fri at 7pm"
        (within 6 days), else "Fri Dec 4 at 7pm"; "soon" when the date is unknown.
    """
    start = parse_iso_date(event.get("startDate"))
    if start is None:
        return "soon"
    local = start.astimezone(zone)
    clock = _clock(local)
    days_away = (local.date() - now.astimezone(zone).date()).days
    if days_away == 0:
        return f"tonight at {clock}" if local.hour >= 17 else f"today at {clock}"
    if days_away == 1:
        return f"tomorrow at {clock}"
    weekday = _WEEKDAYS[local.weekday()]
    if 1 < days_away < 7:
        return f"{weekday} at {clock}"
    return f"{weekday} {_MONTHS[local.month - 1]} {local.day} at {clock}"


def sms_text(value: str) -> str:
    """Text from a record made fit for an SMS: GSM look-alikes, single spaces, no shouting.

    ALL-CAPS words of 4+ letters ("JAZZ NIGHT") become "Jazz Night" unless the SMS rules allow them in
    capitals (RSVP, LGBTQ ...); 3-letter acronyms (NYC, BBQ) stay. "!!" and longer become "!".
    These are the words check_message would reject as shouting, so "DUMBO" becomes "Dumbo" too.

    Args:
        value: An event name, neighborhood or first name.

    Returns:
        The cleaned text ("" for blank input).
    """
    text = " ".join(normalize_gsm(value).split())
    text = _LETTERS_RE.sub(
        lambda m: m.group().capitalize() if len(m.group()) >= 4 and m.group().isupper()
        and m.group() not in CAPS_ALLOWLIST else m.group(), text)
    return re.sub(r"!{2,}", "!", text)


def shorten(text: str, max_chars: int) -> Optional[str]:
    """`text` cut at a word boundary to at most `max_chars`, ending "...".

    The cut never ends on a small word or a symbol ("Supper in...", "Cheese &..."); a single word
    longer than the room is cut mid-word.

    Args:
        text: An event name, already through `sms_text`.
        max_chars: The room for it.

    Returns:
        `text` itself when it fits; None when fewer than MIN_EVENT_NAME_CHARS would be left.
    """
    if len(text) <= max_chars:
        return text
    if max_chars < MIN_EVENT_NAME_CHARS:
        return None
    # One character more than fits with the "...": if it is a space, the last word is whole.
    head = text[:max_chars - 2]
    words = head.split(" ")[:-1]
    while words and (words[-1].lower() in _DANGLING_WORDS or not words[-1].strip(_TRAILING_PUNCTUATION)):
        words.pop()
    cut = " ".join(words).rstrip(_TRAILING_PUNCTUATION) if words else head[:-1]  # one long word: cut it
    if len(cut) + 3 < MIN_EVENT_NAME_CHARS:
        return None
    return cut + "..."


def social_proof(event: dict) -> str:
    """" 6 people are going." when that helps (PROOF_MIN_GOING going, or PROOF_MIN_FILL full with 2+), else ""."""
    count = event.get("participant_count")
    if not isinstance(count, int) or isinstance(count, bool) or count < 2:
        return ""
    ratio = fill_ratio(event)
    if count >= PROOF_MIN_GOING or (ratio is not None and ratio >= PROOF_MIN_FILL):
        return f" {count} people are going."
    return ""


def seats_phrase(event: dict) -> str:
    """": only 3 seats left" when seats are scarce (FEW_SEATS or fewer, the table SCARCE_MIN_FILL full), else ""."""
    left = seats_left(event)
    ratio = fill_ratio(event)
    if not left or left > FEW_SEATS or ratio is None or ratio < SCARCE_MIN_FILL:
        return ""
    return f": only {_plural(left, 'seat')} left"


def _hook_text(value: str) -> Optional[str]:
    text = sms_text(value)
    return text if text and len(text) <= MAX_HOOK_TEXT_CHARS else None


class PersonalHook(NamedTuple):
    """The one true personal touch of a message; at most one field is not ""."""

    since: str   # " since Pasta Night": their last event, in Return to Table's "we've missed you{since}!"
    line: str    # " Made for jazz lovers.": an interest of theirs that the event matches


NO_HOOK = PersonalHook("", "")


def personal_hook(user: dict, event: dict, campaign: str) -> PersonalHook:
    """One true personal hook: the member's last event (Return to Table), else an interest the event matches.

    Args:
        user: An enriched user (`historical_event_names`, newest first, and `interests`).
        event: The chosen event (`categories`, `features`).
        campaign: The match's campaign.

    Returns:
        PersonalHook(" since Pasta Night", "") or PersonalHook("", " Made for jazz lovers."), or
        NO_HOOK when nothing true and short enough (MAX_HOOK_TEXT_CHARS) applies.
    """
    if campaign == CAMPAIGN_RETURN:
        names = text_list(user.get("historical_event_names"))
        last = _hook_text(names[0]) if names else None
        if last is not None:
            return PersonalHook(f" since {last}", "")
    tags = text_list(event.get("categories")) + text_list(event.get("features"))
    for interest in text_list(user.get("interests")):
        if any(same_interest(interest, tag) for tag in tags):
            text = _hook_text(interest)
            if text is not None:
                return PersonalHook("", f" Made for {text.lower()} lovers.")
    return NO_HOOK


def _rotation(user_id: str, size: int) -> int:
    # A stable choice per member (Python's hash() changes between runs).
    return int(hashlib.sha256(user_id.encode("utf-8")).hexdigest(), 16) % size


def _candidates(campaign: str, start: int, values: dict, name: str, where: str, hook: PersonalHook, link: str,
                max_chars: int = MAX_SMS_CHARS):
    """Every message to try, best first.

    The whole name with every optional part, then dropping the neighborhood, the social proof and the
    hook in turn (each in every template, the member's own first); a name ending "in <the neighborhood>"
    without that ending; then the name shortened to fit (no neighborhood: the name matters more); then
    the fallback.
    """
    templates = TEMPLATES[campaign]
    order = [templates[(start + offset) % len(templates)] for offset in range(len(templates))]
    # "Pasta Night in Kips Bay ... in Kips Bay" says it twice.
    place = f" in {where}" if where and where.lower() not in name.lower() else ""
    proof = values["proof"]
    fixed = {key: value for key, value in values.items() if key != "proof"}

    def fill(template: str, event: str, where_part: str, hook_part: PersonalHook, proof_part: str) -> str:
        return template.format(**fixed, event=event, where=where_part, since=hook_part.since, hook=hook_part.line,
                               proof=proof_part)

    variants = list(dict.fromkeys([
        (hook, proof, place), (hook, proof, ""), (hook, "", ""),
        (NO_HOOK, proof, place), (NO_HOOK, proof, ""), (NO_HOOK, "", ""),
    ]))
    budget = max_chars - 1 - len(link)  # the text, a space, then the link
    for hook_part, proof_part, place_part in variants:
        for template in order:
            yield fill(template, name, place_part, hook_part, proof_part)
    suffix = f" in {where}"
    if where and name.lower().endswith(suffix.lower()) and len(name) > len(suffix):
        for hook_part, proof_part, _ in variants:
            for template in order:
                yield fill(template, name[:-len(suffix)], "", hook_part, proof_part)
    for hook_part, proof_part, _ in variants:
        for template in order:
            short = shorten(name, budget - len(fill(template, "", "", hook_part, proof_part)))
            if short is not None and short != name:
                yield fill(template, short, "", hook_part, proof_part)
    for place_part in dict.fromkeys([place, ""]):
        for proof_part in dict.fromkeys([proof, ""]):
            yield FALLBACK_TEMPLATES[campaign].format(**fixed, where=place_part, proof=proof_part)


def gsm_spelling(text: str) -> str:
    """`text` with each letter outside GSM-7 written without its accent when that makes it GSM-7.

    One such letter ("í" in "Lucía") turns a whole SMS into UCS-2 (70 characters a segment), and the
    booking link alone takes 61. GSM letters ("é", "ñ", "ü") are kept; a letter with no GSM base ("ł") too.

    Args:
        text: A name, e.g. "Lucía".

    Returns:
        E.g. "Lucia".
    """
    def spelled(ch: str) -> str:
        if sms_encoding(ch) == GSM7:
            return ch
        base = "".join(part for part in unicodedata.normalize("NFKD", ch) if not unicodedata.combining(part))
        return base if base and sms_encoding(base) == GSM7 else ch
    return "".join(spelled(ch) for ch in text)


def offline_message(user: dict, event: dict, campaign: str, now: datetime, zone: tzinfo,
                    first_name: str, link: str, max_chars: int = MAX_SMS_CHARS, max_segments: int = 3) -> str:
    """A template message for the match: the first candidate that passes check_message.

    Candidates, in order: each of the campaign's templates (starting at a member-specific one) with the
    event's whole name, first with " in <neighborhood>" and then without; a name ending "in <its
    neighborhood>" without that ending; the name shortened at a word boundary to fit 180 characters;
    the campaign's fallback without the name. Names, first names and neighborhoods go through
    `sms_text` first (and an all-caps first name is title-cased: "ANN" -> "Ann").

    Args:
        user: The enriched user (its `id` picks the first template).
        event: The chosen event.
        campaign: One of the three campaigns.
        now: The run's reference time.
        zone: The run's time zone, for the day and time.
        first_name: The name to greet; "" greets "there".
        link: The booking link step 5 appends after a space.
        max_chars: The most characters of the SMS, link included (179, or 160 for one segment).
        max_segments: The most SMS segments (1 for `--max-segments 1`): sizes are counted in segments,
            so a UCS-2 text gets 70 characters a segment, not 160. When no candidate greeting the member
            by their name fits, the name is written with `gsm_spelling` ("Lucia" for "Lucía"); that
            text fails the gate's first-name rule, so step 5 holds it as "needs_review" for a person.

    Returns:
        The message text without the link, already GSM-normalised and single-spaced, so step 5's
        `normalize_gsm(text + " " + link)` is exactly `text + " " + link`. When no candidate passes,
        the one with the fewest failures; step 5 then marks the record "needs_review".
    """
    greeting = first_name or ""
    if greeting.isupper():
        greeting = greeting.title()  # a first name is never an acronym: "ANN" and "MARY-ANN" shout too
    greeting = sms_text(greeting) or NO_NAME_GREETING
    name = sms_text(str(event.get("name") or "")) or "our next table"
    where = sms_text(str(event.get("neighborhood") or ""))
    rotation = _rotation(str(user.get("id", "")), len(TEMPLATES[campaign]))

    def candidates_greeting(first: str) -> list[str]:
        values = {"first": first, "when": describe_when(event, now, zone), "proof": social_proof(event),
                  "seats": seats_phrase(event)}
        return list(_candidates(campaign, rotation, values, name, where, personal_hook(user, event, campaign),
                                link, max_chars))

    def fits(text: str) -> bool:
        sms = f"{text} {link}"
        return len(sms) <= max_chars and sms_segments(sms) <= max_segments

    candidates = candidates_greeting(greeting)
    spelled = gsm_spelling(greeting)
    if spelled != greeting and not any(fits(text) for text in candidates):
        # The name as spelled cannot fit the segment budget: the GSM spelling is the closest text that can.
        candidates = [text for text in candidates_greeting(spelled) if fits(text)] + candidates
    # A candidate over the budget fails the length or segment rule whatever else it does, and the full
    # check is the slow part, so those are checked only when nothing that fits passes.
    fitting = [text for text in candidates if fits(text)]
    too_long = [text for text in candidates if not fits(text)]
    best: Optional[tuple[int, str]] = None
    for text in fitting + too_long:
        failures = check_message(f"{text} {link}", first_name=first_name, link=link, max_chars=max_chars,
                                 max_segments=max_segments)
        if not failures:
            return text
        if best is None or len(failures) < best[0]:
            best = (len(failures), text)
    # On a tie, the first checked wins: a text within the budget (e.g. only its respelled name fails).
    return best[1]
