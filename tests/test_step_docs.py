"""Every step script has --help text, and every flag it defines is documented in its docs/N-*.md.

The scripts are found by globbing pipeline/step*.py, so steps added later are covered automatically.
"""

import argparse
import importlib
import re
from pathlib import Path

import pytest

from utils.paths import PROJ_ROOT

STEP_SCRIPTS = sorted((PROJ_ROOT / "pipeline").glob("step*.py"))


def step_number(script: Path) -> int:
    """N of pipeline/stepN_name.py."""
    match = re.fullmatch(r"step(\d+)_\w+\.py", script.name)
    assert match, f"{script.name}: step scripts are named stepN_name.py"
    return int(match.group(1))


def doc_for(script: Path) -> Path:
    """The one docs/N-*.md of a step script."""
    number = step_number(script)
    docs = sorted((PROJ_ROOT / "docs").glob(f"{number}-*.md"))
    assert len(docs) == 1, f"{script.name}: expected exactly one docs/{number}-*.md, found {[d.name for d in docs]}"
    return docs[0]


def documented_flags(parser: argparse.ArgumentParser) -> list[str]:
    """The flags a doc must mention: every long option, or the short one when an option has no long form."""
    flags = []
    for action in parser._actions:
        long_forms = [option for option in action.option_strings if option.startswith("--")]
        flags += long_forms or action.option_strings
    return flags


def flags_missing_from(text: str, flags: list[str]) -> list[str]:
    """The flags that do not appear in `text` as whole words (so `--now` is not found in `--nowhere`)."""
    return [flag for flag in flags if not re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", text)]


@pytest.fixture
def recorded_parsers(monkeypatch):
    """Record every parser a step builds; parse_args goes through parse_known_args."""
    parsers: list[argparse.ArgumentParser] = []
    original = argparse.ArgumentParser.parse_known_args

    def recording(self, *args, **kwargs):
        parsers.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    return parsers


def run_help(script: Path, recorded_parsers: list, capsys) -> tuple[argparse.ArgumentParser, str]:
    """Call the step's main(["--help"]) in-process; return its parser and the help text."""
    module = importlib.import_module(f"pipeline.{script.stem}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code in (0, None), f"{script.name} --help exited with {exit_info.value.code}"
    assert recorded_parsers, f"{script.name}: main() did not parse its arguments with argparse"
    return recorded_parsers[0], capsys.readouterr().out


def test_there_are_step_scripts():
    assert [script.name for script in STEP_SCRIPTS][:2] == ["step1_user_selection.py", "step2_event_selection.py"]


@pytest.mark.parametrize("script", STEP_SCRIPTS, ids=lambda script: script.stem)
def test_step_has_help_text(script, recorded_parsers, capsys):
    parser, help_text = run_help(script, recorded_parsers, capsys)
    assert help_text.startswith("usage:")
    assert parser.description and parser.description.strip(), f"{script.name}: the parser has no description"
    assert parser.description.strip().splitlines()[0] in help_text
    undocumented = [action.option_strings for action in parser._actions if not (action.help or "").strip()]
    assert not undocumented, f"{script.name}: options without help text: {undocumented}"


@pytest.mark.parametrize("script", STEP_SCRIPTS, ids=lambda script: script.stem)
def test_every_flag_is_in_the_steps_doc(script, recorded_parsers, capsys):
    parser, _ = run_help(script, recorded_parsers, capsys)
    doc = doc_for(script)
    flags = documented_flags(parser)
    assert "--help" in flags
    missing = flags_missing_from(doc.read_text(encoding="utf-8"), flags)
    assert not missing, f"{doc.relative_to(PROJ_ROOT)} does not mention {missing}"


# The checks themselves must be able to fail.

def test_flags_missing_from_finds_an_undocumented_flag():
    text = "Use `--data-dir DIR` and --nowhere; see --log-dir."
    assert flags_missing_from(text, ["--data-dir", "--log-dir", "--now", "--help"]) == ["--now", "--help"]


def test_documented_flags_lists_long_forms_and_lone_short_ones():
    parser = argparse.ArgumentParser()
    parser.add_argument("-n", "--number")
    parser.add_argument("-q")
    parser.add_argument("path")
    assert documented_flags(parser) == ["--help", "--number", "-q"]


def test_step_number_and_doc_lookup():
    assert step_number(Path("step12_big_step.py")) == 12
    with pytest.raises(AssertionError):
        doc_for(Path("step99_not_there.py"))
