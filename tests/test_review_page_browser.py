"""The review page in a real headless Chromium (Debian's `chromium`), driven by Playwright for Python.

Needs `playwright` (requirements-dev.txt) and /usr/bin/chromium (`apt-get install -y chromium`), or the
browser named by $CHROMIUM_PATH. Where either is missing these tests are skipped with the reason,
unless REQUIRE_BROWSER_TESTS=1 (as in .ci/run), where they fail instead.
"""

import os
import shutil
from pathlib import Path

import pytest

from tests.review_page_samples import HOSTILE_IMG, HOSTILE_SCRIPT, sample_page, sample_records

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def _missing_requirement() -> str:
    """Why the browser tests cannot run here, or "" when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed: .venv/bin/pip install -r requirements-dev.txt"
    if not (os.access(CHROMIUM_PATH, os.X_OK) or shutil.which(CHROMIUM_PATH)):
        return f"no Chromium at {CHROMIUM_PATH}: apt-get install -y chromium (or set CHROMIUM_PATH)"
    return ""


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the module; skipped (or failed under REQUIRE_BROWSER_TESTS=1) without one."""
    reason = _missing_requirement()
    if reason:
        if os.environ.get("REQUIRE_BROWSER_TESTS") == "1":
            pytest.fail(f"browser tests required (REQUIRE_BROWSER_TESTS=1) but {reason}", pytrace=False)
        pytest.skip(f"browser tests skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class OpenedPage:
    """A page opened from a file, with what it logged and requested."""

    def __init__(self, page, errors: list[str], requests: list[str], url: str):
        self.page, self.errors, self.requests, self.url = page, errors, requests, url

    def visible_statuses(self) -> list[str]:
        return self.page.eval_on_selector_all("tr.msg:not([hidden])", "rows => rows.map(r => r.dataset.status)")


@pytest.fixture
def review_page(browser, tmp_path):
    """The sample review page written to a file and opened as a person would (file://)."""
    path = Path(tmp_path) / "review.html"
    path.write_text(sample_page(), encoding="utf-8")
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("request", lambda request: requests.append(request.url))
    page.goto(path.as_uri())
    yield OpenedPage(page, errors, requests, path.as_uri())
    context.close()


def test_loads_with_no_console_errors_and_no_other_request(review_page):
    assert review_page.page.title() == "Step 5 review"
    assert review_page.errors == []
    assert review_page.requests == [review_page.url]


def test_one_row_per_record_all_shown(review_page):
    records = sample_records()
    assert review_page.page.locator("tr.msg").count() == len(records)
    assert len(review_page.visible_statuses()) == len(records)
    assert review_page.page.inner_text("#shown") == f"{len(records)} of {len(records)} messages shown"


def test_needs_review_filter_shows_exactly_those_rows(review_page):
    expected = sum(1 for record in sample_records() if record["status"] == "needs_review")
    review_page.page.select_option("#filter-status", "needs_review")
    assert review_page.visible_statuses() == ["needs_review"] * expected
    review_page.page.select_option("#filter-status", "")
    assert len(review_page.visible_statuses()) == len(sample_records())


def test_campaign_event_and_changed_filters_combine(review_page):
    page = review_page.page
    page.select_option("#filter-campaign", "Fill the Table")
    page.select_option("#filter-event", "ev-tacos")
    rows = page.eval_on_selector_all("tr.msg:not([hidden])", "rows => rows.map(r => r.dataset.event)")
    assert rows == ["ev-tacos", "ev-tacos"]  # u2 and u7
    page.select_option("#filter-campaign", "")
    page.select_option("#filter-event", "")
    page.check("#filter-changed")
    assert page.eval_on_selector_all("tr.msg:not([hidden])", "rows => rows.map(r => r.dataset.changed)") == \
        ["1", "1"]


def test_hostile_event_name_is_shown_as_text_and_never_run(review_page):
    page = review_page.page
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 1
    table = page.inner_text("#messages-table")
    assert HOSTILE_SCRIPT in table and HOSTILE_IMG in table
    assert review_page.errors == []  # nothing was even attempted and blocked by the CSP


def test_search_narrows_rows(review_page):
    page = review_page.page
    page.fill("#search", "maya")  # member name, any case
    assert page.locator("tr.msg:not([hidden])").count() == 1
    page.fill("#search", "communal table")  # words of u4's message
    assert page.locator("tr.msg:not([hidden])").count() == 1
    page.fill("#search", "spam-trigger")  # a gate reason
    assert review_page.visible_statuses() == ["needs_review"]
    page.fill("#search", "no such text anywhere")
    assert page.locator("tr.msg:not([hidden])").count() == 0
    assert page.inner_text("#shown") == f"0 of {len(sample_records())} messages shown"
    page.fill("#search", "")
    assert page.locator("tr.msg:not([hidden])").count() == len(sample_records())


def test_page_of_a_real_offline_step5_run(browser, tmp_path):
    """The page a real offline step 5 run writes: loads clean, one row per record, the filter works."""
    import json

    from pipeline import step5_match_message as step5
    from tests.test_step5_match_message import FIXTURES

    data = tmp_path / "data"
    (data / "processed").mkdir(parents=True)
    (data / "raw").mkdir()
    for name in ("enriched_users.json", "enriched_events.json"):
        shutil.copy(FIXTURES / name, data / "processed" / name)
    (data / "raw" / "users.json").write_text("[]")
    assert step5.main(["--data-dir", str(data), "--log-dir", str(tmp_path / "logs"), "--now",
                       "2026-11-25T12:00:00Z", "--offline", "--max-segments", "1"]) == 0
    records = json.loads((data / "processed" / "processed_messages.json").read_text())
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto((data / "processed" / "review.html").as_uri())
    assert errors == []
    assert page.locator("tr.msg").count() == len(records)
    page.select_option("#filter-status", "approved")
    expected = sum(1 for record in records if record["status"] == "approved")
    assert 0 < expected and page.locator("tr.msg:not([hidden])").count() == expected
    context.close()
