"""utils.sms: GSM 03.38 tables, segment counting by hand-checked figures, emoji counting, the compliance check.

Every expected figure below is worked out by hand in the comment or id next to it (units per segment,
where a 2-unit character lands), never taken from the code under test.
"""

import re
import sys
import unicodedata

import pytest

from utils import sms
from utils.paths import PROJ_ROOT
from utils.sms import (
    GSM7_BASIC, GSM7_EXTENSION, RULES, check_message, count_emoji, find_invisible, normalize_gsm, rule_of,
    sms_encoding, sms_segments, strip_invisible,
)

LINK = "https://cucu.li/bookings/rec123"
NAME = "Maya"
# 85 + 31 (link) = 116 characters, GSM-7, one segment, no emoji: passes every rule.
GOOD = "Hi Maya! Natural wine & small plates this Friday at Lucia's, 4 seats left. Grab one: " + LINK

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # 👨‍👩‍👧: 3 surrogate pairs + 2 ZWJ = 8 UTF-16 units
GRIN = "\U0001F600"  # 😀: one surrogate pair, 2 UTF-16 units
ZHE = "\u0436"  # ж: Cyrillic, in the BMP, not in GSM, so 1 UCS-2 unit and forces UCS-2


def check(message, **overrides):
    """check_message with the house defaults and the test recipient."""
    kwargs = {"first_name": NAME, "link": LINK, **overrides}
    return check_message(message, **kwargs)


def rules(failures):
    """The rule ids of a list of failures."""
    return [rule_of(f) for f in failures]


# --- GSM 03.38 tables --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, char",
    [
        (0x00, "@"), (0x01, "£"), (0x02, "$"), (0x03, "¥"), (0x09, "Ç"), (0x0A, "\n"), (0x0D, "\r"),
        (0x10, "\u0394"), (0x11, "_"), (0x15, "\u03a9"), (0x1B, "\x1b"), (0x1C, "Æ"), (0x1E, "ß"),
        (0x1F, "É"), (0x20, " "), (0x24, "¤"), (0x27, "'"), (0x40, "¡"), (0x41, "A"), (0x5B, "Ä"),
        (0x5E, "Ü"), (0x5F, "§"), (0x60, "¿"), (0x7B, "ä"), (0x7E, "ü"), (0x7F, "à"),
    ],
)
def test_gsm_basic_table_positions(code, char):
    assert GSM7_BASIC[code] == char


def test_gsm_basic_table_has_128_distinct_entries():
    assert len(GSM7_BASIC) == 128
    assert len(set(GSM7_BASIC)) == 128


def test_gsm_extension_table_codes():
    assert GSM7_EXTENSION == {
        "\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E,
        "|": 0x40, "€": 0x65,
    }


# --- sms_encoding ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ÄÖÑÜ§¿äöñüà",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "line one\nline two\r\n",
        "^{}\\[]~|€\x0c",
        "",
    ],
    ids=["basic-symbols", "letters", "newlines", "extension", "empty"],
)
def test_gsm_text_is_gsm7(text):
    assert sms_encoding(text) == "GSM-7"


@pytest.mark.parametrize(
    "text",
    ["ç", "\u2019", "\u2014", "\u2026", "\u00a0", GRIN, "`", "\x1b", "\u03a9\u0301", "\u2126", ZHE],
    ids=[
        "small-c-cedilla", "curly-apostrophe", "em-dash", "ellipsis", "nbsp", "emoji", "backtick",
        "lone-escape", "omega-with-combining-accent", "ohm-sign", "cyrillic",
    ],
)
def test_one_non_gsm_character_makes_ucs2(text):
    assert sms_encoding("Hello " + text) == "UCS-2"


# --- sms_segments: hand-checked figures --------------------------------------------------------------

