"""SMS rules in one place: encoding, segment counting, GSM clean-up, emoji counting and the compliance check.

Everything here is a pure function over strings (standard library only, no I/O), so step 5 can check a
generated message before it is saved or uploaded, and the tests can pin every figure by hand.
The word lists and tables are module-level data; docs/sms-compliance.md explains each one to users.
"""

import re
import unicodedata

# --- GSM 03.38 (3GPP TS 23.038) --------------------------------------------------------------------

# The basic table, one row of 16 per line, in code order 0x00-0x7F: position = GSM code.
# Note the traps: "$" is 0x02 (0x24 is "¤"), "@" is 0x00, "¡" 0x40, "¿" 0x60, and the Greek capitals
# are the Greek letters (U+0394 Δ, U+03A9 Ω …), not look-alikes such as the Ohm sign.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"  # 0x00-0x0F
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"  # 0x10-0x1F (0x1B is ESC, the escape to the extension table)
    " !\"#¤%&'()*+,-./"  # 0x20-0x2F
    "0123456789:;<=>?"  # 0x30-0x3F
    "¡ABCDEFGHIJKLMNO"  # 0x40-0x4F
    "PQRSTUVWXYZÄÖÑÜ§"  # 0x50-0x5F
    "¿abcdefghijklmno"  # 0x60-0x6F
    "pqrstuvwxyzäöñüà"  # 0x70-0x7F
)

# The extension table: each character is sent as ESC + this code, so it costs 2 septets.
GSM7_EXTENSION = {
    "\x0c": 0x0A,  # form feed
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

GSM7_ESCAPE = "\x1b"

# A literal ESC in the text is not sendable as GSM-7: the handset would read it as the start of an
# escape pair and swallow the next character. So it is the one basic-table entry left out here.
_GSM7_SINGLE = frozenset(GSM7_BASIC) - {GSM7_ESCAPE}
_GSM7_DOUBLE = frozenset(GSM7_EXTENSION)
_GSM7_ALL = _GSM7_SINGLE | _GSM7_DOUBLE

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# (single-message capacity, per-segment capacity once concatenated); the 7 and 3 units lost per
# segment are the User Data Header that tells the phone how to glue the parts back together.
SEGMENT_LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}

# --- Smart-encoding replacements ------------------------------------------------------------------

# Typographic characters that force UCS-2 but have an obvious GSM look-alike, after Twilio's Smart
# Encoding list. Only replacements a reader would never notice: no accent stripping (that would change
# people's names), no emoji changes.
GSM_REPLACEMENTS = {
    # single quotes, apostrophes, primes
    "\u2018": "'",  # ‘
    "\u2019": "'",  # ’
    "\u201a": "'",  # ‚
    "\u201b": "'",  # ‛
    "\u2032": "'",  # ′
    "\u02bc": "'",  # ʼ modifier letter apostrophe
    "\u00b4": "'",  # ´ acute accent used as an apostrophe
    "`": "'",  # grave accent: ASCII but not in GSM
    # double quotes
    "\u201c": '"',  # “
    "\u201d": '"',  # ”
    "\u201e": '"',  # „
    "\u201f": '"',  # ‟
    "\u2033": '"',  # ″
    "\u00ab": '"',  # «
    "\u00bb": '"',  # »
    # hyphens, dashes, minus
    "\u2010": "-",  # ‐ hyphen
    "\u2011": "-",  # ‑ non-breaking hyphen
    "\u2012": "-",  # ‒ figure dash
    "\u2013": "-",  # – en dash
    "\u2014": "-",  # — em dash
    "\u2015": "-",  # ― horizontal bar
    "\u2212": "-",  # − minus sign
    # ellipsis, bullets
    "\u2026": "...",  # …
    "\u2022": "-",  # • bullet
    # spaces
    "\t": " ",
    "\u00a0": " ",  # no-break space
    **{chr(cp): " " for cp in range(0x2000, 0x200B)},  # en quad … hair space
    "\u202f": " ",  # narrow no-break space
    "\u205f": " ",  # medium mathematical space
    "\u3000": " ",  # ideographic space
    "\u2028": "\n",  # line separator
    "\u2029": "\n",  # paragraph separator
    # invisible characters, removed (U+200D ZERO WIDTH JOINER is kept: it glues emoji together)
    "\u200b": "",  # zero-width space
    "\u2060": "",  # word joiner
    "\ufeff": "",  # byte-order mark / zero-width no-break space
    "\u00ad": "",  # soft hyphen
    # fullwidth ASCII (！ … ～) to ASCII
    **{chr(cp): chr(cp - 0xFEE0) for cp in range(0xFF01, 0xFF5F)},
}
_GSM_TRANSLATION = str.maketrans(GSM_REPLACEMENTS)

# --- Emoji data (Unicode 15 emoji-data.txt) --------------------------------------------------------

