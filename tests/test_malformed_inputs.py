"""Malformed, missing and mis-shaped input files of steps 1 and 2: the same cases for every input file.

Each case must end with `Error: …` on stderr, exit 1, no traceback, and the previous output untouched.
"""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from pipeline import step1_user_selection as step1
from pipeline import step2_event_selection as step2
from tests.helpers import subprocess_env, write_json
from utils.paths import PROJ_ROOT

NOW = "2026-11-25T12:00:00Z"
OLD_OUTPUT = '[{"id": "from the previous run"}]\n'


@dataclass(frozen=True)
class Step:
    """A step under test: its entry point, the raw files it reads and the file it writes."""

    name: str
    main: Callable[[list[str]], int]
    script: Path
    inputs: tuple[str, ...]
    output: str


STEP1 = Step("step1", step1.main, PROJ_ROOT / "pipeline" / "step1_user_selection.py",
             ("users.json", "messages.json"), "qualified_users.json")
STEP2 = Step("step2", step2.main, PROJ_ROOT / "pipeline" / "step2_event_selection.py",
             ("events.json",), "qualified_events.json")

# (step, input file, the word the step's messages use for that file's records)
INPUTS = [(STEP1, "users.json", "users"), (STEP1, "messages.json", "messages"), (STEP2, "events.json", "events")]
INPUT_IDS = [f"{step.name}-{file_name}" for step, file_name, _ in INPUTS]

# (case id, file content, expected message; {path} is the bad file, {kind} its records' word).
# The line and column are where Python's JSON reader stops, counted by hand from the text.
MALFORMED = [
    ("trailing comma", '[{"id": "x1",}]', "invalid JSON in {path}, line 1 column 14"),
    ("missing comma across lines", '[{"id": "x1"}\n  {"id": "x2"}]', "invalid JSON in {path}, line 2 column 3"),
    ("double comma", '[\n{"id": "x1", "n": 10,,}\n]', "invalid JSON in {path}, line 2 column 22"),
    ("cut off", '[{"id": "x1"', "invalid JSON in {path}, line 1 column 13"),
    ("NaN", '[{"id": "x1", "n": NaN}]', "invalid JSON in {path}, line 1 column 20: NaN is not valid JSON"),
    ("empty file", "", "invalid JSON in {path}, line 1 column 1"),
    ("not UTF-8", b"\xff\xfe[]", "{path} is not UTF-8 text"),
    ("top level is an object", '{"items": []}',
     "{path} must hold a JSON list of {kind} objects, but its top level is dict"),
    ("top level is null", "null", "{path} must hold a JSON list of {kind} objects, but its top level is NoneType"),
]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A data folder with a valid, empty list in every raw file both steps read."""
    monkeypatch.delenv("PIPELINE_DEBUG", raising=False)
    data = tmp_path / "data"
    for step in (STEP1, STEP2):
        for file_name in step.inputs:
            write_json(data / "raw" / file_name, [])
    return data


def run_step(step: Step, data: Path, log_dir: Path) -> int:
    return step.main(["--data-dir", str(data), "--log-dir", str(log_dir), "--now", NOW])


def write_old_output(step: Step, data: Path) -> Path:
    output = data / "processed" / step.output
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(OLD_OUTPUT, encoding="utf-8")
    return output


def test_the_valid_inputs_run(data_dir, tmp_path):
    # Without this, a broken fixture would make every case below pass for the wrong reason.
    for step in (STEP1, STEP2):
        assert run_step(step, data_dir, tmp_path / "logs" / step.name) == 0
        assert (data_dir / "processed" / step.output).read_text(encoding="utf-8").strip() == "[]"


@pytest.mark.parametrize("text,expected", [case[1:] for case in MALFORMED], ids=[case[0] for case in MALFORMED])
@pytest.mark.parametrize("step,file_name,kind", INPUTS, ids=INPUT_IDS)
def test_malformed_input_exits_1_and_keeps_the_old_output(data_dir, tmp_path, capsys, step, file_name, kind,
                                                          text, expected):
    bad = data_dir / "raw" / file_name
    if isinstance(text, bytes):
        bad.write_bytes(text)
    else:
        bad.write_text(text, encoding="utf-8")
    output = write_old_output(step, data_dir)

    assert run_step(step, data_dir, tmp_path / "logs") == 1

    err = capsys.readouterr().err
    assert err.startswith("Error: ")
    assert expected.format(path=bad, kind=kind) in err
    assert "Traceback" not in err
    assert output.read_text(encoding="utf-8") == OLD_OUTPUT


@pytest.mark.parametrize("step,file_name,kind", INPUTS, ids=INPUT_IDS)
def test_missing_input_file_exits_1_and_says_how_to_fix(data_dir, tmp_path, capsys, step, file_name, kind):
    missing = data_dir / "raw" / file_name
    missing.unlink()

    assert run_step(step, data_dir, tmp_path / "logs") == 1

    err = capsys.readouterr().err
    assert err.startswith(f"Error: {kind} file not found: {missing}")
    assert "--data-dir" in err and "Traceback" not in err
    assert not (data_dir / "processed" / step.output).exists()


@pytest.mark.parametrize("step", [STEP1, STEP2], ids=["step1", "step2"])
def test_malformed_input_as_a_subprocess_has_no_traceback(data_dir, tmp_path, step):
    bad = data_dir / "raw" / step.inputs[0]
    bad.write_text('[{"id": "x1"} {"id": "x2"}]', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(step.script), "--data-dir", str(data_dir), "--log-dir", str(tmp_path / "logs"),
         "--now", NOW],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=subprocess_env(),
    )
    assert result.returncode == 1
    assert result.stderr.startswith(f"Error: invalid JSON in {bad}, line 1 column 15")
    assert "Traceback" not in result.stderr