SEGMENT_CASES = [
    # GSM-7: 160 units alone, 153 per segment once concatenated.
    ("", 0, "empty: nothing is sent"),
    ("a", 1, "1 unit"),
    ("a" * 160, 1, "160 = single limit"),
    ("a" * 161, 2, "161 > 160: 153 + 8"),
    ("a" * 306, 2, "306 = 2 x 153"),
    ("a" * 307, 3, "307: 153 + 153 + 1"),
    ("a" * 459, 3, "459 = 3 x 153"),
    ("a" * 460, 4, "460: 153 x 3 + 1"),
    ("@£$¥èéùìòÇ" * 16, 1, "160 Latin-1 GSM characters, 1 unit each"),
    ("Ç" * 160, 1, "capital C cedilla is GSM 0x09"),
    ("€" * 80, 1, "80 euro signs = 160 units"),
    ("€" * 81, 2, "162 units: 76 euros (152) + 5 euros (10)"),
    ("a" * 158 + "€", 1, "158 + 2 = 160"),
    ("a" * 159 + "€", 2, "159 + 2 = 161 units"),
    ("^" + "a" * 158, 1, "2 + 158 = 160"),
    ("\\" * 81, 2, "162 units"),
    ("\x0c" * 80, 1, "form feed is an extension char: 160 units"),
    ("a" * 152 + "{" + "a" * 10, 2, "164 units: { would make 154 > 153, moves to segment 2 (2 + 10)"),
    ("a" * 152 + "{" + "a" * 152, 3, "306 units but { moves: 152 | { + 151 = 153 | 1"),
    ("a" * 151 + "{" + "a" * 153, 2, "306 units, { fits: 151 + 2 = 153 | 153"),
    ("{" * 153, 3, "306 units: 76 braces (152) | 76 braces (152) | 1 brace"),
    ("a" * 304 + "€", 2, "306 units: 153 | 151 + 2 = 153"),
    ("a" * 305 + "€", 3, "307 units: 153 | 152, euro would be 154 | 2"),
    ("a" * 306 + "€", 3, "308 units: 153 | 153 | 2"),
    # UCS-2: 70 units alone, 67 per segment once concatenated.
    (ZHE * 70, 1, "70 = single limit"),
    (ZHE * 71, 2, "71: 67 + 4"),
    (ZHE * 134, 2, "134 = 2 x 67"),
    (ZHE * 135, 3, "135: 67 + 67 + 1"),
    (ZHE * 201, 3, "201 = 3 x 67"),
    (ZHE * 202, 4, "202: 67 x 3 + 1"),
    ("ç" * 71, 2, "small c cedilla is not GSM: UCS-2, 71 units"),
    ("a" * 69 + "\u2019", 1, "70 units"),
    ("a" * 70 + "\u2019", 2, "71 units"),
    (GRIN * 35, 1, "35 surrogate pairs = 70 units"),
    (GRIN * 36, 2, "72 units: 33 emoji (66) | 3 emoji (6)"),
    (GRIN + "a" * 68, 1, "2 + 68 = 70"),
    (GRIN + "a" * 69, 2, "2 + 69 = 71"),
    ("a" * 66 + GRIN + "a" * 66, 3, "134 units but the pair moves: 66 | pair + 65 = 67 | 1"),
    ("a" * 65 + GRIN + "a" * 67, 2, "134 units, the pair fits: 65 + 2 = 67 | 67"),
    (GRIN * 67, 3, "134 units: 33 pairs (66) | 33 pairs (66) | 1 pair"),
    (FAMILY + "a" * 62, 1, "8 + 62 = 70"),
    (FAMILY + "a" * 63, 2, "8 + 63 = 71"),
    ("a" * 66 + FAMILY + "a" * 60, 3, "134 units: 66 | man(2) ZWJ woman(2) ZWJ girl(2) + 59 = 67 | 1"),
    ("\U0001F1FA\U0001F1F8", 1, "a flag is two regional indicators = 4 units"),
    # Curly punctuation before and after normalize_gsm.
    ("\u2019" + "a" * 149, 3, "150 UCS-2 units: 67 | 67 | 16"),
    ("'" + "a" * 149, 1, "the same after normalisation: 150 GSM units"),
    ("a" * 158 + "\u2026", 3, "159 UCS-2 units: 67 | 67 | 25"),
    ("a" * 158 + "...", 2, "the same normalised: 161 GSM units"),
]


@pytest.mark.parametrize("text, expected, why", SEGMENT_CASES, ids=[case[2] for case in SEGMENT_CASES])
def test_sms_segments(text, expected, why):
    assert sms_segments(text) == expected


def test_segment_table_has_at_least_40_cases():
    assert len(SEGMENT_CASES) >= 40


@pytest.mark.parametrize(
    "raw, ucs2_segments, gsm_segments",
    [
        ("I\u2019m" + "a" * 147, 3, 1),  # 150 characters with one ’: 67 | 67 | 16, then 150 GSM units
        ("a" * 100 + "\u2014", 2, 1),  # 101 units either way; only the capacity changes
        ("a" * 100 + "\u00a0", 2, 1),
        ("\u201cHi\u201d " + "a" * 100, 2, 1),  # 105 units
    ],
)
def test_normalising_curly_punctuation_shrinks_segments(raw, ucs2_segments, gsm_segments):
    assert (sms_encoding(raw), sms_segments(raw)) == ("UCS-2", ucs2_segments)
    clean = normalize_gsm(raw)
    assert (sms_encoding(clean), sms_segments(clean)) == ("GSM-7", gsm_segments)


