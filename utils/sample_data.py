"""Sample data: realistic, slightly dirty users.json, events.json and messages.json for the pipeline.

Run `python -m utils.sample_data --users 500 --events 80 --seed 42 --out data/raw`. The same seed
and --now always give byte-identical files. See docs/sample-data.md.
"""

import argparse
import bisect
import math
import random
import sys
import time
import unicodedata
import uuid
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple, Optional, Sequence

from utils.cli import step_main
from utils.dates import parse_iso_date, parse_now, to_iso, utc_now
from utils.errors import PipelineError
from utils.jsonio import save_json_atomic
from utils.paths import DEFAULT_DATA_DIR, EVENTS_FILE, MESSAGES_FILE, USERS_FILE

DEFAULT_USERS = 500
DEFAULT_EVENTS = 80
DEFAULT_SEED = 42
DEFAULT_OUT_DIR = DEFAULT_DATA_DIR / "raw"
MAX_RECORDS = 2_000_000  # ObjectId counters are 24-bit; far above any useful sample size

DIRT_RATE = 0.03
MESSAGED_USER_RATE = 0.15
NEW_USER_RATE = 0.08
PAST_EVENT_RATE = 0.70
SIGNUP_SPAN_DAYS = 3 * 365
PAST_EVENT_SPAN_DAYS = 730
FUTURE_EVENT_SPAN_DAYS = 60
BOOKING_URL = "https://cucu.li/bookings/"

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_DAY_MS = 86_400_000

# ---------------------------------------------------------------------------------------------
# Vocabularies. Weighted tables are (value, weight) pairs; the order is fixed so output never
# depends on hashing.
# ---------------------------------------------------------------------------------------------

FEMALE_NAMES = (
    "Ann", "Sarah", "Emily", "Jessica", "Ashley", "Olivia", "Emma", "Sophia", "Mia", "Isabella",
    "Ava", "Chloé", "Zoë", "Maya", "Priya", "Ananya", "Aisha", "Fatima", "Mei", "Lin", "Ji-woo",
    "Min-ji", "Yuki", "Hana", "Sofia", "Valentina", "Camila", "Lucía", "Gabriela", "María", "Ana",
    "Daniela", "Nicole", "Rachel", "Rebecca", "Leah", "Hannah", "Naomi", "Miriam", "Tamar",
    "Keisha", "Aaliyah", "Imani", "Nia", "Jasmine", "Tiana", "Grace", "Claire", "Kate", "Megan",
    "Lauren", "Natalie", "Alexandra", "Victoria", "Elena", "Anastasia", "Natasha", "Irina",
    "Giulia", "Francesca", "Chiara", "Siobhan", "Aoife", "Niamh", "Amara", "Adaeze", "Zainab",
    "Layla", "Nour", "Yasmin", "Sana", "Ritu", "Deepa", "Kavya", "Thuy", "Linh", "Carmen", "Rosa",
    "Esther", "Julia", "Laura", "Brianna", "Danielle", "Vanessa",
)
MALE_NAMES = (
    "James", "Michael", "David", "Daniel", "Matthew", "Ryan", "Kevin", "Brian", "Jason", "Eric",
    "Andrew", "Chris", "Josh", "Ben", "Sam", "Alex", "Jake", "Noah", "Liam", "Ethan", "Lucas",
    "Mateo", "Diego", "Carlos", "José", "Luis", "Juan", "Miguel", "Andrés", "Javier", "Rafael",
    "Wei", "Jun", "Hao", "Kenji", "Hiroshi", "Min-jun", "Seo-jun", "Arjun", "Rohan", "Vikram",
    "Rahul", "Sanjay", "Omar", "Ahmed", "Karim", "Youssef", "Malik", "Darnell", "Andre", "Marcus",
    "Jamal", "Kwame", "Kofi", "Chinedu", "Emeka", "Dmitri", "Sergei", "Ivan", "Nikolai", "Marco",
    "Luca", "Giovanni", "Matteo", "Sean", "Conor", "Patrick", "Declan", "Eli", "Avi", "Noam",
    "Ari", "Thomas", "Henry", "Oliver", "Felix", "Theo", "Nate", "Tomás", "Minh", "Duc", "Jerome",
)
NEUTRAL_NAMES = (
    "Alex", "Sam", "Jordan", "Taylor", "Riley", "Casey", "Morgan", "Jamie", "Avery", "Quinn",
    "Rowan", "Skyler", "Charlie", "River", "Sasha", "Robin", "Ash", "Kai",
)
LAST_NAMES = (
    "Lee", "Kim", "Park", "Chen", "Wang", "Li", "Zhang", "Liu", "Huang", "Wong", "Nguyen", "Tran",
    "Pham", "Patel", "Shah", "Singh", "Gupta", "Sharma", "Iyer", "Rao", "Das", "Khan", "Hassan",
    "Ali", "Rahman", "Haddad", "Nasser", "Cohen", "Levy", "Goldberg", "Friedman", "Katz",
    "Schwartz", "Rosen", "Shapiro", "Klein", "Smith", "Johnson", "Williams", "Brown", "Jones",
    "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Martin", "Jackson",
    "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
    "Wright", "Scott", "Green", "Baker", "Adams", "Nelson", "Hill", "Campbell", "Mitchell",
    "Roberts", "Carter", "Phillips", "Evans", "Turner", "Parker", "Collins", "Edwards", "Stewart",
    "Morris", "Murphy", "Cook", "Rogers", "Cooper", "Reed", "Bailey", "Bell", "Kelly", "Howard",
    "Ward", "Richardson", "Brooks", "Bennett", "Gray", "Hughes", "Price", "Foster", "Garcia",
    "Martinez", "Rodriguez", "Hernandez", "Lopez", "Gonzalez", "Perez", "Sanchez", "Ramirez",
    "Torres", "Flores", "Rivera", "Gomez", "Díaz", "Reyes", "Cruz", "Morales", "Ortiz", "Castillo",
    "Jiménez", "Vargas", "Romero", "Mendoza", "Santos", "Rossi", "Russo", "Esposito", "Bianchi",
    "Romano", "Ricci", "Marino", "Greco", "Conti", "DeLuca", "O'Brien", "O'Connor", "Sullivan",
    "McCarthy", "Byrne", "Walsh", "Kennedy", "Murray", "Quinn", "Ivanov", "Petrov", "Volkov",
    "Novak", "Kowalski", "Okafor", "Adeyemi", "Mensah", "Owusu", "Diallo", "Baptiste", "Pierre",
    "Joseph", "Tanaka", "Sato", "Suzuki", "Yamamoto", "Müller", "Schmidt", "Fischer", "Larsen",
    "Dubois", "Laurent", "Moreau", "Abramson", "Berger",
)
EMAIL_DOMAINS = (("example.com", 60), ("example.org", 25), ("example.net", 15))
NYC_AREA_CODES = (("212", 4), ("646", 4), ("917", 5), ("718", 3), ("347", 3), ("929", 2), ("332", 1))

