"""Step 5's --backtest through main(): offline on sample data, and with Claude at the loopback fake
(metrics, files, leakage searched in the prompts the fake received, --dry-run, --max-cost, bad flags)."""

import argparse
import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from pipeline import step5_match_message as step5
from pipeline.match_message.backtest import (
    BACKTEST_FILE, PREVIOUS_BACKTEST_FILE, OfflineRanker, run_backtest,
)
from pipeline.match_message.backtest import REFUSED_WITH_BACKTEST
from pipeline.match_message.backtest_command import comparison_note, refuse_bad_combinations
from tests.fakes.anthropic_server import Reply
from utils.dates import parse_iso_date
from utils.people import full_name, normalize_email_text
from utils.sample_data import generate_dataset, write_dataset

NOW = datetime(2026, 1, 15, tzinfo=timezone.utc)
ZONE = timezone.utc


@pytest.fixture(scope="module")
def demo() -> dict:
    return generate_dataset(500, 80, 42, NOW)


@pytest.fixture(scope="module")
def small() -> dict:
    return generate_dataset(150, 40, 7, NOW)


def _data_dir(tmp_path: Path, dataset: dict) -> Path:
    root = tmp_path / "data"
    write_dataset(dataset, root / "raw")
    return root


def _args(root: Path, *extra: str) -> list[str]:
    return ["--backtest", "--data-dir", str(root), "--log-dir", str(root.parent / "logs"),
            "--now", NOW.isoformat(), "--timezone", "UTC", *extra]


def _saved(root: Path, name: str = BACKTEST_FILE) -> dict:
    return json.loads((root / "processed" / name).read_text(encoding="utf-8"))


# --- Offline, end to end ------------------------------------------------------------------------------

@pytest.mark.generated_data
def test_offline_backtest_through_main_writes_the_result_and_compares_with_the_previous_run(
        tmp_path, demo, capsys):
    root = _data_dir(tmp_path, demo)
    assert step5.main(_args(root, "--offline")) == 0
    first = capsys.readouterr().out
    result = _saved(root)
    direct = run_backtest(demo["users"], demo["events"], NOW, OfflineRanker(), zone=ZONE)
    assert {key: result[key] for key in ("cases", "skipped", "hit_at_1", "hit_at_3", "mrr", "popularity_hit_at_1")} \
        == {key: direct[key] for key in ("cases", "skipped", "hit_at_1", "hit_at_3", "mrr", "popularity_hit_at_1")}
    assert result["generator"] == "offline" and result["cost_usd"] == 0.0 and result["cases"] > 100
    assert result["hit_at_1"] > result["random_hit_at_1"]
    assert f"Backtest: {result['cases']} cases" in first and "(no previous run to compare with)" in first
    assert not (root / "processed" / PREVIOUS_BACKTEST_FILE).exists()

    assert step5.main(_args(root, "--offline")) == 0
    second = capsys.readouterr().out
    assert _saved(root, PREVIOUS_BACKTEST_FILE)["hit_at_1"] == result["hit_at_1"]
    hit1 = next(line for line in second.splitlines() if line.startswith("HitRate@1"))
    assert hit1.endswith("+0.0 pts") and "Note:" not in second
    # A backtest never touches step 5's own outputs.
    assert sorted(path.name for path in (root / "processed").iterdir()) == [BACKTEST_FILE, PREVIOUS_BACKTEST_FILE]


@pytest.mark.generated_data
def test_limit_window_and_lead_reach_the_backtest(tmp_path, small, capsys):
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--offline")) == 0
    assert step5.main(_args(root, "--offline", "--limit", "7", "--window-days", "120", "--lead-days", "3")) == 0
    assert "Note: the previous run measured other cases (window_days 365 -> 120, lead_days 7 -> 3, " \
           "limit None -> 7)" in capsys.readouterr().out
    result = _saved(root)
    assert (result["cases"], result["limit"], result["window_days"], result["lead_days"]) == (7, 7, 120, 3)
    wider = run_backtest(small["users"], small["events"], NOW, OfflineRanker(), zone=ZONE)
    assert result["eligible_cases"] < wider["eligible_cases"]     # 120 days hold fewer cases than 365