# --- normalize_gsm -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("\u2018hi\u2019 \u201athere\u201b", "'hi' 'there'"),
        ("\u201chi\u201d \u201ethere\u201f", '"hi" "there"'),
        ("5\u2032 11\u2033", "5' 11\""),
        ("7\u20139pm \u2014 or \u2012 \u2015 \u22125", "7-9pm - or - - -5"),
        ("wait\u2026", "wait..."),
        ("a\u00a0b\u2002c\u2009d\u200ae\u202ff\u205fg\u3000h", "a b c d e f g h"),
        ("zero\u200bwidth", "zerowidth"),
        ("\u2022 pasta", "- pasta"),
        ("\uff28\uff49\uff01", "Hi!"),
        ("caf\u0065\u0301", "café"),
        ("I\u02bcm", "I'm"),
        ("\u00abciao\u00bb", '"ciao"'),
    ],
    ids=[
        "single-quotes", "double-quotes", "primes", "dashes-and-minus", "ellipsis", "unicode-spaces",
        "zero-width-space", "bullet", "fullwidth", "combining-accent", "modifier-apostrophe", "guillemets",
    ],
)
def test_normalize_gsm_replacements(raw, expected):
    assert normalize_gsm(raw) == expected


@pytest.mark.parametrize(
    "text",
    [GRIN, FAMILY, "\u2764\ufe0f", "\U0001F44D\U0001F3FD", "Zoë", "François", "Łódź", "plain text"],
    ids=["emoji", "zwj-family", "heart-vs16", "skin-tone", "diaeresis", "c-cedilla", "polish", "ascii"],
)
def test_normalize_gsm_leaves_emoji_and_letters_alone(text):
    assert normalize_gsm(text) == text


def test_normalize_gsm_is_idempotent():
    raw = "\u201cIt\u2019s on\u201d \u2014 Fri\u00a07pm\u2026 \u2022 \uff01 " + FAMILY
    once = normalize_gsm(raw)
    assert normalize_gsm(once) == once == '"It\'s on" - Fri 7pm... - ! ' + FAMILY


# --- count_emoji -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", 0),
        ("no emoji here", 0),
        ("Hi " + GRIN, 1),
        (GRIN + GRIN, 2),
        (FAMILY, 1),
        (FAMILY + FAMILY, 2),
        ("\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466", 1),  # family of four
        ("\U0001F1FA\U0001F1F8", 1),  # 🇺🇸
        ("\U0001F1FA\U0001F1F8\U0001F1EB\U0001F1F7", 2),  # 🇺🇸🇫🇷
        ("\U0001F1FA", 1),  # a lone regional indicator still shows as a boxed letter
        ("\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F", 1),  # England
        ("\U0001F44D\U0001F3FD", 1),  # 👍🏽
        ("\U0001F44D\U0001F3FD\U0001F44D", 2),
        ("\U0001F469\U0001F3FD\u200d\U0001F4BB", 1),  # 👩🏽‍💻
        ("\U0001F3F3\ufe0f\u200d\U0001F308", 1),  # 🏳️‍🌈
        ("\U0001F3F4\u200d\u2620\ufe0f", 1),  # 🏴‍☠️
        ("\u2764\ufe0f\u200d\U0001F525", 1),  # ❤️‍🔥
        ("\u2764\ufe0f", 1),  # ❤️ as typed from an emoji keyboard
        ("\u2764", 0),  # bare ❤ is drawn as a text symbol
        ("\u2600\ufe0f", 1),  # ☀️
        ("\u2600\ufe0e", 0),  # ☀︎ text presentation requested
        ("\u2615\ufe0e", 0),  # ☕︎ an emoji by default, but text presentation requested
        (GRIN + "\ufe0e", 0),
        ("\u2615", 1),  # ☕ emoji by default
        ("\u2728", 1),  # ✨ emoji by default
        ("1\ufe0f\u20e3", 1),  # 1️⃣
        ("#\ufe0f\u20e3", 1),  # #️⃣
        ("1 # *", 0),
        ("\u00a9 \u00ae \u2122", 0),  # © ® ™
        (GRIN + "\u200d", 1),  # a dangling ZWJ joins nothing
        ("Cucu\u2122 dinner " + GRIN + " at 7", 1),
    ],
)
def test_count_emoji(text, expected):
    assert count_emoji(text) == expected


# --- check_message -----------------------------------------------------------------------------------


def test_rules_are_the_documented_ids():
    assert RULES == ("length", "link", "phone", "invisible", "placeholder", "first_name", "emoji", "segments",
                     "banned_content", "spam")