# Extended_Pictographic: every character that can start an emoji, plus room reserved for future ones.
EXTENDED_PICTOGRAPHIC = (
    (0x00A9, 0x00A9), (0x00AE, 0x00AE), (0x203C, 0x203C), (0x2049, 0x2049), (0x2122, 0x2122),
    (0x2139, 0x2139), (0x2194, 0x2199), (0x21A9, 0x21AA), (0x231A, 0x231B), (0x2328, 0x2328),
    (0x2388, 0x2388), (0x23CF, 0x23CF), (0x23E9, 0x23F3), (0x23F8, 0x23FA), (0x24C2, 0x24C2),
    (0x25AA, 0x25AB), (0x25B6, 0x25B6), (0x25C0, 0x25C0), (0x25FB, 0x25FE), (0x2600, 0x2605),
    (0x2607, 0x2612), (0x2614, 0x2685), (0x2690, 0x2705), (0x2708, 0x2712), (0x2714, 0x2714),
    (0x2716, 0x2716), (0x271D, 0x271D), (0x2721, 0x2721), (0x2728, 0x2728), (0x2733, 0x2734),
    (0x2744, 0x2744), (0x2747, 0x2747), (0x274C, 0x274C), (0x274E, 0x274E), (0x2753, 0x2755),
    (0x2757, 0x2757), (0x2763, 0x2767), (0x2795, 0x2797), (0x27A1, 0x27A1), (0x27B0, 0x27B0),
    (0x27BF, 0x27BF), (0x2934, 0x2935), (0x2B05, 0x2B07), (0x2B1B, 0x2B1C), (0x2B50, 0x2B50),
    (0x2B55, 0x2B55), (0x3030, 0x3030), (0x303D, 0x303D), (0x3297, 0x3297), (0x3299, 0x3299),
    (0x1F000, 0x1F0FF), (0x1F10D, 0x1F10F), (0x1F12F, 0x1F12F), (0x1F16C, 0x1F171),
    (0x1F17E, 0x1F17F), (0x1F18E, 0x1F18E), (0x1F191, 0x1F19A), (0x1F1AD, 0x1F1E5),
    (0x1F201, 0x1F20F), (0x1F21A, 0x1F21A), (0x1F22F, 0x1F22F), (0x1F232, 0x1F23A),
    (0x1F23C, 0x1F23F), (0x1F249, 0x1F3FA), (0x1F400, 0x1F53D), (0x1F546, 0x1F64F),
    (0x1F680, 0x1F6FF), (0x1F774, 0x1F77F), (0x1F7D5, 0x1F7FF), (0x1F80C, 0x1F80F),
    (0x1F848, 0x1F84F), (0x1F85A, 0x1F85F), (0x1F888, 0x1F88F), (0x1F8AE, 0x1F8FF),
    (0x1F90C, 0x1F93A), (0x1F93C, 0x1F945), (0x1F947, 0x1FAFF), (0x1FC00, 0x1FFFD),
)

# The BMP characters with Emoji_Presentation=Yes (drawn as emoji even without U+FE0F). Other BMP
# pictographs (©, ®, ™, ‼, arrows, a bare ❤ or ☀) are drawn as plain text symbols on many phones, so
# they only count as emoji when U+FE0F, a skin tone or a ZWJ sequence makes them one.
EMOJI_PRESENTATION_BMP = (
    (0x231A, 0x231B), (0x23E9, 0x23EC), (0x23F0, 0x23F0), (0x23F3, 0x23F3), (0x25FD, 0x25FE),
    (0x2614, 0x2615), (0x2648, 0x2653), (0x267F, 0x267F), (0x2693, 0x2693), (0x26A1, 0x26A1),
    (0x26AA, 0x26AB), (0x26BD, 0x26BE), (0x26C4, 0x26C5), (0x26CE, 0x26CE), (0x26D4, 0x26D4),
    (0x26EA, 0x26EA), (0x26F2, 0x26F3), (0x26F5, 0x26F5), (0x26FA, 0x26FA), (0x26FD, 0x26FD),
    (0x2705, 0x2705), (0x270A, 0x270B), (0x2728, 0x2728), (0x274C, 0x274C), (0x274E, 0x274E),
    (0x2753, 0x2755), (0x2757, 0x2757), (0x2795, 0x2797), (0x27B0, 0x27B0), (0x27BF, 0x27BF),
    (0x2B1B, 0x2B1C), (0x2B50, 0x2B50), (0x2B55, 0x2B55),
)

_ZWJ = "\u200d"
_VS15 = "\ufe0e"  # text presentation selector
_VS16 = "\ufe0f"  # emoji presentation selector
_KEYCAP = "\u20e3"
_KEYCAP_BASES = frozenset("0123456789#*")

# --- Compliance rules -----------------------------------------------------------------------------

RULES = (
    "length", "link", "phone", "invisible", "placeholder", "first_name", "emoji", "segments", "banned_content",
    "spam",
)

# Words that make "[...]" or "<...>" a template slot rather than text, e.g. [Name], <first_name>.
PLACEHOLDER_WORDS = (
    "name", "firstname", "lastname", "username", "user", "recipient", "customer", "event", "date",
    "time", "venue", "location", "address", "city", "neighborhood", "neighbourhood", "link", "url",
    "insert", "placeholder", "host", "price", "title", "phone", "email",
)

