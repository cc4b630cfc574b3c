"""Step 3 on a hand-made data set whose every expected value was worked out by hand.

The data set (`handmade_raw()`) is also step 4's input (tests/test_step4_event_enrich.py imports it),
and the two steps' outputs on it are pinned in tests/fixtures/enriched_{users,events}.json: step 5's
input contract. Regenerate them on purpose with `UPDATE_FIXTURES=1 pytest tests/test_step3_user_profile_enrich.py`.

now = Wednesday 2026-11-25T12:00:00Z; summaries are shown in America/New_York (UTC-5 in November).
"""

import copy
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pipeline import step3_user_profile_enrich as step3
from pipeline import step4_event_enrich as step4
from utils import dates, rules
from utils.jsonio import dump_json_text

NOW_TEXT = "2026-11-25T12:00:00Z"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
NEW_YORK = ZoneInfo("America/New_York")
FIXTURES = Path(__file__).parent / "fixtures"
UPDATE_FIXTURES = os.environ.get("UPDATE_FIXTURES") == "1"


def _user(uid, first, last, email, **fields):
    """A raw user with every field step 1 requires; keyword None removes a field."""
    user = {
        "_id": f"oid-{uid}", "id": uid, "firstName": first, "lastName": last, "email": email,
        "phone": "+15550100", "interests": ["reading"], "homeNeighborhood": "Astoria",
        "workNeighborhood": "Midtown", "occupation": "Teacher", "gender": "Female",
        "relationshipStatus": "Single", "tableTypePreference": "Mixed table",
        "birthDay": "1990-01-01T00:00:00.000Z", "createdAt": "2023-01-01T00:00:00.000Z", "role": "REGULAR",
    }
    user.update(fields)
    return {key: value for key, value in user.items() if value is not None}


def _event(eid, name, start, participants, owner, **fields):
    event = {
        "_id": f"oid-{eid}", "id": eid, "name": name, "startDate": start, "endDate": start,
        "type": "public", "eventStatus": "approved", "maxParticipants": 10, "participants": participants,
        "ownerId": owner, "venueName": "Venue", "neighborhood": "SoHo",
    }
    event.update(fields)
    return {key: value for key, value in event.items() if value is not None}


def _qualified_events():
    return [
        _event("q-supper", "Friday Supper Club", "2026-11-28T02:30:00.000Z",
               ["MAYA.CHEN@example.com ", "ben@example.com", "cara@example.com", "ghost@nowhere.com",
                "jo@example.com"], "h-dan",
               endDate="2026-11-28T05:00:00.000Z", venueName="Casa Mezcal", neighborhood="East Village",
               categories=["Dinner", "Mexican"], features=["Communal table"],
               invitedParticipants=["maya.chen@EXAMPLE.com", "kim@example.com", "kim@example.com"],
               description="<p>Tacos &amp; <b>mezcal</b>&nbsp;night.</p><p>Bring   a friend!</p>"),
        # Ratio exactly 0.3 with 6 guests: not low. No description, unknown owner, no matching guests.
        _event("q-ratio", "Ratio Edge Dinner", "2026-12-02T23:00:00.000Z",
               [f"guest{n}@nowhere.com" for n in range(6)], "nobody", maxParticipants=20,
               venueName="Loft", neighborhood=None),
        # 3 of 10: ratio 0.3 and not fewer than 3: not low. Owner found by _id.
        _event("q-three", "Three of Ten", "2026-12-03T23:00:00.000Z",
               ["finn@example.com", "gia@example.com", "hugo@example.com"], "oid-h-eve",
               description="Plain text, no tags."),
        # 2 of 9: ratio 0.22 < 0.3: low, although the maximum is under 10.
        _event("q-small", "Small Table", "2026-12-04T23:00:00.000Z",
               ["ivy@example.com", "Mo@Example.com"], "h-eve", maxParticipants=9),
        # 2 of 6: ratio 0.33 and maximum under 10: not low.
        _event("q-cozy", "Cozy Six", "2026-12-05T23:00:00.000Z",
               ["nia@example.com", "otto@example.com"], "h-dan", maxParticipants=6),
        # Nobody yet: 0 of 6 is low.
        _event("q-empty", "Empty Table", "2026-12-06T23:00:00.000Z", [], "h-dan", maxParticipants=6,
               venueName=None, neighborhood=None),
        "not an event",
        _event("q-broken", "Broken Date", "next Friday", ["maya.chen@example.com"], "h-dan"),
    ]