def test_good_message_passes():
    assert len(GOOD) == 116
    assert check(GOOD) == []


def test_wine_on_the_menu_passes():
    message = "Maya, natural wine & small plates this Friday at Lucia's. Come hungry: " + LINK
    assert check(message) == []


def test_failures_start_with_rule_id_and_colon():
    message = "HEY {name}!!! FREE DRINKS, open bar " + GRIN + GRIN + " bit.ly/x " + LINK + " " + LINK
    failures = check(message)
    assert rules(failures) == [
        "link", "link", "placeholder", "first_name", "emoji", "banned_content", "spam", "spam",
    ]
    for failure in failures:
        assert re.match(r"^[a-z_]+: \S", failure), failure


# length


def test_length_over_limit_fails_with_count():
    message = "Hi Maya, " + "o" * 140 + " " + LINK
    assert len(message) == 9 + 140 + 1 + 31 == 181
    assert check(message) == ["length: 181 characters including the link, the limit is 180"]


def test_length_at_limit_passes():
    message = "Hi Maya, " + "o" * 139 + " " + LINK
    assert len(message) == 180
    assert check(message) == []


def test_length_limit_is_configurable():
    assert rules(check(GOOD, max_chars=115)) == ["length"]


# link


@pytest.mark.parametrize(
    "message, expected",
    [
        ("Hi Maya, dinner Friday!", "link: the booking link https://cucu.li/bookings/rec123 is missing"),
        (f"Hi Maya, {LINK} dinner Friday!", "link: the booking link must be the last thing in the message"),
        (f"Hi Maya, {LINK} dinner Friday {LINK}", "link: the booking link appears 2 times"),
        (f"Hi Maya, dinner Friday {LINK}.", "link: the booking link must be the last thing in the message"),
    ],
    ids=["missing", "not-last", "twice", "punctuation-after"],
)
def test_link_placement_failures(message, expected):
    failures = check(message)
    assert rules(failures) == ["link"]
    assert failures[0].startswith(expected)


def test_link_followed_by_whitespace_passes():
    assert check(GOOD + "  \n") == []


def test_longer_booking_url_is_not_the_booking_link():
    failures = check("Hi Maya, dinner Friday " + LINK + "4")
    assert rules(failures) == ["link", "link"]
    assert "missing" in failures[0]
    assert "'https://cucu.li/bookings/rec1234'" in failures[1]


@pytest.mark.parametrize(
    "smuggled",
    [
        "also see https://evil.example/x",
        "also see http://evil.example/x",
        "or bit.ly/abc",
        "BIT.LY/abc",
        "www.evil-dinners.com",
        "tinyurl.com/y4k",
        "t.co/abc",
        "goo.gl/abc",
        "rebrand.ly/promo",
        "shorturl.at/abc",
        "cheap-eats.net/deal",
        "cucu.li/bookings/999",
        "write to hello@cucu.li",
        "\uff42\uff49\uff54\uff0e\uff4c\uff59/x",  # fullwidth "bit.ly/x"
    ],
)
def test_prompt_injected_extra_link_is_blocked(smuggled):
    message = f"Hi Maya, dinner Friday, {smuggled} " + LINK
    failures = check(message)
    assert rules(failures) == ["link"]
    assert "must be the only link" in failures[0]


@pytest.mark.parametrize(
    "text",
    [
        "Doors 7.30pm, e.g. pasta, 4.5 stars.",
        "Dr. Lee hosts at St. Mark's, a.m. or p.m.",
        "$12.99 per plate, 3.5 hrs.",
    ],
)
def test_ordinary_text_is_not_a_link(text):
    assert check(f"Hi Maya! {text} " + LINK) == []


def test_empty_link_is_a_programming_error():
    with pytest.raises(ValueError, match="booking link"):
        check_message(GOOD, first_name=NAME, link="")


# placeholder


@pytest.mark.parametrize(
    "slot",
    [
        "{name}", "{first_name}", "{{first_name}}", "{{ name }}", "[Name]", "[FIRST NAME]", "[first name]",
        "<first_name>", "<Name>", "%s", "%(name)s", "{0}", "{}", "${name}", "first_name", "FIRST_NAME",
        "[Event Name]", "[insert link]",
    ],
)
def test_unfilled_placeholder_fails(slot):
    failures = check(f"Hi Maya, {slot} is waiting for you Friday! " + LINK)
    assert rules(failures) == ["placeholder"]
    assert slot in failures[0]


@pytest.mark.parametrize(
    "text",
    [
        "We <3 pasta.",
        "Last time was [sold out].",
        "50% of seats gone, 100%sure you'll love it.",
        "Fri 7-9pm (2 spots).",
        "Price: $45 (tip incl.)",
    ],
)
def test_normal_text_is_not_a_placeholder(text):
    assert check(f"Hi Maya! {text} " + LINK) == []