# SHAFT (+ cannabis and drugs) terms blocked wherever they appear. Only terms with no everyday
# meaning in a dinner invite belong here; words like "wine" are handled as pitches (see below).
BANNED_TERMS = {
    "sex": (
        "hookup", "hookups", "sexy singles", "xxx", "nsfw", "adult content", "escorts",
        "escort service", "escort services", "porn", "nudes", "one night stand", "strip club",
        "sex party",
    ),
    "hate": (
        "white power", "white pride", "sieg heil", "heil hitler", "race war", "master race",
        "ethnic cleansing", "go back to your country",
    ),
    "alcohol": (
        "open bar", "bottomless brunch", "get drunk", "get wasted", "get hammered", "get smashed",
        "get lit",
        "shots shots", "happy hour specials", "happy hour special", "drink specials",
        "drink special", "drinks specials", "all you can drink", "booze cruise", "beer pong",
        "drinking game", "drinking games", "keg stand", "byob", "bring your own booze",
        "bring your own bottle", "drinks on us", "drinks are on us", "drinks on the house",
        "first round on us", "shots on us",
    ),
    "firearms": (
        "guns", "gun show", "gun range", "firearm", "firearms", "ammo", "ammunition", "rifle",
        "rifles", "handgun", "handguns", "pistol", "pistols", "shotgun", "shotguns", "ar-15",
        "glock", "glocks", "concealed carry", "shooting range",
    ),
    "tobacco": (
        "cigar", "cigars", "cigarette", "cigarettes", "cigs", "vape", "vapes", "vaping",
        "e-cig", "e-cigs", "e-cigarette", "e-cigarettes", "hookah", "shisha", "juul", "nicotine",
        "snus", "chewing tobacco", "rolling tobacco", "smoke shop",
    ),
    "cannabis": (
        "weed", "cannabis", "marijuana", "thc", "cbd", "420", "edibles", "pre-roll", "pre-rolls",
        "dispensary", "ganja", "kush", "stoner", "stoners", "bong", "bongs",
    ),
    "drugs": (
        "mdma", "pop molly", "popping molly", "take molly", "shrooms", "magic mushrooms",
        "psilocybin", "psychedelics", "psychedelic mushrooms", "lsd", "acid trip", "cocaine",
        "ketamine", "ayahuasca", "dmt", "microdose", "microdosing",
    ),
}

# Alcohol is blocked as the pitch, not as the menu: an offer word followed by a drink word,
# optionally with one word and/or a "glass of" between ("free house wine", "unlimited glasses of
# prosecco"). "Natural wine & small plates" passes; "free wine" does not.
ALCOHOL_OFFER_WORDS = (
    "free", "unlimited", "bottomless", "endless", "cheap", "discounted", "half-price",
    "2-for-1", "two-for-one", "buy one get one", "bogo",
)
ALCOHOL_DRINK_WORDS = (
    "drink", "drinks", "booze", "alcohol", "shot", "shots", "beer", "beers", "wine", "wines",
    "cocktail", "cocktails", "mimosa", "mimosas", "margarita", "margaritas", "sangria", "prosecco",
    "champagne", "bubbly", "tequila", "vodka", "whiskey", "whisky", "rum", "sake", "spritz",
    "spritzes", "pint", "pints",
)
_ALCOHOL_CONTAINERS = (
    "glass", "glasses", "bottle", "bottles", "pint", "pints", "round", "rounds", "pitcher",
    "pitchers", "carafe", "carafes", "bucket", "buckets",
)
# Drinks that are not alcohol, so "free soft drinks" is not read as an alcohol pitch.
_NON_ALCOHOLIC_WORDS = ("soft", "non-alcoholic", "alcohol-free", "zero-proof")

# Phrases carrier spam filters and people read as scams.
SPAM_PHRASES = (
    "act now", "winner", "100% free", "click here", "you won", "claim your prize", "cash prize",
    "risk free", "limited time offer", "you've been selected", "you have been selected",
)

# ALL-CAPS words (4+ letters) read as shouting, except acronyms always written in caps and the
# opt-out keywords carriers expect in caps. Being here only allows the capitals: BYOB is still
# blocked as an alcohol call to action by BANNED_TERMS. 3-letter words (NYC, BBQ) are never checked.
CAPS_ALLOWLIST = frozenset({
    "RSVP", "BYOB", "STOP", "HELP", "START", "UNSTOP", "INFO", "LGBTQ", "LGBTQIA", "BIPOC", "AAPI",
})
_CAPS_MIN_LETTERS = 4


# --- Encoding and segments ------------------------------------------------------------------------


def sms_encoding(text: str) -> str:
    """The encoding a carrier will use for the text.

    Args:
        text: The message body.

    Returns:
        "GSM-7" when every character is in the GSM 03.38 basic or extension table, else "UCS-2".
    """
    if all(ch in _GSM7_ALL for ch in text):
        return GSM7
    return UCS2


