"""utils.cli and utils.paths: common flags, start-up, error exits, and running steps from any folder."""

import importlib
import json
import logging
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from utils import cli, paths
from utils.cli import build_arg_parser, start_step, step_main
from utils.dates import DEFAULT_TIMEZONE, resolve_timezone
from utils.errors import PipelineError
from utils.log import close_step_logging

# Worked out from this file's own location, not from utils.paths.
REPO = Path(__file__).resolve().parents[1]
STEP1 = REPO / "pipeline" / "step1_user_selection.py"
UTC = timezone.utc
FIXED_NOW = "2026-11-25T12:00:00Z"


@pytest.fixture(autouse=True)
def isolated_environment(monkeypatch, tmp_path):
    """No developer .env, debug flag or time zone leaks into these tests."""
    monkeypatch.setattr(cli, "ENV_FILE", tmp_path / "no-such.env")
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    monkeypatch.delenv("PIPELINE_TIMEZONE", raising=False)
    yield
    for name in [n for n in logging.Logger.manager.loggerDict if n.startswith("pipeline.")]:
        close_step_logging(logging.getLogger(name))


def _parse(*argv: str):
    return build_arg_parser("Test step.").parse_args(list(argv))


# --- utils.paths ----------------------------------------------------------------------------------

def test_default_paths_are_the_repo_folders():
    assert paths.PROJ_ROOT == REPO
    assert paths.DEFAULT_DATA_DIR == REPO / "data"
    assert paths.DEFAULT_LOG_DIR == REPO / "logs"
    assert paths.ENV_FILE == REPO / ".env"
    assert paths.DEFAULT_DATA_DIR.is_absolute()


def test_raw_and_processed_paths(tmp_path):
    assert paths.raw_path(tmp_path, paths.USERS_FILE) == tmp_path / "raw" / "users.json"
    assert paths.processed_path(str(tmp_path), paths.QUALIFIED_USERS_FILE) == (
        tmp_path / "processed" / "qualified_users.json"
    )


def test_file_names_match_the_spec():
    assert (paths.USERS_FILE, paths.EVENTS_FILE, paths.MESSAGES_FILE) == (
        "users.json", "events.json", "messages.json")
    assert (paths.QUALIFIED_USERS_FILE, paths.QUALIFIED_EVENTS_FILE, paths.ENRICHED_USERS_FILE,
            paths.ENRICHED_EVENTS_FILE, paths.PROCESSED_MESSAGES_FILE) == (
        "qualified_users.json", "qualified_events.json", "enriched_users.json",
        "enriched_events.json", "processed_messages.json")


# --- build_arg_parser -----------------------------------------------------------------------------

def test_defaults_are_the_repo_folders_whatever_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = _parse()
    assert args.data_dir == REPO / "data"
    assert args.log_dir == REPO / "logs"
    assert args.now is None
    assert args.timezone is None


def test_given_folders_are_taken_as_written(tmp_path):
    args = _parse("--data-dir", "some/data", "--log-dir", str(tmp_path / "logs"))
    assert args.data_dir == Path("some/data")
    assert args.log_dir == tmp_path / "logs"