def handmade_raw():
    """users.json, events.json, qualified_users.json and qualified_events.json of the hand-made set."""
    maya = _user("u-maya", "Maya", "Chen", "Maya.Chen@Example.COM ", interests=["hiking", "jazz", "wine"],
                 preferredCuisines=["Japanese", "Thai"], allergies=["shellfish"], occupation="Product Designer",
                 homeNeighborhood="Williamsburg", workNeighborhood="Flatiron",
                 birthDay="1997-11-26T00:00:00.000Z",  # birthday tomorrow: 28, not 29
                 createdAt="2024-03-03T15:00:00.000Z")  # March 3, 2024 10:00 in New York; 996 days ago
    ben = _user("u-ben", "Ben", "Ode", "ben@example.com", gender="Male", occupation="Chef",
                interests=["jazz", "cooking"], birthDay="2000-02-29T00:00:00.000Z",  # Feb 29: 26
                createdAt="2025-01-10T00:00:00.000Z")
    cara = _user("u-cara", "Cara", "Diaz", "CARA@example.com", occupation="Architect",
                 interests=["wine", "architecture", "jazz"], birthDay="1990-06-15T00:00:00.000Z")
    finn = _user("u-finn", "Finn", "Gray", "finn@example.com", gender="Non-binary", occupation=None,
                 birthDay=None)
    gia = _user("u-gia", "Gia", "Moss", "gia@example.com")
    dan = _user("h-dan", "Dan", "Host", "dan@example.com", gender="Male")
    eve = _user("h-eve", "Eve", "Host", "eve@example.com")
    hugo = _user("u-hugo", "Hugo", "Park", "hugo@example.com", gender="Male")
    ivy = _user("u-ivy", "Ivy", "Stone", "ivy@example.com")
    jo = _user("u-jo", "Jo", "Quinn", "jo@example.com", role="POTENTIAL", interests=["hiking", "board games"],
               birthDay="1994-01-10T00:00:00.000Z", createdAt="2026-11-15T12:00:00.000Z")  # 10 days ago
    kim = _user("u-kim", "Kim", "Lowe", "kim@example.com", createdAt="2026-10-26T12:00:00.000Z")  # 30 days
    leo = _user("u-leo", "Leo", "Ruiz", "leo@example.com", gender="Male", occupation="Nurse", role="POTENTIAL",
                interests=["chess"], birthDay=None, createdAt="not-a-date", tableTypePreference=None)
    mo = _user("u-mo", "Mo", "Diallo", "mo@example.com", gender="Male", role="POTENTIAL",
               createdAt="2025-06-01T00:00:00.000Z")
    nia = _user("u-nia", "Nia", "Okafor", "nia@example.com")
    otto = _user("u-otto", "Otto", "Berg", "otto@example.com", gender="Male")
    paz = _user("u-paz", "Paz", "Lima", "paz@example.com", gender="Non-binary", occupation="Engineer",
                birthDay="1996-05-05T00:00:00.000Z")
    no_email = _user("u-blank", "Blank", "Email", "   ")
    users = [maya, ben, cara, finn, gia, dan, eve, hugo, ivy, jo, kim, leo, mo, nia, otto, paz, no_email, 42]

    events = [
        # Maya's history, newest first: E1..E5 (file order is shuffled on purpose).
        _event("e-wine", "Wine Walk", "2026-11-01T23:00:00.000Z",
               ["MAYA.CHEN@EXAMPLE.COM", "ben@example.com", "cara@example.com"], "oid-h-eve"),
        _event("e-jazz", "Jazz Supper", "2026-11-22T00:30:00.000Z",  # Nov 21, 7:30 PM in New York
               ["maya.chen@example.com", "Ben@Example.com", "cara@EXAMPLE.com", "ghost@nowhere.com"], "h-dan"),
        _event("e-sake", "Sake Tasting", "2026-07-15T23:00:00.000Z",
               ["maya.chen@example.com", "Maya.Chen@example.com", "gia@example.com"], "oid-h-eve"),
        _event("e-hike", "Hike & Brunch", "2026-10-10T14:00:00.000Z",
               [" maya.chen@example.com", "ben@example.com", "finn@example.com"], "h-dan"),
        _event("e-taco", "Taco Tuesday", "2026-09-01T23:00:00.000Z",
               ["maya.chen@example.com", "finn@example.com", "cara@example.com"], "nobody"),
        # The same event exported twice: counted once.
        _event("e-wine", "Wine Walk", "2026-11-01T23:00:00.000Z",
               ["MAYA.CHEN@EXAMPLE.COM", "ben@example.com", "cara@example.com"], "oid-h-eve"),
        # Starts exactly at now: not history (history is startDate < now).
        _event("e-now", "Right Now Lunch", "2026-11-25T12:00:00.000Z", ["maya.chen@example.com"], "h-dan"),
        _event("e-broken", "Broken Date", "soon", ["maya.chen@example.com"], "h-dan"),
        "not an event",
        _event("e-dumpling", "Dumpling Night", "2026-08-17T10:00:00.000Z", ["hugo@example.com"], "h-dan"),  # 100 d
        _event("e-pasta", "Pasta Class", "2026-06-28T10:00:00.000Z", ["hugo@example.com"], "h-dan"),  # 150 d
        _event("e-bagel", "Bagel Brunch", "2026-05-09T10:00:00.000Z", ["ivy@example.com"], "h-eve"),  # 200 d
        _event("e-oyster", "Oyster Night", "2026-03-20T10:00:00.000Z", ["ivy@example.com"], "h-eve"),  # 250 d
        _event("e-mezcal", "Mezcal Tasting", "2026-10-16T10:00:00.000Z", ["mo@example.com"], "h-dan"),  # 40 d
        _event("e-noodle", "Noodle Pull", "2026-09-26T12:00:00.000Z", ["nia@example.com"], "h-dan"),  # 60 d
        _event("e-okto", "Oktoberfest Table", "2026-09-25T12:00:00.000Z", ["otto@example.com"], "h-dan"),  # 61 d
        _event("e-curry", "Curry Club", "2026-08-01T12:00:00.000Z", ["nia@example.com", "otto@example.com"],
               "h-dan"),
        _event("e-pizza", "Pizza Party", "2026-11-18T12:00:00.000Z", ["paz@example.com"], "h-eve"),  # 7 d
    ]
    qualified_events = _qualified_events()
    events += [event for event in qualified_events if isinstance(event, dict)]  # future RSVPs of Ben, Jo, ...
    qualified_users = [maya, ben, cara, hugo, ivy, jo, kim, leo, mo, nia, otto, paz, no_email, "not a user"]
    return copy.deepcopy({"users": users, "events": events, "qualified_users": qualified_users,
                          "qualified_events": qualified_events})