def test_offline_dry_run_prints_the_cases_and_writes_nothing(tmp_path, small, capsys):
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--offline", "--dry-run")) == 0
    out = capsys.readouterr().out
    expected = run_backtest(small["users"], small["events"], NOW, OfflineRanker(), zone=ZONE)
    assert f"{expected['cases']} cases ({expected['skipped']} skipped" in out
    assert "estimated cost $0.0000" in out
    assert not (root / "processed").exists()


# --- Bad combinations ----------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, mentioned", [
    (["--user-id", "u1"], "--user-id"),
    (["--fresh"], "--fresh"),
    (["--limit", "0"], "--limit"),
    (["--workers", "0"], "--workers"),
])
def test_backtest_refuses_flags_of_the_live_run_and_bad_numbers(tmp_path, small, capsys, extra, mentioned):
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--offline", *extra)) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and mentioned in err and "Traceback" not in err
    assert not (root / "processed").exists()


def test_every_refused_flag_is_refused():
    for dest, flag in REFUSED_WITH_BACKTEST:
        args = argparse.Namespace(limit=None, max_cost=None, workers=1, **{dest: "x"})
        with pytest.raises(Exception, match=re.escape(flag)):
            refuse_bad_combinations(args)
    refuse_bad_combinations(argparse.Namespace(limit=3, max_cost=0.5, workers=1, fresh=False, user_id=None))
    # A live-run flag whose default is a value (say --max-segments 2) is refused only when given.
    given = argparse.Namespace(limit=None, max_cost=None, workers=1, max_segments=2,
                               live_run_defaults={"max_segments": 2})
    refuse_bad_combinations(given)
    given.max_segments = 3
    with pytest.raises(Exception, match="--max-segments"):
        refuse_bad_combinations(given)


def test_the_parser_keeps_the_live_run_flags_defaults():
    args = step5.build_parser().parse_args(["--backtest"])
    assert args.live_run_defaults["fresh"] is False and args.live_run_defaults["user_id"] is None


def test_comparison_note_names_another_matcher():
    run = {"now": "x", "window_days": 365, "lead_days": 7, "limit": None, "seed": 16, "generator": "claude",
           "model": "m2"}
    assert comparison_note(run, None) is None and comparison_note(run, dict(run)) is None
    assert "another matcher (offline v1)" in comparison_note(run, dict(run, generator="offline", model="v1"))


def test_a_lead_longer_than_the_catalog_span_is_refused_clearly(small, capsys):
    # R1 item 3: --lead-days 31 put the attended event outside its own 30-day catalog (ValueError traceback).
    with pytest.raises(SystemExit) as caught:
        step5.build_parser().parse_args(["--backtest", "--lead-days", "31"])
    assert caught.value.code == 2 and "at most 30 days" in capsys.readouterr().err
    with pytest.raises(ValueError, match="lead_days must be 1 to 30"):
        run_backtest(small["users"], small["events"], NOW, OfflineRanker(), lead_days=31, zone=ZONE)
    longest = run_backtest(small["users"], small["events"], NOW, OfflineRanker(), lead_days=30, zone=ZONE)
    assert longest["lead_days"] == 30 and longest["cases"] > 0


def test_window_and_lead_must_be_whole_positive_days(tmp_path, capsys):
    with pytest.raises(SystemExit):
        step5.build_parser().parse_args(["--backtest", "--lead-days", "0"])
    assert "at least 1 day" in capsys.readouterr().err


# --- With Claude, at the fake --------------------------------------------------------------------------

def _system_text(body: dict) -> str:
    system = body.get("system") or []
    return system if isinstance(system, str) else "".join(block["text"] for block in system)


def _user_text(body: dict) -> str:
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else "".join(block["text"] for block in content)


class ScriptedMatcher:
    """Answers a matching request with up to 3 catalog events that depend on the member (so answers differ
    per case); `padding` makes answers (and costs) longer."""

    def __init__(self, padding: int = 0):
        self.padding = padding

    def __call__(self, body: dict) -> dict:
        size = len(re.findall(r"^\[\d+\]", _system_text(body), flags=re.M))
        first = sum(map(ord, _user_text(body))) % size
        reasoning = "Interests fit." + " More." * self.padding
        return {"choices": [{"event_index": (first + offset) % size, "campaign": "Fill the Table",
                             "reasoning": reasoning, "confidence": 70 - 10 * offset}
                            for offset in range(min(3, size))]}