# first_name


def test_missing_first_name_fails():
    failures = check("Hi there! Dinner Friday at Lucia's. " + LINK)
    assert failures == ["first_name: the recipient's first name 'Maya' does not appear in the message"]


def test_first_name_must_be_a_whole_word():
    assert rules(check("Mayan feast Friday at Lucia's! " + LINK)) == ["first_name"]


@pytest.mark.parametrize("message", ["maya, dinner Friday? " + LINK, "MAYA, dinner Friday? " + LINK])
def test_first_name_match_ignores_case(message):
    assert "first_name" not in rules(check(message))


@pytest.mark.parametrize("first_name", [None, "", "   "])
def test_first_name_check_skipped_without_a_name(first_name):
    assert check("Hi there! Dinner Friday at Lucia's. " + LINK, first_name=first_name) == []


def test_first_name_with_curly_apostrophe_matches_straight_one():
    assert check("Hi D'Angelo! Dinner Friday. " + LINK, first_name="D\u2019Angelo") == []


# emoji


def test_two_emoji_fail():
    failures = check("Hi Maya " + GRIN + " dinner Friday " + "\U0001F35D " + LINK)
    assert failures == ["emoji: 2 emoji, the limit is 1"]


def test_zwj_sequence_counts_as_one_emoji():
    assert check("Hi Maya " + FAMILY + " family dinner Friday! " + LINK) == []


def test_emoji_limit_is_configurable():
    assert check("Hi Maya " + GRIN + " dinner Friday " + "\U0001F35D " + LINK, max_emoji=2) == []


# segments


def test_too_many_segments_fail_and_suggest_normalising():
    message = "Hi Maya, it\u2019s " + "o" * 86 + " " + LINK  # 14 + 86 + 1 + 31 = 132 UCS-2 units
    assert len(message) == 132
    failures = check(message, max_segments=1)
    assert rules(failures) == ["segments"]
    assert failures[0].startswith("segments: 2 SMS segments (UCS-2), the limit is 1")
    assert "\u2019" in failures[0]
    assert "normalize_gsm() would make it 1" in failures[0]


def test_normalised_message_fits_segments():
    message = normalize_gsm("Hi Maya, it\u2019s " + "o" * 86 + " " + LINK)
    assert check(message, max_segments=1) == []


def test_default_segment_limit_is_three():
    message = "Maya " + ZHE * 143 + " " + LINK  # 5 + 143 + 1 + 31 = 180 UCS-2 units: 67 | 67 | 46
    assert "segments" not in rules(check(message))
    # 177 characters but 5 + 40 x 2 + 100 + 1 + 31 = 217 units: "Maya " + 31 pairs = 67 |
    # 9 pairs + 49 ж = 67 | 51 ж + " " + 15 link chars = 67 | 16 link chars -> 4 segments.
    message = "Maya " + GRIN * 40 + ZHE * 100 + " " + LINK
    assert len(message) == 177
    failures = check(message, max_emoji=40)
    assert failures == ["segments: 4 SMS segments (UCS-2), the limit is 3; the characters '\U0001f600ж' force UCS-2 "
                        "(70 per segment instead of 160)"]


# banned_content


@pytest.mark.parametrize(
    "phrase, category",
    [
        ("an open bar", "alcohol"),
        ("bottomless mimosas", "alcohol"),
        ("free drinks", "alcohol"),
        ("FREE DRINKS", "alcohol"),
        ("2-for-1 drinks", "alcohol"),
        ("2 for 1 drinks", "alcohol"),
        ("unlimited drinks", "alcohol"),
        ("free-flowing prosecco", "alcohol"),
        ("a free glass of wine", "alcohol"),
        ("happy hour specials", "alcohol"),
        ("drink specials", "alcohol"),
        ("let's get drunk", "alcohol"),
        ("shots shots shots", "alcohol"),
        ("it's BYOB", "alcohol"),
        ("a bottomless brunch", "alcohol"),
        ("drinks are on us", "alcohol"),
        ("the hookup spot", "sex"),
        ("sexy singles", "sex"),
        ("NSFW fun", "sex"),
        ("xxx", "sex"),
        ("adult content", "sex"),
        ("escorts", "sex"),
        ("sieg heil", "hate"),
        ("white power", "hate"),
        ("guns and ammo", "firearms"),
        ("a rifle raffle", "firearms"),
        ("cigars after", "tobacco"),
        ("vape lounge", "tobacco"),
        ("hookah on the patio", "tobacco"),
        ("e-cigs", "tobacco"),
        ("weed", "cannabis"),
        ("CBD cocktails", "cannabis"),
        ("a 420 dinner", "cannabis"),
        ("THC edibles", "cannabis"),
        ("shrooms", "drugs"),
        ("psychedelics", "drugs"),
        ("we pop molly", "drugs"),
    ],
)
def test_banned_content_fails(phrase, category):
    failures = [f for f in check(f"Hi Maya, {phrase} this Friday. " + LINK) if rule_of(f) == "banned_content"]
    assert len(failures) == 1
    assert failures[0].startswith(f"banned_content: {category} content")