def enrich_handmade(zone=NEW_YORK):
    raw = handmade_raw()
    return step3.enrich_users(raw["qualified_users"], raw["events"], raw["users"], raw["qualified_events"],
                              NOW, zone)


@pytest.fixture(scope="module")
def enriched():
    records, stats = enrich_handmade()
    return {record["id"]: record for record in records}, dict(stats)


# --- Every field of a few users ---------------------------------------------------------------

MAYA_SUMMARY = (
    "Maya Chen is a 28-year-old woman working as a Product Designer, living in Williamsburg and working in "
    "Flatiron. She joined 2 years ago (on March 3, 2024). Her interests are hiking, jazz and wine. "
    "Her favourite cuisines are Japanese and Thai. Her dietary restriction is shellfish. "
    "Her table preference is Mixed table. She has attended 5 events, most recently Jazz Supper on "
    "November 21, 2026 (3 days ago); earlier ones include Wine Walk, Hike & Brunch, Taco Tuesday and "
    "Sake Tasting. Status: attended in the last week, high engagement. She has been hosted by Dan Host and "
    "Eve Host. Friends from past events (shared events): Ben Ode (3), Cara Diaz (3) and Finn Gray (2). "
    "She is invited to Friday Supper Club."
)


def test_every_field_of_an_active_user(enriched):
    records, _ = enriched
    assert records["u-maya"] == {
        "id": "u-maya",
        "name": "Maya Chen",
        "first_name": "Maya",
        "email": "maya.chen@example.com",
        "interests": ["hiking", "jazz", "wine"],
        "cuisine_preferences": ["Japanese", "Thai"],
        "dietary_restrictions": ["shellfish"],
        "table_type_preference": "Mixed table",
        "relationship_status": "Single",
        "occupation": "Product Designer",
        "gender": "Female",
        "homeNeighborhood": "Williamsburg",
        "workNeighborhood": "Flatiron",
        "age": 28,
        "event_count": 5,
        "last_event_date": "2026-11-22T00:30:00.000Z",
        "days_since_last_event": 3,
        "days_since_signup": 996,
        "historical_event_names": ["Jazz Supper", "Wine Walk", "Hike & Brunch", "Taco Tuesday", "Sake Tasting"],
        "event_hosts": ["Dan Host", "Eve Host"],
        "invited_event_names": ["Friday Supper Club"],
        "friends": ["Ben Ode (3)", "Cara Diaz (3)", "Finn Gray (2)"],
        "is_new_user": False,
        "has_never_attended_events": False,
        "hasnt_attended_in_60_days": False,
        "signed_up_online": False,
        "recently_attended_last_week": True,
        "primary_status": "active_recent",
        "engagement_tier": "high",
        "user_segment": "active_regular",
        "summary": MAYA_SUMMARY,
    }


