"""utils.log: one timestamped log file per run, INFO on the console, statistics as a table."""

import io
import logging
import re
from datetime import datetime

import pytest

from utils.errors import PipelineError
from utils.log import (
    close_step_logging, format_stats_table, log_stats_table, run_timestamp, setup_step_logging,
)

FILE_LINE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (DEBUG|INFO|WARNING|ERROR) +(.*)$")


@pytest.fixture
def open_loggers():
    """Loggers a test opens; their handlers are closed afterwards so files are not left open."""
    loggers: list[logging.Logger] = []
    yield loggers
    for logger in loggers:
        close_step_logging(logger)


def _setup(open_loggers, *args, **kwargs):
    logger, path = setup_step_logging(*args, **kwargs)
    open_loggers.append(logger)
    return logger, path


# --- run_timestamp / file name --------------------------------------------------------------------

def test_run_timestamp_format():
    assert run_timestamp(datetime(2026, 11, 25, 9, 5, 7)) == "20261125_090507"
    assert run_timestamp(datetime(2026, 1, 2, 23, 59, 0)) == "20260102_235900"


def test_run_timestamp_default_is_the_current_local_time():
    before = datetime.now().replace(microsecond=0)
    stamp = run_timestamp()
    after = datetime.now()
    assert before <= datetime.strptime(stamp, "%Y%m%d_%H%M%S") <= after


def test_log_file_name_is_step_name_and_timestamp(tmp_path, open_loggers):
    _, path = _setup(open_loggers, "user_selection", tmp_path)
    assert path.parent == tmp_path
    assert re.fullmatch(r"user_selection_\d{8}_\d{6}\.log", path.name)
    assert path.is_file()


def test_log_file_name_with_a_given_stamp(tmp_path, open_loggers):
    _, path = _setup(open_loggers, "event_selection", tmp_path, stamp="20261125_120000")
    assert path == tmp_path / "event_selection_20261125_120000.log"


def test_log_folder_is_created(tmp_path, open_loggers):
    log_dir = tmp_path / "a" / "b" / "logs"
    _, path = _setup(open_loggers, "user_selection", log_dir, stamp="20261125_120000")
    assert path == log_dir / "user_selection_20261125_120000.log"
    assert path.is_file()