class Recorder:
    """A ranker that keeps what each case was given (the same cases, in the same order, as the real run)."""

    def __init__(self):
        self.cases = []

    def __call__(self, profile, catalog, now):
        self.cases.append((profile, catalog, now))
        return []


def test_claude_backtest_at_the_fake_writes_metrics_and_keeps_the_previous_run(tmp_path, small, anthropic_fake,
                                                                               capsys):
    anthropic_fake.responder = ScriptedMatcher()
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "6")) == 0
    result = _saved(root)
    assert result["cases"] == 6 == len(anthropic_fake.message_bodies)
    assert result["generator"] == "claude" and result["model"] == step5.ai_prompt.DEFAULT_MODEL
    assert result["cost_usd"] > 0 and result["failed_cases"] == 0
    for key in ("hit_at_1", "hit_at_3", "mrr", "random_hit_at_1", "popularity_hit_at_3"):
        assert 0.0 <= result[key] <= 1.0
    assert sum(metrics["cases"] for metrics in result["by_campaign"].values()) == 6
    assert "Backtest: 6 cases" in capsys.readouterr().out
    # Each request is the live run's matching request, without the cache mark (each catalog is its own).
    body = anthropic_fake.message_bodies[0]
    assert _user_text(body).startswith("Member profile:")
    assert "# Which campaign: the first rule that applies wins" in _system_text(body)
    assert all("cache_control" not in block for block in body["system"])

    assert step5.main(_args(root, "--limit", "6")) == 0
    assert _saved(root, PREVIOUS_BACKTEST_FILE)["cost_usd"] == result["cost_usd"]
    assert "+0.0 pts" in capsys.readouterr().out
    assert not (root / "processed" / "processed_messages.json").exists()


def test_workers_rank_cases_in_parallel_and_score_them_as_one_worker_does(tmp_path, small, anthropic_fake):
    matcher = ScriptedMatcher()
    anthropic_fake.responder = lambda body: Reply(matcher(body), delay=0.05)
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "12", "--workers", "1")) == 0
    alone = _saved(root)
    assert anthropic_fake.max_in_flight == 1
    assert step5.main(_args(root, "--limit", "12", "--workers", "4")) == 0
    assert anthropic_fake.max_in_flight > 1
    together = _saved(root)
    skip = {"cost_usd"}
    assert {k: v for k, v in together.items() if k not in skip} == {k: v for k, v in alone.items() if k not in skip}
    # Each case is scored with its own answer: the same matcher run in-process gives the same metrics.
    def local(profile, catalog, now):
        user = step5.MATCHING_USER_PROMPT.format(user_summary=profile["summary"], shortlist_size=3)
        first = sum(map(ord, user)) % len(catalog)
        return [{"event_index": (first + offset) % len(catalog), "campaign": "Fill the Table"}
                for offset in range(min(3, len(catalog)))]
    expected = run_backtest(small["users"], small["events"], NOW, local, limit=12, zone=ZONE)
    assert {key: together[key] for key in ("hit_at_1", "hit_at_3", "mrr")} \
        == {key: expected[key] for key in ("hit_at_1", "hit_at_3", "mrr")}