def test_every_field_of_a_new_online_user_with_only_a_future_rsvp(enriched):
    records, _ = enriched
    assert records["u-jo"] == {
        "id": "u-jo", "name": "Jo Quinn", "first_name": "Jo", "email": "jo@example.com",
        "interests": ["hiking", "board games"], "cuisine_preferences": [], "dietary_restrictions": [],
        "table_type_preference": "Mixed table", "relationship_status": "Single", "occupation": "Teacher",
        "gender": "Female", "homeNeighborhood": "Astoria", "workNeighborhood": "Midtown",
        "age": 32, "event_count": 0, "last_event_date": None, "days_since_last_event": None,
        "days_since_signup": 10, "historical_event_names": [], "event_hosts": [], "invited_event_names": [],
        "friends": [], "is_new_user": True, "has_never_attended_events": True,
        "hasnt_attended_in_60_days": None, "signed_up_online": True, "recently_attended_last_week": None,
        "primary_status": "new_user", "engagement_tier": "low", "user_segment": "new_online_signup",
        "summary": "Jo Quinn is a 32-year-old woman working as a Teacher, living in Astoria and working in "
                   "Midtown. She joined 10 days ago (on November 15, 2026). Her interests are hiking and "
                   "board games. Her table preference is Mixed table. She has not attended any events yet. "
                   "Status: new member, low engagement.",
    }


def test_every_field_of_a_user_with_unknown_birthday_signup_and_table(enriched):
    records, _ = enriched
    assert records["u-leo"] == {
        "id": "u-leo", "name": "Leo Ruiz", "first_name": "Leo", "email": "leo@example.com",
        "interests": ["chess"], "cuisine_preferences": [], "dietary_restrictions": [],
        "table_type_preference": None, "relationship_status": "Single", "occupation": "Nurse",
        "gender": "Male", "homeNeighborhood": "Astoria", "workNeighborhood": "Midtown",
        "age": None, "event_count": 0, "last_event_date": None, "days_since_last_event": None,
        "days_since_signup": None, "historical_event_names": [], "event_hosts": [], "invited_event_names": [],
        "friends": [], "is_new_user": False, "has_never_attended_events": True,
        "hasnt_attended_in_60_days": None, "signed_up_online": True, "recently_attended_last_week": None,
        "primary_status": "never_attended", "engagement_tier": "low", "user_segment": "first_timer",
        "summary": "Leo Ruiz is a man working as a Nurse, living in Astoria and working in Midtown. "
                   "His interest is chess. He has not attended any events yet. "
                   "Status: never attended, low engagement.",
    }


def test_non_binary_user_is_described_by_name_not_a_guessed_pronoun(enriched):
    records, _ = enriched
    assert records["u-paz"]["summary"] == (
        "Paz Lima is a 30-year-old non-binary member working as an Engineer, living in Astoria and working in "
        "Midtown. Paz joined 3 years ago (on December 31, 2022). Paz's interest is reading. "
        "Paz's table preference is Mixed table. Paz has attended 1 event, most recently Pizza Party on "
        "November 18, 2026 (7 days ago). Status: attended in the last week, low engagement. "
        "Paz has been hosted by Eve Host."
    )


# --- Status fields, tiers and segments at their edges --------------------------------------------