def test_log_folder_that_cannot_be_made_is_a_pipeline_error(tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        setup_step_logging("user_selection", blocker)
    assert "cannot write the log file" in str(caught.value)
    assert str(blocker) in str(caught.value)


# --- what goes where ------------------------------------------------------------------------------

def test_file_has_timestamps_and_levels_including_debug(tmp_path, open_loggers):
    logger, path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    logger.debug("detail %d", 1)
    logger.info("progress")
    logger.warning("careful")
    close_step_logging(logger)
    lines = path.read_text(encoding="utf-8").splitlines()
    parsed = [FILE_LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert [(m.group(1), m.group(2)) for m in parsed] == [
        ("DEBUG", "detail 1"), ("INFO", "progress"), ("WARNING", "careful"),
    ]


def test_console_shows_info_and_up_but_not_debug(tmp_path, open_loggers, capsys):
    logger, _ = _setup(open_loggers, "user_selection", tmp_path)
    logger.debug("debug detail")
    logger.info("info line")
    logger.warning("warning line")
    out, err = capsys.readouterr()
    assert out == "info line\nwarning line\n"
    assert err == ""


def test_logger_does_not_propagate_to_the_root_logger(tmp_path, open_loggers, caplog):
    # caplog listens on the root logger: nothing should reach it, or messages would print twice.
    logger, _ = _setup(open_loggers, "user_selection", tmp_path)
    with caplog.at_level(logging.DEBUG):
        logger.info("only mine")
    assert caplog.records == []


def test_repeated_setup_does_not_duplicate_lines(tmp_path, open_loggers, capsys):
    first, first_path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    first.info("run one")
    second, second_path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120001")
    second.info("run two")
    assert second is first  # same name, same logger: handlers must have been replaced, not added
    assert len(second.handlers) == 2
    close_step_logging(second)
    out, _ = capsys.readouterr()
    assert out == "run one\nrun two\n"
    first_lines = first_path.read_text(encoding="utf-8").splitlines()
    second_lines = second_path.read_text(encoding="utf-8").splitlines()
    assert [FILE_LINE.match(line).group(2) for line in first_lines] == ["run one"]
    assert [FILE_LINE.match(line).group(2) for line in second_lines] == ["run two"]


def test_repeated_setup_with_the_same_stamp_does_not_duplicate_lines(tmp_path, open_loggers):
    logger, path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    logger, same_path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    logger.info("once")
    close_step_logging(logger)
    assert same_path == path
    assert [FILE_LINE.match(line).group(2) for line in path.read_text(encoding="utf-8").splitlines()] == ["once"]


def test_steps_get_separate_loggers_and_files(tmp_path, open_loggers):
    one, one_path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    two, two_path = _setup(open_loggers, "event_selection", tmp_path, stamp="20261125_120000")
    one.info("from one")
    two.info("from two")
    close_step_logging(one)
    close_step_logging(two)
    assert "from two" not in one_path.read_text(encoding="utf-8")
    assert "from one" not in two_path.read_text(encoding="utf-8")


def test_close_step_logging_detaches_and_flushes(tmp_path, open_loggers, capsys):
    logger, path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    logger.info("before close")
    close_step_logging(logger)
    assert logger.handlers == []
    logger.info("after close")
    assert "after close" not in path.read_text(encoding="utf-8")
    assert "after close" not in capsys.readouterr().out


def test_close_and_setup_again_when_the_console_stream_was_closed(tmp_path, open_loggers):
    # e.g. stdout was a pipe that closed, or a test's captured stdout that has been torn down.
    logger, _ = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    stream = io.StringIO()
    console = next(h for h in logger.handlers if not isinstance(h, logging.FileHandler))
    console.setStream(stream)
    stream.close()
    close_step_logging(logger)
    assert logger.handlers == []
    logger, path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120001")
    assert len(logger.handlers) == 2
    assert path.is_file()


# --- statistics table -----------------------------------------------------------------------------

def test_format_stats_table_exact_layout():
    table = format_stats_table("Step 1: user selection", [
        ("users loaded", 1234),
        ("  missing phone", 7),
        ("qualified users", 1000000),
    ])
    # Labels 15 wide (the longest label), 3 spaces, values 9 wide ("1,000,000"): 27 in all.
    assert table == "\n".join([
        "Step 1: user selection",
        "-" * 27,
        "statistic" + " " * 13 + "value",
        "-" * 27,
        "users loaded" + " " * 10 + "1,234",
        "  missing phone" + " " * 11 + "7",
        "qualified users" + " " * 3 + "1,000,000",
        "-" * 27,
    ])


def test_format_stats_table_rows_line_up():
    table = format_stats_table("T", [("a", 5), ("a much longer label", 123456), ("mid label", "n/a")])
    lines = table.splitlines()
    # Labels 19 wide, 3 spaces, values 7 wide ("123,456"): 29 in all, for every line but the title.
    assert {len(line) for line in lines[1:]} == {29}
    assert lines[4] == "a" + " " * 27 + "5"
    assert lines[5] == "a much longer label" + " " * 3 + "123,456"
    assert lines[6] == "mid label" + " " * 17 + "n/a"


def test_format_stats_table_accepts_a_mapping_in_order():
    as_mapping = format_stats_table("T", {"loaded": 3, "kept": 2})
    as_pairs = format_stats_table("T", [("loaded", 3), ("kept", 2)])
    assert as_mapping == as_pairs
    # The header sets the widths here: "statistic" (9) and "value" (5).
    assert as_mapping.splitlines()[4:6] == ["loaded" + " " * 10 + "3", "kept" + " " * 12 + "2"]


def test_format_stats_table_accepts_a_generator():
    table = format_stats_table("T", ((name, n) for name, n in [("x", 1)]))
    assert table.splitlines()[4] == "x" + " " * 15 + "1"


def test_format_stats_table_renders_value_types():
    table = format_stats_table("T", [("flag", True), ("ratio", 0.25), ("neg", -1500), ("none", None)])
    values = [line.split()[-1] for line in table.splitlines()[4:-1]]
    assert values == ["True", "0.25", "-1,500", "None"]  # bool is not an int here: no "1"


def test_format_stats_table_with_no_rows_keeps_the_header():
    assert format_stats_table("Empty", []) == "\n".join([
        "Empty",
        "-" * 17,
        "statistic   value",
        "-" * 17,
        "-" * 17,
    ])


def test_log_stats_table_goes_to_console_and_file(tmp_path, open_loggers, capsys):
    logger, path = _setup(open_loggers, "user_selection", tmp_path, stamp="20261125_120000")
    log_stats_table(logger, "Step 1", [("users loaded", 1234)])
    close_step_logging(logger)
    table = "Step 1\n" + "-" * 20 + "\nstatistic      value\n" + "-" * 20 + "\nusers loaded   1,234\n" + "-" * 20
    out = capsys.readouterr().out
    assert table in out
    text = path.read_text(encoding="utf-8")
    assert table in text
    assert FILE_LINE.match(text.splitlines()[0]).group(1) == "INFO"