HOME_NEIGHBORHOODS = (
    ("West Village", 4), ("East Village", 5), ("Lower East Side", 4), ("SoHo", 2), ("Tribeca", 2),
    ("Chelsea", 4), ("Flatiron", 2), ("Gramercy", 2), ("Murray Hill", 4), ("Midtown", 2),
    ("Hell's Kitchen", 4), ("Upper West Side", 5), ("Upper East Side", 5), ("Harlem", 4),
    ("Washington Heights", 3), ("FiDi", 2), ("Battery Park City", 1), ("Nolita", 1),
    ("Chinatown", 1), ("Kips Bay", 2), ("Williamsburg", 5), ("Greenpoint", 3), ("Bushwick", 4),
    ("Park Slope", 4), ("Prospect Heights", 3), ("Crown Heights", 4), ("Fort Greene", 2),
    ("Clinton Hill", 2), ("Bed-Stuy", 4), ("DUMBO", 1), ("Brooklyn Heights", 2), ("Cobble Hill", 1),
    ("Carroll Gardens", 2), ("Red Hook", 1), ("Astoria", 5), ("Long Island City", 4),
    ("Sunnyside", 2), ("Jackson Heights", 2), ("Ridgewood", 2), ("Forest Hills", 1),
    ("Mott Haven", 1), ("Riverdale", 1), ("St. George", 1),
)
WORK_NEIGHBORHOODS = (
    ("Midtown", 10), ("FiDi", 6), ("Flatiron", 6), ("Chelsea", 4), ("SoHo", 3), ("Tribeca", 2),
    ("Hudson Yards", 4), ("Union Square", 3), ("Midtown East", 3), ("DUMBO", 2),
    ("Downtown Brooklyn", 2), ("Long Island City", 2), ("Williamsburg", 2), ("Upper East Side", 2),
    ("Upper West Side", 1), ("Harlem", 1), ("Brooklyn Navy Yard", 1), ("Meatpacking District", 1),
    ("Murray Hill", 1), ("West Village", 1),
)
OCCUPATIONS = (
    ("Software Engineer", 8), ("Product Manager", 5), ("Designer", 4), ("UX Researcher", 2),
    ("Data Scientist", 4), ("Marketing Manager", 4), ("Consultant", 4), ("Financial Analyst", 4),
    ("Investment Banker", 2), ("Lawyer", 4), ("Paralegal", 1), ("Physician", 2), ("Nurse", 3),
    ("Pharmacist", 1), ("Teacher", 3), ("Professor", 1), ("Graduate Student", 3), ("Architect", 2),
    ("Journalist", 2), ("Editor", 2), ("Writer", 2), ("Photographer", 1), ("Actor", 1),
    ("Musician", 1), ("Chef", 1), ("Sommelier", 1), ("Bartender", 1), ("Entrepreneur", 3),
    ("Startup Founder", 2), ("Sales Director", 2), ("Account Executive", 3), ("Recruiter", 2),
    ("HR Manager", 1), ("Real Estate Agent", 2), ("Accountant", 2), ("Social Worker", 1),
    ("Therapist", 2), ("Nonprofit Director", 1), ("Event Planner", 1), ("Fashion Buyer", 1),
    ("Copywriter", 1), ("Civil Engineer", 1), ("Urban Planner", 1), ("Dentist", 1),
    ("Veterinarian", 1), ("Personal Trainer", 1), ("Art Director", 1), ("Publicist", 1),
)
INTERESTS = (
    ("wine tasting", 6), ("craft beer", 3), ("cocktails", 4), ("coffee", 3), ("jazz", 4),
    ("live music", 5), ("indie rock", 2), ("hip hop", 2), ("classical music", 2), ("theater", 3),
    ("comedy", 3), ("film", 4), ("art", 4), ("museums", 3), ("photography", 3), ("design", 2),
    ("fashion", 2), ("reading", 4), ("book club", 2), ("writing", 2), ("hiking", 4),
    ("running", 4), ("cycling", 2), ("yoga", 4), ("climbing", 2), ("tennis", 2),
    ("board games", 3), ("trivia", 2), ("tech", 4), ("startups", 3), ("investing", 2),
    ("cooking", 5), ("baking", 3), ("travel", 5), ("languages", 2), ("dancing", 2), ("salsa", 1),
    ("volunteering", 2), ("gardening", 1), ("podcasts", 2), ("meditation", 2), ("basketball", 2),
    ("soccer", 2), ("food", 5),
)
CUISINES = (
    ("Italian", 6), ("Japanese", 5), ("Mexican", 5), ("Chinese", 4), ("Korean", 4), ("Thai", 4),
    ("Indian", 4), ("French", 3), ("Mediterranean", 4), ("Middle Eastern", 3), ("Ethiopian", 1),
    ("Vietnamese", 2), ("Peruvian", 1), ("Spanish", 2), ("Greek", 2), ("Caribbean", 2),
    ("Southern", 1), ("Sichuan", 2), ("Georgian", 1), ("West African", 1), ("Vegan", 2),
)
ALLERGIES = (
    ("vegetarian", 5), ("vegan", 2), ("pescatarian", 2), ("gluten-free", 3), ("dairy-free", 2),
    ("shellfish", 3), ("peanuts", 3), ("tree nuts", 2), ("kosher", 1), ("halal", 1),
    ("no pork", 1), ("eggs", 1),
)
GENDERS = (("Female", 49), ("Male", 45), ("Non-binary", 6))
RELATIONSHIP_STATUSES = (
    ("Single", 55), ("In a relationship", 20), ("Married", 15), ("Engaged", 4), ("Divorced", 4),
    ("It's complicated", 2),
)
TABLE_PREFERENCES_SINGLE = (("Singles table", 45), ("Mixed table", 35), ("No preference", 20))
TABLE_PREFERENCES_PARTNERED = (("Couples table", 35), ("Mixed table", 45), ("No preference", 20))
TABLE_PREFERENCES_OTHER = (("Mixed table", 50), ("No preference", 35), ("Singles table", 15))
PARTNERED = ("In a relationship", "Married", "Engaged")
# Ages 21-70, most members in their late twenties and thirties.
AGES = tuple(
    (age, 3 if age < 25 else 7 if age < 30 else 8 if age < 35 else 6 if age < 40 else
     4 if age < 45 else 3 if age < 50 else 2 if age < 60 else 1)
    for age in range(21, 71)
)