@pytest.mark.parametrize("text, expected", [
    ("2026-11-25T12:00:00Z", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
    ("2026-11-25T12:00:00.5Z", datetime(2026, 11, 25, 12, 0, 0, 500000, tzinfo=UTC)),
    ("2026-11-25T07:00:00-05:00", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),
    ("2026-11-25T12:00:00", datetime(2026, 11, 25, 12, 0, tzinfo=UTC)),  # naive: UTC
    ("2026-11-25", datetime(2026, 11, 25, 0, 0, tzinfo=UTC)),
])
def test_now_is_parsed_to_an_aware_datetime(text, expected):
    now = _parse("--now", text).now
    assert now == expected
    assert now.utcoffset() is not None


@pytest.mark.parametrize("text", ["yesterday", "2026-13-45", "", "25/11/2026"])
def test_invalid_now_is_an_argparse_error_exit_2(text, capsys):
    with pytest.raises(SystemExit) as caught:
        _parse("--now", text)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "argument --now" in err
    assert f"{text!r} is not an ISO 8601 date" in err
    assert "Traceback" not in err


def test_timezone_is_resolved_to_a_zone():
    zone = _parse("--timezone", "America/New_York").timezone
    assert str(zone) == "America/New_York"
    assert datetime(2026, 7, 1, 16, 0, tzinfo=UTC).astimezone(zone).hour == 12  # EDT, UTC-4


@pytest.mark.parametrize("name", ["Mars/Base", "", "EST+5"])
def test_invalid_timezone_is_an_argparse_error_exit_2(name, capsys):
    with pytest.raises(SystemExit) as caught:
        _parse("--timezone", name)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "argument --timezone" in err
    assert repr(name) in err


def test_help_has_the_description_every_flag_and_the_default_folders(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # so argparse does not wrap the long default paths
    with pytest.raises(SystemExit) as caught:
        build_arg_parser("Step 9: frobnicate.\n\nReads x, writes y.", epilog="example:\n  run it").parse_args(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    assert "Step 9: frobnicate.\n\nReads x, writes y." in out  # description kept as written
    for flag in ("--data-dir DIR", "--log-dir DIR", "--now ISO8601", "--timezone IANA", "--help"):
        assert flag in out
    assert f"(default: {REPO / 'data'})" in out
    assert f"(default: {REPO / 'logs'})" in out
    assert "PIPELINE_TIMEZONE" in out
    assert "example:\n  run it" in out


def test_steps_can_add_their_own_flags():
    parser = build_arg_parser("Test step.")
    parser.add_argument("--offline", action="store_true")
    args = parser.parse_args(["--offline", "--now", FIXED_NOW])
    assert args.offline is True
    assert args.now == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


# --- start_step -----------------------------------------------------------------------------------

def test_start_step_resolves_flags_and_opens_the_log(tmp_path, capsys):
    args = _parse("--data-dir", str(tmp_path / "data"), "--log-dir", str(tmp_path / "logs"),
                  "--now", FIXED_NOW, "--timezone", "Europe/Paris")
    run = start_step("unit_step", args)
    assert run.args is args
    assert run.data_dir == tmp_path / "data"
    assert run.log_dir == tmp_path / "logs"
    assert run.now == datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert str(run.zone) == "Europe/Paris"
    assert run.logger.name == "pipeline.unit_step"
    assert run.log_path.parent == tmp_path / "logs"
    assert re.fullmatch(r"unit_step_\d{8}_\d{6}\.log", run.log_path.name)
    out = capsys.readouterr().out
    assert "now=2026-11-25T12:00:00+00:00" in out
    assert "timezone=Europe/Paris" in out


def test_start_step_timezone_defaults_to_pipeline_timezone(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TIMEZONE", "Asia/Tokyo")
    run = start_step("unit_step", _parse("--log-dir", str(tmp_path), "--now", FIXED_NOW))
    assert str(run.zone) == "Asia/Tokyo"


def test_start_step_timezone_flag_beats_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TIMEZONE", "Asia/Tokyo")
    run = start_step("unit_step", _parse("--log-dir", str(tmp_path), "--timezone", "Europe/Paris"))
    assert str(run.zone) == "Europe/Paris"


def test_start_step_timezone_defaults_to_new_york_and_says_so(tmp_path, capsys):
    run = start_step("unit_step", _parse("--log-dir", str(tmp_path), "--now", FIXED_NOW))
    assert str(run.zone) == "America/New_York"
    assert "timezone=America/New_York (default)" in capsys.readouterr().out


def test_the_default_zone_is_the_communitys_and_set_once():
    assert DEFAULT_TIMEZONE == "America/New_York"
    assert str(resolve_timezone()) == DEFAULT_TIMEZONE  # no PIPELINE_TIMEZONE in these tests


@pytest.mark.parametrize("flag, env, expected", [
    (None, None, "timezone=America/New_York (default)"),
    (None, "Asia/Tokyo", "timezone=Asia/Tokyo (from $PIPELINE_TIMEZONE)"),
    ("Europe/Paris", "Asia/Tokyo", "timezone=Europe/Paris (--timezone)"),
    ("UTC", None, "timezone=UTC (--timezone)"),
])
def test_header_line_names_the_zone_and_where_it_came_from(tmp_path, monkeypatch, capsys, flag, env, expected):
    if env is not None:
        monkeypatch.setenv("PIPELINE_TIMEZONE", env)
    argv = ["--log-dir", str(tmp_path), "--now", FIXED_NOW] + (["--timezone", flag] if flag else [])
    run = start_step("unit_step", _parse(*argv))
    header = capsys.readouterr().out.splitlines()[0]
    assert header.startswith("unit_step: now=2026-11-25T12:00:00+00:00 ")
    assert expected in header
    assert expected in run.log_path.read_text(encoding="utf-8")


@pytest.mark.parametrize("module, extra", [
    ("step1_user_selection", []),
    ("step2_event_selection", []),
    ("step3_user_profile_enrich", []),
    ("step4_event_enrich", []),
    ("step5_match_message", ["--offline", "--no-upload"]),
])
def test_every_step_prints_its_zone_in_the_header_line(tmp_path, capsys, module, extra):
    # An empty data folder: each step stops with "Error: … not found", after its header line.
    step = importlib.import_module(f"pipeline.{module}")
    assert step.main(["--data-dir", str(tmp_path / "empty"), "--log-dir", str(tmp_path / "logs"),
                      "--now", FIXED_NOW, *extra]) == 1
    captured = capsys.readouterr()
    assert "not found" in captured.err
    header = captured.out.splitlines()[0]
    assert f"{step.STEP_NAME}: now=2026-11-25T12:00:00+00:00 timezone=America/New_York (default)" in header


def test_start_step_with_a_bad_pipeline_timezone_names_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TIMEZONE", "Mars/Base")
    with pytest.raises(PipelineError) as caught:
        start_step("unit_step", _parse("--log-dir", str(tmp_path), "--now", FIXED_NOW))
    assert "'Mars/Base'" in str(caught.value)
    assert "PIPELINE_TIMEZONE" in str(caught.value)


def test_start_step_now_defaults_to_the_current_utc_time(tmp_path, monkeypatch):
    fixed = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    monkeypatch.setattr(cli, "utc_now", lambda: fixed)
    run = start_step("unit_step", _parse("--log-dir", str(tmp_path)))
    assert run.now == fixed


def test_start_step_now_really_is_the_current_time_by_default(tmp_path):
    before = datetime.now(UTC)
    run = start_step("unit_step", _parse("--log-dir", str(tmp_path)))
    assert before <= run.now <= datetime.now(UTC)
    assert run.now.utcoffset() == timedelta(0)


# --- step_main ------------------------------------------------------------------------------------

def test_step_main_passes_argv_and_returns_the_exit_code():
    seen = []

    @step_main
    def main(argv=None):
        """Doc kept."""
        seen.append(argv)
        return 0

    assert main(["--now", FIXED_NOW]) == 0
    assert seen == [["--now", FIXED_NOW]]
    assert main.__doc__ == "Doc kept."
    assert main.__name__ == "main"


def test_step_main_turns_a_pipeline_error_into_error_on_stderr_and_exit_1(capsys):
    @step_main
    def main(argv=None):
        raise PipelineError("users file not found: /x/users.json. Check --data-dir.")

    assert main([]) == 1
    out, err = capsys.readouterr()
    assert err == "Error: users file not found: /x/users.json. Check --data-dir.\n"
    assert "Traceback" not in out + err


@pytest.mark.parametrize("value", ["0", "", "true"])
def test_step_main_without_debug_set_to_1_still_hides_the_traceback(monkeypatch, capsys, value):
    monkeypatch.setenv("PIPELINE_DEBUG", value)

    @step_main
    def main(argv=None):
        raise PipelineError("boom")

    assert main([]) == 1
    assert capsys.readouterr().err == "Error: boom\n"


def test_step_main_with_pipeline_debug_re_raises(monkeypatch, capsys):
    monkeypatch.setenv("PIPELINE_DEBUG", "1")

    @step_main
    def main(argv=None):
        raise PipelineError("boom")

    with pytest.raises(PipelineError, match="boom"):
        main([])
    assert "Error: boom" not in capsys.readouterr().err


def test_step_main_lets_bugs_raise(capsys):
    @step_main
    def main(argv=None):
        raise KeyError("not an expected failure")

    with pytest.raises(KeyError):
        main([])


def test_step_main_ctrl_c_exits_130_with_a_short_message(capsys):
    @step_main
    def main(argv=None):
        raise KeyboardInterrupt

    assert main([]) == 130
    err = capsys.readouterr().err
    assert err.startswith("Interrupted")
    assert "Traceback" not in err


def test_step_main_records_the_error_in_the_log_file_not_twice_on_the_console(tmp_path, capsys):
    log_paths = []

    @step_main
    def main(argv=None):
        run = start_step("unit_step", build_arg_parser("x").parse_args(argv))
        log_paths.append(run.log_path)
        raise PipelineError("events file not found")

    assert main(["--log-dir", str(tmp_path), "--now", FIXED_NOW]) == 1
    text = log_paths[0].read_text(encoding="utf-8")
    assert re.search(r"^\d{4}-\d{2}-\d{2} [\d:,]+ ERROR +Error: events file not found$", text, re.MULTILINE)
    out, err = capsys.readouterr()
    assert "events file not found" not in out
    assert err == "Error: events file not found\n"


def test_step_main_records_a_bug_with_its_traceback_in_the_log_file(tmp_path):
    log_paths = []

    @step_main
    def main(argv=None):
        run = start_step("unit_step", build_arg_parser("x").parse_args(argv))
        log_paths.append(run.log_path)
        raise ZeroDivisionError("oops")

    with pytest.raises(ZeroDivisionError):
        main(["--log-dir", str(tmp_path), "--now", FIXED_NOW])
    text = log_paths[0].read_text(encoding="utf-8")
    assert "ERROR   unexpected error" in text
    assert "Traceback" in text
    assert "ZeroDivisionError: oops" in text


def test_step_main_closes_the_step_loggers(tmp_path):
    loggers = []

    @step_main
    def main(argv=None):
        run = start_step("unit_step", build_arg_parser("x").parse_args(argv))
        loggers.append(run.logger)
        return 0

    assert main(["--log-dir", str(tmp_path), "--now", FIXED_NOW]) == 0
    assert loggers[0].handlers == []


def test_step_main_reads_the_env_file_without_overriding_the_environment(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("PIPELINE_TIMEZONE=Asia/Tokyo\nCLI_TEST_ALREADY_SET=from-file\n", encoding="utf-8")
    monkeypatch.setattr(cli, "ENV_FILE", env_file)
    monkeypatch.setenv("CLI_TEST_ALREADY_SET", "from-environment")
    zones = []

    @step_main
    def main(argv=None):
        zones.append(str(start_step("unit_step", build_arg_parser("x").parse_args(argv)).zone))
        return 0

    try:
        assert main(["--log-dir", str(tmp_path / "logs"), "--now", FIXED_NOW]) == 0
        assert zones == ["Asia/Tokyo"]
        assert os.environ["CLI_TEST_ALREADY_SET"] == "from-environment"
    finally:
        os.environ.pop("PIPELINE_TIMEZONE", None)  # load_dotenv set it outside monkeypatch


# --- running a real step script -------------------------------------------------------------------

def _complete_user(ident: str, **changes) -> dict:
    user = {
        "id": ident, "_id": {"$oid": f"oid-{ident}"}, "firstName": "Ann", "lastName": ident,
        "email": f"{ident}@example.com", "phone": f"+1212555{int(ident[1:]):04d}", "interests": ["food"],
        "homeNeighborhood": "Mission", "workNeighborhood": "SoMa", "occupation": "Chef",
        "gender": "female", "relationshipStatus": "single", "tableTypePreference": "social",
    }
    user.update(changes)
    return user


def _tiny_data_set(data_dir: Path) -> None:
    """u1 qualifies; u2 was messaged; u3 has no phone; one item is not an object."""
    (data_dir / "raw").mkdir(parents=True)
    users = [_complete_user("u1"), _complete_user("u2"), _complete_user("u3", phone=""), 7]
    (data_dir / "raw" / "users.json").write_text(json.dumps(users), encoding="utf-8")
    (data_dir / "raw" / "messages.json").write_text(json.dumps([{"user_id": "u2"}]), encoding="utf-8")


def _run_step(argv: list[str], cwd: Path, **env_changes) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PIPELINE_DEBUG", "PIPELINE_TIMEZONE")}
    env.update(env_changes)
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("where", ["elsewhere", "repo root"])
def test_step1_runs_as_a_script_from_any_folder(tmp_path, where):
    data_dir = tmp_path / "data"
    _tiny_data_set(data_dir)
    cwd = REPO if where == "repo root" else tmp_path / "somewhere"
    cwd.mkdir(exist_ok=True)
    result = _run_step([str(STEP1), "--data-dir", str(data_dir), "--log-dir", str(tmp_path / "logs"),
                        "--now", FIXED_NOW], cwd=cwd)
    assert result.returncode == 0, result.stderr
    output = json.loads((data_dir / "processed" / "qualified_users.json").read_text(encoding="utf-8"))
    assert [user["id"] for user in output] == ["u1"]
    logs = list((tmp_path / "logs").iterdir())
    assert len(logs) == 1
    assert re.fullmatch(r"user_selection_\d{8}_\d{6}\.log", logs[0].name)
    assert re.search(r"^-+\n", result.stdout, re.MULTILINE)  # the statistics table reached the console
    assert "statistic" in logs[0].read_text(encoding="utf-8")


def test_step1_relative_flags_are_read_from_the_current_folder(tmp_path):
    _tiny_data_set(tmp_path / "data")
    result = _run_step([str(STEP1), "--data-dir", "data", "--log-dir", "logs", "--now", FIXED_NOW], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "processed" / "qualified_users.json").is_file()
    assert len(list((tmp_path / "logs").glob("user_selection_*.log"))) == 1


def test_step1_help_from_another_folder_shows_the_repo_defaults(tmp_path):
    result = _run_step([str(STEP1), "--help"], cwd=tmp_path, COLUMNS="300")
    assert result.returncode == 0, result.stderr
    assert f"(default: {REPO / 'data'})" in result.stdout
    assert f"(default: {REPO / 'logs'})" in result.stdout
    assert "Step 1" in result.stdout
    assert list(tmp_path.iterdir()) == []  # --help wrote nothing


def test_step1_missing_input_prints_error_and_exits_1(tmp_path):
    result = _run_step([str(STEP1), "--data-dir", str(tmp_path / "empty"), "--log-dir", str(tmp_path / "logs"),
                        "--now", FIXED_NOW], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("Error: ")
    assert str(tmp_path / "empty" / "raw" / "users.json") in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "empty" / "processed").exists()


def test_step1_missing_input_with_pipeline_debug_shows_the_traceback(tmp_path):
    result = _run_step([str(STEP1), "--data-dir", str(tmp_path / "empty"), "--log-dir", str(tmp_path / "logs"),
                        "--now", FIXED_NOW], cwd=tmp_path, PIPELINE_DEBUG="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr
    assert "PipelineError" in result.stderr


def test_step1_malformed_input_keeps_the_previous_output(tmp_path):
    data_dir = tmp_path / "data"
    _tiny_data_set(data_dir)
    (data_dir / "processed").mkdir()
    previous = data_dir / "processed" / "qualified_users.json"
    previous.write_text('[{"id": "from the last good run"}]\n', encoding="utf-8")
    (data_dir / "raw" / "messages.json").write_text('[{"user_id": "u2"},\n  oops]', encoding="utf-8")
    result = _run_step([str(STEP1), "--data-dir", str(data_dir), "--log-dir", str(tmp_path / "logs"),
                        "--now", FIXED_NOW], cwd=tmp_path)
    assert result.returncode == 1
    assert "line 2 column 3" in result.stderr
    assert previous.read_text(encoding="utf-8") == '[{"id": "from the last good run"}]\n'
    assert sorted(p.name for p in previous.parent.iterdir()) == ["qualified_users.json"]


@pytest.mark.parametrize("flag, value", [("--now", "tomorrow"), ("--timezone", "Mars/Base")])
def test_step1_bad_common_flag_exits_2(tmp_path, flag, value):
    result = _run_step([str(STEP1), "--data-dir", str(tmp_path), "--log-dir", str(tmp_path / "logs"), flag, value],
                       cwd=tmp_path)
    assert result.returncode == 2
    assert f"argument {flag}" in result.stderr
    assert not (tmp_path / "logs").exists()
