"""utils.contacts: email and phone normalisation, and the opt-out file."""

import json

import pytest

from utils.contacts import (
    MATCH_EMAIL, MATCH_PHONE, OptOuts, load_opt_outs, normalize_email_address, normalize_phone, read_opt_outs,
)
from utils.errors import PipelineError


# --- emails --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("ann@example.com", "ann@example.com"),
    ("  Ann@Example.COM\t", "ann@example.com"),
    ("ANN.B+tag@Sub.Example.org", "ann.b+tag@sub.example.org"),
    ("", None), ("   ", None), ("n/a", None), ("@example.com", None), ("ann@", None),
    ("ann @example.com", None), (None, None), (42, None), (["ann@example.com"], None),
])
def test_normalize_email_address_keeps_only_address_shaped_text(value, expected):
    assert normalize_email_address(value) == expected


# --- phones --------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "(212) 555-0100", "+12125550100", "212.555.0100", "1-212-555-0100", "+1 212 555 0100",
    "212 555 0100", " 2125550100 ", "+1 (212) 555-0100", "212/555-0100", "1 212 555 0100",
    "212\u00a0555\u00a00100", "212\u2013555\u20130100", 2125550100, 12125550100, "011 1 212 555 0100",
])
def test_normalize_phone_us_formats_are_the_same_number(value):
    assert normalize_phone(value) == "+12125550100"


@pytest.mark.parametrize("value, expected", [
    ("+44 20 7946 0000", "+442079460000"),
    ("011 44 20 7946 0000", "+442079460000"),
    ("+33 (0)1 23 45 67 89", "+33123456789"),   # the "(0)" is only dialled inside France
    ("+331 23 45 67 89", "+33123456789"),
])
def test_normalize_phone_international(value, expected):
    assert normalize_phone(value) == expected


@pytest.mark.parametrize("value", [
    "", "   ", "555-0100", "+15550100", "212-555-010", "212-555-01000", "2125550100 ext 4",
    "212-555-0100 x4", "call me", "+", "+0123456789", "+1234567890123456", "0212 555 0100",
    "112-555-0100", "012-555-0100", "212-055-0100", "212-155-0100",   # NANP area code/exchange start 2-9
    "٢١٢٥٥٥٠١٠٠",                                                    # Arabic-Indic digits
    None, True, 3.5, ["2125550100"], {"phone": "2125550100"},
])
def test_normalize_phone_rejects_what_a_text_cannot_reach(value):
    assert normalize_phone(value) is None


def test_normalize_phone_canadian_default_is_also_plus_1():
    assert normalize_phone("(416) 555-0100", default_country="CA") == "+14165550100"


def test_normalize_phone_unknown_default_country_is_a_programming_error():
    with pytest.raises(ValueError, match="unsupported default_country 'FR'"):
        normalize_phone("01 23 45 67 89", default_country="FR")


# --- opt-out list --------------------------------------------------------------------------------

def test_read_opt_outs_strings_and_objects():
    opt_outs = read_opt_outs([
        "(212) 555-0100",
        " Ann@Example.com ",
        {"phone": "646.555.0101"},
        {"email": "BO@example.org"},
        {"phone": "+1 718 555 0102", "email": "cy@example.net"},
        {"phone": "not a phone", "email": "dee@example.com"},   # the usable half still counts
    ])
    assert opt_outs.phones == {"+12125550100", "+16465550101", "+17185550102"}
    assert opt_outs.emails == {"ann@example.com", "bo@example.org", "cy@example.net", "dee@example.com"}
    assert opt_outs.file_found and opt_outs.entries == 6 and opt_outs.skipped == ()


def test_read_opt_outs_skips_and_explains_unusable_entries():
    opt_outs = read_opt_outs(["2125550100", "555-0100", "ann@", {}, {"phone": None, "email": "n/a"}, None,
                              [1], True, 4.5])
    assert opt_outs.phones == {"+12125550100"} and opt_outs.emails == set()
    assert opt_outs.entries == 9
    assert opt_outs.skipped == (
        "entry 2: '555-0100' is not a phone number",
        "entry 3: 'ann@' is not an email address",
        'entry 4: {} has no usable "phone" or "email"',
        'entry 5: {"phone": null, "email": "n/a"} has no usable "phone" or "email"',
        "entry 6: a NoneType is neither a phone, an email nor an object",
        "entry 7: a list is neither a phone, an email nor an object",
        "entry 8: a bool is neither a phone, an email nor an object",
        "entry 9: a float is neither a phone, an email nor an object",
    )


def test_opt_outs_match_kinds():
    opt_outs = read_opt_outs(["212-555-0100", "ann@example.com"])
    assert opt_outs.match({"phone": "+12125550100", "email": "zed@example.com"}) == MATCH_PHONE
    assert opt_outs.match({"phone": "6465550101", "email": "ANN@example.com "}) == MATCH_EMAIL
    # Both match: the phone is reported, since texts go to phones.
    assert opt_outs.match({"phone": "(212) 555 0100", "email": "ann@example.com"}) == MATCH_PHONE
    assert opt_outs.match({"phone": "6465550101", "email": "zed@example.com"}) is None
    assert opt_outs.match({"email": "ann@example.com"}) == MATCH_EMAIL      # an enriched record has no phone
    assert opt_outs.match({}) is None
    assert opt_outs.match_contact(None, None) is None


def test_no_opt_outs_match_nobody():
    assert OptOuts().match({"phone": "2125550100", "email": "ann@example.com"}) is None
    assert OptOuts().file_found is False


def test_load_opt_outs_missing_file_is_an_empty_list(tmp_path):
    opt_outs = load_opt_outs(tmp_path / "opt_outs.json")
    assert opt_outs == OptOuts()
    assert not opt_outs.file_found and opt_outs.entries == 0


def test_load_opt_outs_reads_the_file(tmp_path):
    path = tmp_path / "opt_outs.json"
    path.write_text(json.dumps(["2125550100", {"email": "Ann@Example.com"}]), encoding="utf-8")
    opt_outs = load_opt_outs(path)
    assert opt_outs.file_found and opt_outs.entries == 2
    assert opt_outs.phones == {"+12125550100"} and opt_outs.emails == {"ann@example.com"}


def test_load_opt_outs_empty_array_is_a_found_file_with_nobody(tmp_path):
    path = tmp_path / "opt_outs.json"
    path.write_text("[]", encoding="utf-8")
    opt_outs = load_opt_outs(path)
    assert opt_outs.file_found and opt_outs.entries == 0 and not opt_outs.phones and not opt_outs.emails


@pytest.mark.parametrize("text, expected", [
    ('["2125550100"', "invalid JSON in {path}, line 1 column 14"),
    ('{"phone": "2125550100"}', "{path} must hold a JSON list of opt-outs objects, but its top level is dict"),
    ("NaN", "invalid JSON in {path}, line 1 column 1"),
    (b"\xff[]", "{path} is not UTF-8 text"),
])
def test_load_opt_outs_malformed_file_is_a_pipeline_error(tmp_path, text, expected):
    path = tmp_path / "opt_outs.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(PipelineError) as caught:
        load_opt_outs(path)
    message = str(caught.value)
    assert message.startswith(expected.format(path=path))
    assert message.endswith("Fix the opt-out file: a JSON array of phone or email strings "
                            'or {"phone": …, "email": …} objects (docs/1-user-selection.md)')