# id: (event_count, days_since_last_event, hasnt_60, recent_7, primary_status, engagement_tier, user_segment)
STATUS_TABLE = {
    "u-maya": (5, 3, False, True, "active_recent", "high", "active_regular"),
    "u-ben": (3, 3, False, True, "active_recent", "medium", "active_regular"),  # future RSVP not counted
    "u-cara": (3, 3, False, True, "active_recent", "medium", "active_regular"),
    "u-hugo": (2, 100, True, False, "dormant_60_days", "low", "dormant"),
    "u-ivy": (2, 200, True, False, "dormant_60_days", "low", "churned"),
    "u-jo": (0, None, None, None, "new_user", "low", "new_online_signup"),
    "u-kim": (0, None, None, None, "new_user", "low", "new_app_user"),  # signed up exactly 30 days ago
    "u-leo": (0, None, None, None, "never_attended", "low", "first_timer"),
    "u-mo": (1, 40, False, False, "signed_up_online", "low", "first_timer"),
    "u-nia": (2, 60, False, False, "active_regular", "medium", "active_regular"),  # exactly 60 days
    "u-otto": (2, 61, True, False, "dormant_60_days", "medium", "dormant"),  # 61 days
    "u-paz": (1, 7, False, True, "active_recent", "low", "first_timer"),  # exactly 7 days
}


@pytest.mark.parametrize("user_id", sorted(STATUS_TABLE))
def test_status_fields(enriched, user_id):
    records, _ = enriched
    record = records[user_id]
    got = (record["event_count"], record["days_since_last_event"], record["hasnt_attended_in_60_days"],
           record["recently_attended_last_week"], record["primary_status"], record["engagement_tier"],
           record["user_segment"])
    assert got == STATUS_TABLE[user_id]
    assert record["has_never_attended_events"] is (record["event_count"] == 0)


def test_new_user_edges(enriched):
    records, _ = enriched
    assert (records["u-kim"]["days_since_signup"], records["u-kim"]["is_new_user"]) == (30, True)
    assert (records["u-mo"]["is_new_user"], records["u-mo"]["signed_up_online"]) == (False, True)


def test_friends_ties_are_broken_by_name_and_single_shared_events_do_not_count(enriched):
    records, _ = enriched
    assert records["u-ben"]["friends"] == ["Maya Chen (3)", "Cara Diaz (2)"]
    assert records["u-cara"]["friends"] == ["Maya Chen (3)", "Ben Ode (2)"]
    assert records["u-otto"]["friends"] == []  # shares one event with Nia


def test_ages_birthday_tomorrow_and_feb_29(enriched):
    records, _ = enriched
    assert records["u-maya"]["age"] == 28
    assert records["u-ben"]["age"] == 26
    assert step3.calculate_age("2000-02-29T00:00:00.000Z", datetime(2027, 2, 28, 12, tzinfo=timezone.utc)) == 26
    assert step3.calculate_age("2000-02-29T00:00:00.000Z", datetime(2027, 3, 1, 0, tzinfo=timezone.utc)) == 27
    assert step3.calculate_age("2000-02-29T00:00:00.000Z", datetime(2028, 2, 29, 0, tzinfo=timezone.utc)) == 28
    assert step3.calculate_age("not a date", NOW) is None
    assert step3.calculate_age(None, NOW) is None


def test_calculate_age_is_the_shared_implementation():
    assert step3.calculate_age is dates.calculate_age


def test_bad_records_are_skipped_and_counted(enriched):
    records, stats = enriched
    assert "u-blank" not in records
    assert len(records) == 12
    assert stats["qualified users loaded"] == 14
    assert stats["qualified users skipped: not an object"] == 1
    assert stats["qualified users skipped: no usable email"] == 1
    assert stats["users loaded (hosts, friends)"] == 18
    assert stats["users skipped: not an object"] == 1
    assert stats["events loaded (history)"] == 25
    assert stats["events skipped: not an object"] == 1
    assert stats["events skipped: duplicate id"] == 1
    assert stats["events skipped: missing or invalid startDate"] == 2  # e-broken and q-broken
    assert stats["events upcoming (not history)"] == 7  # e-now and six qualified events
    assert stats["past events indexed"] == 14
    assert stats["past events with unknown host"] == 1
    assert stats["qualified events loaded (invitations)"] == 8
    assert stats["qualified events skipped: not an object"] == 1
    assert stats["users with event history"] == 9
    assert stats["users without event history"] == 3
    assert stats["primary_status active_recent"] == 4
    assert stats["engagement_tier medium"] == 4
    assert stats["user_segment first_timer"] == 3
    assert stats["enriched users"] == 12


def test_stats_rows_are_labelled_integers_with_unique_labels():
    _, stats = enrich_handmade()
    labels = [label for label, _ in stats]
    assert len(labels) == len(set(labels))
    assert all(type(value) is int for _, value in stats)


def test_summaries_never_show_missing_values(enriched):
    records, _ = enriched
    for record in records.values():
        for token in ("None", "null", "[]", "''"):
            assert token not in record["summary"], (record["id"], token)