@pytest.mark.parametrize(
    "text",
    [
        "Natural wine & small plates this Friday.",
        "Wine pairing with every course.",
        "A cocktail class with Chef Molly.",
        "Free entry, wine on the menu.",
        "Free soft drinks for the kids.",
        "Free non-alcoholic drinks all night.",
        "Beer-braised short ribs and a whisky tasting.",
        "Psychedelic 70s disco night.",
        "Notes of cherry and tobacco in the Barolo.",
        "Our host will escort you to your table.",
        "Give the tiramisu a shot.",
        "Free dessert for early birds.",
    ],
)
def test_food_and_drink_descriptions_pass(text):
    assert check(f"Hi Maya! {text} " + LINK) == []


def test_banned_terms_are_whole_words():
    # "weed" inside "tweed" and "seaweed", "guns" inside "gunslinger": whole words only.
    assert check("Hi Maya! Tweed jackets, gunslinger cocktails? No: seaweed salad. " + LINK) == []


def test_banned_content_reports_each_category_once():
    failures = check("Hi Maya, free shots, open bar and cigars! " + LINK)
    assert rules(failures) == ["banned_content", "banned_content"]
    assert failures[0].startswith("banned_content: alcohol content 'open bar', 'free shots'")
    assert failures[1].startswith("banned_content: tobacco content 'cigars'")


# spam


@pytest.mark.parametrize(
    "text, expected",
    [
        ("AMAZING dinner Friday.", "spam: ALL-CAPS words read as shouting (AMAZING)"),
        ("Dinner Friday!!!", "spam: '!!!'"),
        ("Dinner Friday!!!!!", "spam: '!!!'"),
        ("Save $$$ on dinner.", "spam: '$$$'"),
        ("Act now, dinner Friday.", "spam: spam-trigger phrase 'Act now'"),
        ("Winner winner, chicken dinner.", "spam: spam-trigger phrase 'Winner';"),
        ("Dinner is 100% free.", "spam: spam-trigger phrase '100% free'"),
        ("Click here to book.", "spam: spam-trigger phrase 'Click here'"),
    ],
)
def test_spam_triggers_fail(text, expected):
    failures = check(f"Hi Maya! {text} " + LINK)
    assert rules(failures) == ["spam"]
    assert failures[0].startswith(expected)


@pytest.mark.parametrize(
    "text",
    [
        "RSVP by Thursday.",
        "Best pasta in NYC, BBQ after.",
        "Reply STOP to opt out, HELP for help.",
        "An LGBTQ+ supper club.",
        "Dinner Friday! See you!!",
        "A $$ Italian spot.",
        "I'm in, OK?",
    ],
)
def test_spam_allowed_forms_pass(text):
    assert check(f"Hi Maya! {text} " + LINK) == []


def test_placeholder_in_caps_is_reported_once():
    failures = check("Hi [FIRST NAME], Maya says dinner Friday! " + LINK)
    assert rules(failures) == ["placeholder"]


# rule_of


def test_rule_of_every_failure_is_a_known_rule():
    message = "HEY {name}!!! FREE DRINKS " + GRIN + GRIN + " bit.ly/x " + "o" * 150 + " " + LINK
    # 26 + 2 + 10 + 150 + 1 + 31 = 220 characters; UCS-2 units 26 + 4 + 10 + 150 + 1 + 31 = 222 > 201.
    failures = check(message)
    assert {rule_of(f) for f in failures} == {
        "length", "link", "placeholder", "first_name", "emoji", "segments", "banned_content", "spam",
    }


@pytest.mark.parametrize("text", ["no colon here", "lenght: typo", ": empty id", ""])
def test_rule_of_rejects_unknown_strings(text):
    with pytest.raises(ValueError, match="not a check_message failure"):
        rule_of(text)


# --- docs --------------------------------------------------------------------------------------------


