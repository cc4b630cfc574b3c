"""pipeline.match_message.backtest: metric arithmetic, cases and catalogs at t, leakage, sampling, saving,
and an end-to-end offline backtest on generated sample data."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from pipeline.match_message.backtest import (
    BACKTEST_FILE, PREVIOUS_BACKTEST_FILE, SKIP_NO_PROFILE_USER, SKIP_NOT_MEMBER_YET, SKIP_SMALL_CATALOG,
    CaseResult, OfflineRanker, build_cases, catalog_at, format_backtest_table, load_previous_backtest,
    popularity_order, random_expectation, reciprocal_rank, run_backtest, sample_cases, save_backtest,
    shortlist_rank, summarize,
)
from pipeline.step3_user_profile_enrich import enrich_users
from pipeline.step4_event_enrich import enrich_events

NOW = datetime(2026, 1, 15, tzinfo=timezone.utc)
UTC = timezone.utc


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Metric arithmetic ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rank, expected", [(1, 1.0), (2, 0.5), (3, 1 / 3), (4, 0.0), (None, 0.0)])
def test_reciprocal_rank_counts_the_shortlist_only(rank, expected):
    assert reciprocal_rank(rank) == pytest.approx(expected)


@pytest.mark.parametrize("size, hit1, hit3, mrr", [
    (1, 1.0, 1.0, 1.0),
    (2, 0.5, 1.0, 0.75),                    # (1 + 1/2) / 2
    (4, 0.25, 0.75, (1 + 0.5 + 1 / 3) / 4),
    (10, 0.1, 0.3, (1 + 0.5 + 1 / 3) / 10),
])
def test_random_baseline_is_the_expected_value_for_the_catalog_size(size, hit1, hit3, mrr):
    assert random_expectation(size) == pytest.approx({"hit_at_1": hit1, "hit_at_3": hit3, "mrr": mrr})


def test_summarize_on_hand_built_cases():
    results = [
        CaseResult(rank=1, catalog_size=5, popularity_rank=2, campaign="A"),
        CaseResult(rank=3, catalog_size=4, popularity_rank=1, campaign="A"),
        CaseResult(rank=None, catalog_size=2, popularity_rank=2, campaign="B"),
        CaseResult(rank=2, catalog_size=10, popularity_rank=4, campaign="B"),
    ]
    summary = summarize(results)
    assert summary["cases"] == 4
    assert summary["hit_at_1"] == 0.25                                   # 1 of 4
    assert summary["hit_at_3"] == 0.75                                   # ranks 1, 3, 2
    assert summary["mrr"] == pytest.approx((1 + 1 / 3 + 0 + 1 / 2) / 4, abs=1e-4)
    assert summary["random_hit_at_1"] == pytest.approx((1 / 5 + 1 / 4 + 1 / 2 + 1 / 10) / 4, abs=1e-4)
    assert summary["random_hit_at_3"] == pytest.approx((3 / 5 + 3 / 4 + 2 / 2 + 3 / 10) / 4, abs=1e-4)
    assert summary["popularity_hit_at_1"] == 0.25                        # only the second case
    assert summary["popularity_hit_at_3"] == 0.75                        # the fourth is 4th by popularity
    assert summary["popularity_mrr"] == pytest.approx((0.5 + 1 + 0.5 + 0) / 4, abs=1e-4)


def test_summarize_with_no_cases_is_all_zero():
    summary = summarize([])
    assert summary["cases"] == 0 and summary["hit_at_1"] == 0.0 and summary["popularity_mrr"] == 0.0


def test_popularity_ranks_most_participants_first_ties_in_catalog_order():
    catalog = [{"participant_count": 3}, {"participant_count": 5}, {"participant_count": 3}, {}]
    assert popularity_order(catalog) == [1, 0, 2, 3]


def test_shortlist_rank_by_index_or_id_and_only_the_first_three():
    catalog = [{"id": "a"}, {"id": "b"}, {"id": "c"}, {"id": "d"}]
    assert shortlist_rank([{"event_index": 2}, {"event_index": 0}], catalog, 0) == 2
    assert shortlist_rank([{"event_id": "x"}, {"event_id": "d"}], catalog, 3) == 2
    assert shortlist_rank([{"event_index": 1}, {"event_index": 2}, {"event_index": 3}, {"event_index": 0}],
                          catalog, 0) is None
    assert shortlist_rank([], catalog, 0) is None


# --- A small hand-built community -----------------------------------------------------------------------

def user(first: str, last: str, interests: list[str], created_days_ago: int = 400) -> dict:
    return {"id": f"id-{first.lower()}", "firstName": first, "lastName": last,
            "email": f"{first.lower()}.{last.lower()}@example.com", "phone": "+12125550100",
            "interests": interests, "homeNeighborhood": "Harlem", "workNeighborhood": "Midtown",
            "occupation": "Chef", "gender": "Female", "relationshipStatus": "Single",
            "tableTypePreference": "Mixed table", "birthDay": "1990-05-01T00:00:00.000Z",
            "createdAt": iso(NOW - timedelta(days=created_days_ago))}


ANA = user("Ana", "Quill", ["jazz"])
BEN = user("Ben", "Ode", ["wine tasting"])
CARA = user("Cara", "Diaz", ["hiking"])
TARGET_START = NOW - timedelta(days=20)
T = TARGET_START - timedelta(days=7)


def raw_event(name: str, start: datetime, participants: list[str], **fields) -> dict:
    return {"id": f"ev-{name.lower().replace(' ', '-')}", "name": name, "startDate": iso(start),
            "endDate": iso(start + timedelta(hours=3)), "type": "public", "eventStatus": "approved",
            "maxParticipants": 10, "participants": participants, "ownerId": BEN["id"],
            "venueName": "Little Fig", "neighborhood": "Harlem", "categories": ["Dinner", "Music"],
            "features": ["Live music"], **fields}


def community() -> tuple[list[dict], list[dict]]:
    events = [
        raw_event("Earlier Supper", NOW - timedelta(days=100), [ANA["email"], BEN["email"]]),
        # The attended event: Ana (in other capitals) and Ben went.
        raw_event("Jazz Night", TARGET_START, ["Ana.Quill@Example.com", BEN["email"]]),
        # Another candidate Ana also went to, and one she was invited to.
        raw_event("Wine Walk", T + timedelta(days=10), [CARA["email"], ANA["email"]],
                  invitedParticipants=[BEN["email"]]),
        raw_event("Hike Brunch", T + timedelta(days=29), [CARA["email"]], invitedParticipants=[ANA["email"]]),
        raw_event("Private Party", T + timedelta(days=5), [CARA["email"]], type="private"),
        raw_event("Canceled Cooking", T + timedelta(days=6), [], eventStatus="canceled"),
        raw_event("Too Late Tasting", T + timedelta(days=31), [CARA["email"]]),
        raw_event("Already Started", T - timedelta(hours=1), [CARA["email"]]),
    ]
    return [ANA, BEN, CARA], events


class RecordingRanker:
    """Ranks the catalog in order and keeps what it was shown."""

    generator = "recording"
    model = "test-model"

    def __init__(self):
        self.calls = []
        self.cost_usd = 0.0

    def __call__(self, profile, catalog, now):
        self.calls.append((profile, catalog, now))
        self.cost_usd += 0.25
        return [{"event_index": i, "campaign": "Seat The Newcomer"} for i in range(min(3, len(catalog)))]


def test_catalog_at_t_is_step2s_rule_without_capacity_within_30_days():
    _, events = community()
    events[2]["maxParticipants"] = 2  # full: still in the catalog (participant lists are final)
    names = [events[i]["name"] for i in catalog_at(events, T)]
    assert names == ["Jazz Night", "Wine Walk", "Hike Brunch"]  # soonest first


def test_cases_are_attendees_of_public_not_canceled_events_in_the_window():
    _, events = community()
    events.append(raw_event("Old Dinner", NOW - timedelta(days=400), [ANA["email"]]))  # outside the window
    events.append(raw_event("Canceled Past", NOW - timedelta(days=50), [ANA["email"]], eventStatus="canceled"))
    cases = [(event["name"], email) for event, email in build_cases(events, NOW)]
    assert ("Jazz Night", "ana.quill@example.com") in cases
    assert ("Jazz Night", "ben.ode@example.com") in cases
    assert not any(name in ("Old Dinner", "Canceled Past", "Private Party") for name, _ in cases)
    assert ("Earlier Supper", "ana.quill@example.com") in cases
    assert "Earlier Supper" not in [event["name"] for event, _ in build_cases(events, NOW, window_days=30)]


def test_profiles_at_t_come_from_steps_3_and_4_without_the_member():
    users, events = community()
    ranker = RecordingRanker()
    run_backtest(users, events, NOW, ranker)
    ana_calls = [call for call in ranker.calls if call[0]["email"] == "ana.quill@example.com"
                 and any(event["name"] == "Jazz Night" for event in call[1])]
    profile, catalog, now = ana_calls[0]
    assert now == T
    # Step 3 at t: the same record its own enrich_users makes with now = t (no invitations: they are not dated).
    expected_profile = enrich_users([ANA], events, users, [], T, UTC)[0][0]
    assert profile == expected_profile
    assert profile["event_count"] == 1 and profile["historical_event_names"] == ["Earlier Supper"]
    # Step 4 at t, on the events with Ana taken out.
    by_name = {event["name"]: event for event in catalog}
    target = next(event for event in events if event["name"] == "Jazz Night")
    without_ana = dict(target, participants=[BEN["email"]])
    assert by_name["Jazz Night"] == enrich_events([without_ana], users, T, UTC)[0][0]
    assert by_name["Jazz Night"]["participant_count"] == 1
    hike = next(event for event in events if event["name"] == "Hike Brunch")
    assert by_name["Hike Brunch"] == enrich_events([hike], users, T, UTC)[0][0]


def test_no_leakage_of_the_member_into_what_the_ranker_sees():
    # Ben hosts every event: as a case member he must not show as the host either.
    users, events = community()
    ranker = RecordingRanker()
    run_backtest(users, events, NOW, ranker)
    assert ranker.calls
    for profile, catalog, _ in ranker.calls:
        email = profile["email"]
        name = profile["name"]
        catalog_text = json.dumps(catalog).lower()
        assert email not in catalog_text and name.lower() not in catalog_text, (name, catalog_text)
        # No later history: nothing at or after t is in the profile.
        assert profile["last_event_date"] is None or profile["last_event_date"] < iso(T)
        assert "Jazz Night" not in profile["summary"] and "Jazz Night" not in profile["historical_event_names"]
        assert profile["invited_event_names"] == []


def test_result_has_every_field_and_counts_small_catalogs():
    users, events = community()
    # A lone event 200 days back: its catalog at t holds only itself, as does Earlier Supper's (Ana, Ben).
    events.append(raw_event("Lonely Lunch", NOW - timedelta(days=200), [CARA["email"]]))
    # Dana joined after Jazz Night's t, and a guest without an account came too.
    dana = user("Dana", "Roe", ["jazz"], created_days_ago=25)
    events[1]["participants"] += [dana["email"], "guest99@example.net"]
    ranker = RecordingRanker()
    result = run_backtest(users + [dana], events, NOW, ranker)
    for key in ("cases", "skipped", "hit_at_1", "hit_at_3", "mrr", "random_hit_at_1", "random_hit_at_3",
                "popularity_hit_at_1", "popularity_hit_at_3", "by_campaign", "generator", "model", "cost_usd"):
        assert key in result, key
    assert result["skipped_by_reason"] == {SKIP_SMALL_CATALOG: 3, SKIP_NOT_MEMBER_YET: 1, SKIP_NO_PROFILE_USER: 1}
    assert result["skipped"] == 5
    # Jazz Night: Ana, Ben; Wine Walk: Cara, Ana; Already Started: Cara.
    assert result["cases"] == len(ranker.calls) == 5
    assert result["generator"] == "recording" and result["model"] == "test-model"
    assert result["cost_usd"] == 0.25 * result["cases"]
    assert set(result["by_campaign"]) == {"Seat The Newcomer"}


# --- Sampling -------------------------------------------------------------------------------------------

def test_sampling_is_deterministic_and_keeps_order():
    cases = list(range(100))
    first = sample_cases(cases, 10, seed=3)
    assert first == sample_cases(cases, 10, seed=3)
    assert first == sorted(first) and len(first) == 10
    assert first != sample_cases(cases, 10, seed=4)
    assert sample_cases(cases, None, seed=3) == cases
    assert sample_cases(cases, 500, seed=3) == cases


# --- End to end on generated sample data ----------------------------------------------------------------

@pytest.fixture(scope="module")
def sample():
    from utils.sample_data import generate_dataset

    return generate_dataset(500, 80, 42, NOW)


@pytest.mark.generated_data
def test_offline_backtest_on_sample_data_beats_random(sample):
    result = run_backtest(sample["users"], sample["events"], NOW, OfflineRanker())
    assert result["cases"] > 100
    assert result["generator"] == "offline" and result["cost_usd"] == 0.0
    for key in ("hit_at_1", "hit_at_3", "mrr", "random_hit_at_1", "popularity_hit_at_3"):
        assert 0.0 <= result[key] <= 1.0
    assert result["hit_at_1"] <= result["mrr"] <= result["hit_at_3"]
    # The sample data carries a signal and the scorer finds it.
    assert result["hit_at_1"] > result["random_hit_at_1"] + 0.05
    assert sum(metrics["cases"] for metrics in result["by_campaign"].values()) == result["cases"]


@pytest.mark.generated_data
def test_limit_samples_the_same_cases_every_time(sample):
    first = run_backtest(sample["users"], sample["events"], NOW, RecordingRanker(), limit=25, seed=5)
    again = RecordingRanker()
    second = run_backtest(sample["users"], sample["events"], NOW, again, limit=25, seed=5)
    assert first["cases"] == 25 == len(again.calls)
    assert {k: v for k, v in first.items() if k != "cost_usd"} == {k: v for k, v in second.items() if k != "cost_usd"}


# --- Saving and the table -------------------------------------------------------------------------------

def result_with(hit1: float) -> dict:
    metrics = {"cases": 10, "hit_at_1": hit1, "hit_at_3": 0.6, "mrr": 0.45, "random_hit_at_1": 0.2,
               "random_hit_at_3": 0.5, "random_mrr": 0.3, "popularity_hit_at_1": 0.3,
               "popularity_hit_at_3": 0.55, "popularity_mrr": 0.4}
    return {**metrics, "skipped": 1, "by_campaign": {"Fill the Table": dict(metrics)}, "generator": "offline",
            "model": "offline-rules-v2", "cost_usd": 0.0}


def test_save_keeps_the_previous_run(tmp_path):
    assert load_previous_backtest(tmp_path) is None
    save_backtest(result_with(0.3), tmp_path)
    assert not (tmp_path / PREVIOUS_BACKTEST_FILE).exists()
    save_backtest(result_with(0.4), tmp_path)
    assert json.loads((tmp_path / PREVIOUS_BACKTEST_FILE).read_text())["hit_at_1"] == 0.3
    assert json.loads((tmp_path / BACKTEST_FILE).read_text())["hit_at_1"] == 0.4
    assert load_previous_backtest(tmp_path)["hit_at_1"] == 0.4


def test_unreadable_previous_run_only_loses_the_comparison(tmp_path):
    (tmp_path / BACKTEST_FILE).write_text("{not json", encoding="utf-8")
    assert load_previous_backtest(tmp_path) is None


def test_table_shows_baselines_and_the_change_since_the_previous_run():
    table = format_backtest_table(result_with(0.4), previous=result_with(0.3))
    hit1 = next(line for line in table.splitlines() if line.startswith("HitRate@1"))
    assert "40.0%" in hit1 and "20.0%" in hit1 and "30.0%" in hit1 and "+10.0 pts" in hit1
    assert "Fill the Table (10 cases)" in table
    assert "(no previous run" in format_backtest_table(result_with(0.4))