def test_no_leakage_in_any_prompt_the_fake_received(tmp_path, small, anthropic_fake):
    anthropic_fake.responder = ScriptedMatcher()
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "25")) == 0
    recorder = Recorder()
    run_backtest(small["users"], small["events"], NOW, recorder, limit=25, zone=ZONE)
    bodies = anthropic_fake.message_bodies
    assert len(bodies) == len(recorder.cases) == 25
    # Requests arrive in any order (--workers): each is matched to its case by the member's profile.
    case_of = {profile["summary"]: (profile, catalog, t) for profile, catalog, t in recorder.cases}
    assert len(case_of) == 25

    names = {normalize_email_text(user.get("email")): full_name(user) for user in small["users"]
             if isinstance(user, dict) and normalize_email_text(user.get("email"))}
    attended: dict[str, list[tuple[datetime, str]]] = {}
    for event in small["events"]:
        start = parse_iso_date(event.get("startDate")) if isinstance(event, dict) else None
        if start is not None:
            for email in {normalize_email_text(entry) for entry in event.get("participants") or []} - {None}:
                attended.setdefault(email, []).append((start, event.get("name")))
    others_shown = later_checked = 0
    for body in bodies:
        system, user = _system_text(body), _user_text(body)
        profile, _catalog, t = case_of[user.split("\n", 1)[1].split("\n\nRank up to", 1)[0]]
        email, name = normalize_email_text(profile["email"]), profile["name"]
        assert f"Today is {step5.today_text(t, ZONE)}." in system   # the case's moment, not --now
        assert email not in system.lower() and email not in user.lower()
        assert name not in system                         # not a guest, host or invitee of any candidate
        # Their name is only in their own profile at t (whose history is checked below).
        assert name not in user.replace(profile["summary"], "")
        before = {title for start, title in attended[email] if start < t}
        # The attended event and anything later (a name that is part of an earlier one's proves nothing).
        later = {title for start, title in attended[email] if start >= t
                 if not any(title in earlier for earlier in before)}
        assert not [title for title in later if title in user], user
        later_checked += bool(later)
        # Guests other than the member are shown, so the name search above could fail.
        others_shown += any(other in system for address, other in names.items() if address != email)
    assert others_shown > 0 and later_checked > 20


def test_dry_run_makes_no_request_and_estimates_the_cost(tmp_path, small, anthropic_fake, capsys):
    anthropic_fake.responder = ScriptedMatcher()
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "5", "--dry-run")) == 0
    out = capsys.readouterr().out
    assert anthropic_fake.message_bodies == []
    assert "5 cases" in out and "Claude calls: 5" in out
    assert float(re.search(r"estimated cost \$([\d.]+)", out).group(1)) > 0
    assert not (root / "processed").exists()


def test_max_cost_below_the_estimate_stops_before_any_request(tmp_path, small, anthropic_fake, capsys):
    anthropic_fake.responder = ScriptedMatcher()
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "5", "--max-cost", "0.000001")) == 1
    err = capsys.readouterr().err
    assert "above --max-cost" in err and anthropic_fake.message_bodies == []


def test_max_cost_reached_mid_run_stops_cleanly_and_writes_nothing(tmp_path, small, anthropic_fake, capsys):
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "12", "--dry-run")) == 0
    estimate = float(re.search(r"estimated cost \$([\d.]+)", capsys.readouterr().out).group(1))
    # Answers far longer than the estimate assumes: the spending reaches the estimate half-way.
    anthropic_fake.responder = ScriptedMatcher(padding=600)
    assert step5.main(_args(root, "--limit", "12", "--workers", "2", "--max-cost", f"{estimate:.6f}")) == 1
    err = capsys.readouterr().err
    assert "--max-cost" in err and "reached" in err and "Traceback" not in err
    assert 1 <= len(anthropic_fake.message_bodies) < 12
    assert not (root / "processed" / BACKTEST_FILE).exists()


def test_answers_still_invalid_after_the_retry_count_as_misses_and_are_reported(tmp_path, small, anthropic_fake,
                                                                                  capsys):
    anthropic_fake.responder = lambda body: {"choices": [{"event_index": 99, "campaign": "Fill the Table",
                                                          "reasoning": "x", "confidence": 50}]}
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "3")) == 0
    result = _saved(root)
    assert result["failed_cases"] == 3 and result["hit_at_3"] == 0.0
    assert len(anthropic_fake.message_bodies) == 6          # each case: the request and one corrective retry
    assert "3 cases failed" in capsys.readouterr().out


def test_a_rejected_key_stops_the_run_with_one_line_and_writes_nothing(tmp_path, small, anthropic_fake, capsys):
    anthropic_fake.fail("authentication", 50)
    root = _data_dir(tmp_path, small)
    assert step5.main(_args(root, "--limit", "3", "--workers", "1")) == 1
    err = capsys.readouterr().err
    assert err.startswith("Error: ") and "Traceback" not in err
    assert not (root / "processed" / BACKTEST_FILE).exists()
