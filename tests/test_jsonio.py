"""utils.jsonio: Extended JSON normalisation, load errors a person can act on, atomic saves."""

import json
import os
from pathlib import Path

import pytest

from utils import jsonio
from utils.errors import PipelineError
from utils.jsonio import (
    dump_json_text, load_json_list, normalize_extended_json, save_json_atomic, split_objects,
    write_text_atomic,
)


def _load_one(tmp_path: Path, value):
    """Normalise `value` the way a file load does: write it as `[value]` and load it back."""
    path = tmp_path / "one.json"
    path.write_text(json.dumps([value]), encoding="utf-8")
    return load_json_list(path)[0]


# Both ways into the code: the object_hook used by load_json_list, and normalize_extended_json.
@pytest.fixture(params=["load_json_list", "normalize_extended_json"])
def convert(request, tmp_path):
    if request.param == "load_json_list":
        return lambda value: _load_one(tmp_path, value)
    return normalize_extended_json


def _folder_listing(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


# --- Extended JSON: each wrapper ------------------------------------------------------------------

@pytest.mark.parametrize("wrapped, expected", [
    ({"$oid": "5d4854c3b8c1b2001f8b4567"}, "5d4854c3b8c1b2001f8b4567"),
    ({"$date": "2019-08-05T17:00:00.000Z"}, "2019-08-05T17:00:00.000Z"),
    ({"$date": {"$numberLong": "1565024400000"}}, "2019-08-05T17:00:00.000Z"),
    ({"$date": 1565024400123}, "2019-08-05T17:00:00.123Z"),
    ({"$date": {"$numberLong": "0"}}, "1970-01-01T00:00:00.000Z"),
    ({"$numberInt": "42"}, 42),
    ({"$numberInt": "-7"}, -7),
    ({"$numberLong": "9007199254740993"}, 9007199254740993),  # 2**53 + 1: must stay exact, not a float
    ({"$numberDouble": "1.5"}, 1.5),
    ({"$numberDouble": "-0.25"}, -0.25),
    ({"$numberDecimal": "19.99"}, 19.99),
])
def test_each_wrapper_becomes_a_plain_value(convert, wrapped, expected):
    result = convert(wrapped)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("millis, expected", [
    ("-1", "1969-12-31T23:59:59.999Z"),
    ("-86400000", "1969-12-31T00:00:00.000Z"),
    ("-2208988800000", "1900-01-01T00:00:00.000Z"),
    ("-62135596800000", "0001-01-01T00:00:00.000Z"),
    ("-30610310400000", "0999-12-31T00:00:00.000Z"),  # a year before 1000 is still padded to 4 digits
    ("253402300799999", "9999-12-31T23:59:59.999Z"),
])
def test_date_number_long_before_1970_and_at_the_edges(convert, millis, expected):
    assert convert({"$date": {"$numberLong": millis}}) == expected


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_number_double_that_json_cannot_hold_becomes_none(convert, text):
    assert convert({"$numberDouble": text}) is None


@pytest.mark.parametrize("wrapped", [
    {"$numberInt": "twelve"},
    {"$numberLong": "1.5"},
    {"$numberDouble": "abc"},
])
def test_unreadable_numbers_become_none(convert, wrapped):
    assert convert(wrapped) is None


def test_nested_wrappers_are_normalised_at_every_depth(convert):
    raw = {
        "_id": {"$oid": "aaa"},
        "createdAt": {"$date": {"$numberLong": "86400000"}},
        "stats": {"visits": {"$numberInt": "3"}, "score": {"$numberDouble": "2.5"}},
        "history": [
            {"at": {"$date": "2020-01-01T00:00:00Z"}, "ids": [{"$oid": "b1"}, {"$oid": "b2"}]},
            [{"$numberLong": "5"}],
        ],
    }
    assert convert(raw) == {
        "_id": "aaa",
        "createdAt": "1970-01-02T00:00:00.000Z",
        "stats": {"visits": 3, "score": 2.5},
        "history": [
            {"at": "2020-01-01T00:00:00Z", "ids": ["b1", "b2"]},
            [5],
        ],
    }


@pytest.mark.parametrize("wrapped", [
    {"$oid": "aaa", "note": "not a wrapper"},
    {"$date": "2020-01-01T00:00:00Z", "$oid": "bbb"},
    {"$numberInt": "1", "label": "x"},
    {"$regex": "^a", "$options": "i"},
    {"$binary": "AAAA"},          # a wrapper we do not convert
    {},
])
def test_wrappers_with_extra_keys_or_unknown_keys_are_left_alone(convert, wrapped):
    assert convert(wrapped) == wrapped


def test_wrapper_with_extra_keys_still_has_its_values_normalised(convert):
    raw = {"$oid": "aaa", "count": {"$numberInt": "2"}}
    assert convert(raw) == {"$oid": "aaa", "count": 2}


@pytest.mark.parametrize("wrapped", [
    {"$oid": None},                                     # str() would invent the id "None"
    {"$oid": 123},
    {"$date": True},
    {"$date": None},
])
def test_wrappers_with_values_of_the_wrong_kind_are_left_alone(convert, wrapped):
    assert convert(wrapped) == wrapped


@pytest.mark.parametrize("millis", [99999999999999999, -99999999999999999])  # beyond 9999 / before year 1
def test_date_millis_out_of_range_is_left_as_a_date_wrapper(convert, millis):
    assert convert({"$date": {"$numberLong": str(millis)}}) == {"$date": millis}


def test_plain_values_pass_through_unchanged():
    raw = [1, "two", None, True, 2.5, {"a": [1, {"b": "c"}]}]
    assert normalize_extended_json(raw) == [1, "two", None, True, 2.5, {"a": [1, {"b": "c"}]}]


# --- load_json_list -------------------------------------------------------------------------------

def test_load_returns_the_list_and_keeps_non_object_items(tmp_path):
    path = tmp_path / "users.json"
    path.write_text('[{"id": "u1"}, 7, "x", null, [1], {"id": {"$oid": "u2"}}]', encoding="utf-8")
    assert load_json_list(path) == [{"id": "u1"}, 7, "x", None, [1], {"id": "u2"}]


def test_load_accepts_a_str_path_and_an_empty_list(tmp_path):
    path = tmp_path / "empty.json"
    path.write_text("[]\n", encoding="utf-8")
    assert load_json_list(str(path)) == []


def test_load_reads_utf8_text(tmp_path):
    path = tmp_path / "users.json"
    path.write_bytes('[{"name": "Zoë 🍣"}]'.encode("utf-8"))
    assert load_json_list(path) == [{"name": "Zoë 🍣"}]


def test_load_missing_file_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "raw" / "users.json"
    with pytest.raises(PipelineError) as caught:
        load_json_list(path, what="users")
    message = str(caught.value)
    assert str(path) in message
    assert "users file not found" in message
    assert "--data-dir" in message


def test_load_malformed_json_gives_file_line_and_column(tmp_path):
    path = tmp_path / "users.json"
    # Line 3, column 11 is the "}" after the trailing comma.
    path.write_text('[\n  {"a": 1},\n  {"b": 2,}\n]\n', encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_json_list(path)
    message = str(caught.value)
    assert str(path) in message
    assert "line 3 column 11" in message
    assert "invalid JSON" in message


def test_load_truncated_file_is_reported_as_invalid_json(tmp_path):
    path = tmp_path / "users.json"
    path.write_text('[{"a": 1},\n{"b"', encoding="utf-8")
    with pytest.raises(PipelineError, match=r"line 2 column 5"):
        load_json_list(path)


def test_load_empty_file_is_invalid_json_at_line_1_column_1(tmp_path):
    path = tmp_path / "users.json"
    path.write_text("", encoding="utf-8")
    with pytest.raises(PipelineError, match=r"line 1 column 1"):
        load_json_list(path)


@pytest.mark.parametrize("text, constant, where", [
    ("[1, NaN]", "NaN", "line 1 column 5"),
    ('[\n  {"a": "NaN here", "b": Infinity}\n]', "Infinity", "line 2 column 26"),
    ('[{"x": -Infinity}]', "-Infinity", "line 1 column 8"),
])
def test_load_rejects_bare_nan_and_infinity(tmp_path, text, constant, where):
    # Python's json reads them, but they are not JSON, and saving them would write invalid JSON.
    path = tmp_path / "users.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_json_list(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{constant} is not valid JSON" in message
    assert where in message


@pytest.mark.parametrize("text, kind", [
    ('{"users": []}', "dict"),
    ('"users"', "str"),
    ("42", "int"),
    ("null", "NoneType"),
])
def test_load_top_level_not_a_list_is_an_error(tmp_path, text, kind):
    path = tmp_path / "users.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_json_list(path, what="users")
    message = str(caught.value)
    assert str(path) in message
    assert "must hold a JSON list" in message
    assert kind in message


def test_load_non_utf8_bytes_is_an_error_naming_the_file(tmp_path):
    path = tmp_path / "users.json"
    path.write_bytes(b'[{"name": "Zo\xeb"}]')  # Latin-1, not UTF-8
    with pytest.raises(PipelineError) as caught:
        load_json_list(path)
    message = str(caught.value)
    assert str(path) in message
    assert "not UTF-8" in message
    assert "byte 13" in message


def test_load_a_folder_is_an_error_not_a_traceback(tmp_path):
    with pytest.raises(PipelineError, match="cannot read"):
        load_json_list(tmp_path)


def test_split_objects_keeps_objects_in_order_and_counts_the_rest():
    objects, skipped = split_objects([{"a": 1}, 2, None, {"b": 2}, "c", [], {"c": 3}])
    assert objects == [{"a": 1}, {"b": 2}, {"c": 3}]
    assert skipped == 4


def test_split_objects_of_an_empty_list():
    assert split_objects([]) == ([], 0)


# --- dump / save ----------------------------------------------------------------------------------

def test_dump_json_text_is_two_space_indented_utf8_with_a_final_newline():
    assert dump_json_text([{"name": "Zoë", "n": 1}]) == '[\n  {\n    "name": "Zoë",\n    "n": 1\n  }\n]\n'


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_dump_json_text_refuses_nan_and_infinity(value):
    with pytest.raises(ValueError):
        dump_json_text([{"score": value}])


def test_save_then_load_round_trips(tmp_path):
    data = [{"id": "u1", "name": "Zoë 🍣", "tags": ["a", "b"], "n": 3, "x": 1.5, "ok": True, "none": None}]
    path = tmp_path / "out.json"
    save_json_atomic(path, data)
    assert load_json_list(path) == data
    assert path.read_bytes() == dump_json_text(data).encode("utf-8")
    assert "Zoë 🍣".encode("utf-8") in path.read_bytes()  # written as UTF-8, not \\u escapes


def test_save_creates_missing_folders(tmp_path):
    path = tmp_path / "processed" / "deep" / "out.json"
    save_json_atomic(path, [1])
    assert path.read_text(encoding="utf-8") == "[\n  1\n]\n"


def test_save_replaces_the_previous_file_completely(tmp_path):
    path = tmp_path / "out.json"
    save_json_atomic(path, [{"long": "x" * 1000}])
    save_json_atomic(path, [])
    assert path.read_text(encoding="utf-8") == "[]\n"
    assert _folder_listing(tmp_path) == ["out.json"]


def test_save_writes_a_file_only_its_owner_can_read(tmp_path):
    # Processed files hold people's names, emails and phone numbers.
    path = tmp_path / "out.json"
    save_json_atomic(path, [])
    assert path.stat().st_mode & 0o777 == 0o600


def test_write_text_atomic_makes_a_replaced_file_private_too(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o644)
    write_text_atomic(path, "new")
    assert path.stat().st_mode & 0o777 == 0o600


def test_save_writes_a_temp_file_in_the_same_folder_then_replaces(tmp_path, monkeypatch):
    calls = []
    real_replace = os.replace

    def spy_replace(src, dst):
        calls.append((Path(src), Path(dst), Path(src).read_text(encoding="utf-8")))
        real_replace(src, dst)

    monkeypatch.setattr(jsonio.os, "replace", spy_replace)
    path = tmp_path / "out.json"
    save_json_atomic(path, [{"a": 1}])
    assert len(calls) == 1
    src, dst, text_at_replace = calls[0]
    assert dst == path
    assert src.parent == path.parent
    assert src != path
    assert text_at_replace == '[\n  {\n    "a": 1\n  }\n]\n'  # complete before the replace
    assert _folder_listing(tmp_path) == ["out.json"]


def test_save_failing_at_replace_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text('["old"]\n', encoding="utf-8")

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(jsonio.os, "replace", failing_replace)
    with pytest.raises(PipelineError) as caught:
        save_json_atomic(path, ["new"])
    assert str(path) in str(caught.value)
    assert "No space left on device" in str(caught.value)
    assert path.read_text(encoding="utf-8") == '["old"]\n'
    assert _folder_listing(tmp_path) == ["out.json"]


def test_save_failing_after_a_partial_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text('["old"]\n', encoding="utf-8")
    real_fdopen = os.fdopen

    class HalfWriter:
        """A file that writes half of the text to disk, then fails like a full disk."""

        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()
            return False

        def write(self, text):
            self.handle.write(text[: len(text) // 2])
            self.handle.flush()
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(jsonio.os, "fdopen", lambda *a, **k: HalfWriter(real_fdopen(*a, **k)))
    with pytest.raises(PipelineError, match="No space left on device"):
        save_json_atomic(path, [{"n": n} for n in range(100)])
    assert path.read_text(encoding="utf-8") == '["old"]\n'
    assert _folder_listing(tmp_path) == ["out.json"]


def test_save_interrupted_by_ctrl_c_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text('["old"]\n', encoding="utf-8")

    def interrupted_fsync(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(jsonio.os, "fsync", interrupted_fsync)
    with pytest.raises(KeyboardInterrupt):
        save_json_atomic(path, ["new"])
    assert path.read_text(encoding="utf-8") == '["old"]\n'
    assert _folder_listing(tmp_path) == ["out.json"]


def test_save_failing_during_serialisation_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "out.json"
    path.write_text('["old"]\n', encoding="utf-8")

    def failing_dumps(*args, **kwargs):
        raise ValueError("Circular reference detected")

    monkeypatch.setattr(jsonio.json, "dumps", failing_dumps)
    with pytest.raises(PipelineError, match="not JSON-serialisable"):
        save_json_atomic(path, ["new"])
    assert path.read_text(encoding="utf-8") == '["old"]\n'
    assert _folder_listing(tmp_path) == ["out.json"]


def _circular() -> list:
    loop: list = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize("data", [
    [{"tags": {"a", "b"}}],       # a set
    [{"when": object()}],          # an arbitrary object
    [{"score": float("nan")}],     # NaN: json would write the invalid token NaN
    _circular(),
])
def test_save_unserialisable_data_is_a_pipeline_error_and_keeps_the_old_file(tmp_path, data):
    path = tmp_path / "out.json"
    path.write_text('["old"]\n', encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        save_json_atomic(path, data)
    assert str(path) in str(caught.value)
    assert "not JSON-serialisable" in str(caught.value)
    assert path.read_text(encoding="utf-8") == '["old"]\n'
    assert _folder_listing(tmp_path) == ["out.json"]


def test_save_a_lone_surrogate_writes_it_as_an_escape(tmp_path):
    # A str holding half an emoji cannot be encoded as UTF-8; load_json_list never returns one,
    # but a caller may build one, and the file must still be written.
    path = tmp_path / "out.json"
    save_json_atomic(path, [{"bio": "pizza \ud83d"}])
    assert b'"pizza \\ud83d"' in path.read_bytes()
    assert load_json_list(path) == [{"bio": "pizza \ufffd"}]


def test_save_where_the_folder_cannot_be_made_is_a_pipeline_error(tmp_path):
    blocker = tmp_path / "processed"
    blocker.write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(PipelineError, match="cannot write"):
        save_json_atomic(blocker / "out.json", [])
    assert blocker.read_text(encoding="utf-8") == "a file, not a folder"


def test_write_text_atomic_writes_exact_text(tmp_path):
    path = tmp_path / "notes.txt"
    write_text_atomic(path, "line 1\nline 2 é\n")
    assert path.read_bytes() == "line 1\nline 2 é\n".encode("utf-8")


def test_write_text_atomic_with_unencodable_text_is_a_pipeline_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("old", encoding="utf-8")
    with pytest.raises(PipelineError, match="cannot write"):
        write_text_atomic(path, "half an emoji \ud83d")
    assert path.read_text(encoding="utf-8") == "old"
    assert _folder_listing(tmp_path) == ["notes.txt"]


# --- hostile values inside records: repaired and counted, never fatal ---------------------------

def test_load_replaces_lone_surrogates_everywhere_and_counts_each_string(tmp_path):
    path = tmp_path / "users.json"
    # Half an emoji in a value, in a list item, deep inside, and in a key; a whole emoji stays.
    path.write_text('[{"firstName": "Ann\\ud83d", "tags": ["ok", "x\\udc00y"], '
                    '"deep": {"k\\ud800": [["\\ud83d"]]}, "emoji": "\\ud83c\\udf63"}]', encoding="utf-8")
    loaded = load_json_list(path, what="users")
    assert loaded == [{"firstName": "Ann\ufffd", "tags": ["ok", "x\ufffdy"],
                       "deep": {"k\ufffd": [["\ufffd"]]}, "emoji": "🍣"}]
    assert loaded.repairs == {jsonio.REPLACED_SURROGATES: 4}
    loaded_text = json.dumps(loaded, ensure_ascii=False)
    loaded_text.encode("utf-8")  # would raise on any surrogate left


def test_load_reads_a_number_too_large_for_a_float_as_null_and_counts_it(tmp_path):
    path = tmp_path / "events.json"
    path.write_text('[{"maxParticipants": 1e400, "score": -1e400, "ok": 2.5}]', encoding="utf-8")
    loaded = load_json_list(path, what="events")
    assert loaded == [{"maxParticipants": None, "score": None, "ok": 2.5}]
    assert loaded.repairs == {jsonio.NUMBERS_OUT_OF_RANGE: 2}
    assert jsonio.input_repair_rows(loaded) == [
        ("events repaired: text with a lone surrogate (now U+FFFD)", 0),
        ("events repaired: numbers too large (now null)", 2)]


def test_load_of_clean_data_repairs_nothing(tmp_path):
    path = tmp_path / "users.json"
    path.write_text('[{"name": "Zoë \\ud83c\\udf63", "n": 1.5}]', encoding="utf-8")
    assert load_json_list(path).repairs == {}


def test_load_keeps_a_401_digit_integer_for_the_step_to_judge(tmp_path):
    path = tmp_path / "events.json"
    path.write_text('[{"maxParticipants": %s}]' % ("9" * 401), encoding="utf-8")
    assert load_json_list(path)[0]["maxParticipants"] == int("9" * 401)


def test_load_an_integer_longer_than_4300_digits_is_one_error_naming_the_file(tmp_path):
    path = tmp_path / "events.json"
    path.write_text('[{"maxParticipants": %s}]' % ("9" * 5000), encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_json_list(path)
    assert str(path) in str(caught.value)
    assert "number too long" in str(caught.value)


def test_load_json_nested_deeper_than_the_recursion_limit_is_one_error_naming_the_file(tmp_path):
    path = tmp_path / "users.json"
    path.write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_json_list(path)
    assert str(path) in str(caught.value)
    assert "nested deeper" in str(caught.value)


def test_replace_surrogates_leaves_valid_text_alone():
    assert jsonio.replace_surrogates("Zoë 🍣") == "Zoë 🍣"
    assert jsonio.replace_surrogates("a\ud83db\udc00") == "a\ufffdb\ufffd"


def test_save_data_nested_too_deeply_is_a_pipeline_error(tmp_path):
    data: list = []
    for _ in range(100_000):
        data = [data]
    with pytest.raises(PipelineError, match="nested too deeply"):
        save_json_atomic(tmp_path / "out.json", data)
    assert _folder_listing(tmp_path) == []