def _doc_text():
    return (PROJ_ROOT / "docs" / "sms-compliance.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    "name",
    [
        "RULES", "BANNED_TERMS", "ALCOHOL_OFFER_WORDS", "ALCOHOL_DRINK_WORDS", "SPAM_PHRASES",
        "CAPS_ALLOWLIST", "PLACEHOLDER_WORDS",
    ],
)
def test_every_listed_word_is_documented(name):
    value = getattr(sms, name)
    words = [w for terms in value.values() for w in terms] if isinstance(value, dict) else list(value)
    doc = _doc_text()
    missing = [w for w in words if f"`{w}`" not in doc]
    assert not missing, f"docs/sms-compliance.md does not list these {name} entries: {missing}"


def test_every_banned_category_is_documented():
    doc = _doc_text()
    for category in sms.BANNED_TERMS:
        assert f"**{category}**" in doc


# --- foreign contact points (issue 12): the booking link is the only one -----------------------------

@pytest.mark.parametrize(
    "smuggled, token",
    [
        ("Supper at evil.to/x", "evil.to/x"),
        ("claim at evil.example/claim", "evil.example/claim"),
        ("chat t.me/evil", "t.me/evil"),
        ("text wa.me/12125550199", "wa.me/12125550199"),
        ("tip pay.me/d", "pay.me/d"),
        ("pay 10.0.0.7/pay", "10.0.0.7/pay"),
        ("pay at 10.0.0.7", "10.0.0.7"),
        ("DM @evil", "@evil"),
        ("Follow @cucu_club for photos", "@cucu_club"),
        ("see ЕВИЛ.рф/x", "ЕВИЛ.рф/x"),  # labels in any script
        ("see evil.newtld", "evil.newtld"),  # an ending no list would know yet
        ("see evil\u3002to/x", "evil.to/x"),  # the ideographic full stop is a dot to a browser
        ("see \uff45\uff56\uff49\uff4c\uff0e\uff54\uff4f/x", "evil.to/x"),  # fullwidth
        ("see evil\u200b.to/x", "evil.to/x"),  # a zero-width space inside
        ("mail a@evil.co", "evil.co"),
    ],
)
def test_a_foreign_contact_point_fails_the_link_rule_and_names_the_token(smuggled, token):
    failures = check(f"Hi Maya, dinner Friday, {smuggled} " + LINK)
    assert "link" in rules(failures)
    link_failure = next(f for f in failures if rule_of(f) == "link")
    assert repr(token) in link_failure
    assert "must be the only link" in link_failure


@pytest.mark.parametrize(
    "text, number",
    [
        ("Call 212-555-0199", "212-555-0199"),
        ("Call (646) 555-0142", "(646) 555-0142"),
        ("Call +1 212 555 0199", "+1 212 555 0199"),
        ("Call 212.555.0199", "212.555.0199"),
        ("Call 2125550199", "2125550199"),
        ("Text 555-0199 now", "555-0199"),
        ("Call +44 20 7946 0958", "+44 20 7946 0958"),
        ("Call \uff12\uff11\uff12-\uff15\uff15\uff15-\uff10\uff11\uff19\uff19", "212-555-0199"),  # fullwidth digits
        # A colon after a letter does not hide the number: phones make these tappable.
        ("Tap tel:+12125550199", "+12125550199"),
        ("Or sms:2125550199", "2125550199"),
        ("Call:212-555-0199", "212-555-0199"),
    ],
)
def test_a_phone_number_fails_the_phone_rule(text, number):
    failures = check(f"Hi Maya, dinner Friday. {text}. " + LINK)
    assert rules(failures) == ["phone"]
    assert repr(number) in failures[0]
    assert "only contact point" in failures[0]


def test_a_phone_number_hidden_by_zero_width_spaces_fails_twice():
    failures = check("Hi Maya, dinner Friday. Call 212\u200b555\u200b0199. " + LINK)
    assert rules(failures) == ["phone", "invisible"]
    assert "'2125550199'" in failures[0]
    assert "U+200B" in failures[1]


@pytest.mark.parametrize(
    "text",
    [
        "Doors 7:30pm, Sat 12/5.",
        "Only $25, 3 seats left.",
        "Meet at St. Mark's Pl, hosted by J.R. Smith.",
        "Dinner @7pm, drinks @ 9.",
        "Sat Dec 5 2026 at 7:30pm, 12 seats.",
        "Dec 12 2026 10 seats left.",
        "Dinner 2027-01-03 or 12-05-2026.",
        "Table for 8, $1,250,000 raised so far.",
        "Ph.D. students, U.S.A. and vol. 2.",
        "Doors 7.30pm, e.g. pasta, 4.5 stars, no. 10.",
        "Rooftop 🇺🇸 party.",
        "Doors 19:30-22:30, 10:30 sharp.",  # a colon after a digit is a time, never a phone
    ],
)
def test_legitimate_look_alikes_pass(text):
    assert check(f"Hi Maya! {text} " + LINK) == []