# Event concepts: (name, categories, slot). The slot decides the time of day and weekday.
EVENT_CONCEPTS = (
    ("Natural Wine Supper Club", ("Dinner", "Wine"), "dinner"),
    ("Dumpling Making Night", ("Cooking Class", "Dinner"), "class"),
    ("Startup Founders Dinner", ("Dinner", "Networking"), "dinner"),
    ("Jazz & Small Plates", ("Dinner", "Music"), "dinner"),
    ("Board Game Brunch", ("Brunch", "Games"), "brunch"),
    ("Omakase Counter Night", ("Dinner", "Tasting"), "dinner"),
    ("Taco Crawl", ("Food Crawl", "Drinks"), "drinks"),
    ("Pasta from Scratch", ("Cooking Class",), "class"),
    ("Korean BBQ Feast", ("Dinner",), "dinner"),
    ("Singles Supper", ("Dinner", "Singles"), "dinner"),
    ("Dim Sum Brunch", ("Brunch",), "brunch"),
    ("Ethiopian Feast", ("Dinner",), "dinner"),
    ("Mezcal Tasting", ("Drinks", "Tasting"), "drinks"),
    ("Trivia & Tapas", ("Dinner", "Games"), "dinner"),
    ("Book Club Dinner", ("Dinner", "Books"), "dinner"),
    ("Farm-to-Table Harvest Dinner", ("Dinner",), "dinner"),
    ("Sunset Social", ("Drinks", "Networking"), "drinks"),
    ("Tech & Tacos", ("Dinner", "Networking"), "dinner"),
    ("Comedy Night Dinner", ("Dinner", "Comedy"), "dinner"),
    ("Cheese & Wine Pairing", ("Wine", "Tasting"), "drinks"),
    ("Bagel Brunch & Walk", ("Brunch", "Outdoors"), "brunch"),
    ("Supper in the Garden", ("Dinner", "Outdoors"), "dinner"),
    ("Ramen Night", ("Dinner",), "dinner"),
    ("Sushi Rolling Class", ("Cooking Class",), "class"),
    ("Women in Tech Dinner", ("Dinner", "Networking"), "dinner"),
    ("Creative Minds Dinner", ("Dinner", "Arts"), "dinner"),
    ("Gallery Hop & Dinner", ("Arts", "Dinner"), "dinner"),
    ("Run Club Brunch", ("Brunch", "Fitness"), "brunch"),
    ("Yoga & Brunch", ("Brunch", "Wellness"), "brunch"),
    ("Paint & Sip", ("Arts", "Drinks"), "class"),
    ("Whiskey Tasting", ("Drinks", "Tasting"), "drinks"),
    ("Oyster Happy Hour", ("Drinks",), "drinks"),
    ("Pizza Crawl", ("Food Crawl",), "drinks"),
    ("Chef's Table Tasting Menu", ("Dinner", "Tasting"), "dinner"),
    ("Vegan Feast", ("Dinner",), "dinner"),
    ("Caribbean Cookout", ("Dinner", "Outdoors"), "brunch"),
    ("Georgian Supra", ("Dinner", "Wine"), "dinner"),
    ("Hot Pot Night", ("Dinner",), "dinner"),
    ("Indian Thali Supper", ("Dinner",), "dinner"),
    ("Greek Taverna Night", ("Dinner", "Music"), "dinner"),
    ("Ceviche & Pisco Night", ("Dinner", "Drinks"), "dinner"),
    ("Mediterranean Mezze Evening", ("Dinner",), "dinner"),
    ("Speakeasy Cocktail Night", ("Drinks",), "drinks"),
    ("Language Exchange Dinner", ("Dinner", "Languages"), "dinner"),
)
NAME_PREFIXES = ("Rooftop", "Cozy", "Late-Night", "Candlelit", "Neighborhood", "Secret", "Big Table", "Intimate")
# Fictional venues, each in one neighborhood, as a real venue would be.
VENUES = (
    ("The Copper Spoon", "West Village"), ("Little Fig", "East Village"),
    ("Saltwater Kitchen", "Williamsburg"), ("Bodega Rosa", "Bushwick"),
    ("Maison Lune", "SoHo"), ("Hearth & Vine", "Park Slope"), ("The Long Table", "Chelsea"),
    ("Casa Verde", "Lower East Side"), ("Golden Lotus", "Chinatown"), ("Nonna's Table", "Astoria"),
    ("Smoke & Honey", "Greenpoint"), ("Blue Door Supper Club", "Harlem"),
    ("Marigold", "Jackson Heights"), ("Oak & Ember", "Flatiron"), ("The Pickled Pear", "Fort Greene"),
    ("Tidewater", "FiDi"), ("Café Solstice", "Upper West Side"), ("Juniper Room", "Upper East Side"),
    ("Kettle & Crane", "Long Island City"), ("Second Story", "Tribeca"),
    ("Noodle Lab", "Murray Hill"), ("Sal's Backyard", "Carroll Gardens"),
    ("The Fig Tree", "Prospect Heights"), ("Lantern House", "Crown Heights"),
    ("Paloma", "Bed-Stuy"), ("Harbor Light", "Red Hook"), ("Vinyl & Vino", "Hell's Kitchen"),
    ("Saffron Lane", "Gramercy"), ("Bread & Salt", "Clinton Hill"),
    ("Riverside Loft", "DUMBO"), ("Atlas Social", "Midtown"), ("Mercer Street Kitchen", "Nolita"),
    ("El Patio", "Washington Heights"), ("Kinfolk Table", "Ridgewood"),
    ("The Greenhouse", "Brooklyn Heights"), ("Studio 9", "Kips Bay"),
)
FEATURES = (
    "Vegetarian options", "Vegan options", "Gluten-free options", "BYOB", "Outdoor seating",
    "Wheelchair accessible", "Live music", "Family style", "Communal table", "Rooftop",
    "Prix fixe", "Chef's table", "Cocktail pairing", "Wine pairing", "Icebreaker games",
    "Beginner friendly", "Hosted by a local chef", "Small group",
)
# Who comes to what. A member's pull towards an event (their "affinity") is NOISE_AFFINITY plus
# points for each interest related to the event's categories and features (at most two count), for
# the event being in their home (or work) neighborhood, and for having come to the same concept
# before. RSVPs are drawn by activity weight and kept with probability affinity / MAX_AFFINITY, so a
# member with two related interests who lives there is ~14x likelier to come than one with nothing in
# common. docs/sample-data.md ("How strong the signal is") has the measured effect.
TAG_INTERESTS = {
    "Dinner": ("food",), "Brunch": ("food", "coffee"), "Wine": ("wine tasting",),
    "Drinks": ("cocktails", "craft beer"), "Tasting": ("wine tasting", "food", "cooking"),
    "Music": ("jazz", "live music", "classical music"), "Games": ("board games", "trivia"),
    "Networking": ("tech", "startups", "investing"), "Books": ("reading", "book club", "writing"),
    "Arts": ("art", "museums", "photography", "design"), "Fitness": ("running", "cycling", "hiking"),
    "Wellness": ("yoga", "meditation"), "Outdoors": ("hiking", "gardening", "cycling"),
    "Cooking Class": ("cooking", "baking"), "Food Crawl": ("food", "travel"), "Comedy": ("comedy", "theater"),
    "Singles": ("dancing",), "Languages": ("languages", "travel"),
    "Live music": ("live music", "jazz"), "Wine pairing": ("wine tasting",), "Cocktail pairing": ("cocktails",),
    "Icebreaker games": ("board games",), "Hosted by a local chef": ("cooking",),
}
NOISE_AFFINITY = 0.3
INTEREST_AFFINITY = 1.0      # per related interest, at most MAX_RELATED_INTERESTS of them
MAX_RELATED_INTERESTS = 2
HOME_AFFINITY = 2.0
WORK_AFFINITY = 1.0          # when the event is not in their home neighborhood
HABIT_AFFINITY = 1.0         # they came to an event of the same concept before
#: Chance that a draw is an outside guest; most member draws are turned down, so this is far below
#: the ~3% of RSVPs that end up being guests.
GUEST_DRAW_RATE = 0.006
MAX_AFFINITY = NOISE_AFFINITY + MAX_RELATED_INTERESTS * INTEREST_AFFINITY + HOME_AFFINITY + HABIT_AFFINITY

EVENT_BLURBS = (
    "Good food &amp; better company &mdash; that&#39;s the whole plan.",
    "&quot;The best night of my month&quot; &ndash; one of our regulars.",
    "Expect long tables, shared plates &amp; new friends.",
    "Our host walks you through every course&nbsp;&mdash; no experience needed.",
    "Come solo or bring a friend; we&#39;ll make the introductions.",
    "Seasonal menu, caf&eacute; lights &amp; a playlist you&#39;ll ask about.",
    "Seats are limited, so RSVP early&nbsp;&#x1F37D;",
    "Think of it as a dinner party where you only know the host&hellip; for now.",
)
EVENT_DETAILS = (
    "<b>What&#39;s included:</b> three courses &amp; a welcome drink.",
    "<b>Dress code:</b> come as you are.",
    "<b>Price:</b> $45 per person, tip included.",
    "<b>Dietary needs?</b> Tell us when you RSVP &ndash; we&#39;ll take care of you.",
    "<b>Getting there:</b> 5 minutes from the subway.",
)
SLOT_TIMES = {
    "dinner": ((18, 30), (19, 0), (19, 0), (19, 30), (20, 0)),
    "brunch": ((11, 0), (11, 30), (12, 0), (12, 30)),
    "drinks": ((18, 0), (18, 30), (19, 0), (21, 0)),
    "class": ((14, 0), (18, 30), (19, 0)),
}
# Monday=0 … Sunday=6; social dining happens mostly Thursday to Sunday, brunch only at weekends.
WEEKDAY_WEIGHTS = {
    "dinner": ((0, 1), (1, 2), (2, 3), (3, 5), (4, 6), (5, 6), (6, 3)),
    "brunch": ((5, 1), (6, 1)),
    "drinks": ((1, 1), (2, 2), (3, 4), (4, 5), (5, 3)),
    "class": ((1, 1), (2, 2), (3, 2), (5, 3), (6, 3)),
}
MAX_PARTICIPANTS = (
    (4, 3), (5, 1), (6, 6), (7, 1), (8, 8), (9, 1), (10, 8), (11, 1), (12, 6), (13, 1), (14, 3),
    (15, 2), (16, 3), (17, 1), (18, 2), (19, 1), (20, 4),
)
NUMBER_WORDS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
)
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTH_NAMES = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
CAMPAIGNS = (("Seat The Newcomer", 4), ("Fill the Table", 3), ("Return to Table", 3))
MESSAGE_TEMPLATES = {
    "Seat The Newcomer": (
        "Hey {first}! 👋 Welcome to the table. {event} on {day} at {venue} is a great first night "
        "out - come hungry! {link}",
        "Hi {first}! Your first seat is waiting: {event}, {day}, {neighborhood}. Small group, big flavors. {link}",
    ),
    "Fill the Table": (
        "Hi {first}! Only a few seats left for {event} on {day} at {venue}. Grab yours: {link}",
        "{first}, {event} in {neighborhood} needs a few more foodies for {day}. You in? {link}",
    ),
    "Return to Table": (
        "Hey {first}, it's been a while! {event} on {day} feels very you. Come back to the table: {link}",
        "We miss you, {first}! {event} at {venue} on {day} - your seat is saved. {link}",
    ),
}
AIRTABLE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
REQUIRED_USER_FIELDS = (
    "interests", "phone", "email", "homeNeighborhood", "occupation",
    "gender", "relationshipStatus", "tableTypePreference", "workNeighborhood",
)

