"""Helpers shared by the step tests: writing inputs, running scripts, reading statistics tables."""

import json
import os
import re
from pathlib import Path


def write_json(path: Path, data) -> None:
    """Write `data` as JSON, creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def subprocess_env() -> dict:
    """The environment for a step subprocess, without PIPELINE_DEBUG (so errors print one line)."""
    return {key: value for key, value in os.environ.items() if key != "PIPELINE_DEBUG"}


def parse_stats(log_text: str, title: str) -> dict[str, int]:
    """The rows of the statistics table under `title` in a log, as {label: value}."""
    lines = log_text.splitlines()
    start = lines.index(title)
    rows = {}
    for line in lines[start + 4:]:          # title, rule, header, rule
        if line.startswith("---"):
            break
        match = re.match(r"^(.*\S)\s{3,}(-?[\d,]+)$", line)
        assert match, line
        rows[match.group(1)] = int(match.group(2).replace(",", ""))
    return rows


def table_text(output: str, title: str) -> str:
    """The statistics table (title to closing rule) in a run's console output."""
    lines = output.splitlines()
    start = lines.index(title)
    rules = [i for i in range(start, len(lines)) if lines[i].startswith("---")]
    return "\n".join(lines[start:rules[2] + 1])