def test_a_missing_space_after_a_full_stop_reads_as_a_domain():
    # The rule is structural, so "tonight.It" looks like a link; such a message goes to review.
    failures = check("Hi Maya! It's on tonight.It's going to be great. " + LINK)
    assert rules(failures) == ["link"]
    assert "'tonight.It'" in failures[0]


def test_the_booking_link_in_a_url_like_word_is_still_found_once():
    assert check("Hi Maya! Dinner Friday, book here: " + LINK) == []


# --- invisible characters: never in an approved message, stripped where text enters -------------

RLO = "\u202e"
FLAG_ENGLAND = "\U0001F3F4\U000E0067\U000E0062\U000E0065\U000E006E\U000E0067\U000E007F"


@pytest.mark.parametrize("control", ["\u202a", "\u202b", "\u202c", "\u202d", RLO, "\u2066", "\u2067", "\u2068",
                                     "\u2069", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2060",
                                     "\ufeff", "\u00ad", "\u061c", "\U000E0041"])
def test_a_format_character_fails_the_invisible_rule(control):
    failures = check(f"Hi Ma{control}ya! Dinner Friday. " + LINK)
    assert rules(failures) == ["invisible"]
    assert f"U+{ord(control):04X}" in failures[0]


@pytest.mark.parametrize("hidden", ["\x00", "\x07", "\x08", "\x1b", "\x7f", "\x85", "\x9b", "\x0b", "\u034f",
                                    "\u115f", "\u3164", "\uffa0", "\u17b4", "\u180b"])
def test_a_control_character_or_a_blank_letter_fails_the_invisible_rule_anywhere(hidden):
    # Not Cf, just as hidden: a terminal escape (U+009B), a bell, a Hangul filler used as a "blank" name.
    failures = check(f"Hi Maya! Dinner{hidden} Friday. " + LINK)
    assert rules(failures) == ["invisible"]
    assert f"U+{ord(hidden):04X}" in failures[0]
    assert strip_invisible(f"Dinner{hidden} Friday") == "Dinner Friday"


@pytest.mark.parametrize("text", ["Hi Maya!\nDinner Friday.\r\nSee you. ", "Hi Maya!\tDinner Friday. ",
                                  "Hi Maya! Dinner Friday \u2764\ufe0f ", "Hi Maya! \u3059\u3057 night. "])
def test_line_breaks_tabs_and_emoji_selectors_are_not_hidden_characters(text):
    assert "invisible" not in rules(check(text + LINK))


@pytest.mark.parametrize("emoji", [FAMILY, "\U0001F3F3\ufe0f\u200d\U0001F308", FLAG_ENGLAND,
                                   "\U0001F469\U0001F3FD\u200d\U0001F373"])
def test_emoji_that_need_a_zwj_or_tags_pass(emoji):
    assert check(f"Hi Maya! Dinner Friday {emoji} " + LINK) == []


@pytest.mark.parametrize("text, expected", [
    (f"{RLO}Ann", "Ann"),
    ("Ma\u200bya\u2066", "Maya"),
    ("plain ascii", "plain ascii"),
    ("Zoë", "Zoë"),
    (f"a{FAMILY}b", f"a{FAMILY}b"),
    (f"x\u200d{GRIN}", f"x{GRIN}"),  # a ZWJ after a letter joins nothing
    (f"{GRIN}\u200d", GRIN),  # nor one at the end
    (f"flag {FLAG_ENGLAND}", f"flag {FLAG_ENGLAND}"),
    ("tag \U000E0067\U000E007F", "tag "),  # tags without their flag
    ("\U0001F3F4\U000E0067 open", "\U0001F3F4 open"),  # a flag's tags without the closing tag
])
def test_strip_invisible(text, expected):
    assert strip_invisible(text) == expected
    assert find_invisible(expected) == []


def test_normalize_gsm_strips_invisible_characters():
    assert normalize_gsm(f"Hi {RLO}Ann\u2069, {FAMILY}") == f"Hi Ann, {FAMILY}"


def test_the_format_character_table_covers_every_cf_character_of_this_python():
    covered = {cp for low, high in sms.FORMAT_CHARACTER_RANGES for cp in range(low, high + 1)}
    category_cf = {cp for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)) == "Cf"}
    assert category_cf <= covered
    # Nothing else: the table may only be ahead of this Python's Unicode version (15 vs 14).
    assert all(unicodedata.category(chr(cp)) in ("Cf", "Cn") for cp in covered - category_cf)