def test_summary_of_a_nearly_empty_profile():
    profile = {
        "name": None, "first_name": None, "gender": None, "age": None, "occupation": None,
        "homeNeighborhood": None, "workNeighborhood": None, "days_since_signup": None, "interests": [],
        "cuisine_preferences": [], "dietary_restrictions": [], "table_type_preference": None, "event_count": 0,
        "historical_event_names": [], "days_since_last_event": None, "primary_status": "never_attended",
        "engagement_tier": "low", "event_hosts": [], "friends": [], "invited_event_names": [],
    }
    assert step3.generate_user_summary(profile, None, None, NEW_YORK) == (
        "This user is a member. This user has not attended any events yet. Status: never attended, low engagement."
    )


def test_summary_dates_follow_the_time_zone():
    records, _ = enrich_handmade(zone=ZoneInfo("UTC"))
    maya = next(record for record in records if record["id"] == "u-maya")
    assert "most recently Jazz Supper on November 22, 2026 (3 days ago)" in maya["summary"]
    assert "(on March 3, 2024)" in maya["summary"]


# --- Key functions on their own ----------------------------------------------------------------

def test_history_index_is_newest_first_and_excludes_the_future():
    raw = handmade_raw()
    users = [user for user in raw["users"] if isinstance(user, dict)]
    index, counts = step3.index_past_events([e for e in raw["events"] if isinstance(e, dict)],
                                            step3.index_users_by_id(users), NOW)
    history = step3.associate_user_events("  Maya.Chen@EXAMPLE.com", index)
    assert [item.name for item in history] == ["Jazz Supper", "Wine Walk", "Hike & Brunch", "Taco Tuesday",
                                               "Sake Tasting"]
    assert step3.associate_user_events("ben@example.com", index)[0].name == "Jazz Supper"
    assert step3.associate_user_events("jo@example.com", index) == []
    assert step3.associate_user_events(None, index) == []
    assert step3.extract_event_hosts(history) == ["Dan Host", "Eve Host"]
    assert counts["unknown_host"] == 1


def test_identify_friends_needs_a_name_and_two_shared_events():
    shared = ("a@x.com", "b@x.com", "c@x.com", "nameless@x.com")
    history = [step3.PastEvent(NOW, "", "One", None, shared), step3.PastEvent(NOW, "", "Two", None, shared),
               step3.PastEvent(NOW, "", "Three", None, ("a@x.com", "c@x.com"))]
    names = {"a@x.com": "Zed Able", "b@x.com": "Amy Bee", "c@x.com": "Cy Sea"}
    assert step3.identify_friends("a@x.com", history, names) == ["Cy Sea (3)", "Amy Bee (2)"]
    assert step3.identify_friends("a@x.com", history[:1], names) == []


@pytest.mark.parametrize("count, days, expected", [
    (5, 30, "high"), (5, 31, "medium"), (4, 1, "medium"), (2, 90, "medium"), (2, 91, "low"), (1, 0, "low"),
    (0, None, "low"),
])
def test_engagement_tier_edges(count, days, expected):
    assert step3.engagement_tier(count, days) == expected


@pytest.mark.parametrize("days, expected", [(60, "active_regular"), (61, "dormant"), (180, "dormant"),
                                            (181, "churned")])
def test_user_segment_edges(days, expected):
    assert step3.user_segment(False, False, 2, days) == expected


def test_rules_hold_the_issue_thresholds():
    assert (rules.NEW_USER_MAX_DAYS, rules.DORMANT_AFTER_DAYS, rules.RECENT_MAX_DAYS) == (30, 60, 7)
    assert (rules.HIGH_TIER_MIN_EVENTS, rules.HIGH_TIER_MAX_DAYS) == (5, 30)
    assert (rules.MEDIUM_TIER_MIN_EVENTS, rules.MEDIUM_TIER_MAX_DAYS) == (2, 90)
    assert (rules.ACTIVE_SEGMENT_MAX_DAYS, rules.DORMANT_SEGMENT_MAX_DAYS, rules.FIRST_TIMER_MAX_EVENTS) == (60, 180, 1)
    assert (rules.LOW_OCCUPANCY_RATIO, rules.LOW_OCCUPANCY_MIN_COUNT, rules.LOW_OCCUPANCY_LARGE_TABLE) == (0.3, 3, 10)
    assert (rules.NEWCOMER_MAX_EVENTS, rules.RETURN_MIN_DAYS) == (2, 31)


@pytest.mark.parametrize("count, expected", [(0, True), (2, True), (3, False)])
def test_newcomer_campaign_threshold(count, expected):
    assert rules.is_newcomer(count) is expected


