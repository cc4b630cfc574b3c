"""Every business threshold of the pipeline, named and explained in one place.

Steps 3 and 4 use these to set statuses, tiers, segments and the low-occupancy flag; step 5 uses the
campaign thresholds. Change a number here and every step (and `docs/3-user-profile.md`,
`docs/4-event-profile.md`, which quote them) moves together.

"Days since" values are whole days, floored (see `utils.dates.days_since`).
"""

from typing import Optional

# --- Step 3: user status flags --------------------------------------------------------------

#: `is_new_user` when `days_since_signup <= NEW_USER_MAX_DAYS`.
NEW_USER_MAX_DAYS = 30
#: `hasnt_attended_in_60_days` when `days_since_last_event > DORMANT_AFTER_DAYS`.
DORMANT_AFTER_DAYS = 60
#: `recently_attended_last_week` when `days_since_last_event <= RECENT_MAX_DAYS`.
RECENT_MAX_DAYS = 7
#: `signed_up_online` when the user's `role` equals this.
ONLINE_SIGNUP_ROLE = "POTENTIAL"

# --- Step 3: engagement tier ----------------------------------------------------------------

#: "high": at least this many events ...
HIGH_TIER_MIN_EVENTS = 5
#: ... and the last one at most this many days ago.
HIGH_TIER_MAX_DAYS = 30
#: "medium": at least this many events ...
MEDIUM_TIER_MIN_EVENTS = 2
#: ... and the last one at most this many days ago. Everything else is "low".
MEDIUM_TIER_MAX_DAYS = 90

# --- Step 3: user segment -------------------------------------------------------------------

#: "first_timer": `event_count <= FIRST_TIMER_MAX_EVENTS` (checked after the two "new" segments).
FIRST_TIMER_MAX_EVENTS = 1
#: "active_regular": last event at most this many days ago.
ACTIVE_SEGMENT_MAX_DAYS = 60
#: "dormant": last event at most this many days ago; older is "churned".
DORMANT_SEGMENT_MAX_DAYS = 180

# --- Step 3: friends ------------------------------------------------------------------------

#: A friend shares at least this many past events with the user.
FRIEND_MIN_SHARED_EVENTS = 2

# --- Step 4: events -------------------------------------------------------------------------

#: Low occupancy when `participant_count / maxParticipants < LOW_OCCUPANCY_RATIO` ...
LOW_OCCUPANCY_RATIO = 0.3
#: ... or when `participant_count < LOW_OCCUPANCY_MIN_COUNT` ...
LOW_OCCUPANCY_MIN_COUNT = 3
#: ... and `maxParticipants >= LOW_OCCUPANCY_LARGE_TABLE`.
LOW_OCCUPANCY_LARGE_TABLE = 10
#: How many occupations / interests `common_occupations` and `common_interests` keep.
TOP_DEMOGRAPHICS = 5

# --- Step 5: campaign types (spec, "Campaign Types") ----------------------------------------

CAMPAIGN_NEWCOMER = "Seat The Newcomer"
CAMPAIGN_FILL_TABLE = "Fill the Table"
CAMPAIGN_RETURN = "Return to Table"
#: "Seat The Newcomer" targets users with `event_count <= NEWCOMER_MAX_EVENTS`.
NEWCOMER_MAX_EVENTS = 2
#: "Return to Table" targets users with `days_since_last_event >= RETURN_MIN_DAYS` (or dormant 60+).
RETURN_MIN_DAYS = 31
#: The fill level (participants / capacity) an event should have for a newcomer: full enough to prove
#: it is good, not so full it feels exclusive.
NEWCOMER_PREFERRED_FILL = (0.5, 0.8)
#: The fill level an event should have for a returning member.
RETURN_PREFERRED_FILL = (0.5, 1.0)


def is_newcomer(event_count: int) -> bool:
    """True when a user qualifies for "Seat The Newcomer" (`event_count <= 2`)."""
    return event_count <= NEWCOMER_MAX_EVENTS


def is_return_candidate(days_since_last_event: Optional[int], hasnt_attended_in_60_days: Optional[bool]) -> bool:
    """True when a user qualifies for "Return to Table" (31+ days since the last event, or dormant 60+)."""
    if hasnt_attended_in_60_days:
        return True
    return days_since_last_event is not None and days_since_last_event >= RETURN_MIN_DAYS