# Dirt kinds in priority order: a small dataset gets the first ones, a large one all of them.
USER_DIRT_KINDS = (
    "blank_phone", "missing_field", "interests_string", "invalid_birthday", "duplicate_id",
    "extjson_oid", "extjson_date", "interests_empty", "null_field", "invalid_created_at",
    "whitespace_field", "phone_not_string",
)
EVENT_DIRT_KINDS = (
    "participants_null", "invalid_start_date", "max_participants_string", "extjson_date",
    "missing_start_date", "participants_string", "max_participants_missing", "extjson_number",
    "extjson_oid",
)


class _Table:
    """A weighted table prepared for fast draws (one bisect per draw)."""

    __slots__ = ("values", "cum")

    def __init__(self, pairs: Sequence[tuple[Any, float]]):
        self.values = [value for value, _ in pairs]
        self.cum = list(accumulate(weight for _, weight in pairs))

    def pick(self, rng: random.Random) -> Any:
        return self.values[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]

    def sample(self, rng: random.Random, k: int) -> list:
        """k distinct values, more popular ones more often (k must be small next to the table)."""
        picked: list = []
        while len(picked) < k:
            value = self.pick(rng)
            if value not in picked:
                picked.append(value)
        return picked


_DOMAINS = _Table(EMAIL_DOMAINS)
_AREA_CODES = _Table(NYC_AREA_CODES)
_HOMES = _Table(HOME_NEIGHBORHOODS)
_WORKS = _Table(WORK_NEIGHBORHOODS)
_OCCUPATIONS = _Table(OCCUPATIONS)
_INTERESTS = _Table(INTERESTS)
_CUISINES = _Table(CUISINES)
_ALLERGIES = _Table(ALLERGIES)
_GENDERS = _Table(GENDERS)
_RELATIONSHIPS = _Table(RELATIONSHIP_STATUSES)
_TABLE_SINGLE = _Table(TABLE_PREFERENCES_SINGLE)
_TABLE_PARTNERED = _Table(TABLE_PREFERENCES_PARTNERED)
_TABLE_OTHER = _Table(TABLE_PREFERENCES_OTHER)
_AGES = _Table(AGES)
_MAX_PARTICIPANTS = _Table(MAX_PARTICIPANTS)
_CAMPAIGNS = _Table(CAMPAIGNS)
_WEEKDAYS = {slot: _Table(pairs) for slot, pairs in WEEKDAY_WEIGHTS.items()}


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def _ms_to_datetime(millis: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=millis)


def _datetime_to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _iso_ms(millis: int) -> str:
    return to_iso(_ms_to_datetime(millis))


def _object_id(seconds: int, machine: int, counter: int) -> str:
    """A MongoDB-style ObjectId: creation time, a per-collection random part, a counter."""
    return f"{seconds & 0xFFFFFFFF:08x}{machine:010x}{counter & 0xFFFFFF:06x}"


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _ascii_slug(text: str) -> str:
    """Lower-case ASCII letters, digits and hyphens only (for e-mail local parts)."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return "".join(ch for ch in plain if ch.isalnum() or ch == "-")


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _new_york_utc_offset(day: date) -> timedelta:
    """UTC offset of New York on a given day (US rules since 2007).

    Computed here rather than with zoneinfo so the files are identical on machines without a
    time-zone database or with a different one. Events never start near the 2 a.m. switch.
    """
    dst_start = _nth_weekday(day.year, 3, 6, 2)   # second Sunday of March
    dst_end = _nth_weekday(day.year, 11, 6, 1)    # first Sunday of November
    return timedelta(hours=-4 if dst_start <= day < dst_end else -5)


def _new_york_to_utc_ms(day: date, hour: int, minute: int) -> int:
    local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)
    return _datetime_to_ms(local - _new_york_utc_offset(day))


def _vary_case(rng: random.Random, email: str) -> str:
    """The same address as a person might type it: 'Ann.Lee@Example.com', 'ANN.LEE@…', …"""
    style = rng.random()
    if style < 0.6:
        local, _, domain = email.partition("@")
        return ".".join(part[:1].upper() + part[1:] for part in local.split(".")) + "@" + domain.capitalize()
    if style < 0.85:
        return email[:1].upper() + email[1:]
    return email.upper()


def _as_typed(rng: random.Random, email: str) -> str:
    """An RSVP's e-mail: mostly as registered, ~10% with other capitals, ~1% with stray spaces."""
    if rng.random() < 0.10:
        email = _vary_case(rng, email)
    if rng.random() < 0.01:
        email = " " + email if rng.random() < 0.5 else email + " "
    return email


def _split_slots(rng: random.Random, n: int, quotas: Sequence[tuple[str, float, int]]) -> list[str]:
    """Label n items with exact, seed-shuffled counts: round(share * n), at least the minimum."""
    labels: list[str] = []
    for label, share, minimum in quotas:
        count = min(max(minimum, round(share * n)), n - len(labels))
        labels.extend([label] * count)
    labels.extend(["normal"] * (n - len(labels)))
    rng.shuffle(labels)
    return labels


def _birthday(rng: random.Random, today: date, age: int, feb29_years: Sequence[int]) -> str:
    """An ISO birthday on which someone is exactly `age` years old `today` (a rare Feb 29 one: any age 21-70)."""
    if feb29_years and rng.random() < 0.004:
        year, month, day = rng.choice(feb29_years), 2, 29
    else:
        month = rng.randint(1, 12)
        day = rng.randint(1, 28 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
        year = today.year - age - ((month, day) > (today.month, today.day))
    return to_iso(datetime(year, month, day, tzinfo=timezone.utc))


def _feb29_years(today: date) -> list[int]:
    """Leap years whose Feb 29 birthdays give an age of 21-70 today."""
    years = []
    for year in range(today.year - 71, today.year - 20):
        if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0):
            age = today.year - year - ((today.month, today.day) < (2, 29))
            if 21 <= age <= 70:
                years.append(year)
    return years


# ---------------------------------------------------------------------------------------------
# People
# ---------------------------------------------------------------------------------------------

