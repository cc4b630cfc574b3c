"""utils.prompt_template: only `{name}` placeholders are filled; JSON and other braces stay as written."""

import pytest

from utils.errors import PipelineError
from utils.prompt_template import check_prompt, fill_prompt, placeholders_in

JSON_EXAMPLE = '{"message": "<the SMS>", "meta": {"confidence": 90, "tags": []}}'


def test_placeholders_in_lists_each_name_once_in_order():
    template = "Hi {first_name}. {user_summary}\nAgain {first_name}, today is {today}."
    assert placeholders_in(template) == ["first_name", "user_summary", "today"]


@pytest.mark.parametrize("text", [
    JSON_EXAMPLE,  # quoted keys are not names
    "{0} {1}",  # positional str.format fields start with a digit
    "{ first_name }",  # spaces inside: not a placeholder
    "{first name}",
    "{}",
    "{{first_name}}",  # the escape for a literal {first_name}
    "a } b { c",
])
def test_braces_that_are_not_placeholders(text):
    assert placeholders_in(text) == []


def test_pasted_json_is_sent_exactly_as_written():
    template = "Reply with JSON only, exactly this shape:\n" + JSON_EXAMPLE + "\nName: {first_name}"
    filled = fill_prompt(template, {"first_name": "Maya"})
    assert filled == "Reply with JSON only, exactly this shape:\n" + JSON_EXAMPLE + "\nName: Maya"


def test_doubled_braces_are_not_halved():
    # Decided: no str.format doubling; a nested JSON example ends in "}}" and must survive.
    assert fill_prompt('{{"a": 1}} and {"b": {"c": 2}}', {}) == '{{"a": 1}} and {"b": {"c": 2}}'


def test_escaped_placeholder_is_written_as_a_literal_placeholder():
    assert fill_prompt("Never write {{first_name}}; greet {first_name}.", {"first_name": "Ana"}) == \
        "Never write {first_name}; greet Ana."


def test_braces_inside_values_are_never_filled_again():
    values = {
        "user_summary": "Loves {first_name} jokes and {event_summary}, also {{today}} and {",
        "event_summary": "SECRET",
        "first_name": "Bo",
        "today": "Friday",
    }
    filled = fill_prompt("{user_summary} | {first_name}", values)
    assert filled == "Loves {first_name} jokes and {event_summary}, also {{today}} and { | Bo"


def test_backslashes_and_group_references_in_values_are_kept():
    # A regex replacement string would expand \1 or \g<0>; values must be inserted verbatim.
    assert fill_prompt("[{x}]", {"x": r"a\1b\g<0>c\n"}) == r"[a\1b\g<0>c\n]"


def test_values_are_turned_into_text():
    assert fill_prompt("At most {max_body_chars} characters", {"max_body_chars": 149}) == "At most 149 characters"


def test_fill_refuses_a_placeholder_without_a_value():
    with pytest.raises(PipelineError, match=r"\{neighbourhood\}"):
        fill_prompt("Near {neighbourhood}", {"first_name": "Maya"})


def test_check_prompt_names_the_unknown_placeholder_and_what_the_step_fills():
    template = "Hi {first_name}, dinner near {neighbourhood}?"
    with pytest.raises(PipelineError) as caught:
        check_prompt("MESSAGE_GENERATION_PROMPT", template, ["first_name", "user_summary", "today"])
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(
        "MESSAGE_GENERATION_PROMPT uses {neighbourhood}, which step 5 does not fill; "
        "it fills {first_name}, {user_summary} and {today}"
    )
    assert "{{neighbourhood}}" in message  # how to keep it as text


def test_check_prompt_lists_every_unknown_placeholder_and_suggests_a_near_spelling():
    with pytest.raises(PipelineError) as caught:
        check_prompt("QUALITY_CHECK_PROMPT", "{frist_name} {venue} {message}", ("first_name", "message"),
                     filler="the preview")
    message = str(caught.value)
    assert "QUALITY_CHECK_PROMPT uses {frist_name} and {venue}, which the preview does not fill" in message
    assert "{frist_name} may be {first_name}" in message
    assert "{venue} may be" not in message


def test_check_prompt_accepts_known_placeholders_json_and_escapes():
    check_prompt("MATCHING_PROMPT", "Today is {today}.\n" + JSON_EXAMPLE + " {{event_index}}", ["today", "x"])


def test_check_prompt_with_nothing_known():
    with pytest.raises(PipelineError, match="it fills no placeholders"):
        check_prompt("P", "{a}", [])