def _unit_sizes(text: str, encoding: str) -> list[int]:
    """Units each character takes: septets for GSM-7, UTF-16 code units for UCS-2."""
    if encoding == GSM7:
        return [2 if ch in _GSM7_DOUBLE else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def sms_segments(text: str) -> int:
    """How many SMS segments a carrier bills for the text.

    GSM-7 fits 160 septets in one message and 153 per segment once split; UCS-2 fits 70 and 67
    UTF-16 code units. An extension character (ESC pair) or a surrogate pair is never split, so
    when it would straddle a boundary it moves whole to the next segment.

    Args:
        text: The message body.

    Returns:
        The number of segments; 0 for an empty string (Twilio refuses an empty body with error
        21602, so nothing is sent or billed).
    """
    encoding = sms_encoding(text)
    sizes = _unit_sizes(text, encoding)
    total = sum(sizes)
    if total == 0:
        return 0
    single, per_segment = SEGMENT_LIMITS[encoding]
    if total <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > per_segment:
            segments, used = segments + 1, 0
        used += size
    return segments


def normalize_gsm(text: str) -> str:
    """Replace typographic characters with their GSM-7 look-alikes, as Twilio Smart Encoding does.

    Composes the text first (NFC), so an "e" followed by a combining accent becomes the GSM "é".
    Emoji and letters outside GSM (ç, á, ł …) are left alone.

    Args:
        text: The message body.

    Returns:
        The text with curly quotes, dashes, ellipses, odd spaces and fullwidth ASCII replaced, and
        invisible format characters removed (`strip_invisible`).
    """
    return unicodedata.normalize("NFC", strip_invisible(text)).translate(_GSM_TRANSLATION)


# --- Emoji ----------------------------------------------------------------------------------------


def _in_ranges(cp: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    """Whether the code point falls in one of the inclusive ranges."""
    return any(low <= cp <= high for low, high in ranges)


def _is_pictographic(ch: str) -> bool:
    """Whether the character can start an emoji (Extended_Pictographic)."""
    return _in_ranges(ord(ch), EXTENDED_PICTOGRAPHIC)


def _is_skin_tone(ch: str) -> bool:
    """Whether the character is a Fitzpatrick skin-tone modifier."""
    return 0x1F3FB <= ord(ch) <= 0x1F3FF


def _is_regional_indicator(ch: str) -> bool:
    """Whether the character is a flag letter (regional indicator)."""
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _is_tag(ch: str) -> bool:
    """Whether the character is a tag (used by subdivision flags such as England's)."""
    return 0xE0020 <= ord(ch) <= 0xE007F


def _is_modifier(ch: str) -> bool:
    """Whether the character attaches to the emoji before it (selector, skin tone, keycap, tag)."""
    return ch in (_VS15, _VS16, _KEYCAP) or _is_skin_tone(ch) or _is_tag(ch)


def _drawn_as_emoji(ch: str) -> bool:
    """Whether the character is drawn as an emoji on its own, without U+FE0F."""
    cp = ord(ch)
    if cp > 0xFFFF:
        # Nearly everything outside the BMP defaults to emoji, and phones draw the rest as emoji too.
        return _is_pictographic(ch) or _is_skin_tone(ch)
    return _in_ranges(cp, EMOJI_PRESENTATION_BMP)


def _emoji_cluster(text: str, start: int) -> tuple[int, bool]:
    """End of the emoji cluster at start, and whether it shows as an emoji."""
    n = len(text)
    ch = text[start]
    if _is_regional_indicator(ch):
        # Two flag letters make one flag; a lone one still shows as a boxed letter emoji.
        end = start + 2 if start + 1 < n and _is_regional_indicator(text[start + 1]) else start + 1
        return end, True
    if ch in _KEYCAP_BASES:
        end = start + 1
        if end < n and text[end] == _VS16:
            end += 1
        if end < n and text[end] == _KEYCAP:
            return end + 1, True
        return start + 1, False
    if not (_is_pictographic(ch) or _is_skin_tone(ch)):
        return start + 1, False
    emoji = _drawn_as_emoji(ch)
    end = start + 1
    while True:
        while end < n and _is_modifier(text[end]):
            if text[end] == _VS15:
                emoji = False  # text presentation explicitly asked for
            elif not _is_tag(text[end]):
                emoji = True
            end += 1
        if end + 1 < n and text[end] == _ZWJ and _is_pictographic(text[end + 1]):
            # A ZWJ sequence (👨‍👩‍👧, 🏳️‍🌈) is one picture on screen.
            emoji = True
            end += 2
            continue
        return end, emoji


def count_emoji(text: str) -> int:
    """Count emoji as a person sees them.

    A ZWJ sequence (👨‍👩‍👧), a flag (🇺🇸, or England's tag sequence), a keycap (1️⃣) and an emoji with a
    skin tone or variation selector each count as one. Text-style symbols (©, ™, a bare ❤ without
    U+FE0F) do not.

    Args:
        text: The message body.

    Returns:
        The number of emoji.
    """
    if text.isascii():
        # Every emoji (keycaps included) needs a non-ASCII code point; most messages are plain ASCII.
        return 0
    count, i = 0, 0
    while i < len(text):
        i, is_emoji = _emoji_cluster(text, i)
        count += is_emoji
    return count


# --- Invisible characters -------------------------------------------------------------------------

# Unicode 15 format characters (General_Category=Cf): direction controls, zero-width characters, the
# soft hyphen, the byte-order mark, tags … Listed (not computed from unicodedata at import, which
# takes 0.2 s) like the emoji tables above; a test checks them against the running Python's data.
FORMAT_CHARACTER_RANGES = (
    (0x00AD, 0x00AD), (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x180E, 0x180E), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x2064), (0x2066, 0x206F), (0xFEFF, 0xFEFF), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD),
    (0x110CD, 0x110CD), (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
)
# Characters outside Cf that are just as hidden: control characters (C0 but tab, newline and carriage
# return; DEL; C1, e.g. U+009B, which starts a terminal escape) and letters that draw nothing (the
# combining grapheme joiner, the Hangul fillers people use as "blank" names, Khmer's invisible vowels,
# Mongolian variation selectors). Emoji variation selectors (U+FE0E, U+FE0F) are not listed: they belong
# to the emoji they follow.
OTHER_INVISIBLE_RANGES = (
    (0x0000, 0x0008), (0x000B, 0x000C), (0x000E, 0x001F), (0x007F, 0x009F), (0x034F, 0x034F),
    (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180D), (0x180F, 0x180F), (0x3164, 0x3164),
    (0xFFA0, 0xFFA0),
)
_FORMAT_CHARACTER_RE = re.compile(
    "[" + "".join(f"\\U{low:08x}-\\U{high:08x}"
                  for low, high in FORMAT_CHARACTER_RANGES + OTHER_INVISIBLE_RANGES) + "]"
)
# The ASCII members of the set above: the one check plain-ASCII text needs.
_ASCII_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BLACK_FLAG = "\U0001F3F4"  # the base of the tag-sequence flags (England, Scotland, Wales)
_CANCEL_TAG = "\U000E007F"
_TAG_LETTERS_RE = re.compile("[\U000E0020-\U000E007E]+")


def _is_emoji_part(ch: str) -> bool:
    """Whether the character can end the emoji before a joining ZWJ (a picture, a selector, a skin tone)."""
    return _is_pictographic(ch) or _is_skin_tone(ch) or ch == _VS16


def _tag_flag_end(text: str, index: int) -> int:
    """If a whole tag flag (U+1F3F4, tag letters, U+E007F) has its tags start at index, the index after it, else 0."""
    if index == 0 or text[index - 1] != _BLACK_FLAG:
        return 0
    letters = _TAG_LETTERS_RE.match(text, index)
    if letters is None or letters.end() >= len(text) or text[letters.end()] != _CANCEL_TAG:
        return 0
    return letters.end() + 1


def find_invisible(text: str) -> list[int]:
    """Where the text holds an invisible format character that does not belong to an emoji.

    Format characters (Unicode category Cf) are the bidirectional controls (U+202A-U+202E,
    U+2066-U+2069) that can show a message backwards, zero-width spaces and joiners, the soft
    hyphen, the byte-order mark and the rest of Cf. Control characters and letters that draw
    nothing (OTHER_INVISIBLE_RANGES) count too. Two uses are kept, because they draw one
    emoji: a ZWJ between two emoji (👨‍👩‍👧), and the tag characters of a flag such as England's.

    Args:
        text: Any text, e.g. a first name or an event name.

    Returns:
        The indices of the characters to remove, in order ([] for plain ASCII).
    """
    if text.isascii() and not _ASCII_CONTROL_RE.search(text):
        return []  # the common case: ASCII holds no format characters, only the control characters
    found = []
    last = len(text) - 1
    flag_end = 0  # the tags before this index belong to a whole flag
    for match in _FORMAT_CHARACTER_RE.finditer(text):
        i = match.start()
        ch = text[i]
        if i < flag_end:
            continue
        if ch == _ZWJ and 0 < i < last and _is_emoji_part(text[i - 1]) and _is_pictographic(text[i + 1]):
            continue
        if 0xE0020 <= ord(ch) <= 0xE007F:
            flag_end = _tag_flag_end(text, i)
            if flag_end:
                continue
        found.append(i)
    return found


def strip_invisible(text: str) -> str:
    """The text without invisible format characters (see `find_invisible`), emoji kept whole.

    Args:
        text: Any text, e.g. a first name, an event name or a description.

    Returns:
        The text with bidirectional controls, zero-width characters, every other Unicode format
        character, control characters (but tab, line feed, carriage return) and blank letters
        removed, except a ZWJ inside an emoji sequence and the tags of a flag emoji.
    """
    if not _FORMAT_CHARACTER_RE.search(text):
        return text  # the common case, without building a list
    positions = find_invisible(text)
    if not positions:
        return text
    drop = set(positions)
    return "".join(ch for index, ch in enumerate(text) if index not in drop)


# --- Compliance check -----------------------------------------------------------------------------


def _phrase_pattern(phrase: str) -> str:
    """Regex for a listed phrase: any spaces or hyphens between words, optional hyphen inside one."""
    words = phrase.split()
    return r"[\s-]+".join(r"[\s-]?".join(re.escape(part) for part in word.split("-")) for word in words)


def _whole_words(phrases) -> re.Pattern:
    """One case-insensitive, whole-word regex matching any of the phrases."""
    ordered = sorted(phrases, key=len, reverse=True)  # longest first, so "e-cigarettes" beats "e-cig"
    alternatives = "|".join(_phrase_pattern(p) for p in ordered)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


_BANNED_RES = {category: _whole_words(terms) for category, terms in BANNED_TERMS.items()}
_ALCOHOL_PITCH_RE = re.compile(
    r"(?<!\w)(?:{offer})[\s-]+"
    r"(?:(?!(?:{non_alcoholic})(?!\w))[^\W\d_]+[\s-]+)?"
    r"(?:(?:{containers})[\s-]+of[\s-]+)?"
    r"(?:{drink})(?!\w)".format(
        offer="|".join(_phrase_pattern(w) for w in ALCOHOL_OFFER_WORDS),
        non_alcoholic="|".join(_phrase_pattern(w) for w in _NON_ALCOHOLIC_WORDS),
        containers="|".join(_ALCOHOL_CONTAINERS),
        drink="|".join(sorted(ALCOHOL_DRINK_WORDS, key=len, reverse=True)),
    ),
    re.IGNORECASE,
)
_SPAM_PHRASES_RE = _whole_words(SPAM_PHRASES)

# A contact point other than the booking link, found by its shape rather than a list of known
# top-level domains (a list goes stale, and an injection can use any of the 1,500 endings):
_URL_RE = re.compile(
    r"\b[^\W\d_][\w+.-]*://\S+"  # any scheme: https://, http://, ftp:// …
    r"|\bwww\d{0,3}\.\S+"  # www.example.anything
    # label.label where a later label starts with two letters of any script: evil.to/x, t.me/evil,
    # wa.me/1212…, cucu.li, bit.ly, hello@cucu.li; but not e.g., a.m., J.R., 7.30pm, 4.5 or $12.99.
    r"|(?<![\w.-])[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2}[\w-]*(?:\.[\w-]+)*(?:[/?#]\S*)?"
    r"|(?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])(?::\d+)?(?:/\S*)?"  # an IP address: 10.0.0.7/pay
    r"|(?<![\w@])@[^\W\d_][\w.]*",  # a messaging handle: @evil (but "Dinner @7pm" is a time)
)
# Dots that browsers and phones read as the dot of a domain name; the link scan treats them as ".".
_DOT_LOOK_ALIKES = str.maketrans({"\u3002": ".", "\uff61": ".", "\ufe52": ".", "\u2024": "."})

# A run of digits and the separators people write phone numbers with: +1 (646) 555-0142, 212.555.0199.
# A colon only hides a run after a digit (the minutes of 19:30, a port): after a letter it is a tappable
# number, as in tel:+12125550199, sms:2125550199 or "call:2125550199".
_DIGIT_RUN_RE = re.compile(
    r"(?<![\w$€£¥.,/#%+-])(?<!\d:)\+?\(?\d(?:[\d().-]|[ \u00a0](?=[\d(]))*\d\)?(?![\w/:%])"
)
_PHONE_MIN_DIGITS = 7
# Shapes of dates that also are digit runs: 2027-01-03, 12-05-2026, 5.12.26.
_DATE_SHAPES = ((4, 2, 2), (2, 2, 4), (1, 2, 4), (2, 1, 4), (1, 1, 4), (2, 2, 2), (1, 2, 2), (2, 1, 2), (1, 1, 2))

_URL_TRAILING_PUNCTUATION = ".,!?;:)]'\""

_PLACEHOLDER_RES = (
    re.compile(r"\{\{[^{}\n]{0,40}\}\}"),  # {{first_name}}
    re.compile(r"\$\{[^{}\n]{0,40}\}"),  # ${name}
    re.compile(r"\{\s*(?:[A-Za-z_][\w .-]{0,30})?\}"),  # {name}, {first name}, {}
    re.compile(r"\{\d{1,2}\}"),  # {0}
    re.compile(r"(?<![\w%])%(?:\([A-Za-z_]\w*\))?[sd](?![A-Za-z0-9])"),  # %s, %d, %(name)s
    re.compile(r"(?<![@#\w/.])[A-Za-z]+(?:_[A-Za-z]+)+\b"),  # first_name, FIRST_NAME (not @handles)
)
_BRACKETED_RE = re.compile(r"\[([^\[\]\n]{1,30})\]|<([^<>\n]{1,30})>")
_SLOT_CONTENT_RE = re.compile(r"\s*[A-Za-z_][\w ]*\s*")
_PLACEHOLDER_WORD_RE = _whole_words(PLACEHOLDER_WORDS)

_WORD_RE = re.compile(r"[^\W\d_]+")


def _mask(text: str, spans) -> str:
    """The text with each (start, end) span blanked out, keeping every other position in place."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _unique(words) -> list[str]:
    """The words without repeats, ignoring case, each in its first spelling."""
    first_spelling: dict[str, str] = {}
    for word in words:
        first_spelling.setdefault(word.lower(), word)
    return list(first_spelling.values())


def _link_spans(message: str, link: str) -> list[tuple[int, int]]:
    """Where the booking link appears as a whole link (not as the start of a longer URL)."""
    # Only trailing punctuation may follow, then a space or the end: ".../123" inside ".../1234"
    # or ".../123?ref=x" is a different link.
    pattern = re.escape(link) + r"(?=[.,!?;:)\]'\"]*(?:\s|$))"
    return [m.span() for m in re.finditer(pattern, message)]


def _foreign_links(masked: str) -> list[re.Match]:
    """Every URL-looking token (scheme, www., label.label, IP address, @handle) left once the booking link is blanked out."""
    # Same length after the translation, so the matches' spans are spans of `masked`.
    return list(_URL_RE.finditer(masked.translate(_DOT_LOOK_ALIKES)))


def _phone_numbers(text: str) -> list[re.Match]:
    """Every digit run that reads as a phone number: 7 or more digits, and not a date or a decimal."""
    found = []
    for match in _DIGIT_RUN_RE.finditer(text):
        run = match.group()
        groups = re.findall(r"\d+", run)
        if sum(map(len, groups)) < _PHONE_MIN_DIGITS:
            continue
        separators = set(re.sub(r"[\d+()]", "", run))
        if not run.startswith(("+", "(")):
            if separators == {"."} and len(groups) == 2:
                continue  # a decimal number: 3.14159265
            if separators <= {"-", "."} and tuple(map(len, groups)) in _DATE_SHAPES:
                continue  # a date: 2027-01-03, 12-05-2026
            if separators & {" ", "\u00a0"} and any(len(group) < 3 for group in groups[1:]):
                continue  # spaced small numbers: "Dec 12 2026 10 seats"
        found.append(match)
    return found


def _check_link(message: str, link: str, link_spans, foreign) -> list[str]:
    """Failures of the "booking link once, last, and alone" rule."""
    failures = []
    if not link_spans:
        failures.append(f"link: the booking link {link} is missing; it must appear once, at the end")
    elif len(link_spans) > 1:
        failures.append(
            f"link: the booking link appears {len(link_spans)} times; it must appear exactly once, at the end"
        )
    elif link_spans[0][1] != len(message.rstrip()):
        failures.append("link: the booking link must be the last thing in the message")
    if foreign:
        tokens = ", ".join(repr(m.group().rstrip(_URL_TRAILING_PUNCTUATION)) for m in foreign)
        failures.append(
            f"link: found another link {tokens}; the booking link must be the only link "
            "(no other URLs, www. addresses, bare domains like evil.to/x or t.me/x, IP addresses, "
            "@handles or shorteners like bit.ly)"
        )
    return failures


def _find_placeholders(text: str) -> list[re.Match]:
    """Unfilled template slots in the text, in order of appearance."""
    matches = [m for pattern in _PLACEHOLDER_RES for m in pattern.finditer(text)]
    for m in _BRACKETED_RE.finditer(text):
        content = m.group(1) or m.group(2)
        # "[sold out]" is text; "[Name]", "<first_name>" and "[insert link]" are slots.
        if _SLOT_CONTENT_RE.fullmatch(content) and ("_" in content or _PLACEHOLDER_WORD_RE.search(content)):
            matches.append(m)
    found, covered_to = [], -1
    # Patterns overlap ("{{name}}" also holds "{name}"): keep the outermost match only.
    for m in sorted(matches, key=lambda m: (m.start(), -m.end())):
        if m.start() >= covered_to:
            found.append(m)
            covered_to = m.end()
    return found


def _mentions_name(text: str, first_name: str) -> bool:
    """Whether the name appears as a whole word, ignoring case."""
    pattern = rf"(?<!\w){re.escape(first_name)}(?!\w)"
    return re.search(pattern, text, re.IGNORECASE) is not None


def _find_banned(text: str) -> dict[str, list[str]]:
    """Banned terms found, by SHAFT category, each term once in order of appearance."""
    found: dict[str, list[str]] = {}
    for category, pattern in _BANNED_RES.items():
        matches = [m.group() for m in pattern.finditer(text)]
        if category == "alcohol":
            matches += [m.group() for m in _ALCOHOL_PITCH_RE.finditer(text)]
        if matches:
            found[category] = _unique(matches)
    return found


def _check_spam(text: str) -> list[str]:
    """Failures of the spam-trigger rule."""
    failures = []
    shouting = [
        word for word in _WORD_RE.findall(text)
        if len(word) >= _CAPS_MIN_LETTERS and word.isupper() and word not in CAPS_ALLOWLIST
    ]
    if shouting:
        words = ", ".join(dict.fromkeys(shouting))
        failures.append(f"spam: ALL-CAPS words read as shouting ({words}); write them in normal case")
    if re.search(r"!{3,}", text):
        failures.append("spam: '!!!' (three or more exclamation marks in a row) looks like spam; use one")
    if re.search(r"\${3,}", text):
        failures.append("spam: '$$$' looks like spam; write the actual price")
    phrases = _unique(m.group() for m in _SPAM_PHRASES_RE.finditer(text))
    if phrases:
        quoted = ", ".join(repr(p) for p in phrases)
        failures.append(f"spam: spam-trigger phrase {quoted}; carrier filters block these")
    return failures


def check_message(
    message: str,
    *,
    first_name: str | None,
    link: str,
    max_chars: int = 180,
    max_emoji: int = 1,
    max_segments: int = 3,
) -> list[str]:
    """Check a finished SMS (link already appended) against the carrier and house rules.

    Args:
        message: The full message as it will be sent, ending with the booking link.
        first_name: The recipient's first name; None or "" skips the first-name rule.
        link: The booking link, e.g. "https://cucu.li/bookings/123".
        max_chars: The most characters allowed, link included.
        max_emoji: The most emoji allowed (a ZWJ sequence or flag counts as one).
        max_segments: The most SMS segments allowed.

    Returns:
        Readable failures, each "rule_id: explanation" with rule_id from RULES, in RULES order;
        an empty list means the message passes.

    Raises:
        ValueError: If link is empty (without it the only-one-link guard could not work).
    """
    if not link:
        raise ValueError("check_message needs the booking link, got an empty one")
    # Word rules read the GSM-normalised text, so curly apostrophes or fullwidth letters can't
    # slip a term past them; size rules read the message exactly as it will be sent.
    text = normalize_gsm(message)
    link_spans = _link_spans(text, link)
    without_link = _mask(text, link_spans)
    foreign = _foreign_links(without_link)
    # URLs are blanked out before the word rules, so a path like /FREE_STUFF is reported once, as a link,
    # and before the phone rule, so wa.me/12125550199 is one link and not also a phone number.
    words_only = _mask(without_link, [m.span() for m in foreign])
    phones = _phone_numbers(words_only)
    placeholders = _find_placeholders(words_only)
    # Placeholders too, so "[FIRST NAME]" is one placeholder failure and not also shouting.
    prose = _mask(words_only, [m.span() for m in placeholders])

    failures = []
    if len(message) > max_chars:
        failures.append(f"length: {len(message)} characters including the link, the limit is {max_chars}")

    failures += _check_link(text, link, link_spans, foreign)

    if phones:
        numbers = ", ".join(repr(m.group().strip()) for m in phones)
        failures.append(
            f"phone: found a phone number {numbers}; the booking link must be the only contact point"
        )

    invisible = find_invisible(message)
    if invisible:
        codes = ", ".join(dict.fromkeys(f"U+{ord(message[i]):04X}" for i in invisible))
        failures.append(
            f"invisible: hidden format characters ({codes}) such as direction or zero-width marks; "
            "remove them (strip_invisible)"
        )

    if placeholders:
        tokens = ", ".join(m.group() for m in placeholders)
        failures.append(f"placeholder: unfilled template placeholder {tokens}; fill it in or remove it")

    name = normalize_gsm(first_name or "").strip()
    if name and not _mentions_name(text, name):
        failures.append(f"first_name: the recipient's first name '{name}' does not appear in the message")

    emoji = count_emoji(message)
    if emoji > max_emoji:
        failures.append(f"emoji: {emoji} emoji, the limit is {max_emoji}")

    segments = sms_segments(message)
    if segments > max_segments:
        encoding = sms_encoding(message)
        detail = f"segments: {segments} SMS segments ({encoding}), the limit is {max_segments}"
        if encoding == UCS2:
            culprits = "".join(dict.fromkeys(ch for ch in message if ch not in _GSM7_ALL))
            detail += f"; the characters {culprits!r} force UCS-2 (70 per segment instead of 160)"
            if sms_encoding(text) == GSM7:
                detail += f"; normalize_gsm() would make it {sms_segments(text)}"
        failures.append(detail)

    for category, terms in _find_banned(prose).items():
        quoted = ", ".join(repr(t) for t in terms)
        failures.append(
            f"banned_content: {category} content {quoted}; carriers filter SHAFT content "
            "(sex, hate, alcohol, firearms, tobacco, plus cannabis and drugs)"
        )

    failures += _check_spam(prose)
    return failures


def rule_of(failure: str) -> str:
    """The rule id a check_message failure starts with.

    Args:
        failure: One string returned by check_message.

    Returns:
        Its rule id, one of RULES.

    Raises:
        ValueError: If the string does not start with a known rule id and a colon.
    """
    rule, colon, _ = failure.partition(":")
    if not colon or rule not in RULES:
        raise ValueError(f"not a check_message failure: {failure!r}")
    return rule