@pytest.mark.parametrize("days, dormant, expected", [(31, False, True), (30, False, False), (None, True, True),
                                                     (None, None, False), (5, None, False)])
def test_return_to_table_campaign_threshold(days, dormant, expected):
    assert rules.is_return_candidate(days, dormant) is expected


# --- The command line and the fixture contract ---------------------------------------------------

def write_handmade(data_dir: Path) -> None:
    raw = handmade_raw()
    for folder, name, key in (("raw", "users.json", "users"), ("raw", "events.json", "events"),
                              ("processed", "qualified_users.json", "qualified_users"),
                              ("processed", "qualified_events.json", "qualified_events")):
        (data_dir / folder).mkdir(parents=True, exist_ok=True)
        (data_dir / folder / name).write_text(json.dumps(raw[key]), encoding="utf-8")


def run_step(module, data_dir: Path, zone: str = "America/New_York") -> int:
    return module.main(["--data-dir", str(data_dir), "--log-dir", str(data_dir / "logs"), "--now", NOW_TEXT,
                        "--timezone", zone])


def check_fixture(produced: Path, fixture: Path) -> None:
    """Compare a step's output with its pinned fixture (or rewrite the fixture with UPDATE_FIXTURES=1)."""
    text = produced.read_text(encoding="utf-8")
    if UPDATE_FIXTURES:
        fixture.parent.mkdir(parents=True, exist_ok=True)
        fixture.write_text(text, encoding="utf-8")
    assert text == fixture.read_text(encoding="utf-8"), f"{fixture.name} changed: step 5's input contract moved"


def test_main_writes_the_pinned_fixtures_and_prints_the_stats(tmp_path, capsys):
    write_handmade(tmp_path)
    assert run_step(step3, tmp_path) == 0
    assert run_step(step4, tmp_path) == 0
    out = capsys.readouterr().out
    assert "Step 3: user profile enrichment" in out and "Step 4: event profile enrichment" in out
    assert "wrote 12 enriched users" in out and "wrote 6 enriched events" in out
    check_fixture(tmp_path / "processed" / "enriched_users.json", FIXTURES / "enriched_users.json")
    check_fixture(tmp_path / "processed" / "enriched_events.json", FIXTURES / "enriched_events.json")


def test_fixture_is_the_project_json_format_and_has_the_spec_fields():
    records = json.loads((FIXTURES / "enriched_users.json").read_text(encoding="utf-8"))
    assert (FIXTURES / "enriched_users.json").read_text(encoding="utf-8") == dump_json_text(records)
    assert list(records[0]) == [
        "id", "name", "first_name", "email", "interests", "cuisine_preferences", "dietary_restrictions",
        "table_type_preference", "relationship_status", "occupation", "gender", "homeNeighborhood",
        "workNeighborhood", "age", "event_count", "last_event_date", "days_since_last_event", "days_since_signup",
        "historical_event_names", "event_hosts", "invited_event_names", "friends", "is_new_user",
        "has_never_attended_events", "hasnt_attended_in_60_days", "signed_up_online",
        "recently_attended_last_week", "primary_status", "engagement_tier", "user_segment", "summary",
    ]


def test_missing_input_is_a_readable_error(tmp_path, capsys):
    assert run_step(step3, tmp_path) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: qualified users file not found:")
    assert "qualified_users.json" in err


# --- Invariants on generated data (utils.sample_data) --------------------------------------------

@pytest.fixture(scope="module")
def generated():
    from utils.sample_data import generate_dataset
    dataset = generate_dataset(400, 60, 11, NOW)
    future = [event for event in dataset["events"]
              if isinstance(event, dict) and (start := dates.parse_iso_date(event.get("startDate"))) and start > NOW]
    records, _ = step3.enrich_users(dataset["users"], dataset["events"], dataset["users"], future, NOW, NEW_YORK)
    return dataset, records


def test_generated_history_matches_a_brute_force_scan(generated):
    dataset, records = generated
    seen, events = set(), []
    for event in dataset["events"]:
        if not isinstance(event, dict):
            continue
        ident = event.get("id") or event.get("_id")
        if ident in seen:
            continue
        seen.add(ident)
        start = dates.parse_iso_date(event.get("startDate"))
        if start is not None and start < NOW:
            emails = {p.strip().lower() for p in event.get("participants") or [] if isinstance(p, str)}
            events.append((start, emails))
    assert any(record["event_count"] >= 3 for record in records)
    for record in records:
        mine = sorted((start for start, emails in events if record["email"] in emails), reverse=True)
        assert record["event_count"] == len(mine), record["id"]
        if mine:
            assert record["last_event_date"] == dates.to_iso(mine[0])
            assert record["days_since_last_event"] == (NOW - mine[0]).days