class _People:
    """Users plus what only the generator needs: sign-up times, activity weights, friend groups."""

    def __init__(self) -> None:
        self.users: list[dict] = []
        self.created_ms: list[int] = []      # ascending: users are in sign-up order
        self.weight_cum: list[float] = []    # cumulative attendance weights in that order
        self.group_of: list[int] = []        # friend group index, or -1
        self.groups: list[list[int]] = []
        self.host_pool: list[int] = []       # HOST and ADMIN users, in sign-up order
        self.host_created_ms: list[int] = []
        self.host_cum: list[float] = []
        self.guest_emails: list[str] = []
        self.interest_sets: list[frozenset[str]] = []   # as generated, before any dirt
        self.homes: list[str] = []
        self.works: list[str] = []
        self.concepts_seen: list[set[str]] = []         # concepts attended so far, in start order


def _make_users(rng: random.Random, n_users: int, now_ms: int) -> _People:
    people = _People()
    today = _ms_to_datetime(now_ms).date()
    feb29 = _feb29_years(today)

    # Sign-up times first, so that users come out in sign-up order, like a MongoDB export.
    n_new = round(NEW_USER_RATE * n_users)
    offsets = [rng.randint(60_000, 30 * _DAY_MS) for _ in range(n_new)]
    # Older sign-ups thin out towards three years ago: the community has been growing.
    offsets += [int(rng.triangular(30, SIGNUP_SPAN_DAYS, 30) * _DAY_MS) for _ in range(n_users - n_new)]
    offsets.sort(reverse=True)
    people.created_ms = [now_ms - offset for offset in offsets]

    machine = rng.getrandbits(40)
    counter = rng.getrandbits(24)
    email_counts: dict[str, int] = {}
    weights: list[float] = []
    for index, created in enumerate(people.created_ms):
        gender = _GENDERS.pick(rng)
        if gender == "Female":
            first = rng.choice(FEMALE_NAMES)
        elif gender == "Male":
            first = rng.choice(MALE_NAMES)
        else:
            first = rng.choice(NEUTRAL_NAMES)
        last = rng.choice(LAST_NAMES)
        base = f"{_ascii_slug(first)}.{_ascii_slug(last)}@{_DOMAINS.pick(rng)}"
        seen = email_counts.get(base, 0) + 1
        email_counts[base] = seen
        email = base if seen == 1 else base.replace("@", f"{seen}@", 1)

        relationship = _RELATIONSHIPS.pick(rng)
        if relationship == "Single":
            table = _TABLE_SINGLE.pick(rng)
        elif relationship in PARTNERED:
            table = _TABLE_PARTNERED.pick(rng)
        else:
            table = _TABLE_OTHER.pick(rng)
        home = _HOMES.pick(rng)
        work = home if rng.random() < 0.1 else _WORKS.pick(rng)

        roll = rng.random()
        role = "POTENTIAL" if roll < 0.25 else "REGULAR" if roll < 0.96 else "HOST" if roll < 0.99 else "ADMIN"

        user = {
            "_id": _object_id(created // 1000, machine, counter + index),
            "id": _uuid(rng),
            "firstName": first,
            "lastName": last,
            "email": email,
            "phone": f"+1{_AREA_CODES.pick(rng)}555{rng.randint(0, 9999):04d}",
            "birthDay": _birthday(rng, today, _AGES.pick(rng), feb29),
            "gender": gender,
            "relationshipStatus": relationship,
            "occupation": _OCCUPATIONS.pick(rng),
            "homeNeighborhood": home,
            "workNeighborhood": work,
            "interests": _INTERESTS.sample(rng, rng.randint(2, 6)),
            "tableTypePreference": table,
            "role": role,
            "createdAt": _iso_ms(created),
        }
        if rng.random() < 0.7:
            user["preferredCuisines"] = _CUISINES.sample(rng, rng.randint(1, 4))
        allergy_roll = rng.random()
        if allergy_roll < 0.25:
            user["allergies"] = []
        elif allergy_roll < 0.42:
            user["allergies"] = _ALLERGIES.sample(rng, rng.randint(1, 2))
        people.users.append(user)
        people.interest_sets.append(frozenset(user["interests"]))
        people.homes.append(home)
        people.works.append(work)
        people.concepts_seen.append(set())

        # Heavy tail: a Pareto weight per member; online sign-ups mostly never come, and a share
        # of everyone else never does either.
        if role in ("HOST", "ADMIN"):
            weight = 2.0 * min(rng.paretovariate(1.3), 30.0)
        elif role == "POTENTIAL":
            weight = 0.0 if rng.random() < 0.8 else 0.5 * min(rng.paretovariate(1.3), 30.0)
        else:
            weight = 0.0 if rng.random() < 0.2 else min(rng.paretovariate(1.3), 30.0)
        weights.append(weight)
        if role in ("HOST", "ADMIN"):
            people.host_pool.append(index)

    people.weight_cum = list(accumulate(weights))
    people.host_created_ms = [people.created_ms[i] for i in people.host_pool]
    host_weights = [rng.paretovariate(1.5) for _ in people.host_pool]
    people.host_cum = list(accumulate(host_weights))

    # Friend groups of 2-5 among people who do come to events.
    active = [index for index, weight in enumerate(weights) if weight > 0]
    rng.shuffle(active)
    people.group_of = [-1] * n_users
    position, in_groups = 0, int(0.4 * len(active))
    while position + 1 < in_groups:
        size = min(rng.randint(2, 5), in_groups - position)
        if size < 2:
            break
        members = sorted(active[position:position + size])
        for member in members:
            people.group_of[member] = len(people.groups)
        people.groups.append(members)
        position += size

    # Guests: people who come along to events without an account. Their addresses have no dot
    # in the local part, so they can never collide with a member's first.last address.
    for _ in range(max(10, n_users // 25)):
        first = _ascii_slug(rng.choice(FEMALE_NAMES + MALE_NAMES)).replace("-", "")
        last = _ascii_slug(rng.choice(LAST_NAMES)).replace("-", "")
        people.guest_emails.append(f"{first[0]}{last}{rng.randint(10, 99)}@{_DOMAINS.pick(rng)}")
    return people


# ---------------------------------------------------------------------------------------------
# Events and participation
# ---------------------------------------------------------------------------------------------

def _event_day(rng: random.Random, slot: str, today: date, past: bool) -> date:
    """A date in the past two years (more recent ones likelier) or the next two months."""
    if past:
        day = today - timedelta(days=int(rng.triangular(2, PAST_EVENT_SPAN_DAYS, 2)))
    else:
        day = today + timedelta(days=rng.randint(1, FUTURE_EVENT_SPAN_DAYS))
    weekday = _WEEKDAYS[slot].pick(rng)
    day += timedelta(days=(weekday - day.weekday() + 3) % 7 - 3)
    # Keep past events at least two days back and future ones at least a day ahead, whatever
    # the time of `now`, so the 70/30 split is exact.
    if past and day > today - timedelta(days=2):
        day -= timedelta(days=7)
    if not past and day < today + timedelta(days=1):
        day += timedelta(days=7)
    return day


def _event_name(rng: random.Random, concept: str, neighborhood: str) -> str:
    roll = rng.random()
    if roll < 0.30:
        return f"{rng.choice(NAME_PREFIXES)} {concept}"
    if roll < 0.50:
        return f"{concept} in {neighborhood}"
    if roll < 0.58:
        return f"{concept} Vol. {rng.randint(2, 12)}"
    return concept


def _description(rng: random.Random, name: str, venue: str, neighborhood: str, max_seats: int) -> str:
    html_name = name.replace("&", "&amp;")
    html_venue = venue.replace("&", "&amp;").replace("'", "&#39;")
    html_hood = neighborhood.replace("'", "&#39;")
    blurbs = rng.sample(EVENT_BLURBS, 2)
    details = rng.sample(EVENT_DETAILS, 2)
    return (
        f"<p>Join us for <b>{html_name}</b> at {html_venue} in {html_hood}.</p>"
        f"<p>{blurbs[0]}<br/>{blurbs[1]}</p>"
        f"<p>{details[0]}<br/>{details[1]}<br/>Only {max_seats}&nbsp;seats.</p>"
    )


def _draw_user(rng: random.Random, cum: list[float], limit: int) -> int:
    """A user among the first `limit` (those signed up in time), weighted by activity."""
    return bisect.bisect_right(cum, rng.random() * cum[limit - 1], 0, limit)


class _Pull(NamedTuple):
    """What decides who comes to one event."""

    related: frozenset[str]   # interests related to its categories and features
    neighborhood: str
    concept: str


def related_interests(categories: Sequence[str], features: Sequence[str]) -> frozenset[str]:
    """The interests (from INTERESTS) that draw people to an event with these categories and features.

    Args:
        categories: The event's categories, e.g. ("Dinner", "Music").
        features: The event's features, e.g. ("Live music", "BYOB").

    Returns:
        e.g. {"food", "jazz", "live music", "classical music"}.
    """
    return frozenset(interest for tag in (*categories, *features) for interest in TAG_INTERESTS.get(tag, ()))


def _affinity(people: _People, user: int, pull: _Pull) -> float:
    matches = len(people.interest_sets[user] & pull.related)
    points = NOISE_AFFINITY + INTEREST_AFFINITY * min(matches, MAX_RELATED_INTERESTS)
    if people.homes[user] == pull.neighborhood:
        points += HOME_AFFINITY
    elif people.works[user] == pull.neighborhood:
        points += WORK_AFFINITY
    if pull.concept in people.concepts_seen[user]:
        points += HABIT_AFFINITY
    return points


def _fill_participants(
    rng: random.Random, people: _People, target: int, start_ms: int, pull: _Pull,
) -> list[str]:
    """RSVP e-mails for one event: draws weighted by activity and kept by affinity, friends, the odd guest.

    Events must be filled in start order, so that "came to this concept before" means before.
    """
    limit = bisect.bisect_left(people.created_ms, start_ms)
    if target <= 0 or limit == 0 or people.weight_cum[limit - 1] <= 0:
        return []
    chosen: list[int] = []
    taken: set[int] = set()   # membership only; never iterated, so hash order cannot leak
    emails: list[str] = []
    guests_taken: list[str] = []
    attempts = 0
    # Most draws are turned down by affinity (about 1 in 5 is kept), hence the generous cap.
    while len(emails) < target and attempts < 40 * target + 50:
        attempts += 1
        if rng.random() < GUEST_DRAW_RATE:
            guest = rng.choice(people.guest_emails)
            if guest not in guests_taken:
                guests_taken.append(guest)
                emails.append(_as_typed(rng, guest))
            continue
        user = _draw_user(rng, people.weight_cum, limit)
        if user in taken or rng.random() * MAX_AFFINITY >= _affinity(people, user, pull):
            continue
        taken.add(user)
        chosen.append(user)
        emails.append(_as_typed(rng, people.users[user]["email"]))
        group = people.group_of[user]
        if group < 0:
            continue
        for friend in people.groups[group]:
            if len(emails) >= target:
                break
            if friend != user and friend not in taken and friend < limit and rng.random() < 0.6:
                taken.add(friend)
                chosen.append(friend)
                emails.append(_as_typed(rng, people.users[friend]["email"]))
    for user in chosen:
        people.concepts_seen[user].add(pull.concept)
    return emails


def _fill_target(rng: random.Random, label: str, status: str, past: bool, max_seats: int) -> int:
    """How many RSVPs an event should get."""
    if status == "canceled":
        return rng.randint(0, min(3, max_seats) if past else max_seats // 2)
    if status == "pending":
        return rng.randint(0, 2)
    if label == "full":
        return max_seats
    if label == "low":
        # Under 30% full, which also means fewer than 3 when there are 10 or more seats.
        return rng.randint(0, max(0, math.ceil(0.3 * max_seats) - 1))
    if past:
        if rng.random() < 0.25:
            return max_seats
        return min(max_seats, max(1, round(rng.uniform(0.45, 1.0) * max_seats)))
    return min(max_seats - 1, max(1, round(rng.uniform(0.35, 0.95) * max_seats)))


def _owner_id(rng: random.Random, people: _People, start_ms: int) -> str:
    """Mostly a host's id, sometimes another member's, now and then their `_id` or a stranger's."""
    roll = rng.random()
    if roll < 0.02:
        return _uuid(rng)  # an account deleted since, or created in another system
    if roll < 0.78 and people.host_pool:
        # A host who had signed up by then, if any did.
        limit = bisect.bisect_left(people.host_created_ms, start_ms) or len(people.host_pool)
        owner = people.host_pool[_draw_user(rng, people.host_cum, limit)]
    else:
        owner = rng.randrange(len(people.users))
    key = "_id" if rng.random() < 0.1 else "id"
    return people.users[owner][key]


def _make_events(rng: random.Random, n_events: int, people: _People, now_ms: int) -> list[dict]:
    today = _ms_to_datetime(now_ms).date()
    n_past = round(PAST_EVENT_RATE * n_events)
    n_future = n_events - n_past
    past_labels = _split_slots(rng, n_past, (("private", 0.10, 0), ("canceled", 0.06, 0), ("pending", 0.06, 0)))
    future_labels = _split_slots(rng, n_future, (
        ("private", 0.10, 1), ("canceled", 0.06, 1), ("pending", 0.06, 1),
        ("full", 0.12, 2), ("low", 0.30, 2),
    ))
    machine = rng.getrandbits(40)
    counter = rng.getrandbits(24)

    planned: list[tuple[int, int, dict, _Pull, int]] = []
    plan = [(True, label) for label in past_labels] + [(False, label) for label in future_labels]
    for index, (past, label) in enumerate(plan):
        concept, categories, slot = rng.choice(EVENT_CONCEPTS)
        venue, neighborhood = rng.choice(VENUES)
        day = _event_day(rng, slot, today, past)
        hour, minute = rng.choice(SLOT_TIMES[slot])
        start_ms = _new_york_to_utc_ms(day, hour, minute)
        end_ms = start_ms + rng.choice((120, 150, 180, 210, 240)) * 60_000
        max_seats = _MAX_PARTICIPANTS.pick(rng)
        status = "canceled" if label == "canceled" else "pending" if label == "pending" else "approved"
        name = _event_name(rng, concept, neighborhood)
        owner = _owner_id(rng, people, start_ms) if people.users else _uuid(rng)
        target = _fill_target(rng, label, status, past, max_seats)
        event = {
            "_id": "",  # set below, once events are in creation order
            "id": _uuid(rng),
            "name": name,
            "startDate": _iso_ms(start_ms),
            "endDate": _iso_ms(end_ms),
            "type": "private" if label == "private" else "public",
            "eventStatus": status,
            "maxParticipants": max_seats,
            "minParticipants": rng.randint(2, max(2, max_seats // 3)),
            "participants": [],
            "ownerId": owner,
            "venueName": venue,
            "neighborhood": neighborhood,
            "categories": list(categories),
            "features": rng.sample(FEATURES, rng.randint(2, 4)),
        }
        if rng.random() < 0.95:
            event["description"] = _description(rng, name, venue, neighborhood, max_seats)
        pull = _Pull(related_interests(categories, event["features"]), neighborhood, concept)
        planned.append((start_ms, index, event, pull, target))

    # Participants in start order, so that a member's habits are built from earlier events only.
    for start_ms, _, event, pull, target in sorted(planned, key=lambda item: (item[0], item[1])):
        event["participants"] = _fill_participants(rng, people, target, min(start_ms, now_ms), pull)

    drafts: list[tuple[int, int, dict]] = []
    for start_ms, index, event, _, _ in planned:
        if rng.random() < 0.20 and people.users:
            event["invitedParticipants"] = _invitations(rng, people, event["participants"], min(start_ms, now_ms))
        # Events are created 3-45 days before they start, and never after `now`.
        created_ms = min(start_ms - rng.randint(3, 45) * _DAY_MS, now_ms - rng.randint(1, 72) * 3_600_000)
        drafts.append((created_ms, index, event))

    drafts.sort(key=lambda draft: (draft[0], draft[1]))
    events = []
    for position, (created_ms, _, event) in enumerate(drafts):
        event["_id"] = _object_id(created_ms // 1000, machine, counter + position)
        events.append(event)
    return events


def _invitations(rng: random.Random, people: _People, participants: list[str], start_ms: int) -> list[str]:
    """1-8 invited e-mails: mostly members who have not RSVP'd yet, some outside guests."""
    limit = max(1, bisect.bisect_left(people.created_ms, start_ms))
    already = [email.strip().lower() for email in participants]
    invited: list[str] = []
    for _ in range(rng.randint(1, 8)):
        if rng.random() < 0.15:
            email = rng.choice(people.guest_emails)
        else:
            email = people.users[rng.randrange(limit)]["email"]
        if email not in already and email not in invited:
            invited.append(email)
    return invited


# ---------------------------------------------------------------------------------------------
# Message history
# ---------------------------------------------------------------------------------------------

def _make_messages(rng: random.Random, people: _People, events: list[dict]) -> list[dict]:
    if not events or not people.users:
        return []
    n_users = len(people.users)
    messaged = sorted(rng.sample(range(n_users), round(MESSAGED_USER_RATE * n_users)))
    messages = [
        _message(rng, people.users[index], rng.choice(events), "_id" if rng.random() < 0.15 else "id")
        for index in messaged
        for _ in range(1 if rng.random() < 0.7 else rng.randint(2, 3))
    ]
    # A couple of records whose link to the user was lost.
    for _ in range(2):
        message = _message(rng, people.users[rng.randrange(n_users)], rng.choice(events), "id")
        message["user_id"] = None
        messages.insert(rng.randint(0, len(messages)), message)
    return messages


def _message(rng: random.Random, user: dict, event: dict, id_key: str) -> dict:
    campaign = _CAMPAIGNS.pick(rng)
    start = parse_iso_date(event["startDate"])
    local = start + _new_york_utc_offset(start.date())
    text = rng.choice(MESSAGE_TEMPLATES[campaign]).format(
        first=user["firstName"], event=event["name"], venue=event["venueName"],
        neighborhood=event["neighborhood"],
        day=f"{WEEKDAY_NAMES[local.weekday()]}, {MONTH_NAMES[local.month - 1]} {local.day}",
        link=BOOKING_URL + event["id"],
    )
    message = {
        "user_id": user[id_key],
        "user_name": f"{user['firstName']} {user['lastName']}",
        "user_email": user["email"],
        "user_phone": user["phone"],
        "event_id": event["id"],
        "event_name": event["name"],
        "event_date": event["startDate"],
        "message": text,
        "campaign": campaign,
    }
    if rng.random() < 0.8:
        message["airtable_id"] = "rec" + "".join(rng.choices(AIRTABLE_ALPHABET, k=14))
    return message


# ---------------------------------------------------------------------------------------------
# Dirt
# ---------------------------------------------------------------------------------------------

def _dirty_indices(rng: random.Random, n: int, strata: Sequence[Sequence[int]]) -> list[int]:
    """ceil(DIRT_RATE * n) record indices, spread over the strata in proportion, in random order."""
    total = min(n, math.ceil(DIRT_RATE * n))
    picked: list[int] = []
    if total == 0:
        return picked
    for position, stratum in enumerate(strata):
        if position == len(strata) - 1:
            count = total - len(picked)
        else:
            count = round(total * len(stratum) / n)
        picked.extend(rng.sample(list(stratum), min(count, len(stratum))))
    rng.shuffle(picked)
    return picked


def _extjson_date(rng: random.Random, iso: str) -> dict:
    """The same instant as MongoDB Extended JSON, relaxed or canonical."""
    if rng.random() < 0.5:
        return {"$date": iso}
    return {"$date": {"$numberLong": str(_datetime_to_ms(parse_iso_date(iso)))}}


def _dirty_user(rng: random.Random, kind: str, users: list[dict], index: int, dirty: set[int]) -> str:
    user = users[index]
    string_fields = [field for field in REQUIRED_USER_FIELDS if field not in ("interests", "phone")]
    if kind == "duplicate_id":
        # The same person signed up again: same `id`, a new `_id`, another e-mail address.
        earlier = [i for i in range(max(0, index - 200), index) if i not in dirty] if index else []
        if not earlier:
            kind = "blank_phone"
        else:
            source = users[rng.choice(earlier)]
            copy = dict(source)
            copy["_id"] = user["_id"]
            copy["createdAt"] = user["createdAt"]
            domain = source["email"].partition("@")[2]
            copy["email"] = f"{_ascii_slug(source['firstName'])}{_ascii_slug(source['lastName'])}{index}@{domain}"
            copy["interests"] = list(source["interests"])
            users[index] = copy
            return kind
    if kind == "blank_phone":
        user["phone"] = ""
    elif kind == "missing_field":
        del user[rng.choice(string_fields)]
    elif kind == "interests_string":
        user["interests"] = user["interests"][0] if rng.random() < 0.5 else ", ".join(user["interests"])
    elif kind == "invalid_birthday":
        user["birthDay"] = rng.choice(("not-a-date", "1990-13-45T00:00:00.000Z", "31/04/1990", "1988-02-30"))
    elif kind == "extjson_oid":
        user["_id"] = {"$oid": user["_id"]}
    elif kind == "extjson_date":
        field = rng.choice(("createdAt", "birthDay"))
        user[field] = _extjson_date(rng, user[field])
    elif kind == "interests_empty":
        user["interests"] = []
    elif kind == "null_field":
        user[rng.choice(string_fields)] = None
    elif kind == "invalid_created_at":
        user["createdAt"] = rng.choice(("2023-13-45T10:00:00.000Z", "yesterday", "0000-00-00T00:00:00Z"))
    elif kind == "whitespace_field":
        user[rng.choice(string_fields)] = "   "
    elif kind == "phone_not_string":
        user["phone"] = int(user["phone"].lstrip("+"))
    return kind


def _dirty_event(rng: random.Random, kind: str, event: dict) -> str:
    if kind == "participants_null":
        event["participants"] = None
    elif kind == "invalid_start_date":
        event["startDate"] = rng.choice(("2025-02-30T19:00:00.000Z", "TBD", "not-a-date", "19:00 Friday"))
    elif kind == "max_participants_string":
        event["maxParticipants"] = NUMBER_WORDS[event["maxParticipants"]]
    elif kind == "extjson_date":
        event["startDate"] = _extjson_date(rng, event["startDate"])
    elif kind == "missing_start_date":
        del event["startDate"]
    elif kind == "participants_string":
        event["participants"] = ", ".join(event["participants"])
    elif kind == "max_participants_missing":
        del event["maxParticipants"]
    elif kind == "extjson_number":
        event["maxParticipants"] = {"$numberInt": str(event["maxParticipants"])}
    elif kind == "extjson_oid":
        event["_id"] = {"$oid": event["_id"]}
    return kind


def _apply_dirt(rng: random.Random, users: list[dict], events: list[dict], now_ms: int) -> list[dict]:
    """Spoil ~3% of users and events, one fault each; return the log of what was done."""
    log: list[dict] = []
    user_indices = _dirty_indices(rng, len(users), [range(len(users))])
    dirty = set(user_indices)  # membership only
    for position, index in enumerate(user_indices):
        kind = USER_DIRT_KINDS[position % len(USER_DIRT_KINDS)]
        applied = _dirty_user(rng, kind, users, index, dirty)
        log.append({"collection": "users", "index": index, "kind": applied})

    now_iso = _iso_ms(now_ms)
    past = [i for i, event in enumerate(events) if event["startDate"] < now_iso]
    future = [i for i, event in enumerate(events) if event["startDate"] >= now_iso]
    event_indices = _dirty_indices(rng, len(events), [past, future])
    for position, index in enumerate(event_indices):
        kind = EVENT_DIRT_KINDS[position % len(EVENT_DIRT_KINDS)]
        log.append({"collection": "events", "index": index, "kind": _dirty_event(rng, kind, events[index])})
    log.sort(key=lambda entry: (entry["collection"] != "users", entry["index"]))
    return log


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------

def attendance_signal(dataset: dict[str, list]) -> dict[str, float]:
    """How much RSVPs follow interests, neighborhoods and habits, beside what chance would give.

    Counts every (member, past or future event) RSVP whose e-mail matches a user with a list of
    interests. "Chance" pairs the same events with members drawn uniformly from those who RSVP'd to
    anything, which is what attendance would look like if it ignored the three.

    Args:
        dataset: What `generate_dataset` returned.

    Returns:
        {"rsvps", "related_interest", "related_interest_chance", "near", "near_chance", "repeat_concept"}:
        the shares of RSVPs where the member has an interest related to the event, lives or works in its
        neighborhood, or had already come to the same concept.
    """
    users = {}
    for user in dataset["users"]:
        if isinstance(user.get("email"), str) and isinstance(user.get("interests"), list):
            users.setdefault(user["email"].lower(), user)
    events = sorted((e for e in dataset["events"] if isinstance(e.get("participants"), list)
                     and isinstance(e.get("startDate"), str)), key=lambda e: e["startDate"])
    concepts = sorted((concept for concept, _, _ in EVENT_CONCEPTS), key=len, reverse=True)
    pairs = []
    for event in events:
        concept = next((c for c in concepts if c in str(event.get("name"))), None)
        for email in event["participants"]:
            user = users.get(str(email).strip().lower())
            if user is not None:
                pairs.append((user, event, concept))
    if not pairs:
        return {"rsvps": 0}
    seen: dict[str, set] = {}
    related = near = repeat = 0
    for user, event, concept in pairs:
        wanted = related_interests(event.get("categories") or (), event.get("features") or ())
        related += bool(wanted.intersection(user["interests"]))
        near += event.get("neighborhood") in (user.get("homeNeighborhood"), user.get("workNeighborhood"))
        concepts_seen = seen.setdefault(user["email"], set())
        repeat += concept in concepts_seen
        concepts_seen.add(concept)
    rng = random.Random(0)
    attendees = list({id(user): user for user, _, _ in pairs}.values())
    chance_related = chance_near = 0
    for _, event, _ in pairs:
        other = rng.choice(attendees)
        wanted = related_interests(event.get("categories") or (), event.get("features") or ())
        chance_related += bool(wanted.intersection(other["interests"]))
        chance_near += event.get("neighborhood") in (other.get("homeNeighborhood"), other.get("workNeighborhood"))
    n = len(pairs)
    shares = {"related_interest": related, "related_interest_chance": chance_related, "near": near,
              "near_chance": chance_near, "repeat_concept": repeat}
    return {"rsvps": n, **{name: round(count / n, 3) for name, count in shares.items()}}


def generate_dataset(n_users: int, n_events: int, seed: int, now: datetime) -> dict[str, list]:
    """Generate the three raw exports in memory.

    Args:
        n_users: How many user records (1 or more).
        n_events: How many event records (0 or more).
        seed: Seed of the one random generator; the same seed and `now` give the same data.
        now: The reference time (aware); ages, sign-ups and event dates are relative to it.

    Returns:
        {"users": […], "events": […], "messages": […], "dirt": […]}. The first three follow the
        input schemas of the spec; "dirt" lists each spoiled record as
        {"collection": "users"|"events", "index": i, "kind": "…"}.

    Raises:
        PipelineError: A count is out of range or `now` has no time zone.
    """
    if not 1 <= n_users <= MAX_RECORDS:
        raise PipelineError(f"--users must be between 1 and {MAX_RECORDS:,}, got {n_users}")
    if not 0 <= n_events <= MAX_RECORDS:
        raise PipelineError(f"--events must be between 0 and {MAX_RECORDS:,}, got {n_events}")
    if now.tzinfo is None:
        raise PipelineError("now must be time-zone aware, e.g. 2026-01-15T00:00:00Z")
    rng = random.Random(seed)
    now_ms = _datetime_to_ms(now.astimezone(timezone.utc))
    people = _make_users(rng, n_users, now_ms)
    events = _make_events(rng, n_events, people, now_ms)
    messages = _make_messages(rng, people, events)
    dirt = _apply_dirt(rng, people.users, events, now_ms)
    return {"users": people.users, "events": events, "messages": messages, "dirt": dirt}


def write_dataset(dataset: dict[str, list], out_dir: Path) -> list[Path]:
    """Write users.json, events.json and messages.json atomically in the project's JSON format.

    Args:
        dataset: What `generate_dataset` returned.
        out_dir: The folder to write into (created if missing).

    Returns:
        The three paths written.

    Raises:
        PipelineError: The folder cannot be written.
    """
    paths = []
    for key, name in (("users", USERS_FILE), ("events", EVENTS_FILE), ("messages", MESSAGES_FILE)):
        path = Path(out_dir) / name
        save_json_atomic(path, dataset[key])
        paths.append(path)
    return paths


def default_now() -> datetime:
    """Today at 00:00 UTC, so that runs on the same day give the same files."""
    return utc_now().replace(hour=0, minute=0, second=0, microsecond=0)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m utils.sample_data`."""
    parser = argparse.ArgumentParser(
        prog="python -m utils.sample_data",
        description="Write realistic sample users.json, events.json and messages.json (about 3% "
                    "of records deliberately dirty) for the pipeline to run on.",
        epilog="Example: python -m utils.sample_data --users 2000 --events 200 --seed 7 "
               "--now 2026-01-15 --out /tmp/raw",
    )
    parser.add_argument("--users", type=int, default=DEFAULT_USERS, metavar="N",
                        help=f"number of users (default: {DEFAULT_USERS})")
    parser.add_argument("--events", type=int, default=DEFAULT_EVENTS, metavar="M",
                        help=f"number of events (default: {DEFAULT_EVENTS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, metavar="S",
                        help=f"random seed; the same seed and --now give identical files (default: {DEFAULT_SEED})")
    parser.add_argument("--now", default=None, metavar="ISO8601",
                        help="reference time, e.g. 2026-01-15 or 2026-01-15T12:00:00Z (default: today 00:00 UTC)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, metavar="DIR",
                        help="folder for the three files (default: the repo's data/raw)")
    return parser


@step_main
def main(argv: Optional[list[str]] = None) -> int:
    """Generate the sample files from the command line."""
    args = build_parser().parse_args(argv)
    now = parse_now(args.now) if args.now else default_now()
    started = time.perf_counter()
    dataset = generate_dataset(args.users, args.events, args.seed, now)
    generated = time.perf_counter()
    write_dataset(dataset, args.out)
    finished = time.perf_counter()
    dirty_users = sum(1 for entry in dataset["dirt"] if entry["collection"] == "users")
    dirty_events = len(dataset["dirt"]) - dirty_users
    print(
        f"Wrote {len(dataset['users'])} users, {len(dataset['events'])} events and "
        f"{len(dataset['messages'])} messages to {args.out} (dirty: {dirty_users} users, "
        f"{dirty_events} events; seed {args.seed}, now {to_iso(now)})"
    )
    print(f"Generated in {generated - started:.2f} s, written in {finished - generated:.2f} s, "
          f"total {finished - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
