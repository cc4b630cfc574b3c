"""utils.env_numbers.env_number, and the two API wrappers that read their settings through it."""

import pytest

from utils import ai_prompt, airtable_crud
from utils.airtable_crud import AirtableConfigError
from utils.env_numbers import env_number
from utils.errors import PipelineError

NAME = "PIPELINE_TEST_NUMBER"


@pytest.mark.parametrize("text,kind,minimum,expected", [
    ("3", int, 0, 3),
    ("  7 ", int, None, 7),
    ("0", int, 0, 0),
    ("-2", int, None, -2),
    ("0.25", float, 0, 0.25),
    ("2", float, 0, 2.0),
    ("1e-3", float, 0, 0.001),
])
def test_good_values_are_read_as_their_kind(monkeypatch, text, kind, minimum, expected):
    monkeypatch.setenv(NAME, text)
    value = env_number(NAME, 99, kind, minimum)
    assert value == expected and type(value) is kind


@pytest.mark.parametrize("text", [None, "", "   "])
def test_unset_or_blank_gives_the_default(monkeypatch, text):
    if text is None:
        monkeypatch.delenv(NAME, raising=False)
    else:
        monkeypatch.setenv(NAME, text)
    assert env_number(NAME, 42, int, 0) == 42


@pytest.mark.parametrize("text,kind,minimum,exclusive,wanted", [
    ("soon", float, 0, False, "a number >= 0"),
    ("2.5", int, 0, False, "a whole number >= 0"),      # not truncated to 2
    ("-1", int, 0, False, "a whole number >= 0"),
    ("-0.5", float, 0, False, "a number >= 0"),
    ("0", float, 0, True, "a number > 0"),
    ("nan", float, 0, False, "a number >= 0"),          # float() accepts it, and nan < 0 is False
    ("inf", float, None, False, "a number"),
    ("1", int, 2, False, "a whole number >= 2"),
])
def test_bad_values_name_the_variable_the_value_and_the_fix(monkeypatch, text, kind, minimum, exclusive, wanted):
    monkeypatch.setenv(NAME, text)
    with pytest.raises(PipelineError) as caught:
        env_number(NAME, 1, kind, minimum, exclusive=exclusive)
    message = str(caught.value)
    assert message.startswith(f"{NAME} must be {wanted}, got {text!r}")
    assert "fix it in the environment or in .env" in message


def test_unit_and_error_class_are_the_callers(monkeypatch):
    class SettingError(PipelineError):
        pass

    monkeypatch.setenv(NAME, "0")
    with pytest.raises(SettingError, match=f"{NAME} must be a number of seconds > 0, got '0'"):
        env_number(NAME, 1.0, float, 0, exclusive=True, unit="seconds", error=SettingError)


def test_kind_must_be_int_or_float():
    with pytest.raises(ValueError, match="kind must be int or float"):
        env_number(NAME, 1, str)


# --------------------------------------------------------------------------- the wrappers agree


@pytest.mark.parametrize("name,text", [
    ("ANTHROPIC_TIMEOUT", "0"), ("ANTHROPIC_TIMEOUT", "nan"), ("ANTHROPIC_TIMEOUT", "-5"),
    ("ANTHROPIC_MAX_RETRIES", "2.5"), ("ANTHROPIC_MAX_RETRIES", "-1"),
])
def test_claude_settings_are_checked_before_any_request(monkeypatch, name, text):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong-anthropic-key-for-tests")
    monkeypatch.setenv(name, text)
    with pytest.raises(PipelineError, match=f"^{name} must be .*, got {text!r}"):
        ai_prompt.get_client()


def test_claude_settings_are_read(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong-anthropic-key-for-tests")
    monkeypatch.setenv("ANTHROPIC_TIMEOUT", " 2.5 ")
    monkeypatch.setenv("ANTHROPIC_MAX_RETRIES", "0")
    client = ai_prompt.get_client()
    assert client.timeout.read == 2.5 and client.max_retries == 0
    assert client.timeout.connect == 2.5  # never longer than the whole request may take


def test_connecting_is_given_at_most_5_seconds(monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "wrong-anthropic-key-for-tests")
    client = ai_prompt.get_client()  # ANTHROPIC_TIMEOUT unset: the 60 s default
    assert client.timeout.read == 60.0 and client.timeout.connect == 5.0


@pytest.fixture
def airtable_settings(monkeypatch):
    monkeypatch.setenv("AIRTABLE_API_KEY", "wrong-airtable-token-for-tests")
    monkeypatch.setenv("AIRTABLE_BASE_ID", "appAAAAAAAAAAAAAA")
    monkeypatch.setenv("AIRTABLE_MESSAGES_TABLE_ID", "Messages")


@pytest.mark.parametrize("name,text", [
    ("AIRTABLE_MAX_RPS", "nan"), ("AIRTABLE_MAX_RPS", "-1"), ("AIRTABLE_RETRY_BACKOFF", "fast"),
    ("AIRTABLE_MAX_RETRIES", "2.5"), ("AIRTABLE_MAX_RETRIES", "-3"),
])
def test_airtable_settings_fail_as_config_errors(airtable_settings, monkeypatch, name, text):
    monkeypatch.setenv(name, text)
    with pytest.raises(AirtableConfigError, match=f"^{name} must be .*>= 0, got {text!r}"):
        airtable_crud.check_airtable_config()


def test_airtable_zero_rate_still_means_no_throttle(airtable_settings, monkeypatch):
    monkeypatch.setenv("AIRTABLE_MAX_RPS", "0")
    monkeypatch.setenv("AIRTABLE_MAX_RETRIES", "1")
    config = airtable_crud.check_airtable_config()
    assert config.max_rps == 0.0 and config.max_retries == 1
