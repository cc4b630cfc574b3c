"""Logging for step scripts: a timestamped file per run, INFO on the console, statistics as a table."""

import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Iterable, Mapping, Union

from utils.errors import PipelineError

_FILE_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"

StatRows = Union[Mapping[str, object], Iterable[tuple[str, object]]]


def run_timestamp(moment: datetime | None = None) -> str:
    """The `YYYYMMDD_HHMMSS` stamp used in log file names.

    Args:
        moment: When the run started; default the current local time.

    Returns:
        The stamp.
    """
    return (moment or datetime.now()).strftime("%Y%m%d_%H%M%S")


def setup_step_logging(step_name: str, log_dir: Path, stamp: str | None = None) -> tuple[logging.Logger, Path]:
    """Create the logger of one step run.

    Args:
        step_name: E.g. "user_selection"; the file is `<log_dir>/<step_name>_<stamp>.log`.
        log_dir: The folder for log files (created if missing).
        stamp: The run's timestamp; default `run_timestamp()`.

    Returns:
        The logger (DEBUG and up to the file, INFO and up to stdout) and the log file's path.

    Raises:
        PipelineError: The log folder cannot be created or written.
    """
    log_dir = Path(log_dir)
    log_path = log_dir / f"{step_name}_{stamp or run_timestamp()}.log"
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_path, encoding="utf-8")
    except OSError as exc:
        raise PipelineError(f"cannot write the log file {log_path}: {exc.strerror or exc}") from None
    file_handler.setLevel(logging.DEBUG)
    file_handler.setFormatter(logging.Formatter(_FILE_FORMAT))
    console_handler = logging.StreamHandler(sys.stdout)
    console_handler.setLevel(logging.INFO)
    console_handler.setFormatter(logging.Formatter("%(message)s"))

    logger = logging.getLogger(f"pipeline.{step_name}")
    close_step_logging(logger)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(file_handler)
    logger.addHandler(console_handler)
    return logger, log_path


def close_step_logging(logger: logging.Logger) -> None:
    """Flush and detach every handler, so repeated runs in one process do not log twice.

    Args:
        logger: A logger made by `setup_step_logging`.
    """
    for handler in list(logger.handlers):
        # Detach first: a handler whose stream is already closed (a closed pipe, a finished test
        # capture) raises on flush, and must still not stay attached or break the next set-up.
        logger.removeHandler(handler)
        for finish in (handler.flush, handler.close):
            try:
                finish()
            except (OSError, ValueError):
                pass


def format_stats_table(title: str, rows: StatRows) -> str:
    """Render statistics as an aligned two-column text table.

    Args:
        title: The heading line.
        rows: (label, value) pairs, or a mapping; integers get thousands separators.

    Returns:
        The table as text, without a trailing newline.
    """
    pairs = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
    rendered = [(str(label), f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value))
                for label, value in pairs]
    label_width = max([len(label) for label, _ in rendered] + [len("statistic")])
    value_width = max([len(value) for _, value in rendered] + [len("value")])
    rule = "-" * (label_width + value_width + 3)
    lines = [title, rule, f"{'statistic':<{label_width}}   {'value':>{value_width}}", rule]
    lines += [f"{label:<{label_width}}   {value:>{value_width}}" for label, value in rendered]
    lines.append(rule)
    return "\n".join(lines)


def log_stats_table(logger: logging.Logger, title: str, rows: StatRows) -> None:
    """Write the statistics table to the log file and the console.

    Args:
        logger: The step's logger.
        title: The heading line.
        rows: (label, value) pairs, or a mapping.
    """
    logger.info("\n%s", format_stats_table(title, rows))