def test_generated_records_are_consistent(generated):
    _, records = generated
    keys = list(json.loads((FIXTURES / "enriched_users.json").read_text(encoding="utf-8"))[0])
    for record in records:
        assert list(record) == keys
        count = record["event_count"]
        assert record["has_never_attended_events"] is (count == 0)
        assert (record["hasnt_attended_in_60_days"] is None) is (count == 0)
        assert (record["recently_attended_last_week"] is None) is (count == 0)
        assert len(record["historical_event_names"]) <= count
        assert record["days_since_last_event"] is None or record["days_since_last_event"] >= 0
        assert len(record["event_hosts"]) == len(set(record["event_hosts"]))
        shared = [int(friend.rsplit("(", 1)[1].rstrip(")")) for friend in record["friends"]]
        assert all(n >= 2 for n in shared) and shared == sorted(shared, reverse=True)
        assert record["primary_status"] in step3.PRIMARY_STATUSES
        assert record["engagement_tier"] in step3.ENGAGEMENT_TIERS
        assert record["user_segment"] in step3.USER_SEGMENTS
        for token in ("None", "null", "[]"):
            assert token not in record["summary"]


def test_main_pauses_the_garbage_collector_only_while_it_runs(tmp_path):
    import gc

    from utils.cli import gc_paused
    write_handmade(tmp_path)
    assert gc.isenabled()
    assert run_step(step3, tmp_path) == 0
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


# --- hostile values (issue 12): read as missing and counted, never fatal ---------------------------

PLACEHOLDER_DATES = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"]


@pytest.mark.parametrize("zone_name", ["UTC", "America/New_York", "Europe/Paris", "Asia/Tokyo", "Asia/Kolkata",
                                       "Pacific/Kiritimati", "Etc/GMT+12"])
def test_placeholder_dates_are_missing_and_counted_per_field(zone_name):
    users = [_user(f"u{i}", "Ann", "Lee", f"u{i}@example.com", createdAt=value, birthDay=value)
             for i, value in enumerate(PLACEHOLDER_DATES)]
    events = [_event(f"e{i}", "Old", value, ["u0@example.com"], "u1") for i, value in enumerate(PLACEHOLDER_DATES)]
    records, stats = step3.enrich_users(users, events, users, [], NOW, ZoneInfo(zone_name))
    stats = dict(stats)
    assert [record["days_since_signup"] for record in records] == [None] * 3
    assert [record["age"] for record in records] == [None] * 3
    assert all(record["event_count"] == 0 for record in records)
    assert stats["qualified users with createdAt out of range (read as missing)"] == 3
    assert stats["qualified users with birthDay out of range (read as missing)"] == 3
    assert stats["events skipped: startDate out of range"] == 3
    assert stats["events skipped: missing or invalid startDate"] == 0
    assert all("joined" not in record["summary"] for record in records)


def test_a_created_at_without_a_zone_is_read_in_the_community_zone():
    # 23:30 on March 3 in Tokyo is 14:30 UTC: the summary shows the day as the community saw it.
    user = _user("u1", "Ann", "Lee", "u1@example.com", createdAt="2024-03-03T23:30:00")
    records, _ = step3.enrich_users([user], [], [user], [], NOW, ZoneInfo("Asia/Tokyo"))
    assert "(on March 3, 2024)" in records[0]["summary"]
    user = _user("u1", "Ann", "Lee", "u1@example.com", createdAt="2024-03-03")
    records, _ = step3.enrich_users([user], [], [user], [], NOW, ZoneInfo("Etc/GMT+12"))
    assert "(on March 3, 2024)" in records[0]["summary"]


def test_invisible_characters_do_not_reach_the_profile():
    user = _user("u1", "\u202eAnn", "Lee\u200b", "u1@example.com", occupation="Chef\u2066", interests=["ja\u200bzz"])
    record = step3.enrich_users([user], [], [user], [], NOW, NEW_YORK)[0][0]
    assert (record["name"], record["first_name"], record["occupation"], record["interests"]) == (
        "Ann Lee", "Ann", "Chef", ["jazz"])
    assert "\u202e" not in record["summary"] and "\u200b" not in record["summary"]
