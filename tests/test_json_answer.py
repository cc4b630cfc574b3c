"""utils.json_answer.parse_json_response on the kinds of answers Claude really gives."""

import json
import logging

import pytest

from utils.json_answer import parse_json_response

PARSED = [
    ("plain object", '{"event_index": 3, "campaign": "Fill the Table"}',
     {"event_index": 3, "campaign": "Fill the Table"}),
    ("plain array", '[{"a": 1}, {"a": 2}]', [{"a": 1}, {"a": 2}]),
    ("whitespace and BOM", '\ufeff\n\n  {"ok": true}  \n', {"ok": True}),
    ("prose around", 'Here is my answer:\n{"confidence": 85}\nLet me know if you need more.', {"confidence": 85}),
    ("json fence", 'Sure!\n```json\n{"message": "Hi Ana!"}\n```\nHope it helps.', {"message": "Hi Ana!"}),
    ("bare fence", 'Result:\n```\n{"approved": false}\n```', {"approved": False}),
    ("JSON fence upper case", '```JSON\n{"x": 1}\n```', {"x": 1}),
    ("several fences, first invalid", '```json\n{not json}\n```\nFixed:\n```json\n{"fixed": true}\n```',
     {"fixed": True}),
    ("json fence preferred over an earlier bare fence", '```\n{"b": 2}\n```\n```json\n{"a": 1}\n```',
     {"a": 1}),
    ("braces inside strings", 'Answer: {"message": "Use {name} here } and { there", "n": 1} done',
     {"message": "Use {name} here } and { there", "n": 1}),
    ("escaped quotes and brackets in strings", r'{"quote": "He said \"{[hi]}\"", "ok": true}',
     {"quote": 'He said "{[hi]}"', "ok": True}),
    ("nested objects and arrays", 'x {"a": {"b": [1, {"c": [2, 3]}]}, "d": []} y',
     {"a": {"b": [1, {"c": [2, 3]}]}, "d": []}),
    ("trailing text with more braces", '{"a": 1}\n\nNote: I picked {the best} option.', {"a": 1}),
    ("two objects: the first wins", 'First {"pick": 1} then {"pick": 2}', {"pick": 1}),
    ("invalid braces before the JSON", 'I considered {events 1-3} and chose:\n{"event_index": 2}',
     {"event_index": 2}),
    ("array in prose", 'The issues are: ["too long", "no CTA"] as listed.', ["too long", "no CTA"]),
    ("unicode and emoji", '{"message": "Hey Sarah! 👋 Café at 7?"}', {"message": "Hey Sarah! 👋 Café at 7?"}),
    ("fence whose body has prose", '```json\nHere:\n{"a": 1}\n```', {"a": 1}),
    ("backticks inside a string", '{"message": "use ``` fences"}', {"message": "use ``` fences"}),
    ("prefixed with the word json", 'json\n{"a": [1, 2]}', {"a": [1, 2]}),
]


@pytest.mark.parametrize("text,expected", [case[1:] for case in PARSED], ids=[case[0] for case in PARSED])
def test_parses(text, expected):
    assert parse_json_response(text) == expected


NOT_JSON = [
    ("no JSON at all", "I could not find a good match for this user."),
    ("empty", ""),
    ("only whitespace", "  \n "),
    ("a bare number", "42"),
    ("a bare string", '"just a string"'),
    ("truncated by max_tokens", '{"message": "Hi Ana! Join us for'),
    ("python dict with single quotes", "{'test': 123}"),
    ("unbalanced", "{{{{ [[[ "),
]


@pytest.mark.parametrize("text", [case[1] for case in NOT_JSON], ids=[case[0] for case in NOT_JSON])
def test_raises_json_decode_error(text):
    with pytest.raises(json.JSONDecodeError, match="No valid JSON"):
        parse_json_response(text)


def test_expect_dict_skips_a_leading_array():
    text = 'Options [1, 2, 3] considered. Final: {"event_index": 2}'
    assert parse_json_response(text) == [1, 2, 3]
    assert parse_json_response(text, expect=dict) == {"event_index": 2}
    with pytest.raises(json.JSONDecodeError, match="No valid JSON object"):
        parse_json_response("[1, 2]", expect=dict)


def test_logger_hears_about_failures(caplog):
    logger = logging.getLogger("pipeline.test_parse")
    with caplog.at_level(logging.DEBUG, logger="pipeline.test_parse"):
        parse_json_response('```json\n{"a": 1}\n```', logger)
        with pytest.raises(json.JSONDecodeError):
            parse_json_response("nothing here", logger)
    messages = [r.getMessage() for r in caplog.records]
    assert any("fenced block" in m for m in messages)
    assert any("no JSON" in m and "nothing here" in m for m in messages)


def test_large_answer_with_many_braces_is_fast():
    text = "{x} " * 5000 + '{"found": true}'
    assert parse_json_response(text) == {"found": True}
